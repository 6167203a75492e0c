"""search.keep: which trials' models stay in RESULTS/models, from the folds table alone."""

import numpy as np
import pandas as pd

from fbp.data.synthetic import SMALL
from search.keep import Standings, rank_trials, settle, trials_to_keep
from search.results import ResultsDir
from search.spec import validate_spec

STUDY = {
    "name": "kept",
    "data": {"dataset": "synthetic", "options": SMALL, "image_size": 32, "folds": [1, 2]},
    "model": {"backbone": "test_resnet", "pretrained": False},
    "search": {"num_trials": 6, "space": {"loss.alpha": {"float": [0.0, 4.0]}}, "baseline": [{"loss.alpha": 2.0}], "keep_models": 2},
}

# trial -> (loss.alpha, [(fold, status, val_pc)]); the objective reads val_pc (a space: on val)
TRIALS = {
    "t1": (0.5, [(1, "COMPLETE", 0.5), (2, "COMPLETE", 0.7)]),
    "t2": (1.5, [(1, "COMPLETE", 0.9), (2, "COMPLETE", 0.8)]),
    "t3": (2.5, [(1, "COMPLETE", 0.2), (2, "COMPLETE", 0.3)]),
    "t4": (3.5, [(1, "COMPLETE", 0.99), (2, "PRUNED", np.nan)]),  # the best fold, but pruned: never kept for its rank
    "t5": (2.0, [(1, "COMPLETE", 0.1), (2, "COMPLETE", 0.0)]),  # the baseline, the worst: kept anyway
    "t6": (3.0, [(1, "COMPLETE", 0.95)]),  # still running
}


def _results(tmp_path) -> ResultsDir:
    results = ResultsDir(tmp_path / "kept")
    for trial, (alpha, folds) in TRIALS.items():
        rows = [{"trial_id": trial, "fold": f, "seed": 0, "status": s, "val_pc": v, "pc": v, "param.loss.alpha": alpha} for f, s, v in folds]
        results.write("folds", f"{trial}-fold1", pd.DataFrame(rows))
        folder = results.model_dir(trial)
        folder.mkdir(parents=True)
        for f, status, _ in folds:
            if status == "COMPLETE":
                (folder / f"fold{f}.safetensors").write_bytes(b"weights")
    return results


def test_complete_trials_rank_by_their_mean_objective():
    rows = [{"trial_id": t, "fold": f, "seed": 0, "status": s, "val_pc": v, "val_mae": -v} for t, (_, folds) in TRIALS.items() for f, s, v in folds]
    folds = pd.DataFrame(rows)
    complete = ["t1", "t2", "t3", "t5"]  # t4 pruned, t6 one fold of two
    means = {t: np.mean([v for _, _, v in TRIALS[t][1]]) for t in complete}
    assert rank_trials(folds, 2, "val_pc", "max") == sorted(means.items(), key=lambda kv: -kv[1])
    assert [t for t, _ in rank_trials(folds, 2, "val_mae", "min")] == sorted(complete, key=lambda t: -means[t])  # val_mae = -val_pc here


def test_the_best_k_and_the_baseline_are_kept_the_others_deleted(tmp_path):
    results = _results(tmp_path)
    spec = validate_spec(STUDY, "kept.yaml")
    assert trials_to_keep(results, spec, 2) == {"t2", "t1", "t5"}
    # while t6 runs it keeps its folds: it may become one of the best
    assert sorted(settle(results, spec, 2, running={"t6"})) == ["t3", "t4"]
    assert results.kept_trials() == ["t1", "t2", "t5", "t6"]
    assert (results.model_dir("t2") / "fold2.safetensors").read_bytes() == b"weights"
    # t6 finishes as the best: t1 drops out of the best two and is deleted
    results.write("folds", "t6-fold2", pd.DataFrame([{"trial_id": "t6", "fold": 2, "seed": 0, "status": "COMPLETE", "val_pc": 0.95, "pc": 0.95, "param.loss.alpha": 3.0}]))
    assert settle(results, spec, 2) == ["t1"]
    assert results.kept_trials() == ["t2", "t5", "t6"]
    assert not list((results / "models").glob(".*"))  # nothing left half-deleted


def test_a_half_deleted_trial_is_finished_off_and_never_looks_kept(tmp_path):
    results = _results(tmp_path)
    spec = validate_spec(STUDY, "kept.yaml")
    (results / "models" / ".deleting-t0").mkdir()  # a settle killed halfway
    (results / "models" / ".deleting-t0" / "fold1.safetensors").write_bytes(b"old")
    assert "t0" not in results.kept_trials()
    settle(results, spec, 2, running={"t6"})
    assert not (results / "models" / ".deleting-t0").exists()


def test_keep_models_zero_keeps_only_the_baseline(tmp_path):
    results = _results(tmp_path)
    spec = validate_spec({**STUDY, "search": {**STUDY["search"], "keep_models": 0}}, "kept.yaml")
    settle(results, spec, 2)
    assert results.kept_trials() == ["t5"]


def test_standings_kept_up_trial_by_trial_agree_with_the_whole_table(tmp_path):
    results = _results(tmp_path)
    spec = validate_spec(STUDY, "kept.yaml")
    standings = Standings(spec, 2)
    standings.update(results)  # the first update reads the whole table
    assert standings.kept() == trials_to_keep(results, spec, 2) == {"t2", "t1", "t5"}
    # t6 finishes as the best; the next update reads its rows alone
    results.write("folds", "t6-fold2", pd.DataFrame([{"trial_id": "t6", "fold": 2, "seed": 0, "status": "COMPLETE", "val_pc": 0.95, "pc": 0.95, "param.loss.alpha": 3.0}]))
    standings.update(results, ended="t6")
    assert standings.kept() == trials_to_keep(results, spec, 2) == {"t6", "t2", "t5"}
    assert standings.means["t6"] == np.mean([0.95, 0.95])

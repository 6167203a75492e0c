"""Studies through real Ray Tune and Optuna on a loopback-only local Ray."""

import optuna
import pytest
import yaml

from fbp.data.synthetic import SMALL
from search.results import ResultsDir, read_table
from search.runner import run_study
from search.spec import validate_spec

pytestmark = pytest.mark.slow  # trains for long or starts Ray: not in the fast tier (pytest -m "not slow")

TINY = {
    "name": "tiny",
    "data": {"dataset": "synthetic", "options": SMALL, "image_size": 32, "folds": [1, 2]},
    "model": {"backbone": "test_resnet", "pretrained": False},
    "train": {"epochs": 1, "batch_size": 16, "device": "cpu"},
    "eval": {"batch_size": 64},
    "search": {
        "sampler": "tpe",
        "num_trials": 3,
        "seed": 0,
        "space": {"loss.alpha": {"float": [0.0, 4.0]}, "loss.discretization.rule": {"choice": ["paper", "round_half_even"]}},
        "baseline": [{"loss.alpha": 2.0, "loss.discretization.rule": "paper"}],
    },
    "scheduler": {"name": "none"},
    "resources": {"cpu": 1, "gpu": 0, "max_concurrent": 2},
}


def _journal(results):
    storage = ResultsDir(results).journal()
    return optuna.load_study(study_name="tiny", storage=storage)


def _trial_of(study, folds, trial_id):
    """The Optuna trial of a Tune trial: the one with the same params."""
    row = folds[folds["trial_id"] == trial_id].iloc[0]
    params = {c.removeprefix("param."): row[c] for c in folds.columns if c.startswith("param.")}
    return next(t for t in study.trials if t.params == pytest.approx(params))


def _spec(**changes):
    raw = yaml.safe_load(yaml.safe_dump(TINY))
    for section, values in changes.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return validate_spec(raw, "tiny.yaml")


def test_a_study_fills_the_results_contract(local_ray, tmp_path):
    results = tmp_path / "tiny"
    outcome = run_study(_spec(), "tiny.yaml", results)
    assert (outcome["trials"], outcome["errors"]) == (3, 0)

    folds = read_table(results, "folds")
    assert len(folds) == 3 * 2 and set(folds["fold"]) == {1, 2}
    assert not folds.duplicated(["trial_id", "fold"]).any()
    assert (folds["status"] == "COMPLETE").all() and folds["error"].isna().all()
    assert {"param.loss.alpha", "param.loss.discretization.rule"} <= set(folds.columns)
    for column in ("study", "spec_hash", "trial_id", "fold", "seed", "status", "error", "mae", "rmse", "pc", "n_train", "n_test",
                   "epochs_run", "selected_epoch", "train_seconds", "images_per_second", "device"):
        assert column in folds.columns, column
    assert len(list((results / "folds.parquet").glob("*.parquet"))) == 1  # compacted at the end

    predictions = read_table(results, "predictions")
    assert len(predictions) == 3 * 2 * 12 and not predictions.duplicated(["trial_id", "fold", "image"]).any()
    for (trial, fold), p in predictions.groupby(["trial_id", "fold"]):
        row = folds[(folds["trial_id"] == trial) & (folds["fold"] == fold)].iloc[0]
        assert row["mae"] == pytest.approx((p["y_pred"] - p["y_true"]).abs().mean())
    assert len(read_table(results, "epochs")) == 3 * 2

    study = yaml.safe_load((results / "study.yaml").read_text())
    assert study["name"] == "tiny" and len(study["spec_hash"]) == 16 and study["train"]["lr"] == 0.01
    assert (folds["spec_hash"] == study["spec_hash"]).all()

    storage = ResultsDir(results).journal()
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert len(trials) == 3 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert trials[0].params == {"loss.alpha": 2.0, "loss.discretization.rule": "paper"}  # the baseline first


def test_two_trials_share_one_gpu_at_half_each(local_ray, tmp_path):
    spec = _spec(
        search={**TINY["search"], "num_trials": 2, "baseline": []},
        train={**TINY["train"], "epochs": 25},  # long enough that the two must overlap
        data={**TINY["data"], "folds": [1]},
        resources={"cpu": 1, "gpu": 0.5, "max_concurrent": 2},
    )
    assert local_ray.cluster_resources()["GPU"] == 1
    outcome = run_study(spec, "tiny.yaml", tmp_path / "shared")
    assert outcome["max_running"] == 2, "Ray did not place both trials on the one GPU at once"
    folds = read_table(tmp_path / "shared", "folds").sort_values("started_at")
    assert len(folds) == 2 and (folds["status"] == "COMPLETE").all()


def test_a_whole_gpu_per_trial_runs_them_one_at_a_time(local_ray, tmp_path):
    spec = _spec(search={**TINY["search"], "num_trials": 2, "baseline": []}, data={**TINY["data"], "folds": [1]},
                 resources={"cpu": 1, "gpu": 1.0, "max_concurrent": 2})
    assert run_study(spec, "tiny.yaml", tmp_path / "whole")["max_running"] == 1


def test_more_gpu_per_trial_than_the_cluster_has_is_refused(local_ray, tmp_path):
    from fbp.errors import InputError

    with pytest.raises(InputError, match="resources.gpu: 2.0 per trial, but the cluster has 1 GPUs"):
        run_study(_spec(resources={"cpu": 1, "gpu": 2.0}), "tiny.yaml", tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_results_directory_of_another_study_is_refused(local_ray, tmp_path):
    from fbp.errors import InputError

    results = tmp_path / "r"
    results.mkdir()
    (results / "study.yaml").write_text(yaml.safe_dump({"name": "other", "spec_hash": "0" * 16}))
    with pytest.raises(InputError, match="holds another study's results"):
        run_study(_spec(), "tiny.yaml", results)


@pytest.mark.parametrize("path, value, error", [
    ("train.lr", 1e30, r"TrainingError: fold 1, epoch 1: loss term '\w+' is not finite"),
    # valid by the schema, fails only when it runs: batch norm on test_resnet's 1x1 map with batch 1
    ("train.batch_size", 1, r"ValueError: Expected more than 1 value per channel when training"),
])
def test_a_failing_trial_is_a_fail_row_and_the_study_goes_on(local_ray, tmp_path, path, value, error):
    spec = _spec(search={"sampler": "random", "num_trials": 2, "seed": 0, "space": {path: {"choice": [value]}}, "baseline": []})
    outcome = run_study(spec, "tiny.yaml", tmp_path / "fail")
    assert (outcome["trials"], outcome["errors"]) == (2, 2)
    folds = read_table(tmp_path / "fail", "folds")
    assert len(folds) == 2 * 2 and (folds["status"] == "FAIL").all()
    assert folds["error"].str.contains(error).all(), folds["error"].tolist()
    assert (folds[f"param.{path}"] == value).all()
    journal = _journal(tmp_path / "fail")
    assert [t.state for t in journal.trials] == [optuna.trial.TrialState.FAIL] * 2


def test_asha_prunes_on_folds_and_pruned_folds_are_marked(local_ray, tmp_path):
    spec = _spec(
        search={"sampler": "random", "num_trials": 4, "seed": 1, "space": {"loss.alpha": {"float": [0.0, 4.0]}}, "baseline": []},
        scheduler={"name": "asha", "grace_folds": 1, "reduction_factor": 2},
        resources={"cpu": 1, "gpu": 0, "max_concurrent": 1},
    )
    run_study(spec, "tiny.yaml", tmp_path / "asha")
    folds = read_table(tmp_path / "asha", "folds")
    assert len(folds) == 4 * 2 and not folds.duplicated(["trial_id", "fold"]).any()
    by_trial = folds.pivot(index="trial_id", columns="fold", values="status")
    assert (by_trial[1] == "COMPLETE").all()  # every trial reaches the first rung
    assert set(by_trial[2]) <= {"COMPLETE", "PRUNED"} and (by_trial[2] == "PRUNED").any()
    assert folds.loc[folds["status"] == "PRUNED", "pc"].isna().all()

    # the journal agrees with the folds table: a pruned trial is PRUNED, not COMPLETE with its
    # one-fold mean; every trial's intermediate values are its folds' own validation PCs, step =
    # fold (the objective reads the validation parts: Optuna never sees a test fold)
    journal = _journal(tmp_path / "asha")
    assert len(journal.trials) == 4
    for trial_id, rows in folds.groupby("trial_id"):
        t = _trial_of(journal, folds, trial_id)
        complete = rows[rows["status"] == "COMPLETE"]
        assert t.intermediate_values == pytest.approx(dict(zip(complete["fold"].astype(int), complete["val_pc"])))
        assert not complete["val_pc"].equals(complete["pc"])  # two different splits
        if (rows["status"] == "PRUNED").any():
            assert t.state == optuna.trial.TrialState.PRUNED
        else:
            assert t.state == optuna.trial.TrialState.COMPLETE and t.value == pytest.approx(complete["val_pc"].mean())


def test_two_objectives_with_nsga2(local_ray, tmp_path):
    spec = _spec(
        search={"sampler": "nsga2", "num_trials": 2, "seed": 0, "space": {"loss.alpha": {"float": [0.0, 4.0]}}, "baseline": []},
        objective=[{"metric": "pc"}, {"metric": "mae"}],
    )
    assert run_study(spec, "tiny.yaml", tmp_path / "multi")["errors"] == 0
    storage = ResultsDir(tmp_path / "multi").journal()
    study = optuna.load_study(study_name="tiny", storage=storage)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert all(len(t.values) == 2 for t in study.trials)


def test_a_run_that_fails_before_its_first_fold_leaves_nothing_that_blocks_the_next(local_ray, tmp_path, monkeypatch):
    import optuna

    from search import samplers

    def unpicklable(search):  # a sampler Tune cannot pickle (a generator), as optuna 5.1's NSGA-II was before the searcher pickled locks
        sampler = optuna.samplers.RandomSampler(seed=search.seed)
        sampler.pending = (n for n in range(3))
        return sampler

    spec = _spec(search={"sampler": "random", "num_trials": 1, "seed": 0, "space": {"loss.alpha": {"float": [0.0, 4.0]}}, "baseline": []})
    monkeypatch.setitem(samplers.SAMPLERS, "random", unpicklable)
    with pytest.raises(TypeError, match="pickle"):
        run_study(spec, "tiny.yaml", tmp_path / "first")
    assert not (tmp_path / "first").exists()
    (tmp_path / "given").mkdir()  # a folder the user made for it stays, empty
    with pytest.raises(TypeError, match="pickle"):
        run_study(spec, "tiny.yaml", tmp_path / "given")
    assert list((tmp_path / "given").iterdir()) == []
    monkeypatch.undo()
    assert run_study(spec, "tiny.yaml", tmp_path / "first")["study"].complete == 1  # the same study, the same folder: it runs


def test_max_failures_bounds_the_retries_of_a_failing_trial(local_ray, tmp_path):
    spec = _spec(search={"sampler": "random", "num_trials": 1, "seed": 0, "space": {"train.lr": {"choice": [1e30]}}, "baseline": []})
    outcome = run_study(spec, "tiny.yaml", tmp_path / "retry", max_failures=2)
    assert outcome["errors"] == 1
    error_file = next((tmp_path / "retry" / "tune").glob("train_trial_*/error.txt"))
    assert error_file.read_text().count("Failure #") == 3  # the first try and two retries
    folds = read_table(tmp_path / "retry", "folds")
    assert len(folds) == 2 and (folds["status"] == "FAIL").all()


def test_the_live_panel_names_each_running_trials_fold_and_epoch_and_its_log_has_every_epoch(local_ray, tmp_path):
    import io
    import re

    from rich.console import Console

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=200, highlight=False)
    spec = _spec(search={"sampler": "random", "num_trials": 1, "seed": 0, "space": {"loss.alpha": {"float": [0.0, 4.0]}}, "baseline": []},
                 train={**TINY["train"], "epochs": 30})  # long enough for the panel to refresh while it trains
    run_study(spec, "tiny.yaml", tmp_path / "live", console=console)
    trial_id = read_table(tmp_path / "live", "folds")["trial_id"].iloc[0]
    assert re.search(rf"{trial_id}: fold [12]/2 epoch \d+/30", screen.getvalue())
    log = (tmp_path / "live" / "logs" / f"{trial_id}.log").read_text().splitlines()
    epochs = [line for line in log if re.match(r"fold [12]/2  epoch \d+/30  loss \d", line)]  # the line `fbp-search train` prints (search.console)
    assert len(epochs) == 2 * 30 and epochs[0].startswith("fold 1/2  epoch 1/30") and epochs[-1].startswith("fold 2/2  epoch 30/30")


def test_repeats_and_an_objective_on_the_test_folds(local_ray, tmp_path):
    """train.repeats: every fold once per seed, rows keyed by seed; a fold's value (Optuna's
    intermediate value, ASHA's rung) is its seeds' mean. objective.on: test reads the test folds."""
    spec = _spec(search={"sampler": "random", "num_trials": 2, "seed": 0, "space": {"loss.alpha": {"float": [0.0, 4.0]}}, "baseline": []},
                 train={**TINY["train"], "repeats": 2}, objective={"metric": "pc", "on": "test"})
    assert not spec.eval.holdout  # nothing held out: the objective reads the test folds
    run_study(spec, "tiny.yaml", tmp_path / "seeds")
    folds = read_table(tmp_path / "seeds", "folds")
    assert len(folds) == 2 * 2 * 2 and set(folds["seed"]) == {0, 1} and folds["val_pc"].isna().all()
    assert len(read_table(tmp_path / "seeds", "predictions")) == 2 * 2 * 2 * 12  # trials x folds x seeds x test images
    journal = _journal(tmp_path / "seeds")
    for trial_id, rows in folds.groupby("trial_id"):
        t = _trial_of(journal, folds, trial_id)
        per_fold = rows.groupby("fold")["pc"].mean()
        assert t.intermediate_values == pytest.approx(per_fold.to_dict())
        assert t.value == pytest.approx(per_fold.mean())

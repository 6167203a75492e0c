"""search.api: run_study, resume_study and load_results, the Python API beside the command line."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ray import cloudpickle, tune
from rich.console import Console

from fbp.errors import InputError
from search import StudyResults, StudyRun, load_results, run_study
from search.callbacks import CallerCallbacks, caller_callbacks
from search.results import ResultsDir
from tests.search.report.make_results import make_results, standard_trials
from tests.search.test_cli import imported_by

QUICKSTART = Path(__file__).parents[2] / "studies" / "quickstart.yaml"


def test_load_results_imports_neither_torch_nor_ray(tmp_path):
    results = make_results(tmp_path / "toy", standard_trials())
    code = (f"from search import load_results\nr = load_results({str(results)!r})\n"
            "assert r.best.trial_id == 'tr_00003' and len(r.epochs) and len(r.predictions)")
    loaded = imported_by(code)
    assert "torch" not in loaded and "ray" not in loaded and "timm" not in loaded, loaded


def test_load_results_gives_the_trials_the_best_and_the_frames_recomputed_from_the_predictions(tmp_path):
    results = make_results(tmp_path / "toy", standard_trials())
    read = load_results(results)
    assert isinstance(read, StudyResults) and read.name == "toy" and read.spec.search.num_trials == 8

    # every fold's PC from its out-of-fold predictions, then each trial's mean over its folds
    predictions = pd.read_parquet(results / "predictions.parquet")
    pc = predictions.groupby(["trial_id", "fold"]).apply(lambda p: np.corrcoef(p["y_true"], p["y_pred"])[0, 1], include_groups=False)
    complete = ["base_00000", "tr_00001", "tr_00002", "tr_00003", "tr_00004"]  # all 5 folds; tr_00005/6 pruned, tr_00007 failed
    means = pc.groupby("trial_id").mean()[complete]
    assert read.best.trial_id == means.idxmax() == "tr_00003"
    assert read.best.value == pytest.approx(means.max()) and read.best.metrics["pc"] == pytest.approx(means.max())
    best = predictions[predictions["trial_id"] == "tr_00003"]
    mae = best.assign(e=(best["y_pred"] - best["y_true"]).abs()).groupby("fold")["e"].mean().mean()
    assert read.best.metrics["mae"] == pytest.approx(mae)
    assert read.best.params == {"loss.name": "combo", "loss.alpha": 3.9, "train.lr": 0.02} and read.best.objective == "pc" and not read.best.kept

    assert read.statuses.to_dict() == {**dict.fromkeys(complete, "COMPLETE"), "tr_00005": "PRUNED", "tr_00006": "PRUNED", "tr_00007": "FAIL"}
    assert [(e.line, e.trials) for e in read.errors] == [("RuntimeError: loss is NaN at epoch 3", 1)]
    assert len(read.folds) == 5 * 5 + (2 + 3) + (1 + 4) + 5  # complete folds, then each pruned trial's folds and marks, the failed one's marks
    assert len(read.predictions) == len(predictions) == 5 * 80 + (2 + 1) * 16  # 80 images in 5 folds: 16 a fold
    assert len(read.epochs) == (5 * 5 + 2 + 1) * 4
    assert set(read.table("predictions", trials={"tr_00003"})["trial_id"]) == {"tr_00003"}
    assert read.paths.journal == results / "optuna.journal" and read.paths.log("tr_00003") == results / "logs" / "tr_00003.log"


def test_load_results_refuses_what_is_no_results_directory(tmp_path):
    with pytest.raises(InputError, match="results directory not found"):
        load_results(tmp_path / "missing")
    with pytest.raises(InputError, match="is not a results directory"):
        load_results(tmp_path)


def test_a_bad_study_given_as_a_dict_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(InputError, match=r"loss\.alpha"):
        run_study({"name": "bad", "loss": {"alpha": -1}}, results=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


class Heard(tune.Callback):
    """What a caller's callback hears, and whether the fold's rows were on disk by then."""

    def __init__(self, results: Path | None = None):
        self.results, self.results_heard, self.completed = results, [], []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        on_disk = self.results is not None and ResultsDir(self.results).has_part("folds", trial.trial_id, result["fold"])
        self.results_heard.append((trial.trial_id, result["fold"], on_disk))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.completed.append(trial.trial_id)


def test_a_callers_callbacks_are_not_pickled_with_the_tuner_and_reach_whatever_the_driver_registered(tmp_path):
    """Tune pickles its callbacks into its state; a resumed study gets those copies back. The
    forwarder pickles as its key alone, and calls the callbacks registered when Tune calls it."""
    results = ResultsDir(tmp_path)
    heard = Heard()
    with caller_callbacks(results, [heard]):
        restored = cloudpickle.loads(cloudpickle.dumps(CallerCallbacks(results)))
        assert "Heard" not in repr(cloudpickle.dumps(CallerCallbacks(results)))
        trial = type("Trial", (), {"trial_id": "t1"})()
        restored.on_trial_result(1, [trial], trial, {"fold": 2})
        restored.on_trial_complete(2, [trial], trial)
    restored.on_trial_result(3, [trial], trial, {"fold": 3})  # the driver's block ended: no one is called
    assert heard.results_heard == [("t1", 2, False)] and heard.completed == ["t1"]


@pytest.mark.slow
def test_run_study_returns_the_study_typed_and_calls_the_callers_callbacks(local_ray, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "quick"
    heard = Heard(results)
    run = run_study(QUICKSTART, results=results, smoke=True, callbacks=[heard], console=Console(quiet=True))
    assert isinstance(run, StudyRun) and (run.exit_code, run.interrupted, run.retrained) == (0, False, 0)

    folds = pd.read_parquet(results / "folds.parquet")  # the table as pyarrow reads it, without search.results
    done = folds[folds["status"] == "COMPLETE"]
    per_trial = done.groupby("trial_id")
    complete = per_trial["fold"].nunique()[lambda n: n == 2].index  # smoke: folds 1 and 2
    means = per_trial[["val_pc", "pc", "mae"]].mean().loc[complete]
    assert run.best.objective == "val_pc" and run.best.trial_id == means["val_pc"].idxmax()
    assert run.best.value == pytest.approx(means["val_pc"].max())
    assert run.best.metrics["pc"] == pytest.approx(means.loc[run.best.trial_id, "pc"]) and run.best.metrics["mae"] == pytest.approx(means.loc[run.best.trial_id, "mae"])
    row = done[done["trial_id"] == run.best.trial_id].iloc[0]
    assert run.best.params == {c.removeprefix("param."): pytest.approx(row[c]) for c in folds.columns if c.startswith("param.")}
    assert run.best.kept and (run.paths.model_dir(run.best.trial_id) / "fold1.safetensors").is_file()
    assert run.outcome.complete == len(complete) and len(run.folds) == len(folds)

    # every fold a trial reported reached the caller, after its rows were written
    assert sorted((t, f) for t, f, _ in heard.results_heard) == sorted(zip(done["trial_id"], done["fold"]))
    assert all(on_disk for _, _, on_disk in heard.results_heard)
    assert sorted(heard.completed) == sorted(folds["trial_id"].unique())

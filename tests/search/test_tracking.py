"""Experiment tracking (search.tracking): a real study through Ray Tune logged to a real MLflow
store (SQLite), W&B in offline mode and TensorBoard event files; each read back with its own
reader and compared with folds.parquet."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from search import tracking
from search.results import read_table
from search.runner import resume_study, run_study
from search.spec import validate_spec
from tests.search.test_runner import TINY


def _spec(**changes):
    raw = yaml.safe_load(yaml.safe_dump({**TINY, "name": "tracked", "search": {**TINY["search"], "num_trials": 2}}))
    raw.update(changes)
    return validate_spec(raw, "tracked.yaml")


def _fold_means(folds: pd.DataFrame) -> pd.DataFrame:
    return folds[folds["status"] == "COMPLETE"].groupby(["trial_id", "fold"])[["mae", "rmse", "pc"]].mean()


def _mlflow_runs(results: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{(results / 'tracking' / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    return client, [r for r in runs if tracking.TRIAL_TAG in r.data.tags], [r for r in runs if r.data.tags.get("fbp.kind") == "study"]


def _tensorboard_scalars(folder: Path) -> dict[str, dict[int, float]]:
    """Every scalar of a trial's event files, read with tensorboardX's protobufs (TFRecord framing:
    length, its CRC, the record, its CRC)."""
    from tensorboardX.proto import event_pb2

    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = event_pb2.Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return scalars


def _wandb_records(path: Path):
    """(kind, {key: value}) of each record of a W&B offline run file: its header (':W&B', magic,
    version: 7 bytes), then LevelDB-log records in 32 KiB blocks (CRC, length, type; a record
    split over blocks is FIRST, MIDDLE..., LAST), each a wandb_internal_pb2.Record."""
    from wandb.proto import wandb_internal_pb2

    data, at, block, pending = path.read_bytes(), 7, 32768, b""
    while at + 7 <= len(data):
        if block - at % block < 7:  # the rest of a block too short for a header is padding
            at += block - at % block
            continue
        _, length, kind = struct.unpack("<IHB", data[at : at + 7])
        pending += data[at + 7 : at + 7 + length]
        at += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record.FromString(pending)
            pending = b""
            which = record.WhichOneof("record_type")
            if which == "history":
                yield which, {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            elif which == "config":
                yield which, {"/".join(i.nested_key) or i.key: i.value_json for i in record.config.update}


@pytest.mark.slow
def test_a_tracked_study_logs_each_trial_as_parquet_holds_it_and_resume_logs_nothing_twice(local_ray, tmp_path):
    results = tmp_path / "tracked"
    spec = _spec(tracking={"tensorboard": {}})
    outcome = run_study(spec, "tracked.yaml", results, track=("mlflow", "wandb"))
    assert outcome["trials"] == 2
    folds = read_table(results, "folds")
    means = _fold_means(folds)
    assert tracking.read_config(results) == {"mlflow": {}, "wandb": {}, "tensorboard": {}}

    # MLflow: a child run per trial under the study's run, its params, each fold's metrics at step = fold
    client, runs, parents = _mlflow_runs(results)
    assert len(parents) == 1 and len(runs) == 2
    assert sorted(r.data.tags[tracking.TRIAL_TAG] for r in runs) == sorted(folds["trial_id"].unique())
    for run in runs:
        trial = run.data.tags[tracking.TRIAL_TAG]
        row = folds[folds["trial_id"] == trial].iloc[0]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id and run.data.tags["fbp.status"] == "COMPLETE"
        assert run.data.params["loss.alpha"] == str(row["param.loss.alpha"]) and run.data.params["loss.discretization.rule"] == row["param.loss.discretization.rule"]
        assert run.data.tags["fbp.models"].endswith(f"models/{trial}")
        for metric in ("mae", "rmse", "pc"):
            history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, metric)}
            assert set(history) == {1, 2}
            for fold, value in history.items():
                assert value == pytest.approx(means.loc[(trial, fold), metric], abs=1e-9)
        epochs = read_table(results, "epochs")
        curve = epochs[(epochs["trial_id"] == trial) & (epochs["fold"] == 2)].groupby("epoch")["test_pc"].mean()
        logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "fold2/test_pc")}
        assert logged == pytest.approx(curve.to_dict(), abs=1e-9)

    # the kept models, beside the store in the results directory (MLflow's default: ./mlruns of the driver's directory)
    assert client.get_experiment_by_name("tracked").artifact_location == (results / "tracking" / "mlflow-artifacts").resolve().as_uri()
    kept = [r for r in runs if (results / "models" / r.data.tags[tracking.TRIAL_TAG]).is_dir()]
    assert kept and all({a.path for a in client.list_artifacts(r.info.run_id, "models")} >= {"models/fold1.safetensors", "models/fold2.safetensors"} for r in kept)
    assert list((results / "tracking" / "mlflow-artifacts").rglob("fold1.safetensors"))

    # TensorBoard: a folder per trial, the same fold metrics at step = fold
    for trial, per_trial in means.groupby(level="trial_id"):
        scalars = _tensorboard_scalars(results / "tracking" / "tensorboard" / trial)
        for (_, fold), row in per_trial.iterrows():
            assert scalars["pc"][fold] == pytest.approx(row["pc"], abs=1e-6)  # TensorBoard keeps float32

    # W&B offline: a run file per trial, each fold's metrics in its history rows, its epoch curves at their epoch
    logged, curves = {}, {}
    for path in (results / "tracking" / "wandb").glob("offline-run-*/run-*.wandb"):
        history = [row for kind, row in _wandb_records(path) if kind == "history"]
        config = {k: v for kind, row in _wandb_records(path) if kind == "config" for k, v in row.items()}
        trial = json.loads(config[tracking.TRIAL_TAG])
        logged[trial] = {int(row["fold"]): row["pc"] for row in history if "fold" in row}
        curves[trial] = {int(row["epoch"]): row["fold2/test_pc"] for row in history if "fold2/test_pc" in row}
    assert set(logged) == set(folds["trial_id"])
    for (trial, fold), row in means.iterrows():
        assert logged[trial][fold] == pytest.approx(row["pc"], abs=1e-9)
    epochs = read_table(results, "epochs")
    for trial in logged:
        curve = epochs[(epochs["trial_id"] == trial) & (epochs["fold"] == 2)].groupby("epoch")["test_pc"].mean()
        assert curves[trial] == pytest.approx(curve.to_dict(), abs=1e-9)

    # resume (nothing left to train) and a catch-up by a new driver: no second run, no second value
    assert resume_study(results)["interrupted"] is False
    ledger = tracking._Ledger(results / "tracking" / tracking.LEDGER)
    again = tracking.MLflowTracker(results, "tracked")
    for trial in folds["trial_id"].unique():
        tracking.log_trial(again, "mlflow", ledger, results, trial, tracking._trial_rows(results, trial), ended=True)
    client, runs_after, parents_after = _mlflow_runs(results)
    assert len(runs_after) == 2 and len(parents_after) == 1
    for run in runs_after:
        assert len(client.get_metric_history(run.info.run_id, "pc")) == 2


def test_a_tracker_that_fails_is_one_warning_line_and_the_rest_go_on(tmp_path, capsys):
    """A tracking server that is down: its tracker is left out after one line on stderr; the
    other trackers get the folds; the ledger records only what was logged."""

    class Down:
        closed = False

        def fold(self, *args):
            raise ConnectionError("API request to http://127.0.0.1:9/api/2.0/mlflow/runs/create failed: connection refused")

        def close(self):
            self.closed = True

    class Kept:
        def __init__(self):
            self.folds = []

        def fold(self, trial_id, params, links, fold, metrics, curves):
            self.folds.append((trial_id, fold, metrics["pc"]))

        def end(self, trial_id, status, models):
            self.folds.append((trial_id, status))

        def close(self):
            pass

    from search.results import ResultsDir
    from tests.search.report.make_results import T, make_results

    make_results(tmp_path / "r", [T("t1", {"loss.alpha": 2.0})], space={"loss.alpha": {"float": [0.0, 4.0]}}, k=2, name="r", journal=False)
    results = tmp_path / "r"
    ledger = tracking._Ledger(results / "tracking" / tracking.LEDGER)
    down, kept = Down(), Kept()
    trackers = {"mlflow": down, "tensorboard": kept}
    rows = tracking._trial_rows(results, "t1")
    for name, tracker in list(trackers.items()):
        tracking._guarded(trackers, name, tracking.log_trial, tracker, name, ledger, results, "t1", rows, True)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning: tracking: mlflow failed (API request to http://127.0.0.1:9" in err and "the study goes on" in err
    assert list(trackers) == ["tensorboard"] and down.closed  # left out, its files and threads closed
    pcs = ResultsDir(results).read("folds").sort_values("fold")["pc"].tolist()
    assert kept.folds == [("t1", 1, pytest.approx(pcs[0])), ("t1", 2, pytest.approx(pcs[1])), ("t1", "COMPLETE")]
    assert ledger.data["tensorboard"] == {"t1": {"folds": [1, 2], "ended": "COMPLETE"}}
    assert ledger.data["mlflow"]["t1"] == {"folds": [], "ended": None}  # the next driver gives it all


def _finished_study(tmp_path: Path, tracking_yaml: str) -> Path:
    from tests.search.report.make_results import T, make_results

    results = make_results(tmp_path / "r", [T("t1", {"loss.alpha": 2.0}), T("t2", {"loss.alpha": 1.0})], space={"loss.alpha": {"float": [0.0, 4.0]}},
                           k=2, name="r", journal=False)
    (results / "tracking").mkdir(exist_ok=True)
    (results / "tracking" / tracking.CONFIG).write_text(tracking_yaml)
    return results


def test_a_resumed_driver_logs_the_trials_a_killed_one_finished_without_an_event_for_them(tmp_path):
    """Tune gives a restored, finished trial no event: the Tracker's thread finds in Parquet what
    the ledger says is missing (here: all of it), as does catch_up after resume's repairs."""
    results = _finished_study(tmp_path, "- tensorboard\n")  # written by hand, as a study's list
    means = _fold_means(read_table(results, "folds"))
    callback = tracking.Tracker(results, "r")
    callback.on_experiment_end([])  # all a restored Tune with nothing left to run calls
    for trial, per_trial in means.groupby(level="trial_id"):
        scalars = _tensorboard_scalars(results / "tracking" / "tensorboard" / trial)
        assert {fold: scalars["pc"][fold] for (_, fold) in per_trial.index} == pytest.approx({f: v for (_, f), v in per_trial["pc"].items()}, abs=1e-6)
    ledger = json.loads((results / "tracking" / tracking.LEDGER).read_text())
    assert ledger["tensorboard"] == {t: {"folds": [1, 2], "ended": "COMPLETE"} for t in ("t1", "t2")}
    before = sorted(p.stat().st_size for p in (results / "tracking" / "tensorboard").rglob("events.*"))
    tracking.catch_up(results, "r")  # nothing missing: nothing written again
    assert sorted(p.stat().st_size for p in (results / "tracking" / "tensorboard").rglob("events.*")) == before


def test_trackers_start_on_the_tracking_thread_and_a_broken_tracking_yaml_never_stops_the_study(tmp_path, monkeypatch, capsys):
    """MLflow retries a server that is down for minutes while it sets up: that happens on the
    tracking thread, and Tune's callback returns at once."""
    import threading
    from types import SimpleNamespace

    release, built = threading.Event(), []

    class Slow:
        def __init__(self, results, study):
            release.wait(60)  # a server that does not answer
            built.append(threading.current_thread().name)

        def fold(self, *args):
            pass

        def end(self, *args):
            pass

        def close(self):
            pass

    monkeypatch.setitem(tracking.TRACKERS, "tensorboard", Slow)
    results = _finished_study(tmp_path, "tensorboard: {}\n")
    callback = tracking.Tracker(results, "r")
    callback.on_trial_result(0, [], SimpleNamespace(trial_id="t1"), {"fold": 1})  # returns while Slow waits
    assert built == [] and callback.thread.is_alive()
    release.set()
    callback.on_experiment_end([])
    assert built == ["fbp-tracking"]

    (results / "tracking" / tracking.CONFIG).write_text("tensorboard: [not, options]\n")
    broken = tracking.Tracker(results, "r")
    broken.on_trial_result(0, [], SimpleNamespace(trial_id="t1"), {"fold": 1})
    broken.on_experiment_end([])
    assert "warning: tracking: tracking failed" in capsys.readouterr().err


def test_tracking_in_a_study_file_and_on_the_command_line(tmp_path, capsys):
    from search.commands.study import TRACKERS
    from search.spec import Tracking

    assert TRACKERS == tuple(Tracking.model_fields)
    assert _spec(tracking=["mlflow", "tensorboard"]).tracking.options() == {"mlflow": {}, "tensorboard": {}}
    assert _spec(tracking={"wandb": {"project": "fbp"}}).tracking.options() == {"wandb": {"project": "fbp", "mode": "offline"}}
    # not part of what the study computes: its hash is the same with or without
    from search.spec import resolved

    assert resolved(_spec(tracking=["mlflow"])) == resolved(_spec())
    from search.cli import main

    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({**TINY, "tracking": {"comet": {}}}))
    assert main(["validate", str(study), "--offline"]) == 2
    assert "tracking.comet" in capsys.readouterr().err.replace("\n", "")
    assert np.isfinite(tracking.FLUSH_SECONDS)

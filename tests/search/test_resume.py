"""The driver is SIGKILLed mid-study; `fbp-search resume` finishes it and loses nothing."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from search.results import ResultsDir, read_table
from search.runner import resume_study

pytestmark = pytest.mark.slow  # trains for long or starts Ray: not in the fast tier (pytest -m "not slow")

# the fault drill's study (3 trials x 3 folds, tiny synthetic faces), under its own name
STUDY = {**yaml.safe_load((Path(__file__).parents[2] / "scripts" / "drill.yaml").read_text()), "name": "killed"}


def _wait_for_parts(folder, count, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and len([p for p in folder.glob("*.parquet")]) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} parts in {folder} after {timeout} s")


def test_sigkilled_driver_then_resume(local_ray, tmp_path):
    study = tmp_path / "killed.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    results = tmp_path / "results"
    # Tune's state in an object-store URI (file:// stands in for s3:// here): resume finds it there
    bucket = tmp_path / "bucket"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "run", str(study), "--results", str(results), "--storage", bucket.as_uri()],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        _wait_for_parts(results / "folds.parquet", 2, timeout=240)
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, mid-study
        driver.wait(timeout=30)
    finally:
        # then the Ray processes that driver started (its session), and only those
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = read_table(results, "folds")
    assert 2 <= len(before) < 9

    assert not (results / "tune").exists() and list(bucket.glob("killed-*/train_trial_*/checkpoint_*"))
    outcome = resume_study(results)
    after = read_table(results, "folds")
    assert after["trial_id"].nunique() == 3
    assert len(after) == 3 * 3 and not after.duplicated(["trial_id", "fold"]).any()
    assert (after["status"] == "COMPLETE").all(), after[["trial_id", "fold", "status", "error"]]
    # folds completed before the kill were not trained again
    merged = before.merge(after, on=["trial_id", "fold"], suffixes=("_before", "_after"))
    assert len(merged) == len(before)
    assert (merged["started_at_before"] == merged["started_at_after"]).all()
    storage = ResultsDir(results).journal()
    states = [t.state for t in optuna.load_study(study_name="killed", storage=storage).trials]
    assert optuna.trial.TrialState.RUNNING not in states
    assert outcome["errors"] == 0


def test_ctrl_c_stops_cleanly_says_how_to_resume_and_exits_130(local_ray, tmp_path):
    study = tmp_path / "killed.yaml"
    study.write_text(yaml.safe_dump({**STUDY, "data": {**STUDY["data"], "folds": [1, 2]}}))
    results = tmp_path / "results"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "run", str(study), "--results", str(results)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        _wait_for_parts(results / "folds.parquet", 1, timeout=240)
        os.kill(driver.pid, signal.SIGINT)
        out, _ = driver.communicate(timeout=120)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # whatever of its Ray is left
        except ProcessLookupError:
            pass
    assert driver.returncode == 130, out
    assert f"fbp-search resume {results}" in out.replace("\n", "")
    assert "Traceback" not in out
    resume_study(results)
    after = read_table(results, "folds")
    assert len(after) == 3 * 2 and (after["status"] == "COMPLETE").all()


def test_a_damaged_part_is_named_and_resume_trains_or_rebuilds_its_folds(local_ray, tmp_path):
    from fbp.errors import InputError
    from search.runner import run_study
    from search.spec import validate_spec

    results = tmp_path / "results"
    spec = validate_spec({**STUDY, "data": {**STUDY["data"], "folds": [1, 2]}, "train": {**STUDY["train"], "epochs": 1}, "search": {**STUDY["search"], "num_trials": 2}}, "killed.yaml")
    run_study(spec, "killed.yaml", results)
    folds = read_table(results, "folds").sort_values(["trial_id", "fold"]).reset_index(drop=True)
    predictions = read_table(results, "predictions")
    trial = folds["trial_id"].iloc[0]

    # one fold's predictions part, truncated by hand: the reader stops and names it
    part = results / "predictions.parquet" / f"{trial}-fold2.parquet"
    part.write_bytes(part.read_bytes()[:100])
    with pytest.raises(InputError, match=rf"{part}: damaged part file.*fbp-search resume {results}"):
        read_table(results, "predictions")
    part.rename(tmp_path / part.name)  # as the message says
    assert resume_study(results)["retrained"] == 1
    again = read_table(results, "predictions")
    pd.testing.assert_frame_equal(  # same seed, same fold: the same predictions
        predictions.sort_values(["trial_id", "fold", "image"]).reset_index(drop=True),
        again.sort_values(["trial_id", "fold", "image"]).reset_index(drop=True),
    )

    # the compacted folds part (every trial's rows of this small study) damaged: resume moves it
    # aside and rebuilds the rows from the epochs and predictions tables; nothing is trained again
    (compacted,) = (results / "folds.parquet").glob("*.parquet")
    compacted.write_bytes(compacted.read_bytes()[:64])
    assert resume_study(results)["retrained"] == 0
    assert (results / "damaged" / "folds" / compacted.name).is_file()
    rebuilt = read_table(results, "folds").sort_values(["trial_id", "fold"]).reset_index(drop=True)
    assert len(rebuilt) == 4 and (rebuilt["status"] == "COMPLETE").all()
    same = ["trial_id", "fold", "seed", "pc", "mae", "rmse", "val_pc", "val_mae", "val_rmse", "selected_epoch", "n_test", "param.loss.alpha"]
    pd.testing.assert_frame_equal(folds[same], rebuilt[same])


def test_a_trial_tune_never_recorded_is_finished_by_resume(local_ray, tmp_path):
    # Tune snapshots its state every 10 s or more; a driver killed in between leaves trials the
    # restored Tune never heard of. A long snapshot period makes that window the whole run.
    study = tmp_path / "killed.yaml"
    study.write_text(yaml.safe_dump(STUDY))
    results = tmp_path / "results"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "TUNE_GLOBAL_CHECKPOINT_S": "100000"}
    driver = subprocess.Popen(
        [sys.executable, "-m", "search.cli", "run", str(study), "--results", str(results)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while len({p.name.split("-fold")[0] for p in (results / "folds.parquet").glob("*-fold*.parquet")}) < 2:
            assert time.monotonic() < deadline, "the second trial never wrote a fold"
            time.sleep(0.1)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and its Ray, mid-way through trial 2
        except ProcessLookupError:
            pass
        driver.wait()
    before = read_table(results, "folds")

    outcome = resume_study(results)
    after = read_table(results, "folds")
    assert outcome["retrained"] >= 1  # the orphan's remaining folds
    assert not after.duplicated(["trial_id", "fold"]).any() and (after["status"] == "COMPLETE").all()
    assert (after.groupby("trial_id")["fold"].nunique() == 3).all(), after[["trial_id", "fold"]]
    kept = before.merge(after, on=["trial_id", "fold"], suffixes=("_before", "_after"))
    assert len(kept) == len(before) and (kept["started_at_before"] == kept["started_at_after"]).all()
    # Optuna: nothing left RUNNING, and each trial's value is the mean validation PC of its
    # folds (what the objective reads; the orphan's is told by resume)
    storage = ResultsDir(results).journal()
    trials = optuna.load_study(study_name="killed", storage=storage).trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    mean_pc = after.groupby("param.loss.alpha")["val_pc"].mean()
    for t in trials:
        assert t.value == pytest.approx(mean_pc[t.params["loss.alpha"]])

"""The driver is SIGKILLed mid-study; `fbp-search resume` finishes it and loses nothing."""

import os
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import yaml

from search.results import read_table
from search.runner import resume_study

STUDY = {
    "name": "killed",
    "data": {"dataset": "synthetic", "options": {"n": 60, "size": 48, "seed": 0}, "image_size": 32, "folds": [1, 2, 3]},
    "model": {"backbone": "test_resnet"},
    "train": {"epochs": 4, "batch_size": 16, "device": "cpu"},
    "eval": {"batch_size": 64},
    "search": {"sampler": "random", "num_trials": 3, "seed": 0, "space": {"loss.alpha": {"float": [0.0, 4.0]}}},
    "scheduler": {"name": "none"},
    "resources": {"cpu": 1, "gpu": 0, "max_concurrent": 1},
}


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
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(results / "optuna.journal")))
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

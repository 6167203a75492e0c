"""Several studies as one Ray Tune run (`fbp-search run studies/paper/`): queued together, each
writing its own results directory, a failing study not stopping the others, resumed as a whole."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from search.cli import main
from search.results import ResultsDir, read_table
from search.studyset import SET

pytestmark = pytest.mark.slow  # starts Ray

DRILL = yaml.safe_load((Path(__file__).parents[2] / "scripts" / "drill.yaml").read_text())


def _studies(folder: Path) -> Path:
    """Three studies: a search under ASHA, one configuration, and one whose every trial fails."""
    folder.mkdir()
    search = {**DRILL, "name": "alpha_search", "scheduler": {"name": "asha", "grace_folds": 1}}
    single = {k: v for k, v in DRILL.items() if k not in ("search", "scheduler")} | {"name": "one_config"}
    fails = {**DRILL, "name": "fails", "train": {**DRILL["train"], "lr": 1e30}, "search": {**DRILL["search"], "num_trials": 2}}
    for study in (search, single, fails):
        (folder / f"{study['name']}.yaml").write_text(yaml.safe_dump(study))
    return folder


def test_a_set_runs_as_one_and_each_study_writes_its_own(local_ray, tmp_path, capsys):
    folder = _studies(tmp_path / "studies")
    root = tmp_path / "results"
    assert main(["run", str(folder), "--results", str(root)]) == 1  # one study completed nothing
    out = capsys.readouterr().out
    assert "1 of 3 studies completed no trial: fails" in out
    assert yaml.safe_load((root / SET).read_text())["studies"][0]["name"] == "alpha_search"

    trials = {}
    for name, expected in (("alpha_search", 3), ("one_config", 1), ("fails", 2)):
        results = ResultsDir(root / name)
        spec, _ = results.load_spec()
        assert spec.name == name
        folds = read_table(root / name, "folds")
        assert folds["trial_id"].nunique() == expected and (folds["study"] == name).all()
        assert not folds.duplicated(["trial_id", "fold", "seed"]).any()
        trials[name] = set(folds["trial_id"])
        import optuna

        journal = optuna.load_study(study_name=name, storage=results.journal())
        assert len(journal.trials) == expected  # each study's own Optuna study, told only its own trials
    assert not (trials["alpha_search"] & trials["one_config"]) and not (trials["alpha_search"] & trials["fails"])
    assert (read_table(root / "fails", "folds")["status"] == "FAIL").all()
    assert (read_table(root / "one_config", "folds")["status"] == "COMPLETE").all()  # a failing study stops no other
    by_trial = read_table(root / "alpha_search", "folds").groupby("trial_id")["status"].apply(set)
    assert all(s <= {"COMPLETE", "PRUNED"} for s in by_trial)  # ASHA ranked the search's trials among themselves


def test_a_killed_set_resumes_as_a_whole(local_ray, tmp_path, capsys):
    folder = _studies(tmp_path / "studies")
    (folder / "fails.yaml").unlink()
    root = tmp_path / "results"
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    driver = subprocess.Popen([sys.executable, "-m", "search.cli", "run", str(folder), "--results", str(root)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(list(root.glob("*/folds.parquet/*.parquet"))) < 2:
            time.sleep(0.2)
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, mid-set
        driver.wait(timeout=30)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # then the Ray processes it started, and only those
        except ProcessLookupError:
            pass
    assert main(["resume", str(root)]) == 0
    assert "all 2 studies finished" in capsys.readouterr().out
    single = read_table(root / "one_config", "folds")
    assert len(single) == 3 and (single["status"] == "COMPLETE").all()
    search = read_table(root / "alpha_search", "folds")
    assert not search.duplicated(["trial_id", "fold", "seed"]).any()
    assert search.groupby("trial_id")["fold"].nunique().eq(3).all()  # every trial's folds complete or marked

"""A trial ASHA pruned stays pruned across a kill and `resume`, though Tune's last state snapshot
predates the prune (issue 20, part 3: the trial came back and trained its next fold, leaving
the fold both PRUNED and COMPLETE).

The race is made certain rather than repeated: Tune snapshots its state only at its first step
(TUNE_GLOBAL_CHECKPOINT_S), when both trials wait to start; the weak trial is pruned at its
first fold every time (tests.search.gated); the driver is SIGKILLed once the prune's marks are
in Parquet. The restored Tune then holds the pruned trial as a trial yet to run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
import yaml

from search.results import TUNE_TRIAL_ID, ResultsDir, read_table, trial_status
from tests.search.gated import GATE, TRACE, WEAK_ALPHA, study

pytestmark = pytest.mark.slow  # starts Ray twice: not in the fast tier (pytest -m "not slow")

ROOT = Path(__file__).parents[2]


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
            "FBP_SCALE_TEST_IMAGES": "20", **extra}


def _driver(*args: str, **extra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.search.gated", *args], cwd=ROOT, env=_env(**extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _kill_after_the_prune(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    source = tmp_path / "gated.yaml"
    source.write_text(yaml.safe_dump(study()))
    driver = _driver("run", str(source), str(results), TUNE_GLOBAL_CHECKPOINT_S="100000", **{GATE: str(results / "folds.parquet")})
    try:
        deadline = time.monotonic() + 300
        while not list((results / "folds.parquet").glob("*-pruned.parquet")):
            assert driver.poll() is None, f"the driver ended before a prune: {driver.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "no trial was pruned"
            time.sleep(0.05)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started, nothing else
        except ProcessLookupError:
            pass
        driver.wait()
    return results


def _journal_states(results: Path) -> dict[str, str]:
    """Tune's trial id -> the state of its Optuna trial (the searcher names the Tune trial)."""
    trials = optuna.load_study(study_name="gated", storage=ResultsDir(results).journal()).trials
    return {t.user_attrs[TUNE_TRIAL_ID]: t.state.name for t in trials}


def test_a_trial_pruned_after_the_last_snapshot_stays_pruned_on_resume(tmp_path):
    results = _kill_after_the_prune(tmp_path)
    before = read_table(results, "folds")
    weak = before.loc[before["param.loss.alpha"] == WEAK_ALPHA, "trial_id"].iloc[0]
    assert trial_status(before, 3)[weak] == "PRUNED"
    assert _journal_states(results)[weak] == "PRUNED"

    trace = tmp_path / "trained-on-resume.txt"
    done = subprocess.run([sys.executable, "-m", "tests.search.gated", "resume", str(results)], cwd=ROOT, env=_env(**{TRACE: str(trace)}),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    trained = trace.read_text().split("\n") if trace.exists() else []
    assert not [line for line in trained if line.startswith(f"{WEAK_ALPHA} ")], trained  # stopped before it ran: no fold trained

    after = read_table(results, "folds")
    # a fold is COMPLETE or marked, never both: the pruned trial trained no fold after its prune
    assert not after.duplicated(["trial_id", "fold"]).any(), after[["trial_id", "fold", "seed", "status"]]
    own = after[after["trial_id"] == weak].sort_values("fold")
    assert own["status"].tolist() == ["COMPLETE", "PRUNED", "PRUNED"]
    assert own["started_at"].iloc[0] == before.loc[(before["trial_id"] == weak) & (before["fold"] == 1), "started_at"].iloc[0]
    # nothing in any part file beyond what the deduplicated read keeps
    raw = sum(pq.read_metadata(p).num_rows for p in (results / "folds.parquet").glob("*.parquet"))
    assert raw == len(after)
    # the journal and Parquet agree trial by trial: the weak trial PRUNED, the strong one COMPLETE
    assert trial_status(after, 3).to_dict() == _journal_states(results)
    assert sorted(_journal_states(results).items()) == sorted({weak: "PRUNED", (set(after["trial_id"]) - {weak}).pop(): "COMPLETE"}.items())

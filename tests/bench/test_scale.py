"""bench/scale.py at a small size: the harness runs the real driver with simulated folds, kills
it mid-way and resumes it. Its numbers are for reading; here its accounting is checked from
what it left on disk, independently of the harness's own check."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest

from search.results import ResultsDir, params_of, trial_status

pytestmark = pytest.mark.slow  # starts Ray twice: not in the fast tier (pytest -m "not slow")

ROOT = Path(__file__).parents[2]
TRIALS = 120


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One harness run: 120 trials x 5 folds, 4 at once, small prediction rows (the driver's
    work per fold is the same; the two cores' is less), killed at half the trials."""
    out = tmp_path_factory.mktemp("scale")
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    done = subprocess.run([sys.executable, "bench/scale.py", "--trials", str(TRIALS), "--concurrency", "4", "--test-images", "50", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, done.stdout


def test_it_prints_a_row_per_quarter_the_kill_and_the_targets(bench):
    _, out = bench
    rows = re.findall(r"^ +(\d+)-(\d+) +([0-9.]+) +\d+% +\d+ ", out, re.M)
    # a row per 30 trials; trials resume finishes for Tune (it never recorded them) add to the last
    assert [int(lo) for lo, _, _ in rows][:4] == [0, 30, 60, 90] and int(rows[-1][1]) >= TRIALS, out
    assert all(float(rate) > 0 for _, _, rate in rows), out
    assert re.search(r"^kill: the driver \(pid \d+\) SIGKILLed once \d+ trials had finished", out, re.M), out
    assert re.search(r"^resume: first fold result [0-9.]+ s after `resume` started", out, re.M), out
    assert re.search(rf"^targets at {TRIALS} trials .*TPE ask p95 \d+ ms", out, re.M), out


def test_every_fold_result_is_in_parquet_exactly_once(bench):
    out, _ = bench
    results = ResultsDir(out / "scale")
    raw = pq.ParquetDataset(str(results.table_dir("folds"))).read().to_pandas()  # every part's rows, no dedupe
    assert not raw.duplicated(["trial_id", "fold", "seed"]).any()
    run, resume = _events(out / "events-run.jsonl"), _events(out / "events-resume.jsonl")
    absorbed = [(e["trial"], e["fold"]) for e in run + resume if e["e"] == "result"]
    assert len(absorbed) == len(set(absorbed)), "a fold result reached the driver twice"
    complete = raw[raw["status"] == "COMPLETE"]
    on_disk = set(zip(complete["trial_id"], complete["fold"]))
    assert set(absorbed) <= on_disk  # nothing written before or after the kill is lost
    repaired = sum(e["folds"] for e in resume if e["e"] == "repair")  # folds of trials Tune never recorded, trained by resume
    assert len(on_disk) == len(absorbed) + repaired
    statuses = trial_status(raw, 5)
    assert not (statuses == "INCOMPLETE").any()
    assert len(statuses) >= TRIALS


def test_the_journal_agrees_with_parquet(bench):
    out, _ = bench
    results = ResultsDir(out / "scale")
    folds = results.read("folds")
    statuses = trial_status(folds, 5)
    journal = optuna.load_study(study_name="scale", storage=results.journal()).get_trials(deepcopy=False)
    assert not [t for t in journal if t.state == optuna.trial.TrialState.RUNNING]
    by_params = {tuple(sorted(t.params.items())): t for t in journal}
    for trial_id, status in statuses.items():
        t = by_params[tuple(sorted(params_of(folds[folds["trial_id"] == trial_id].iloc[0]).items()))]
        assert t.state.name == status, (trial_id, status, t.number, t.state.name)
        complete = folds[(folds["trial_id"] == trial_id) & (folds["status"] == "COMPLETE")]
        assert set(t.intermediate_values) <= set(complete["fold"])  # a fold's value is reported once it is written
        if status == "COMPLETE":
            assert t.value == pytest.approx(complete["val_pc"].mean())
    counts = statuses.value_counts()
    states = [t.state.name for t in journal]
    assert states.count("COMPLETE") == counts.get("COMPLETE", 0) and states.count("PRUNED") == counts.get("PRUNED", 0)

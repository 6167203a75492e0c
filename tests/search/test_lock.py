"""One driver per results directory (search.lock), and what a killed driver's Ray leaves behind
(search.processes, search.cluster): real processes hold the lock, a real local Ray is killed."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from fbp.errors import InputError
from search.cli import main
from search.lock import LOCK, hold
from search.processes import RECORD, alive, end_recorded, recorded, start_time, write_record
from search.results import ResultsDir

ROOT = Path(__file__).resolve().parents[2]
HOLD = "import sys, time\nfrom search.lock import hold\nwith hold(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)\n"


@contextmanager
def held_by_another_process(folder: Path):
    """A separate process holding `folder`'s lock until the block ends (or the test kills it)."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_second_holder_is_refused_with_the_holders_pid_host_and_time_until_the_holder_is_killed(tmp_path):
    results = tmp_path / "results"
    with held_by_another_process(results) as other:
        with pytest.raises(InputError) as refused:
            with hold(results):
                pass
        line = str(refused.value)
        assert "\n" not in line
        assert f"pid {other.pid} on {socket.gethostname()}, since 20" in line and str(results) in line
        other.send_signal(signal.SIGKILL)  # no chance to release it: the OS does
        other.wait()
        with hold(results):
            assert json.loads((results / LOCK).read_text())["pid"] == os.getpid()


def test_the_lock_is_re_entrant_in_its_process_and_a_folder_it_made_goes_when_nothing_else_was_written(tmp_path):
    results = tmp_path / "new"
    with hold(results):
        with hold(results):  # resume handing over to run
            assert (results / LOCK).is_file()
        assert (results / LOCK).is_file()  # still held after the inner block
    assert not results.exists()
    with hold(results):
        (results / "study.yaml").write_text("name: x\n")
    assert (results / "study.yaml").is_file() and (results / LOCK).is_file()


def _listing(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture
def study_file(tmp_path) -> Path:
    path = tmp_path / "drill.yaml"
    shutil.copy(ROOT / "scripts" / "drill.yaml", path)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_run_and_resume_into_a_locked_results_directory_exit_2_with_one_line_and_write_nothing(tmp_path, study_file, trained_results):
    results = tmp_path / "results"
    with held_by_another_process(results) as other:
        before = _listing(results)
        run = _cli("run", str(study_file), "--results", str(results))
        assert run.returncode == 2, run.stdout + run.stderr
        assert run.stdout == "" and len(run.stderr.strip().splitlines()) == 1 and f"pid {other.pid}" in run.stderr
        assert _listing(results) == before

    study = tmp_path / "trained"
    shutil.copytree(trained_results, study)
    with held_by_another_process(study) as other:
        before = _listing(study)
        resume = _cli("resume", str(study))
        assert resume.returncode == 2 and f"pid {other.pid}" in resume.stderr and len(resume.stderr.strip().splitlines()) == 1
        assert _listing(study) == before


@pytest.mark.slow
def test_report_reads_and_writes_while_a_driver_holds_the_lock(tmp_path, trained_results):
    study = tmp_path / "trained"
    shutil.copytree(trained_results, study)
    with held_by_another_process(study):
        assert main(["report", str(study), "--format", "csv,md", "--bootstrap", "0"]) == 0
    assert (study / "report" / "tables.md").is_file() and (study / "report" / "leaderboard.csv").is_file()


def test_a_read_that_meets_a_part_compacted_away_reads_again(tmp_path, monkeypatch):
    """A reader lists the parts, then the driver compacts them (merged part in, old parts
    out), then the reader opens what it listed: it must read the merged part, not stop."""
    results = ResultsDir(tmp_path / "r")
    for trial in ("a", "b"):
        results.write("folds", f"{trial}-fold1", pd.DataFrame({"trial_id": [trial], "fold": [1], "seed": [0], "status": ["COMPLETE"], "mae": [0.25]}))
    listed_before = results.parts("folds")
    assert results.compact("folds") == 2
    listings = iter([listed_before])
    original = ResultsDir.parts
    monkeypatch.setattr(ResultsDir, "parts", lambda self, table, trials=None: next(listings, None) or original(self, table, trials))
    rows = results.read("folds")
    assert sorted(rows["trial_id"]) == ["a", "b"] and rows["mae"].tolist() == [0.25, 0.25]


def test_only_a_recorded_process_with_its_recorded_start_time_is_ended(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        started = start_time(sleeper.pid)
        write_record(tmp_path, [(sleeper.pid, str(int(started) + 1))])  # the same pid, another process's start time
        assert end_recorded(tmp_path, grace=0.1) == 0 and sleeper.poll() is None
        write_record(tmp_path, [(sleeper.pid, started)])
        assert end_recorded(tmp_path, grace=5.0) == 1
        assert sleeper.wait() == -signal.SIGTERM
        assert not (tmp_path / RECORD).exists()
    finally:
        sleeper.kill()
        sleeper.wait()


START_RAY = """
import sys
from pathlib import Path
import yaml
from search.cluster import start_ray
from search.spec import validate_spec
start_ray(None, validate_spec(yaml.safe_load(Path(sys.argv[1]).read_text()), "drill.yaml"), record=Path(sys.argv[2]))
print("ray", flush=True)
import time
time.sleep(600)
"""


@pytest.mark.slow
def test_the_recorded_processes_of_a_killed_drivers_local_ray_are_ended(tmp_path, study_file):
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    driver = subprocess.Popen([sys.executable, "-c", START_RAY, str(study_file), str(tmp_path)], stdout=subprocess.PIPE, text=True, env=env,
                              start_new_session=True)
    try:
        assert driver.stdout.readline().strip() == "ray"
        session = recorded(tmp_path)
        names = {Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace") for pid, _ in session}
        assert {"ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names and any(n.endswith("raylet") for n in names)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        end_recorded(tmp_path)
        assert [p for p in session if alive(p)] == []
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # whatever this test started and is left, by its group
        except ProcessLookupError:
            pass
        driver.wait()


@pytest.mark.slow
def test_a_clean_end_of_a_local_ray_leaves_none_of_its_processes(tmp_path, study_file):
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    script = START_RAY.replace("time.sleep(600)", "pass")  # exits: Ray's own exit handler shuts it down
    done = subprocess.run([sys.executable, "-c", script, str(study_file), str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    session = recorded(tmp_path)
    assert session and end_recorded(tmp_path, grace=10.0) == 0


def test_a_record_read_on_another_machine_names_nothing(tmp_path):
    write_record(tmp_path, [(os.getpid(), start_time(os.getpid()))])
    assert recorded(tmp_path) == [(os.getpid(), start_time(os.getpid()))]
    data = json.loads((tmp_path / RECORD).read_text())
    (tmp_path / RECORD).write_text(json.dumps({**data, "host": "another-host"}))
    assert recorded(tmp_path) == []

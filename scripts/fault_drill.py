"""The fault drill: break a small study in every way issue-tracked faults name, recover it the
documented way, and print one line per fault with what survived.

    python scripts/fault_drill.py [--faults kill,ctrl-c,node,raise,damaged,twice] [--keep DIR]

Each fault runs a fresh synthetic study (3 trials x 3 folds of a tiny model on the CPU) in its
own results directory, through the real `fbp-search` command, Ray and Optuna. Counted at the end:

    folds      (trial, fold) rows COMPLETE / expected (failed trials expect FAIL rows instead)
    lost       folds COMPLETE before the fault and not after, plus folds of a finished trial
               missing at the end: must be 0
    duplicates rows in the results' part files beyond one per key, over all tables: must be 0

Ray runs on loopback only. The drill ends the processes it started, by their process group.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray binds 127.0.0.1
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pyarrow.parquet as pq  # noqa: E402
import yaml  # noqa: E402

from search.results import TABLES, ResultsDir, read_table  # noqa: E402

STUDY = yaml.safe_load((Path(__file__).parent / "drill.yaml").read_text())
FOLDS = 3


@dataclass
class Outcome:
    fault: str
    trials: int
    folds_complete: int
    folds_expected: int
    lost: int
    duplicates: int
    running: int
    seconds: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.running == 0 and self.folds_complete == self.folds_expected

    def line(self) -> str:
        return (f"{'ok  ' if self.ok else 'FAIL'} {self.fault:<34} trials {self.trials}  folds {self.folds_complete}/{self.folds_expected}"
                f"  rows lost {self.lost}  duplicates {self.duplicates}  optuna RUNNING {self.running}  {self.seconds:4.0f} s  {self.note}")


def _cli(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "search.cli", *args], start_new_session=True, **popen)


def _end(process: subprocess.Popen) -> None:
    """The driver and the Ray it started: its whole process group, and nothing else."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _wait_for_folds(results: Path, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folder = results / "folds.parquet"
        if folder.is_dir() and len([p for p in folder.glob("*-fold*.parquet")]) >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{results}: fewer than {count} folds after {timeout} s")


def _complete(results: Path) -> set[tuple[str, int]]:
    folds = read_table(results, "folds")
    ok = folds[folds["status"] == "COMPLETE"] if len(folds) else folds
    return set(zip(ok["trial_id"], ok["fold"].astype(int)))


def _duplicates(results: Path) -> int:
    """Rows in part files beyond one per key, summed over the tables."""
    extra = 0
    for table in TABLES:
        parts = [p for p in (results / f"{table}.parquet").glob("*.parquet") if not p.name.startswith(".")]
        extra += sum(pq.read_metadata(p).num_rows for p in parts) - len(read_table(results, table))
    return extra


def _count(fault: str, results: Path, before: set, started: float, note: str = "") -> Outcome:
    folds = read_table(results, "folds")
    failed = set(folds.loc[folds["status"] == "FAIL", "trial_id"])
    trials = set(folds["trial_id"])
    expected = {(t, f) for t in trials - failed for f in range(1, FOLDS + 1)}
    after = _complete(results)
    lost = len(before - after) + len(expected - after)
    return Outcome(fault, len(trials), len(after), len(expected), lost, _duplicates(results), _optuna_running(results), time.monotonic() - started, note)


def _optuna_running(results: Path) -> int:
    import optuna

    storage = ResultsDir(results).journal()
    study = optuna.load_study(study_name=STUDY["name"], storage=storage)
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))


def _study(folder: Path, **changes) -> Path:
    study = {k: dict(v) if isinstance(v, dict) else v for k, v in STUDY.items()}
    for section, values in changes.items():
        study[section] = {**study[section], **values}
    path = folder / "drill.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _resume(results: Path) -> str:
    """Resume; its exit code and closing line."""
    done = subprocess.run([sys.executable, "-m", "search.cli", "resume", str(results)], capture_output=True, text=True)
    last = [line for line in done.stdout.splitlines() if line.strip()][-1:] or ["(no output)"]
    return f"resume exit {done.returncode}: {last[0].split('. Next')[0]}"


def driver_killed(folder: Path) -> Outcome:
    started, results = time.monotonic(), folder / "results"
    driver = _cli("run", str(_study(folder)), "--results", str(results), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_folds(results, 4)
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, mid-study
    finally:
        _end(driver)
    before = _complete(results)
    resumed = _resume(results)
    return _count("driver SIGKILLed, then resume", results, before, started, f"{len(before)} folds before; {resumed}")


def ctrl_c(folder: Path) -> Outcome:
    started, results = time.monotonic(), folder / "results"
    driver = _cli("run", str(_study(folder)), "--results", str(results), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_folds(results, 2)
        os.kill(driver.pid, signal.SIGINT)
        out, _ = driver.communicate(timeout=180)
    finally:
        _end(driver)
    before = _complete(results)
    told = "says how to resume" if f"fbp-search resume {results}" in out.replace("\n", "") else "DID NOT say how to resume"
    resumed = _resume(results)
    return _count("Ctrl-C, then resume", results, before, started, f"exit {driver.returncode}, {told}; {resumed}")


def node_dies(folder: Path) -> Outcome:
    """Two worker nodes on loopback; the one training trial 1 is removed once its fold 1 is written."""
    import ray
    from ray.cluster_utils import Cluster
    from rich.console import Console

    from search.runner import run_study
    from search.spec import validate_spec

    started, results = time.monotonic(), folder / "results"
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    removed: dict = {}

    def remove_the_trials_node():
        while "node" not in removed and time.monotonic() - started < 300:
            parts = list((results / "folds.parquet").glob("*-fold1.parquet"))
            if parts:
                node_id = pq.read_table(parts[0], columns=["node_id"]).column(0)[0].as_py()
                cluster.remove_node(next(w for w in workers if w.node_id == node_id))
                removed["node"], removed["before"] = node_id, _complete(results)
            time.sleep(0.1)

    watcher = threading.Thread(target=remove_the_trials_node, daemon=True)
    watcher.start()
    try:
        study = yaml.safe_load(_study(folder, train={"epochs": 40}).read_text())
        quiet = Console(file=io.StringIO())  # the drill prints its own line
        run_study(validate_spec(study, "drill.yaml"), "drill.yaml", results, max_failures=3, console=quiet)
    finally:
        watcher.join(timeout=5)
        ray.shutdown()
        cluster.shutdown()
    moved = read_table(results, "folds")
    nodes = moved.groupby("trial_id")["node_id"].nunique().max()
    return _count("worker node removed mid-fold", results, removed.get("before", set()), started, f"node removed: {'node' in removed}; trials on 2 nodes: {int(nodes > 1)}")


def trial_raises(folder: Path) -> Outcome:
    started, results = time.monotonic(), folder / "results"
    study = _study(folder, search={"sampler": "random", "num_trials": 3, "seed": 0, "space": {"train.lr": {"choice": [1e30, 0.01]}},
                                   "baseline": [{"train.lr": 1e30}, {"train.lr": 0.01}, {"train.lr": 0.01}]})
    code = subprocess.run([sys.executable, "-m", "search.cli", "run", str(study), "--results", str(results), "--max-failures", "1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    folds = read_table(results, "folds")
    fail = folds[folds["status"] == "FAIL"]
    return _count("a trial raises (non-finite loss)", results, set(), started,
                  f"exit {code}; {fail['trial_id'].nunique()} trial FAIL ({len(fail)} rows): {fail['error'].iloc[0][:50] if len(fail) else '-'}")


def damaged_part(folder: Path) -> Outcome:
    from fbp.errors import InputError

    started, results = time.monotonic(), folder / "results"
    subprocess.run([sys.executable, "-m", "search.cli", "run", str(_study(folder, train={"epochs": 1})), "--results", str(results)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    before = _complete(results)
    (compacted,) = (results / "folds.parquet").glob("*.parquet")
    compacted.write_bytes(compacted.read_bytes()[:64])  # truncated by hand
    try:
        read_table(results, "folds")
        named = "NOT named"
    except InputError as e:
        named = "named" if str(compacted) in str(e) else "NOT named"
    compacted.rename(folder / compacted.name)  # moved out, as the message says
    resumed = _resume(results)
    return _count("a results part truncated", results, before, started, f"reader {named} it; moved out; {resumed}")


def run_twice(folder: Path) -> Outcome:
    started, results = time.monotonic(), folder / "results"
    study = _study(folder, train={"epochs": 1})
    subprocess.run([sys.executable, "-m", "search.cli", "run", str(study), "--results", str(results)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    before_files = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    before = _complete(results)
    again = subprocess.run([sys.executable, "-m", "search.cli", "run", str(study), "--results", str(results)], capture_output=True, text=True)
    unchanged = before_files == {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
    return _count("the same study run twice", results, before, started, f"second run exit {again.returncode}, results {'unchanged' if unchanged else 'CHANGED'}")


FAULTS = {"kill": driver_killed, "ctrl-c": ctrl_c, "node": node_dies, "raise": trial_raises, "damaged": damaged_part, "twice": run_twice}


def main(argv: list[str] | None = None) -> int:
    # the whole docstring, laid out as written (its first line alone stopped mid-sentence)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, of: " + ", ".join(FAULTS))
    parser.add_argument("--keep", type=Path, help="keep each fault's results under this folder")
    args = parser.parse_args(argv)
    chosen = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FAULTS]
    if unknown:
        print(f"error: --faults: unknown fault {unknown[0]!r}; choose from {', '.join(FAULTS)}", file=sys.stderr)
        return 2
    os.environ.setdefault("FBP_CACHE_DIR", str(Path(tempfile.gettempdir()) / "fbp-drill-cache"))
    root = Path(tempfile.mkdtemp(prefix="fbp-drill-"))
    failures = 0
    try:
        for name in chosen:
            folder = root / name
            folder.mkdir()
            outcome = FAULTS[name](folder)
            print(outcome.line(), flush=True)
            failures += not outcome.ok
    finally:
        if args.keep:
            shutil.copytree(root, args.keep, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The fault drill: break a small study in every way issue-tracked faults name, recover it the
documented way, and print one line per fault with what survived.

    python scripts/fault_drill.py [--faults kill,prune-kill,ctrl-c,node,raise,damaged,twice,two,leftover,disk,journal,compacted] [--repeat N] [--keep DIR]

Each fault runs a fresh synthetic study (3 trials x 3 folds of a tiny model on the CPU; the
prune-kill, 4 trials under ASHA, 2 at once) in its own results directory, through the real
`fbp-search` command, Ray and Optuna. Counted at the end:

    folds      (trial, fold) rows COMPLETE / expected (every fold not marked PRUNED or FAIL)
    lost       folds COMPLETE before the fault and not after, plus expected folds missing at
               the end: must be 0
    duplicates rows in the results' part files beyond one per key, over all tables, plus folds
               both COMPLETE and marked (a mark has no seed: another key): must be 0
    journal    each trial's Optuna state against its Parquet status (search.results.trial_status),
               matched by the Tune trial id in its user attributes, else by params
               (`journal = Parquet` in the note; a mismatch fails the fault)

`disk` mounts a small tmpfs for the results (root only: without it the fault is skipped, said so).

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
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray binds 127.0.0.1
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pyarrow.parquet as pq  # noqa: E402
import yaml  # noqa: E402

from search.results import TABLES, TUNE_TRIAL_ID, ResultsDir, read_table, trial_status  # noqa: E402

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
    problems: tuple[str, ...] = ()  # what a fault's own checks found wrong; each fails it

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.running == 0 and self.folds_complete == self.folds_expected and not self.problems

    def line(self) -> str:
        note = "; ".join([self.note, *(f"PROBLEM: {p}" for p in self.problems)] if self.note else [f"PROBLEM: {p}" for p in self.problems])
        return (f"{'ok  ' if self.ok else 'FAIL'} {self.fault:<34} trials {self.trials}  folds {self.folds_complete}/{self.folds_expected}"
                f"  rows lost {self.lost}  duplicates {self.duplicates}  optuna RUNNING {self.running}  {self.seconds:4.0f} s  {note}")


def _cli(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "search.cli", *args], start_new_session=True, **popen)


def _end(process: subprocess.Popen) -> None:
    """The driver and the Ray it started: its whole process group, and nothing else."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _wait_for_parts(results: Path, pattern: str, count: int, timeout: float = 300) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folder = results / "folds.parquet"
        parts = list(folder.glob(pattern)) if folder.is_dir() else []
        if len(parts) >= count:
            return parts
        time.sleep(0.1)
    raise RuntimeError(f"{results}: fewer than {count} parts {pattern} after {timeout} s")


def _wait_for_folds(results: Path, count: int, timeout: float = 300) -> None:
    _wait_for_parts(results, "*-fold*.parquet", count, timeout)


def _complete(results: Path) -> set[tuple[str, int]]:
    folds = read_table(results, "folds")
    ok = folds[folds["status"] == "COMPLETE"] if len(folds) else folds
    return set(zip(ok["trial_id"], ok["fold"].astype(int)))


def _marked(folds) -> set[tuple[str, int]]:
    marks = folds[folds["status"].isin(["PRUNED", "FAIL"])] if len(folds) else folds
    return set(zip(marks["trial_id"], marks["fold"].astype(int)))


def _duplicates(results: Path) -> int:
    """Rows in part files beyond one per key, summed over the tables, and folds both COMPLETE and
    marked: the key has the seed, which a mark has none of, so a reader keeps both."""
    extra = 0
    for table in TABLES:
        parts = [p for p in (results / f"{table}.parquet").glob("*.parquet") if not p.name.startswith(".")]
        extra += sum(pq.read_metadata(p).num_rows for p in parts) - len(read_table(results, table))
    return extra + len(_complete(results) & _marked(read_table(results, "folds")))


def _count(fault: str, results: Path, before: set, started: float, note: str = "") -> Outcome:
    folds = read_table(results, "folds")
    trials = set(folds["trial_id"])
    expected = {(t, f) for t in trials for f in range(1, FOLDS + 1)} - _marked(folds)
    after = _complete(results)
    lost = len(before - after) + len(expected - after)
    differ = _journal_vs_parquet(results)
    note = f"{note}; journal = Parquet" if not differ else note
    return Outcome(fault, len(trials), len(after), len(expected), lost, _duplicates(results), _optuna_running(results), time.monotonic() - started, note,
                   (f"journal != Parquet: {differ}",) if differ else ())


def _journal(results: Path):
    import optuna

    return optuna.load_study(study_name=STUDY["name"], storage=ResultsDir(results).journal())


def _optuna_running(results: Path) -> int:
    import optuna

    return len(_journal(results).get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))


def journal_states(results: Path) -> dict[str, str]:
    """Tune trial id -> its Optuna trial's state (the searcher stores the id on the Optuna trial)."""
    return {t.user_attrs[TUNE_TRIAL_ID]: t.state.name for t in _journal(results).get_trials(deepcopy=False) if TUNE_TRIAL_ID in t.user_attrs}


def _journal_vs_parquet(results: Path) -> str | None:
    """None when every trial's Optuna state equals its Parquet status (INCOMPLETE: RUNNING;
    matched by the stored Tune id, else by params: search.rebuild.match), else what differs: a
    trial only one side has, or two states."""
    import optuna

    from search.rebuild import match
    from search.results import params_of

    folds = read_table(results, "folds")
    statuses = trial_status(folds, FOLDS)
    rows = folds.drop_duplicates("trial_id").set_index("trial_id")
    left = optuna.load_study(study_name=STUDY["name"], storage=ResultsDir(results).journal()).get_trials(deepcopy=False)
    differ = []
    for trial_id, status in statuses.items():
        t = match(left, trial_id, params_of(rows.loc[trial_id]))
        if t is None or t.state.name != ("RUNNING" if status == "INCOMPLETE" else status):
            differ.append(f"{trial_id} Parquet {status}, journal {t.state.name if t else 'none'}")
        if t is not None:
            left.remove(t)
    differ += [f"journal trial {t.number} {t.state.name}, Parquet none" for t in left if t.state.is_finished()]
    return ", ".join(differ) or None


def _checked(outcome: Outcome, trials: int) -> Outcome:
    """The outcome with its number of trials checked against `trials`."""
    if outcome.trials == trials:
        return outcome
    return replace(outcome, problems=(*outcome.problems, f"{outcome.trials} trials, the study asks for {trials}"))


def _study(folder: Path, **changes) -> Path:
    study = {k: dict(v) if isinstance(v, dict) else v for k, v in STUDY.items()}
    for section, values in changes.items():
        study[section] = {**study[section], **values}
    path = folder / "drill.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _resume(results: Path) -> str:
    """Resume; its exit code and closing line."""
    return _resume_output(results)[0]


def _resume_output(results: Path) -> tuple[str, str]:
    """Resume; (its exit code and closing line, all it printed)."""
    done = subprocess.run([sys.executable, "-m", "search.cli", "resume", str(results)], capture_output=True, text=True)
    last = [line for line in done.stdout.splitlines() if line.strip()][-1:] or ["(no output)"]
    return f"resume exit {done.returncode}: {last[0].split('. Next')[0]}", done.stdout + done.stderr


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


PRUNE_STUDY = {
    # a learning rate that learns and one that learns nothing (validation PC -0.01 and -0.43 at
    # fold 1), two trials at once. The second trains 10x the epochs, so the first reaches ASHA's
    # first rung before it and ASHA stops it there (the first at a rung is never stopped). Both
    # are in Tune's first state snapshot, taken when they start, so the kill right after the prune
    # most likely leaves the pruned trial in the restored state as one still to run.
    "search": {"sampler": "random", "num_trials": 4, "seed": 0, "space": {"train.lr": {"choice": [0.01, 1e-7]}, "train.epochs": {"choice": [4, 40]}},
               "baseline": [{"train.lr": 0.01, "train.epochs": 4}, {"train.lr": 1e-7, "train.epochs": 40}]},
    "scheduler": {"name": "asha", "grace_folds": 1, "reduction_factor": 2},
    "resources": {"max_concurrent": 2},
}


def _snapshot_status(results: Path, trial_id: str) -> str:
    """The trial's status in Tune's newest state snapshot, the one resume restores (read for the
    drill's note only: the file is Tune's own format): TERMINATED when the snapshot came after
    the prune; RUNNING or PENDING when it predates it (the case issue 20 found: the trial is
    restored as one to run); absent when the trial is newer than the snapshot (resume's repair
    finishes such orphans)."""
    import json

    snapshots = sorted((results / "tune").glob("experiment_state-*.json"), key=lambda p: p.stat().st_mtime)
    try:
        for state, _ in json.loads(snapshots[-1].read_text())["trial_data"]:
            state = json.loads(state) if isinstance(state, str) else state
            if state.get("trial_id") == trial_id:
                return str(state.get("status"))
    except (IndexError, OSError, ValueError, KeyError, TypeError):
        return "unreadable"
    return "absent"


def driver_killed_after_a_prune(folder: Path) -> Outcome:
    """ASHA prunes a trial; the driver is SIGKILLed as soon as the prune's marks are in Parquet,
    most likely before Tune's next state snapshot; then resume. The pruned trial must stay pruned:
    no fold of it trained again, PRUNED in the journal and in Parquet."""
    started, results = time.monotonic(), folder / "results"
    study = _study(folder, **PRUNE_STUDY)
    driver = _cli("run", str(study), "--results", str(results), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        marks = _wait_for_parts(results, "*-pruned.parquet", 1)[0]
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone, right after the prune
    finally:
        _end(driver)
    pruned = marks.name.removesuffix("-pruned.parquet")
    snapshot = _snapshot_status(results, pruned)
    before, marked = _complete(results), {fold for trial, fold in _marked(read_table(results, "folds")) if trial == pruned}
    resumed = _resume(results)
    folds = read_table(results, "folds")
    status, journal = trial_status(folds, FOLDS).get(pruned), journal_states(results).get(pruned)
    # a fold marked PRUNED before the kill and not after: the trial came back and trained it (its
    # second prune rewrites the marks part without it, so no duplicate shows)
    trained = sorted(marked - {fold for trial, fold in _marked(folds) if trial == pruned})
    problems = [f"marked folds {trained} of the pruned trial trained again"] if trained else []
    if not status == journal == "PRUNED":
        problems.append(f"the pruned trial is {status} in Parquet, {journal} in the journal")
    outcome = _count("driver SIGKILLed after a prune, resume", results, before, started,
                     f"pruned {pruned}: Tune's snapshot had it {snapshot}; after resume Parquet {status}, journal {journal}, "
                     f"marked folds trained {trained or 'none'}; {resumed}")
    return replace(outcome, problems=(*outcome.problems, *problems))


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


def two_drivers(folder: Path) -> Outcome:
    """Two `run` into one --results, 0.3 s apart: the lock lets one run; the other exits 2 with
    one line naming the holder, having written nothing."""
    started, results = time.monotonic(), folder / "results"
    study = str(_study(folder))
    drivers = [_cli("run", study, "--results", str(results), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    time.sleep(0.3)
    drivers.append(_cli("run", study, "--results", str(results), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        said = [d.communicate(timeout=600) for d in drivers]
    finally:
        for d in drivers:
            _end(d)
    codes = [d.returncode for d in drivers]
    problems = []
    if sorted(codes) != [0, 2]:
        problems.append(f"exit codes {codes}, expected one 0 and one 2")
    refused = [(d, err) for d, (_, err) in zip(drivers, said) if d.returncode == 2]
    line = refused[0][1].strip() if refused else ""
    if refused:
        holder = next(d for d in drivers if d is not refused[0][0])
        if len(line.splitlines()) != 1 or f"pid {holder.pid} " not in line:
            problems.append(f"the refusal does not name the holder (pid {holder.pid}) in one line: {line!r}")
    outcome = _count("two drivers at once", results, set(), started, f"exit codes {codes}; refused: {line.replace(str(results), 'RESULTS')[:110]}")
    return _checked(replace(outcome, problems=(*outcome.problems, *problems)), STUDY["search"]["num_trials"])


def leftover_ray(folder: Path) -> Outcome:
    """SIGKILL the driver mid-study (its Ray's agents outlive it), then resume: no process of
    the killed driver's local Ray (every process below the driver when it was killed) may be
    left once the resume has ended them (search.processes)."""
    from search.processes import alive, descendants

    started, results = time.monotonic(), folder / "results"
    driver = _cli("run", str(_study(folder)), "--results", str(results), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_folds(results, 4)
        session = descendants(driver.pid)
        os.kill(driver.pid, signal.SIGKILL)  # the driver alone: its Ray is left to itself
        driver.wait()
        time.sleep(3)  # what goes with the raylet goes within a second or two
        survivors = [p for p in session if alive(p)]
        before = _complete(results)
        resumed, said = _resume_output(results)
        left = [p for p in session if alive(p)]
    finally:
        _end(driver)  # its process group: anything still there, this drill's own
    problems = [f"{len(left)} of the killed driver's Ray processes alive after resume: pids {[p for p, _ in left]}"] if left else []
    told = next((line.split(" that")[0] for line in said.splitlines() if line.startswith("ended ")), "said nothing of them")
    outcome = _count("leftover Ray processes", results, before, started,
                     f"{len(session)} Ray processes below the driver: {len(survivors)} outlived it, {len(left)} the resume (it {told}); {resumed}")
    return replace(outcome, problems=(*outcome.problems, *problems))


def _mount_tmpfs(folder: Path, megabytes: int) -> bool:
    folder.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)], capture_output=True).returncode == 0


def disk_full(folder: Path) -> Outcome:
    """The results on a 32 MB tmpfs (the drill study needs ~14 MB, so the preflight lets it
    start); once a fold is written a filler file takes all but 64 KB: the next fold's model
    does not fit. Expected: exit 1, one line naming the file and the space free, no traceback.
    Then the filler goes and resume finishes the study."""
    started, disk = time.monotonic(), folder / "tmpfs"
    if not _mount_tmpfs(disk, 32):
        print(f"skip full disk: cannot mount a tmpfs at {disk} (needs root)", flush=True)
        return None
    results, filler = disk / "results", disk / "filler"
    try:
        driver = _cli("run", str(_study(folder)), "--results", str(results), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for_folds(results, 1)
            with filler.open("wb") as f:
                f.write(b"\0" * max(0, shutil.disk_usage(disk).free - 64_000))
            out, err = driver.communicate(timeout=300)
        finally:
            _end(driver)
        lines = [line for line in err.splitlines() if line.strip()]
        told = len(lines) == 1 and "disk full while writing" in lines[0] and " MB free on " in lines[0] and "Traceback" not in out + err
        before = _complete(results)
        filler.unlink()
        resumed = _resume(results)
        shutil.copytree(results, folder / "results")  # the tmpfs goes; what the drill counts stays
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    said = lines[0][:90] if lines else "(nothing on stderr)"
    return _count("disk full mid-run, then resume", folder / "results", before, started,
                  f"exit {driver.returncode}, {'one line' if told else 'NOT one line'}: {said!r}; {resumed}")


def truncated_journal(folder: Path) -> Outcome:
    """A finished study's optuna.journal cut to 60%: report says so (and still reports), resume
    rebuilds the journal from Parquet."""
    started, results = time.monotonic(), folder / "results"
    subprocess.run([sys.executable, "-m", "search.cli", "run", str(_study(folder, train={"epochs": 1})), "--results", str(results)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    before = _complete(results)
    journal = results / "optuna.journal"
    data = journal.read_bytes()
    journal.write_bytes(data[: int(len(data) * 0.6)])
    report = subprocess.run([sys.executable, "-m", "search.cli", "report", str(results)], capture_output=True, text=True)
    said = "says damaged" if "damaged" in report.stdout else "does NOT say damaged"
    resumed = subprocess.run([sys.executable, "-m", "search.cli", "resume", str(results)], capture_output=True, text=True)
    rebuilt = "rebuilt" if "recreated from Parquet" in resumed.stdout else "NOT rebuilt"
    return _count("journal truncated to 60%, then resume", results, before, started,
                  f"report exit {report.returncode}, {said}; resume exit {resumed.returncode}, journal {rebuilt}")


def damaged_compacted(folder: Path) -> Outcome:
    """A finished study's compacted folds part cut to 64 bytes: resume moves it aside and rebuilds
    its rows from the epochs and predictions tables and the journal; nothing is trained again."""
    started, results = time.monotonic(), folder / "results"
    subprocess.run([sys.executable, "-m", "search.cli", "run", str(_study(folder, train={"epochs": 1})), "--results", str(results)],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    before, rows = _complete(results), read_table(results, "folds")
    compacted = sorted((results / "folds.parquet").glob("compacted-*.parquet"))
    slice_rows = pq.read_metadata(compacted[0]).num_rows
    compacted[0].write_bytes(compacted[0].read_bytes()[:64])
    resumed = subprocess.run([sys.executable, "-m", "search.cli", "resume", str(results)], capture_output=True, text=True)
    retrained = next((int(line.split()[0]) for line in resumed.stdout.splitlines() if "whose rows were missing trained again" in line), 0)
    after = read_table(results, "folds").set_index(["trial_id", "fold"]).sort_index()
    same = after.loc[rows.set_index(["trial_id", "fold"]).sort_index().index, ["pc", "mae", "rmse", "val_pc"]].equals(
        rows.set_index(["trial_id", "fold"]).sort_index()[["pc", "mae", "rmse", "val_pc"]])
    return _count("compacted folds part damaged, resume", results, before, started,
                  f"{len(compacted)} compacted parts, the damaged one held {slice_rows} of {len(rows)} rows; resume exit {resumed.returncode}, "
                  f"retrained folds {retrained}, rebuilt metrics {'identical' if same else 'DIFFER'}")


FAULTS = {"kill": driver_killed, "prune-kill": driver_killed_after_a_prune, "ctrl-c": ctrl_c, "node": node_dies, "raise": trial_raises, "damaged": damaged_part, "twice": run_twice,
          "two": two_drivers, "leftover": leftover_ray, "disk": disk_full, "journal": truncated_journal, "compacted": damaged_compacted}


def main(argv: list[str] | None = None) -> int:
    # the whole docstring, laid out as written (its first line alone stopped mid-sentence)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, of: " + ", ".join(FAULTS))
    parser.add_argument("--keep", type=Path, help="keep each fault's results under this folder")
    parser.add_argument("--repeat", type=int, default=1, help="run each fault this many times: a fault that depends on timing (a kill "
                        "lands before or after Tune's next state snapshot) hits its case in some runs only")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        print(f"error: --repeat: must be at least 1, got {args.repeat}", file=sys.stderr)
        return 2
    chosen = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = [f for f in chosen if f not in FAULTS]
    if unknown:
        print(f"error: --faults: unknown fault {unknown[0]!r}; choose from {', '.join(FAULTS)}", file=sys.stderr)
        return 2
    os.environ.setdefault("FBP_CACHE_DIR", str(Path(tempfile.gettempdir()) / "fbp-drill-cache"))
    root = Path(tempfile.mkdtemp(prefix="fbp-drill-"))
    failures = 0
    try:
        for name, run in ((name, run) for name in chosen for run in range(1, args.repeat + 1)):
            folder = root / (name if args.repeat == 1 else f"{name}-{run}")
            folder.mkdir()
            outcome = FAULTS[name](folder)
            if outcome is None:  # skipped, and said why
                continue
            print(outcome.line(), flush=True)
            failures += not outcome.ok
    finally:
        if args.keep:
            shutil.copytree(root, args.keep, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

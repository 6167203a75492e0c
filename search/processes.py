"""Processes known by (pid, start time), and ended only while they are still that process.

A pid alone names a process only while it lives: once it is gone the kernel may give the number
to an unrelated process. Recorded with its start time (/proc/<pid>/stat, field 22: clock ticks
after boot), a pid is signalled only while it still has that start time. Linux only (/proc);
elsewhere nothing is found and nothing is ended.

Used by the runner to end what a killed driver's local Ray left behind (search.cluster records
it) and by bench/scale.py to count what a driver leaves.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from fbp.files import write_atomic

KILLED_WITHIN = 10.0  # seconds a SIGKILLed process is given to exit before `end` returns

Process = tuple[int, str]
"""(pid, start time as /proc writes it)."""


def stat_fields(pid: int) -> list[str] | None:
    """A process's /proc stat fields from the third (its state) on; None when it is gone. The
    command name (field 2) is cut off first: it may hold spaces and parentheses."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> str | None:
    fields = stat_fields(pid)
    return fields[19] if fields is not None else None


def alive(process: Process) -> bool:
    """The recorded process is still running: same pid, same start time, not a zombie (a zombie
    has ended; it waits only for its parent to read its exit status)."""
    fields = stat_fields(process[0])
    return fields is not None and fields[19] == process[1] and fields[0] != "Z"


def children() -> dict[int, list[Process]]:
    """parent pid -> its live children, from one pass over /proc."""
    out: dict[int, list[Process]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))) is not None and fields[0] != "Z":
            out.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    return out


def descendants(*roots: int) -> list[Process]:
    """Every live process below the `roots` (their children, theirs, ...)."""
    tree = children()
    out, todo = [], list(roots)
    while todo:
        for child in tree.get(todo.pop(), []):
            out.append(child)
            todo.append(child[0])
    return out


def end(processes: list[Process], grace: float = 5.0, terminate: bool = True) -> int:
    """End those of `processes` still alive: SIGTERM (with `terminate`), up to `grace` seconds
    to go, then SIGKILL for any left (Ray's agents ignore SIGTERM once their raylet is gone).
    Returns how many it signalled. Nothing but the recorded processes is touched."""
    def signal_all(signum: int, among: list[Process]) -> int:
        sent = 0
        for process in among:
            if alive(process):
                try:
                    os.kill(process[0], signum)
                    sent += 1
                except ProcessLookupError:
                    pass
        return sent

    def wait(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and any(alive(p) for p in processes):
            time.sleep(0.1)

    signalled = signal_all(signal.SIGTERM, processes) if terminate else 0
    wait(grace)
    killed = signal_all(signal.SIGKILL, processes)
    if killed:
        wait(KILLED_WITHIN)  # SIGKILL is delivered at once, but the process takes a moment to exit
    return signalled if terminate else killed


# --- a record of processes in a folder (a results directory) -----------------------------------

RECORD = ".ray-processes.json"


def _machine() -> dict:
    """This machine's name and boot: a recorded start time means something on this boot only."""
    import socket

    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return {"host": socket.gethostname(), "boot": boot}


def write_record(folder: Path, processes: list[Process]) -> Path:
    """FOLDER/.ray-processes.json: these processes, by pid and start time, atomically."""
    path = Path(folder) / RECORD
    return write_atomic(path, json.dumps({**_machine(), "driver": os.getpid(), "processes": [list(p) for p in processes]}) + "\n")


def recorded(folder: Path) -> list[Process]:
    """The processes FOLDER's record names, if it was written on this machine since its boot."""
    try:
        record = json.loads((Path(folder) / RECORD).read_text())
    except (OSError, ValueError):
        return []
    if {k: record.get(k) for k in ("host", "boot")} != _machine():
        return []
    return [(int(pid), str(started)) for pid, started in record.get("processes", [])]


def end_recorded(folder: Path, grace: float = 5.0) -> int:
    """End the recorded processes of FOLDER that are still alive (`end`), then drop the record;
    how many it ended. Nothing the record does not name is touched."""
    left = [p for p in recorded(folder) if alive(p)]
    ended = end(left, grace) if left else 0
    (Path(folder) / RECORD).unlink(missing_ok=True)
    return ended

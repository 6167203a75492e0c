"""One writer per results directory: an exclusive lock held for a driver's whole life.

Two drivers in one results directory would both pass its checks (neither has written study.yaml
yet), train the same trials twice and overwrite each other's rows and models. `run`, `resume`
(a set: its root and each study) and `train` hold RESULTS/.lock, an `fcntl.flock` on that file,
before they write anything there. The second is refused with one line naming the holder:

    results/quickstart: in use by another fbp-search (pid 4242 on gpu-node-1, since 2025-06-01 12:00:03); ...

The OS drops a flock when its holder's last descriptor closes, so a driver killed by any signal
releases it; the descriptor is not inherited by the processes the driver starts (Ray's), so
none of them holds it for a dead driver. Readers (`report`, `paper`, `export`) take no lock:
every part is renamed into place whole, and a read that meets a part removed under it (the
driver compacting) reads the table again (search.results).

On one machine the lock is exact. On a network file system flock's reach depends on the file
system (NFS v4 and Lustre pass it between hosts when mounted with locks on; some do not):
there, run one driver per results directory yourself.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from fbp.errors import InputError
from search.processes import RECORD

LOCK = ".lock"
DRIVER_FILES = frozenset({LOCK, RECORD})
"""The hidden files a driver keeps in a results directory (they make it no study's results)."""

_held: dict[str, list[int]] = {}  # realpath of a lock file -> [descriptor, depth]: a driver re-enters its own lock (resume -> run)


@contextmanager
def hold(folder: Path):
    """Hold `folder`'s lock for the block, creating the folder if need be; refused (InputError)
    while another process holds it. Re-entrant within a process. At the end, a folder that
    holds nothing but a driver's own files (DRIVER_FILES) is emptied, and removed if this call
    created it: a command refused after taking the lock (its cluster did not answer) leaves
    nothing behind."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder / LOCK)
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    fd = _acquire(folder)
    _held[key] = [fd, 1]
    try:
        yield
    finally:
        del _held[key]
        _release(folder, fd, created)


def _acquire(folder: Path) -> int:
    path = folder / LOCK
    while True:
        folder.mkdir(parents=True, exist_ok=True)  # a holder ending just now may have removed it (`_release`)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes (Python's default)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise InputError(f"{folder}: in use by another fbp-search ({holder_line(path)}); "
                                 "one driver per results directory: wait for it to end, or stop it and continue with fbp-search resume") from None
            raise
        # a holder that ended may have removed the file (`_release`) after we opened it: then our
        # lock is on a name no one else opens; take the file that is there now
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    return fd


def _release(folder: Path, fd: int, created: bool) -> None:
    """Drop the lock. The file stays (another driver may be waiting to open it), unless the
    folder holds nothing but a driver's files: then they go, and the folder too if this driver
    made it."""
    try:
        if {p.name for p in folder.iterdir()} <= DRIVER_FILES:
            (folder / RECORD).unlink(missing_ok=True)
            (folder / LOCK).unlink()
            if created:
                folder.rmdir()
    except OSError:
        pass
    finally:
        os.close(fd)


def holder(path: Path) -> dict:
    """What the holder wrote into the lock file: pid, host, since (empty while it writes)."""
    try:
        return json.loads(Path(path).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def holder_line(path: Path) -> str:
    h = holder(path)
    if not h:
        return "a process that has just taken it"
    return f"pid {h.get('pid')} on {h.get('host')}, since {h.get('since')}"

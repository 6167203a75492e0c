"""Optuna's journal file, each line written without an fsync.

Optuna's own file backend syncs every line to the disk. A trial's ask, each of its params,
each fold's value and its end are ~10 lines, ~8 ms each on a plain disk: bench/scale.py found
the syncs to be a third of the driver's time at 10 fold results a second. A driver killed at
any moment loses no line without them (a written line is in the OS's page cache); only the
machine losing power could lose the last lines, as it could the Parquet parts, which are not
synced either. The lock and the format are Optuna's own: optuna-dashboard reads the file as
ever. (A class of its own module: the searcher's state pickles the storage.)

A write the disk cannot take (full) is undone: the file is cut back to its length before the
write, so no half line is left for the next write to run into (Optuna would stop at that line
on every later read), and `search.results.DiskFull` names the file.
"""

from __future__ import annotations

import json
import os

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock


class JournalFile(JournalFileBackend):
    def __init__(self, file_path: str):
        self.lock = JournalFileSymlinkLock(file_path)  # Optuna's default lock, held here to be taken
        self.file_path = file_path
        super().__init__(file_path, lock_obj=self.lock)

    def append_logs(self, logs: list[dict]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)  # Optuna's format
        self.lock.acquire()
        try:
            _append(self.file_path, text.encode("utf-8"))
        finally:
            self.lock.release()


def _append(path: str, data: bytes) -> None:
    """Append `data` whole, or leave the file as it was (unbuffered: no buffer left to flush
    into a full disk when the file closes)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        before = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError as e:
            os.ftruncate(fd, before)
            from search.results import DiskFull, is_disk_full  # results imports pandas: only when needed

            if is_disk_full(e):
                raise DiskFull(path) from None
            raise
    finally:
        os.close(fd)


def damage(path: str) -> tuple[int, int, str] | None:
    """Where the journal at `path` stops being readable: (line number from 1, its byte offset,
    what is wrong), or None when every line is whole JSON. A line cut short (a truncated file,
    or a write cut by a full disk before this module undid it) ends without a newline; Optuna
    skips such a last line silently, then fails on every read once another line is appended."""
    offset = 0
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.endswith(b"\n"):
                return number, offset, "cut short"
            try:
                json.loads(line)
            except ValueError:
                return number, offset, "not JSON"
            offset += len(line)
    return None


def describe_damage(path: str) -> str | None:
    """One line on the journal's damage, for the report and resume; None when it is whole."""
    found = damage(path) if os.path.isfile(path) else None
    if found is None:
        return None
    number, _, what = found
    return f"{path} is damaged (line {number} {what})"

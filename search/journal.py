"""Optuna's journal file, each line written without an fsync.

Optuna's own file backend syncs every line to the disk. A trial's ask, each of its params,
each fold's value and its end are ~10 lines, ~8 ms each on a plain disk: bench/scale.py found
the syncs to be a third of the driver's time at 10 fold results a second. A driver killed at
any moment loses no line without them (a written line is in the OS's page cache); only the
machine losing power could lose the last lines, as it could the Parquet parts, which are not
synced either. The lock and the format are Optuna's own: optuna-dashboard reads the file as
ever. (A class of its own module: the searcher's state pickles the storage.)
"""

from __future__ import annotations

import json

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
            with open(self.file_path, "ab") as f:
                f.write(text.encode("utf-8"))
        finally:
            self.lock.release()

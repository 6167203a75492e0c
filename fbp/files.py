"""Files and folders written whole or not at all.

Every file this project leaves for another process (a Parquet part, a model, study.yaml, a
report) is written under a temporary name beside it and renamed into place: the rename is
atomic on one filesystem, so a reader on any node sees the old file or the new one, never half
of one, and a process killed mid-write leaves only a hidden temporary. The temporary name
carries the writer's pid, so two processes writing the same file never share one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary(path: Path) -> Path:
    """The name `path` is written under first: hidden (no reader lists it), in the same folder
    (the rename stays on one filesystem), with this process's pid."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: Path | str, publish: Callable[[Path, Path], None] = os.replace) -> Iterator[Path]:
    """Yields the temporary path to write `path` at (a file, or a folder the caller makes);
    when the block ends cleanly `publish(tmp, path)` puts it in place (a rename; a folder
    replaces only an empty one). Whatever the block or the rename raises (a full disk, a bad
    value) propagates, and the temporary is removed: `path` is as it was. A temporary left by a
    killed process that had our pid is cleared first.

    Args:
        path: where the file or folder ends up.
        publish: how the finished temporary takes its place (default `os.replace`); a caller
            with its own checks or messages around the rename passes its own.
    """
    path = Path(path)
    tmp = temporary(path)
    _remove(tmp)
    try:
        yield tmp
        publish(tmp, path)
    finally:
        _remove(tmp)


def write_atomic(path: Path | str, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically (see `atomic_path`); returns `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return path

"""The results directory: Parquet tables written as atomic part files, read back deduplicated.

    results/<study>/
      study.yaml              the resolved study and its spec_hash
      folds.parquet/          one row per (trial_id, fold)
      epochs.parquet/         one row per (trial_id, fold, epoch)
      predictions.parquet/    one row per (trial_id, fold, image)

Each write is one part file, written under a temporary name in the same folder and renamed
into place, so a reader never sees half a file and a killed writer leaves at most a hidden
temporary file. Part names are deterministic per (trial, fold): writing the same fold again
replaces its part instead of adding a second copy; readers still dedupe on the key.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fbp.errors import InputError

if TYPE_CHECKING:  # the report reads results without importing torch
    from fbp.train import FoldResult

TABLES = {
    "folds": ["trial_id", "fold"],
    "epochs": ["trial_id", "fold", "epoch"],
    "predictions": ["trial_id", "fold", "image"],
}


def spec_hash(resolved: dict) -> str:
    """A short hash of a resolved study or config (its canonical JSON)."""
    import json

    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_part(results: Path, table: str, part: str, frame: pd.DataFrame) -> Path:
    folder = results / f"{table}.parquet"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{part}.parquet"
    tmp = folder / f".{part}.tmp-{os.getpid()}"
    try:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _read_part(path: Path) -> pd.DataFrame:
    try:
        return pq.read_table(path).to_pandas()
    except (pa.ArrowInvalid, OSError) as e:
        # Our writers never leave a partial part (temporary name, then rename): a damaged one
        # was damaged afterwards. Stop and name it rather than silently drop its rows.
        raise InputError(f"{path}: damaged part file ({e}); move it out of {path.parent} and run `fbp-search resume {path.parent.parent}` to train its folds again") from None


def read_table(results: Path, table: str) -> pd.DataFrame:
    """All parts of a table, the last written copy of each key kept. Hidden files (a writer's
    temporary parts) are not parts; a damaged part stops the read with its path."""
    folder = results / f"{table}.parquet"
    parts = sorted((p for p in folder.glob("*.parquet") if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime_ns) if folder.is_dir() else []
    if not parts:
        return pd.DataFrame(columns=TABLES[table])
    frame = pd.concat([_read_part(p) for p in parts], ignore_index=True)
    return frame.drop_duplicates(subset=TABLES[table], keep="last").reset_index(drop=True)


def compact(results: Path, table: str) -> int:
    """Merge a table's parts into one (the deduplicated rows), then remove the merged parts.

    A study of many trials leaves tens of thousands of small parts and opening each costs a
    millisecond; one compacted part makes reading it fast. Killed at any point, nothing is
    lost: the merged part is in place before any part it replaces is removed, and readers
    dedupe the brief overlap. Returns the number of parts merged.
    """
    folder = results / f"{table}.parquet"
    parts = [p for p in folder.glob("*.parquet") if not p.name.startswith(".")] if folder.is_dir() else []
    if len(parts) < 2:
        return 0
    frame = read_table(results, table)
    merged = write_part(results, table, f"compacted-{time.time_ns()}", frame)
    for part in parts:
        if part != merged:
            part.unlink(missing_ok=True)
    return len(parts)


def fold_frames(result: FoldResult, trial: dict) -> dict[str, pd.DataFrame]:
    """The rows one finished fold adds to each table. `trial` holds study, spec_hash,
    trial_id, seed, status, error, host, node_id and the `param.<path>` values."""
    key = {"trial_id": trial["trial_id"], "fold": result.fold}
    folds = pd.DataFrame([{
        **{k: trial[k] for k in ("study", "spec_hash", "trial_id")},
        "fold": result.fold,
        "seed": trial["seed"],
        "status": trial.get("status", "COMPLETE"),
        "error": trial.get("error"),
        "mae": result.mae, "rmse": result.rmse, "pc": result.pc,
        "n_train": result.n_train, "n_test": result.n_test,
        "epochs_run": result.epochs_run, "selected_epoch": result.selected_epoch, "select": result.select,
        "train_seconds": result.train_seconds, "images_per_second": result.images_per_second,
        "device": result.device, "started_at": result.started_at, "finished_at": result.finished_at,
        "host": trial.get("host"), "node_id": trial.get("node_id"),  # where it ran: a restart may move it
        **{k: v for k, v in trial.items() if k.startswith("param.")},
    }])
    epochs = pd.DataFrame([{**key, **row} for row in result.curves])
    predictions = pd.DataFrame({**{k: [v] * result.n_test for k, v in key.items()}, **result.predictions})
    return {"folds": folds, "epochs": epochs, "predictions": predictions}


def write_fold(results: Path, result: FoldResult, trial: dict) -> None:
    """Write one fold's rows; the folds row last, so a fold counts as done only when its
    curves and predictions are already on disk."""
    part = f"{trial['trial_id']}-fold{result.fold}"
    frames = fold_frames(result, trial)
    for table in ("epochs", "predictions", "folds"):
        write_part(results, table, part, frames[table])

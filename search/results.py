"""The results directory: its layout, its tables, its study and its journal, one owner for all.

    results/<study>/
      study.yaml              the resolved study (every default filled in) and its spec_hash
      folds.parquet/          one row per (trial_id, fold)           FOLD_COLUMNS + param.<path>
      epochs.parquet/         one row per (trial_id, fold, epoch)
      predictions.parquet/    one row per (trial_id, fold, image)    PREDICTION_COLUMNS
      optuna.journal          Optuna's JournalStorage of the study
      tune/                   Ray Tune's state and checkpoints, unless storage.yaml says where
      storage.yaml            where `--storage` put Tune's state
      logs/                   <trial_id>.log: a trial's epochs and, if it failed, its traceback
      models/                 <trial_id>/: the selected fold models of the best trials (search.keep)
      report/                 written by `fbp-search report`
      .lock                   a driver's lock (search.lock); .ray-processes.json: its local Ray (search.processes)

Each write is one part file, written under a temporary name in the same folder and renamed
into place, so a reader never sees half a file and a killed writer leaves at most a hidden
temporary file. A fold's part is named `<trial_id>-fold<k>` (`part_name`): writing the same
fold again replaces it; readers still keep one row per key, the last written. A study of many
trials leaves tens of thousands of small parts, so the reader opens them in threads, can keep a
snapshot of a whole table that makes the next read incremental (the report's), and reads only
the parts of the trials asked for.

Everything here is pandas and pyarrow: the report reads results without torch or Ray.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from fbp.errors import InputError
from fbp.files import atomic_path, write_atomic
from fbp.metrics import NAMES as METRIC_NAMES
from fbp.metrics import VAL_NAMES
from search.lock import DRIVER_FILES

if TYPE_CHECKING:
    from fbp.records import FoldResult
    from search.spec import StudySpec

# --- the rows ------------------------------------------------------------------------------------

FOLD_COLUMNS: dict[str, pa.DataType] = {
    "study": pa.string(), "spec_hash": pa.string(), "trial_id": pa.string(), "fold": pa.int64(), "seed": pa.int64(),
    "status": pa.string(),  # COMPLETE, PRUNED (the scheduler stopped the trial first), FAIL (it raised)
    "error": pa.string(),  # the exception's line, FAIL rows only
    **{m: pa.float64() for m in METRIC_NAMES},  # the test fold's, at the selected epoch
    **{m: pa.float64() for m in VAL_NAMES},  # the validation part's (eval.holdout), else NaN
    "n_train": pa.int64(), "n_test": pa.int64(), "epochs_run": pa.int64(), "selected_epoch": pa.int64(), "select": pa.string(),
    "train_seconds": pa.float64(), "images_per_second": pa.float64(), "device": pa.string(),
    "started_at": pa.float64(), "finished_at": pa.float64(),
    "host": pa.string(), "node_id": pa.string(),  # where the fold ran: a restart may move a trial
}
"""A folds row; then one `param.<dotted.path>` column per searched knob."""

PREDICTION_COLUMNS: dict[str, pa.DataType] = {
    "trial_id": pa.string(), "fold": pa.int64(), "seed": pa.int64(), "image": pa.string(), "subset": pa.string(),
    "y_true": pa.float64(), "y_pred": pa.float64(), "y_reg": pa.float64(), "y_exp": pa.float64(),
}
"""A predictions row: one test image of a fold, out of fold."""

EPOCH_KEY = ("trial_id", "fold", "seed", "epoch")  # then lr, train_<loss term>, test_<metric>, val_<metric>

TABLES: dict[str, tuple[str, ...]] = {
    "folds": ("trial_id", "fold", "seed"),
    "epochs": EPOCH_KEY,
    "predictions": ("trial_id", "fold", "seed", "image"),
}
"""Each table and its key: a reader keeps the last written row of each key. `seed` tells the
runs of a fold apart (train.repeats); a PRUNED or FAIL mark has none: it stands for the fold."""

SCHEMAS = {"folds": FOLD_COLUMNS, "predictions": PREDICTION_COLUMNS}
STATUSES = ("COMPLETE", "PRUNED", "FAIL")
WRITTEN = "_written"  # a read's per-row mtime (ns) of its part: the "last written" order
_PART = "_part"
_SNAPSHOT_VERSION = "1"


# --- a full disk --------------------------------------------------------------------------------


class DiskFull(Exception):
    """The disk under the results filled while writing `path`: not a trial's failure nor bad
    input, so the study stops (exit code 1) with this one line and resumes once space is freed.
    What was being written is not left behind half-written (see `ResultsDir.write_bytes`)."""

    def __init__(self, path: str | Path, free: int | None = None):
        self.path = str(path)
        self.free = free_bytes(self.path) if free is None else free
        results = next((p for p in Path(self.path).parents if (p / ResultsDir.STUDY).is_file()), None)
        then = f"then continue with: fbp-search resume {results}" if results else "then run again"
        super().__init__(f"disk full while writing {self.path}: {self.free / 1e6:.1f} MB free on {mount_of(self.path)}; free some space, {then}")


def is_disk_full(e: BaseException) -> bool:
    """ENOSPC (or a quota's EDQUOT), also as pyarrow raises it: an OSError whose text alone says so."""
    if isinstance(e, DiskFull):
        return True
    return isinstance(e, OSError) and (e.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(e))


def disk_full_in(e: BaseException) -> DiskFull | None:
    """The disk-full error behind `e`, if any: Tune wraps a callback's exception in a TuneError
    whose context is the original, and cleanup may hit the full disk again on the way out, so
    the whole chain is walked and a `DiskFull` (which names its file) preferred to a bare ENOSPC."""
    chain, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    named = [x for x in chain if isinstance(x, DiskFull)]
    if named:
        return named[-1]  # the first one raised
    bare = [x for x in chain if is_disk_full(x)]
    if not bare:
        return None
    first = bare[-1]
    return DiskFull(getattr(first, "filename", None) or _path_in(str(first)) or "an unnamed file")


def _path_in(text: str) -> str | None:
    """A path an error's text names (pyarrow's errors carry it in the message)."""
    m = re.search(r"(/[^\s'\"]+)", text)
    return m.group(1) if m else None


def existing_parent(path: str | Path) -> Path:
    """The path itself or its nearest existing parent (what `shutil.disk_usage` can ask about)."""
    path = Path(path).absolute()
    return next((p for p in (path, *path.parents) if p.exists()), Path("/"))


def free_bytes(path: str | Path) -> int:
    """Bytes free to this user on the file system that holds `path` (or would hold it)."""
    try:
        return shutil.disk_usage(existing_parent(path)).free
    except OSError:
        return 0


def mount_of(path: str | Path) -> str:
    """The mount point of the file system that holds `path`: how `df` names it."""
    p = existing_parent(path)
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return str(p)


def part_name(trial_id: str, fold: int) -> str:
    """The part of one fold of one trial, in every table."""
    return f"{trial_id}-fold{fold}"


def marks_name(trial_id: str, status: str) -> str:
    """The folds part that marks a trial's unfinished folds PRUNED or FAIL."""
    return f"{trial_id}-{status.lower()}"


ENDED = ("FAIL", "PRUNED")
"""The statuses of a trial the driver ended early (it raised; the scheduler stopped it)."""

TUNE_TRIAL_ID = "tune_trial_id"
"""The user attribute of an Optuna trial that names its Ray Tune trial (search.searcher sets it
when the trial is asked for): the journal's record of a trial is then found by Tune's id."""


_OF_A_TRIAL = re.compile(r"^(?P<trial>.+)-(?:fold(?P<fold>-?\d+)|pruned|fail)$")


def trial_of(part: str) -> str | None:
    """The trial a part belongs to (`part_name`, `marks_name`); None for a compacted part."""
    m = _OF_A_TRIAL.match(part.removesuffix(".parquet"))
    return m.group("trial") if m else None


def fold_of(part: str) -> tuple[str, int] | None:
    """(trial, fold) of a fold's part (`part_name`); None for marks and compacted parts."""
    m = _OF_A_TRIAL.match(part.removesuffix(".parquet"))
    return (m.group("trial"), int(m.group("fold"))) if m and m.group("fold") is not None else None


def spec_hash(resolved: dict) -> str:
    """A short hash of a resolved study or config (its canonical JSON)."""
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fold_frames(runs: FoldResult | list[FoldResult], trial: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """The rows a finished fold adds to each table: one run, or its `train.repeats` runs (one
    seed each). `trial` holds the per-trial columns of FOLD_COLUMNS (study, spec_hash,
    trial_id, host, node_id) and `param.<path>` values."""
    runs = runs if isinstance(runs, list) else [runs]
    params = {k: v for k, v in trial.items() if k.startswith("param.")}
    folds, epochs, predictions = [], [], []
    for result in runs:
        key = {"trial_id": trial["trial_id"], "fold": result.fold, "seed": result.seed}
        measured = {c: getattr(result, c) for c in FOLD_COLUMNS if hasattr(result, c)}
        folds.append({**{c: trial.get(c) for c in FOLD_COLUMNS}, **measured, "status": "COMPLETE", "error": None, **params})
        epochs += [{**key, **epoch} for epoch in result.curves]
        predictions.append(pd.DataFrame({**{k: [v] * result.n_test for k, v in key.items()}, **result.predictions}))
    return {"folds": pd.DataFrame(folds), "epochs": pd.DataFrame(epochs), "predictions": pd.concat(predictions, ignore_index=True)}


def part_bytes(table: str, frame: pd.DataFrame) -> bytes:
    """A part file's bytes: the frame as Parquet, with the table's column types."""
    sink = pa.BufferOutputStream()
    # page checksums: a part damaged on disk later fails its read (named) instead of giving wrong values
    pq.write_table(_typed(pa.Table.from_pandas(frame, preserve_index=False), SCHEMAS.get(table, {})), sink, write_page_checksum=True)
    return sink.getvalue().to_pybytes()


def fold_parts(frames: dict[str, pd.DataFrame], param_paths: list[str] = ()) -> dict[str, bytes]:
    """A finished fold's parts (`fold_frames`), encoded where the fold ran: what travels to the
    driver is ~40 KB of Parquet per paper-protocol fold, which the driver writes as it is,
    rather than ~12,000 Python values it would turn into tables. `param_paths`: every searched
    knob gets its column, one a condition switched off too (empty)."""
    folds = frames["folds"].copy()
    for path in param_paths:
        if f"param.{path}" not in folds.columns:
            folds[f"param.{path}"] = None
    return {table: part_bytes(table, folds if table == "folds" else frame) for table, frame in frames.items()}


def params_of(row: pd.Series) -> dict[str, Any]:
    """A trial's params from a folds row's `param.<path>` columns (a knob its condition
    switched off is empty there, and absent here), as plain Python values."""
    params = {}
    for column, value in row.items():
        if str(column).startswith("param.") and value is not None and not (isinstance(value, float) and np.isnan(value)):
            params[str(column).removeprefix("param.")] = value.item() if isinstance(value, np.generic) else value
    return params


def marks_frame(trial: dict[str, Any], folds: list[int], status: str, error: str | None) -> pd.DataFrame:
    """A row per fold a trial did not complete, marked PRUNED or FAIL (no metrics)."""
    row = {c: trial.get(c) for c in FOLD_COLUMNS} | {"status": status, "error": error}
    params = {k: v for k, v in trial.items() if k.startswith("param.")}
    return pd.DataFrame([{**row, "fold": f, **params} for f in folds])


def _typed(t: pa.Table, schema: dict[str, pa.DataType]) -> pa.Table:
    """The schema's types on the columns it names: a part whose column holds only None (a FAIL
    row's metrics) is then typed like every other part, and readers concatenate without guessing."""
    for i, f in enumerate(t.schema):
        wanted = schema.get(f.name)
        if wanted is not None and f.type != wanted:
            t = t.set_column(i, pa.field(f.name, wanted), t.column(i).cast(wanted))
    return t


def trial_status(folds: pd.DataFrame, num_folds: int) -> pd.Series:
    """trial_id -> COMPLETE (num_folds folds complete), FAIL (a fold failed), PRUNED (the
    scheduler stopped it), or INCOMPLETE (started, neither finished nor marked: a stop, a kill),
    in the order the trials first appear. A fold counts once, however many seeds it ran
    (train.repeats writes a fold's seeds together)."""
    if folds.empty:
        return pd.Series(dtype=object)
    status = folds["status"].astype(str).str.upper() if "status" in folds.columns else pd.Series("COMPLETE", index=folds.index)
    complete_fold = folds["fold"].where(status.eq("COMPLETE"))  # NaN for rows that are not a complete fold
    flags = pd.DataFrame({"fail": status.eq("FAIL").to_numpy(), "pruned": status.eq("PRUNED").to_numpy(), "complete": complete_fold.to_numpy()}, index=folds.index)
    per_trial = flags.groupby(folds["trial_id"], sort=False).agg(fail=("fail", "any"), pruned=("pruned", "any"), complete=("complete", "nunique"))
    chosen = np.select([per_trial["fail"], per_trial["pruned"], per_trial["complete"] >= max(num_folds, 1)], ["FAIL", "PRUNED", "COMPLETE"], "INCOMPLETE")
    return pd.Series(chosen, index=per_trial.index, dtype=object)


def expected_folds(config: dict, folds: pd.DataFrame) -> int:
    """The folds a complete trial trains, as far as a reader without the dataset can tell: the
    study's `data.folds` when it lists them (`config` is the resolved trial config); else the
    most folds any trial has rows for, whatever their status (a PRUNED or FAIL trial has a row
    for each fold it did not finish, so a study in which nothing completed still tells; fold -1
    is a placeholder, not a fold). The driver knows the exact number (search.preflight)."""
    listed = (config.get("data") or {}).get("folds")
    if isinstance(listed, list) and listed:
        return len(listed)
    if not len(folds) or "fold" not in folds.columns:
        return 0
    fold = pd.to_numeric(folds["fold"], errors="coerce")
    real = fold.ge(0).to_numpy()
    return int(fold[real].groupby(folds.loc[real, "trial_id"]).nunique().max()) if real.any() else 0


# --- reading parts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    path: str  # plain strings: a Path per part costs more than the stat at 50,000 parts
    name: str
    mtime_ns: int
    size: int

    @property
    def trial(self) -> str | None:
        return trial_of(self.name)


class _Vanished(Exception):
    """A listed part was removed before it was read: a driver compacted the table meanwhile."""


def _read_part(part: Part) -> pa.Table:
    try:
        t = pq.ParquetFile(part.path, page_checksum_verification=True).read(use_threads=False)  # a third of read_table's overhead per file
    except FileNotFoundError:
        raise _Vanished(part.path) from None
    except Exception as e:  # pyarrow raises several types for a damaged or foreign file
        # our writers never leave a partial part (temporary name, then rename): a damaged one was
        # damaged afterwards. Stop and name it rather than silently drop its rows.
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        folder = Path(part.path).parent
        if folder.name == "folds.parquet":  # resume rebuilds these rows (search.rebuild)
            raise InputError(f"{part.path}: damaged part file ({first}); run `fbp-search resume {folder.parent}`: it moves the file aside and rebuilds its rows") from None
        raise InputError(f"{part.path}: damaged part file ({first}); move it out of {folder} and run `fbp-search resume {folder.parent}` to train its folds again") from None
    t = t.append_column(WRITTEN, pa.array(np.full(t.num_rows, part.mtime_ns, dtype=np.int64)))
    return t.append_column(_PART, pa.array([part.name] * t.num_rows, pa.string()).dictionary_encode())


COMPACT_TRIALS = 100
"""Trials per compacted part: a compacted part damaged later loses at most this many trials'
rows (resume rebuilds them from the epochs and predictions tables and the journal), and a
study of 10,000 trials is read from 100 parts, not one per fold."""


def _slices(frame: pd.DataFrame, size: int) -> list[list[str] | None]:
    """The frame's trials, `size` at a time in the order they appear ([None]: no trial column)."""
    if "trial_id" not in frame.columns:
        return [None]
    trials = list(dict.fromkeys(frame["trial_id"].astype(str)))
    return [trials[i:i + size] for i in range(0, len(trials), size)] or [None]


BATCH = 1000
"""Parts read and merged into one table at a time. Each small part's table costs ~50 KB of
Arrow buffers however few its rows: 10,000 held at once took 560 MB (bench/scale.py); merged a
thousand at a time the read holds a thousand."""


READ_TRIES = 5
"""Reads of a table before one that meets a vanished part gives up: a compaction removes parts
once per finished study, so a second read almost always succeeds."""


class _Mixed(Exception):
    """Parts disagree on a column's type."""


def _merge(tables: list[pa.Table]) -> pa.Table:
    try:
        # one chunk per column: pandas ops on a 50,000-chunk Arrow-backed string column crawl
        return pa.concat_tables(tables, promote_options="permissive").combine_chunks()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raise _Mixed from None


def _read_parts(parts: list[Part]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame()
    workers = min(8, max(1, (os.cpu_count() or 1)), len(parts))
    with ThreadPoolExecutor(workers) as pool:  # Arrow releases the GIL while reading
        def read(chunk: list[Part]) -> list[pa.Table]:
            return list(pool.map(_read_part, chunk)) if workers > 1 and len(chunk) > 8 else [_read_part(p) for p in chunk]

        try:
            return _merge([_merge(read(parts[i:i + BATCH])) for i in range(0, len(parts), BATCH)]).to_pandas()
        except _Mixed:
            # a number in one part, text in another: let pandas mix them (rare, and slower)
            return pd.concat([t.to_pandas() for i in range(0, len(parts), BATCH) for t in read(parts[i:i + BATCH])], ignore_index=True)


def _manifest(parts: list[Part]) -> dict[str, list[int]]:
    return {p.name: [p.mtime_ns, p.size] for p in parts}


def _load_snapshot(path: Path, parts: list[Part]) -> tuple[pd.DataFrame, set[str]]:
    """Rows of the parts that have not changed since the snapshot, and those parts' names."""
    try:
        t = pq.read_table(path)
        meta = t.schema.metadata or {}
        if meta.get(b"fbp_report_cache") != _SNAPSHOT_VERSION.encode():
            return pd.DataFrame(), set()
        then = json.loads(meta[b"fbp_manifest"])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return pd.DataFrame(), set()
    now = _manifest(parts)
    frame = t.to_pandas()
    if now == then:  # nothing written since: the common case, no filtering
        return frame, set(now)
    same = {name for name, stamp in now.items() if then.get(name) == stamp}
    if not same:
        return pd.DataFrame(), set()
    return frame[frame[_PART].astype(str).isin(same).to_numpy()], same


def _save_snapshot(path: Path, frame: pd.DataFrame, parts: list[Part]) -> None:
    """Atomically; a folder that cannot be written just means no snapshot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        t = pa.Table.from_pandas(frame, preserve_index=False)
        t = t.replace_schema_metadata({**(t.schema.metadata or {}), b"fbp_report_cache": _SNAPSHOT_VERSION.encode(), b"fbp_manifest": json.dumps(_manifest(parts)).encode()})
        with atomic_path(path) as tmp:
            pq.write_table(t, tmp)
    except (OSError, pa.ArrowException, ValueError, TypeError):
        pass


# --- the directory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultsDir:
    path: Path

    STUDY = "study.yaml"
    JOURNAL = "optuna.journal"
    STORAGE = "storage.yaml"
    LOGS = "logs"
    REPORT = "report"
    MODELS = "models"

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def table_dir(self, table: str) -> Path:
        return self.path / f"{table}.parquet"

    # --- writing

    def write(self, table: str, part: str, frame: pd.DataFrame) -> Path:
        """One part, atomically: a temporary name in the same folder, then a rename."""
        return self.write_bytes(table, part, part_bytes(table, frame))

    def write_bytes(self, table: str, part: str, data: bytes) -> Path:
        """A part already encoded (`part_bytes`), atomically. A full disk raises `DiskFull`
        naming the part: the temporary file (maybe cut short) is removed, the part is not
        written, and no reader ever sees a partial one."""
        folder = self.table_dir(table)
        final = folder / f"{part}.parquet"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomic(final, data)
        except OSError as e:
            if is_disk_full(e):
                raise DiskFull(final) from None
            raise
        return final

    def write_fold(self, parts: dict[str, bytes], trial_id: str, fold: int) -> None:
        """A finished fold's parts (`fold_parts`); the folds part last, so a fold counts as done
        only when its curves and predictions are on disk."""
        for table in ("epochs", "predictions", "folds"):
            self.write_bytes(table, part_name(trial_id, fold), parts[table])

    def write_marks(self, frame: pd.DataFrame, trial_id: str, status: str) -> None:
        self.write("folds", marks_name(trial_id, status), frame)

    # --- reading

    def parts(self, table: str, trials: set[str] | None = None) -> list[Part]:
        """The table's parts, oldest first (ties in name order); hidden files (a writer's
        temporary parts) are not parts. `trials`: only theirs and compacted parts (chosen by
        name: a trial starting in a study of 50,000 parts stats a handful, not all)."""
        folder = self.table_dir(table)
        if not folder.is_dir():
            return []
        parts = []
        with os.scandir(folder) as entries:
            for e in entries:
                if e.name.endswith(".parquet") and not e.name.startswith(".") and e.is_file():
                    if trials is not None and (trial := trial_of(e.name)) is not None and trial not in trials:
                        continue
                    st = e.stat()
                    parts.append(Part(e.path, e.name, st.st_mtime_ns, st.st_size))
        parts.sort(key=lambda p: (p.mtime_ns, p.name))
        return parts

    def read(self, table: str, trials: set[str] | None = None, snapshot: Path | None = None, written: bool = False) -> pd.DataFrame:
        """A table's rows, the last written copy of each key kept; a damaged part stops the read
        with its path.

        trials: only these trials' rows (the parts of other trials are not opened).
        snapshot: a folder for a snapshot of the whole table that makes the next read read only
        the parts written since. written: keep the `_written` column (the rows' part mtimes).

        While a driver writes, a read sees each part whole or not at all. A part removed
        between the listing and its reading (`compact` merged it) makes the read start over
        with a new listing, in which the merged part stands for it.
        """
        for _ in range(READ_TRIES):
            try:
                return self._read(table, trials, snapshot, written)
            except _Vanished as e:
                vanished = e
        raise InputError(f"{vanished}: removed while it was read, {READ_TRIES} reads in a row; another process keeps rewriting {self.table_dir(table)}: read again later")

    def _read(self, table: str, trials: set[str] | None, snapshot: Path | None, written: bool) -> pd.DataFrame:
        parts = self.parts(table, trials)
        cached, reuse = pd.DataFrame(), set()
        if snapshot is not None and trials is None:
            cached, reuse = _load_snapshot(snapshot / f"{table}.parquet", parts)
        fresh = _read_parts([p for p in parts if p.name not in reuse])
        frames = [f for f in (cached, fresh) if not f.empty]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0] if frames else pd.DataFrame()
        if snapshot is not None and trials is None and not fresh.empty:
            _save_snapshot(snapshot / f"{table}.parquet", frame, parts)
        if frame.empty:
            empty = pd.DataFrame({c: pd.Series(dtype=object) for c in TABLES[table]})
            return empty.assign(**{WRITTEN: pd.Series(dtype=np.int64)}) if written else empty
        if trials is not None and "trial_id" in frame.columns:
            frame = frame[frame["trial_id"].astype(str).isin(trials)]
        keys = [k for k in TABLES[table] if k in frame.columns]
        frame = frame.sort_values(WRITTEN, kind="stable").drop_duplicates(subset=keys, keep="last")
        return frame.drop(columns=[_PART] if written else [_PART, WRITTEN], errors="ignore").reset_index(drop=True)

    def compact(self, table: str) -> int:
        """Merge a table's parts into a few (the deduplicated rows, `COMPACT_TRIALS` trials a
        part), then remove the merged parts. Returns the number of parts merged.

        Opening each part costs a millisecond; a few compacted parts make reading fast. Killed at
        any point, nothing is lost: each compacted part is written, read back and compared with
        what was meant (rows and values, its pages checksummed) before any part it replaces is
        removed, and readers dedupe the brief overlap. A compacted part damaged later loses the
        rows of at most `COMPACT_TRIALS` trials, which `resume` rebuilds (search.rebuild).
        """
        parts = self.parts(table)
        if not any(p.trial is not None for p in parts):
            return 0  # compacted already: nothing new since
        frame = self.read(table)
        stamp = time.time_ns()
        merged = set()
        for k, trials in enumerate(_slices(frame, COMPACT_TRIALS)):
            rows = frame[frame["trial_id"].isin(trials)] if trials is not None else frame
            merged.add(self._write_verified(table, f"compacted-{stamp}-{k}", rows))
        for part in parts:
            if Path(part.path) not in merged:
                Path(part.path).unlink(missing_ok=True)
        return len(parts)

    def _write_verified(self, table: str, name: str, frame: pd.DataFrame) -> Path:
        """A part written, then read back and compared with the table meant; a mismatch removes
        it and raises (the parts it would replace stay)."""
        data = part_bytes(table, frame)
        path = self.write_bytes(table, name, data)
        meant = pq.read_table(pa.BufferReader(data))
        try:
            back = pq.ParquetFile(path, page_checksum_verification=True).read()
            same = back.num_rows == len(frame) and back.equals(meant)
        except (OSError, pa.ArrowException):
            same = False
        if not same:
            path.unlink(missing_ok=True)
            raise OSError(f"{path}: the compacted part read back differs from what was written; the parts it was to replace are kept")
        return path

    def has_part(self, table: str, trial_id: str, fold: int) -> bool:
        return (self.table_dir(table) / f"{part_name(trial_id, fold)}.parquet").is_file()

    def marked(self, trial_id: str) -> str | None:
        """FAIL or PRUNED when the trial's marks part is written (`write_marks`), else None:
        two stats, cheap enough for every fold result. Marks merged by `compact` are not seen
        here; the study's end compacts, after which no trial of it runs again."""
        folder = self.table_dir("folds")
        return next((status for status in ENDED if (folder / f"{marks_name(trial_id, status)}.parquet").is_file()), None)

    def ended(self, study: str, trial_ids: set[str]) -> dict[str, str]:
        """trial_id -> FAIL or PRUNED, for the trials among these that the driver ended: its
        own record, which no restored Tune state overrides. The record is the trial's marks in
        the folds table, else its Optuna trial's state in the journal (found by TUNE_TRIAL_ID).
        The journal is told first (Tune calls the searcher before the callback that writes the
        marks), so a driver killed in between left the journal's word alone."""
        import optuna

        ended = {t: status for t in trial_ids if (status := self.marked(t))}
        left = set(trial_ids) - set(ended)
        if not left or not (self.path / self.JOURNAL).is_file():
            return ended
        try:
            trials = optuna.load_study(study_name=study, storage=self.journal()).get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED))
        except KeyError:  # no study in the journal yet
            return ended
        for t in trials:
            if t.user_attrs.get(TUNE_TRIAL_ID) in left:
                ended[t.user_attrs[TUNE_TRIAL_ID]] = t.state.name
        return ended

    # --- the study

    def check(self, digest: str, resume: bool, flag: str = "--results") -> None:
        """The directory can take this study: new (or empty), or this study's own when resuming."""
        existing = next(p for p in (self.path, *self.path.parents) if p.exists())
        if not existing.is_dir():
            where = "is a file" if existing == self.path else f"is inside {existing}, a file"
            raise InputError(f"{flag} {self.path}: {where}, not a directory; choose a directory")
        marker = self.path / self.STUDY
        if marker.is_file():
            previous = (self.read_study(strict=False) or {}).get("spec_hash")
            if previous != digest:
                raise InputError(f"{flag} {self.path}: holds another study's results (spec_hash {previous}, this one {digest}); choose another {flag}")
            if not resume:
                raise InputError(f"{flag} {self.path}: already holds this study; continue it with: fbp-search resume {self.path}")
            return
        if self.path.is_dir() and any(p.name not in DRIVER_FILES for p in self.path.iterdir()):  # a driver refused before its claim may leave its lock
            raise InputError(f"{flag} {self.path}: exists and is not a results directory of this study; choose another {flag}")

    def claim(self, study: dict) -> None:
        """Write study.yaml (the resolved study with its spec_hash) into a directory `check`
        accepted; kept as it is when resuming."""
        marker = self.path / self.STUDY
        if marker.exists():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(marker, yaml.safe_dump(study, sort_keys=False))

    def read_study(self, strict: bool = True) -> dict | None:
        """study.yaml as plain data; None when there is none (strict: an error)."""
        marker = self.path / self.STUDY
        if not marker.is_file():
            if strict:
                raise InputError(f"{self.path} is not a results directory: no {self.STUDY}")
            return None
        try:
            raw = yaml.safe_load(marker.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            if not strict:
                return None
            raise InputError(f"{marker}: cannot read it ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        if not isinstance(raw, dict):
            if not strict:
                return None
            raise InputError(f"{marker}: expected a mapping, got {type(raw).__name__}")
        return raw

    def load_spec(self) -> tuple[StudySpec, str]:
        """The study this directory was made by, checked against its own hash, and that hash.
        Trusted (this program wrote it): no registry is imported, so no torch."""
        from fbp.config import TRUSTED
        from search.spec import resolved, validate_spec

        study = dict(self.read_study())
        digest = study.pop("spec_hash", None)
        marker = str(self.path / self.STUDY)
        if spec_hash(study) != digest:
            raise InputError(f"{marker}: spec_hash {digest} does not match its contents; the file was edited")
        spec = validate_spec(study, marker, context=TRUSTED)
        if spec_hash(resolved(spec)) != digest:  # intact, but this version resolves it differently
            raise InputError(f"{marker}: written by another version of fbp-search, whose defaults differ from this one's; "
                             "resuming would mix two configurations in one study: run it again into a new --results")
        return spec, digest

    # --- Optuna's journal

    def journal(self):
        """The study's Optuna storage (optuna-dashboard opens the same file)."""
        import optuna

        from search.journal import JournalFile

        return optuna.storages.JournalStorage(JournalFile(str(self.path / self.JOURNAL)))

    # --- Tune's state

    def tune_location(self, storage: str | None, name: str) -> tuple[str, str]:
        """(storage_path, experiment name) for Tune. By default its state and checkpoints live in
        RESULTS/tune: enough on one machine, or on a cluster whose nodes share the results
        directory. `storage` puts them elsewhere that every node reaches: a shared path or an
        object store URI that pyarrow opens (s3://, gs://, abfs://, hdfs://, file://)."""
        if storage is None:
            return str(self.path.resolve()), "tune"
        if "://" not in storage:
            return str(Path(storage).resolve()), name
        import pyarrow.fs

        try:
            pyarrow.fs.FileSystem.from_uri(storage)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as e:
            raise InputError(f"--storage {storage}: pyarrow cannot open it ({str(e).splitlines()[0]})") from None
        return storage.rstrip("/"), name

    def record_tune_location(self, storage_path: str, name: str) -> None:
        """Say in storage.yaml where Tune's state went, when it is not RESULTS/tune (for resume)."""
        if name == "tune" and storage_path == str(self.path.resolve()):
            return
        write_atomic(self.path / self.STORAGE, yaml.safe_dump({"tune": f"{storage_path}/{name}"}))

    def tune_state(self) -> str:
        """Where the study's Tune state is."""
        recorded = self.path / self.STORAGE
        if recorded.is_file():
            return (yaml.safe_load(recorded.read_text()) or {})["tune"]
        return str((self.path / "tune").resolve())

    def tune_storage(self) -> str | None:
        """The `--storage` the study was started with (None: the default, RESULTS/tune)."""
        return self.tune_state().rsplit("/", 1)[0] if (self.path / self.STORAGE).is_file() else None

    # --- kept models (search.keep decides which)

    def model_dir(self, trial_id: str) -> Path:
        """models/<trial_id>: a trial's kept fold models (fbp.export's files) and config.yaml."""
        return self.path / self.MODELS / trial_id

    def kept_trials(self) -> list[str]:
        """The trials that have a models folder (hidden folders are being written or deleted)."""
        folder = self.path / self.MODELS
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []

    # --- logs

    def log(self, trial_id: str) -> Path:
        return self.path / self.LOGS / f"{trial_id}.log"

    def append_log(self, trial_id: str, text: str) -> None:
        """Add lines to a trial's log (the driver writes it: workers may be on other nodes)."""
        path = self.log(trial_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(text if text.endswith("\n") else text + "\n")
        except OSError as e:
            if is_disk_full(e):
                raise DiskFull(path) from None
            raise


def read_table(results: Path, table: str, **options) -> pd.DataFrame:
    """`ResultsDir(results).read(table, ...)`, for scripts and tests."""
    return ResultsDir(results).read(table, **options)

"""Reading a results directory for the report: study.yaml, the Parquet tables, the journal.

The Parquet reader keeps `search.results.read_table`'s contract (every non-hidden part of a
table, the last written copy of each key kept) but is built for studies of many trials, where
a table is tens of thousands of small part files and opening each one dominates:

- parts are read in threads, as Arrow tables, and concatenated once;
- `folds` (always read whole) is kept in a snapshot under the report folder, keyed by every
  part's name, mtime and size: a second report reads only the parts written since;
- `epochs` and `predictions` are read only for the trials the report shows. A part named
  `<trial_id>-fold<k>` (how `search.results` and the Tune callback name them) holds that
  trial's rows only, so the other trials' parts are not opened; a part named otherwise is
  always read and filtered.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from fbp.errors import InputError
from search.results import TABLES

KEYS = TABLES
WRITTEN = "_written"  # per-row mtime (ns) of the part it came from: the "last written" order
_PART = "_part"
_CACHE_VERSION = "1"
_TRIAL_PART = re.compile(r"^(?P<trial>.+)-(?:fold-?\d+|pruned|fail)$")
METRIC_DIRECTION = {"pc": "max", "mae": "min", "rmse": "min"}


# --- Parquet parts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    path: str  # plain strings: a Path per part costs more than the stat at 50,000 parts
    name: str
    mtime_ns: int
    size: int

    @property
    def trial(self) -> str | None:
        """The trial a `<trial_id>-fold<k>` part belongs to; None for any other name."""
        m = _TRIAL_PART.match(self.name.removesuffix(".parquet"))
        return m.group("trial") if m else None


def list_parts(results: Path, table: str) -> list[Part]:
    """Non-hidden parts of a table, oldest first (ties in name order)."""
    folder = results / f"{table}.parquet"
    if not folder.is_dir():
        return []
    parts = []
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.endswith(".parquet") and not e.name.startswith(".") and e.is_file():
                st = e.stat()
                parts.append(Part(e.path, e.name, st.st_mtime_ns, st.st_size))
    parts.sort(key=lambda p: (p.mtime_ns, p.name))
    return parts


def _read_part(part: Part) -> pa.Table:
    try:
        t = pq.ParquetFile(part.path).read(use_threads=False)  # a third of read_table's overhead per file
    except Exception as e:  # a damaged or foreign file: name it, one line
        raise InputError(f"{part.path}: not a readable Parquet file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    t = t.append_column(WRITTEN, pa.array(np.full(t.num_rows, part.mtime_ns, dtype=np.int64)))
    return t.append_column(_PART, pa.array([part.name] * t.num_rows, pa.string()).dictionary_encode())


def _read_parts(parts: list[Part]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame()
    workers = min(8, max(1, (os.cpu_count() or 1)), len(parts))
    if workers > 1 and len(parts) > 8:
        with ThreadPoolExecutor(workers) as pool:  # Arrow releases the GIL while reading
            tables = list(pool.map(_read_part, parts))
    else:
        tables = [_read_part(p) for p in parts]
    try:
        # one chunk per column: pandas ops on a 50,000-chunk Arrow-backed string column crawl
        return pa.concat_tables(tables, promote_options="permissive").combine_chunks().to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # parts disagree on a column's type (a number in one, text in another): let pandas mix them
        return pd.concat([t.to_pandas() for t in tables], ignore_index=True)


def read_table(results: Path, table: str, trials: set[str] | None = None, cache: Path | None = None) -> pd.DataFrame:
    """A table's rows, last written copy of each key kept, with a `_written` column (ns).

    trials: only these trials' rows (parts of other trials are not opened).
    cache: a folder for the snapshot that makes the next read incremental (whole tables only).
    """
    parts = list_parts(results, table)
    if trials is not None:
        parts = [p for p in parts if p.trial is None or p.trial in trials]
    cached, reuse = pd.DataFrame(), set()
    if cache is not None and trials is None:
        cached, reuse = _load_snapshot(cache / f"{table}.parquet", parts)
    fresh = _read_parts([p for p in parts if p.name not in reuse])
    frames = [f for f in (cached, fresh) if not f.empty]
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0] if frames else pd.DataFrame()
    if cache is not None and trials is None and not fresh.empty:
        _save_snapshot(cache / f"{table}.parquet", frame, parts)
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in KEYS[table]} | {WRITTEN: pd.Series(dtype=np.int64)})
    if trials is not None and "trial_id" in frame.columns:
        frame = frame[frame["trial_id"].astype(str).isin(trials)]
    keys = [k for k in KEYS[table] if k in frame.columns]
    frame = frame.sort_values(WRITTEN, kind="stable").drop_duplicates(subset=keys, keep="last")
    return frame.drop(columns=[_PART], errors="ignore").reset_index(drop=True)


def _manifest(parts: list[Part]) -> dict[str, list[int]]:
    return {p.name: [p.mtime_ns, p.size] for p in parts}


def _load_snapshot(path: Path, parts: list[Part]) -> tuple[pd.DataFrame, set[str]]:
    """Rows of the parts that have not changed since the snapshot, and those parts' names."""
    try:
        t = pq.read_table(path)
        meta = t.schema.metadata or {}
        if meta.get(b"fbp_report_cache") != _CACHE_VERSION.encode():
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
        t = t.replace_schema_metadata({**(t.schema.metadata or {}), b"fbp_report_cache": _CACHE_VERSION.encode(), b"fbp_manifest": json.dumps(_manifest(parts)).encode()})
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        pq.write_table(t, tmp)
        os.replace(tmp, path)
    except (OSError, pa.ArrowException, ValueError, TypeError):
        pass


# --- study.yaml -------------------------------------------------------------------------------


@dataclass
class Knob:
    """One searched knob, as far as study.yaml (or the journal, or the data) tells."""

    path: str
    kind: str  # float | int | choice
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @property
    def column(self) -> str:
        return f"param.{self.path}"

    @property
    def numeric(self) -> bool:
        return self.kind in ("float", "int")


@dataclass
class Study:
    results: Path
    name: str
    spec_hash: str | None
    raw: dict
    config: dict  # the resolved TrialConfig (base of a study, or a train run's config)
    knobs: dict[str, Knob]
    baseline: dict[str, Any] | None
    metric: str
    direction: str  # max | min
    notes: list[str] = field(default_factory=list)

    @property
    def dataset(self) -> str | None:
        return (self.config.get("data") or {}).get("dataset")

    @property
    def protocol(self) -> str | None:
        return (self.config.get("data") or {}).get("protocol")

    @property
    def select(self) -> str | None:
        return (self.config.get("eval") or {}).get("select")

    def fixed(self, path: str) -> Any:
        """The base config's value at a dotted path (KeyError if none)."""
        node: Any = self.config
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                raise KeyError(path)
            node = node[key]
        return node


def _knob(path: str, dim: Any) -> Knob | None:
    """`{float: [lo, hi], log: true}`, `{int: [lo, hi]}`, `{choice: [...]}`; tolerant of
    `{low, high, type}`, `{choices: [...]}` and a bare list of choices."""
    if isinstance(dim, list):
        return Knob(path, "choice", choices=list(dim))
    if not isinstance(dim, dict):
        return None
    for kind in ("float", "int"):
        bounds = dim.get(kind)
        if isinstance(bounds, (list, tuple)) and len(bounds) == 2:
            return Knob(path, kind, float(bounds[0]), float(bounds[1]), bool(dim.get("log")))
    choices = dim.get("choice", dim.get("choices"))
    if isinstance(choices, list):
        return Knob(path, "choice", choices=list(choices))
    if "low" in dim and "high" in dim:
        kind = "int" if str(dim.get("type", "float")).startswith("int") else "float"
        return Knob(path, kind, float(dim["low"]), float(dim["high"]), bool(dim.get("log")))
    return None


def load_study(results: Path) -> Study:
    if not results.exists():
        raise InputError(f"results directory not found: {results}")
    if not results.is_dir():
        raise InputError(f"not a directory: {results} (give a results directory, e.g. results/<study>)")
    marker = results / "study.yaml"
    if not marker.is_file() and not (results / "folds.parquet").is_dir():
        raise InputError(f"{results} is not a results directory: it has neither study.yaml nor folds.parquet/")
    raw: dict = {}
    notes: list[str] = []
    if marker.is_file():
        try:
            raw = yaml.safe_load(marker.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise InputError(f"{marker}: cannot read it ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        if not isinstance(raw, dict):
            raise InputError(f"{marker}: expected a mapping, got {type(raw).__name__}")
    else:
        notes.append(f"no study.yaml in {results}: study settings (space, baseline, objective) unknown")
    config = raw.get("config") or raw.get("base") or {k: raw[k] for k in ("data", "model", "loss", "train", "eval") if isinstance(raw.get(k), dict)}
    search = raw.get("search") if isinstance(raw.get("search"), dict) else {}
    if raw and not search:
        notes.append("study.yaml has no search section (a single-config run, e.g. fbp-search train): no space, no baseline")
    knobs = {}
    for path, dim in (search.get("space") or {}).items():
        k = _knob(str(path), dim)
        if k is not None:
            knobs[k.path] = k
    baselines = search.get("baseline") or []
    baseline = baselines[0] if isinstance(baselines, list) and baselines and isinstance(baselines[0], dict) else None
    objective = raw.get("objective") or {}
    if isinstance(objective, list):
        if len(objective) > 1:
            notes.append(f"{len(objective)} objectives: trials are ranked by the first, {objective[0].get('metric', 'pc')}")
        objective = objective[0] if objective else {}
    metric = str(objective.get("metric") or "pc")
    if metric not in METRIC_DIRECTION:
        notes.append(f"objective metric {metric!r} is not one of pc, mae, rmse: ranking by pc")
        metric = "pc"
    direction = objective.get("mode") or objective.get("direction") or METRIC_DIRECTION[metric]
    direction = {"maximize": "max", "minimize": "min"}.get(direction, direction)
    return Study(results, str(raw.get("name") or results.name), raw.get("spec_hash"), raw, config or {}, knobs, baseline, metric, direction, notes)


def add_column_knobs(study: Study, folds: pd.DataFrame) -> None:
    """Knobs that have a `param.` column but no entry in study.yaml: kind from the data."""
    for column in folds.columns:
        if not column.startswith("param.") or column[6:] in study.knobs:
            continue
        values = folds[column].dropna()
        numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
        if numeric:
            integral = bool(len(values)) and bool(np.all(np.mod(values.to_numpy(np.float64), 1) == 0))
            study.knobs[column[6:]] = Knob(column[6:], "int" if integral else "float")
        else:
            study.knobs[column[6:]] = Knob(column[6:], "choice", choices=sorted(values.unique().tolist(), key=str))


# --- the Optuna journal -----------------------------------------------------------------------


def load_journal_study(results: Path, name: str):
    """(optuna study or None, note or None). Never raises for a bad journal: it is optional."""
    path = results / "optuna.journal"
    if not path.is_file():
        return None, f"no optuna.journal in {results}: knob importance skipped"
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        names = [s.study_name for s in storage.get_all_studies()]
        if name not in names:
            if len(names) != 1:
                return None, f"{path} holds no study named {name!r} (it has: {', '.join(names) or 'none'}): knob importance skipped"
            name = names[0]
        return optuna.load_study(study_name=name, storage=storage), None
    except Exception as e:  # a journal we cannot replay must not sink the whole report
        return None, f"{path}: cannot read the journal ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): knob importance skipped"

"""Reading a results directory for the report: its study (study.yaml, through the study's own
schema), its Parquet tables (search.results.ResultsDir's reader) and its Optuna journal.

`folds` (always read whole) is kept in a snapshot under the report folder, so a second report
reads only the parts written since; `epochs` and `predictions` are read only for the trials the
report shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fbp.errors import InputError
from fbp.metrics import METRICS
from search.results import WRITTEN, ResultsDir

__all__ = ["WRITTEN", "Knob", "Study", "add_column_knobs", "journal_damage", "load_journal_study", "load_study", "read_table"]


def read_table(results: Path, table: str, trials: set[str] | None = None, cache: Path | None = None) -> pd.DataFrame:
    """A table's rows with their `_written` order (see `ResultsDir.read`)."""
    return ResultsDir(results).read(table, trials=trials, snapshot=cache, written=True)


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
    spec: Any | None  # the StudySpec of study.yaml; None when the directory has none
    config: dict  # the resolved trial config every trial started from
    knobs: dict[str, Knob]
    baseline: dict[str, Any] | None
    metric: str
    direction: str  # max | min
    on: str = "test"  # the split the objective reads: val (validation parts) | test (the test folds)
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The column trials are ranked by: `pc` (test folds) or `val_pc` (validation parts),
        as the study's own objective names it (`search.spec.Objective.key`)."""
        from search.spec import Objective

        return Objective.model_construct(metric=self.metric, on=self.on).key

    @property
    def searched(self) -> bool:
        return self.spec is not None and bool(self.spec.search.space)

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


def _knob(path: str, dim) -> Knob:
    if dim.kind == "choice":
        return Knob(path, "choice", choices=list(dim.choice))
    low, high = dim.float_ or dim.int_
    return Knob(path, dim.kind, float(low), float(high), dim.log)


def load_study(results: Path) -> Study:
    """The study of a results directory, read through the study's own schema (trusted: this
    program wrote it, so no registry, no torch). A directory with folds but no study.yaml is
    read with what the rows tell; the notes say so."""
    from fbp.config import TRUSTED
    from search.spec import resolved, validate_spec

    if not results.exists():
        raise InputError(f"results directory not found: {results}")
    if not results.is_dir():
        raise InputError(f"not a directory: {results} (give a results directory, e.g. results/<study>)")
    directory = ResultsDir(results)
    raw = directory.read_study(strict=False) if (results / directory.STUDY).is_file() else None
    if raw is None and (results / directory.STUDY).is_file():
        directory.read_study()  # raises, naming the file and why
    if raw is None:
        if not directory.table_dir("folds").is_dir():
            raise InputError(f"{results} is not a results directory: it has neither study.yaml nor folds.parquet/")
        notes = [f"no study.yaml in {results}: study settings (space, baseline, objective) unknown"]
        return Study(results, results.name, None, None, {}, {}, None, "pc", METRICS["pc"].direction, "test", notes)
    digest = raw.pop("spec_hash", None)
    spec = validate_spec(raw, str(results / directory.STUDY), context=TRUSTED)
    notes = [] if spec.search.space else ["one configuration, no search (fbp-search train, or a study without a space): no knobs, no baseline"]
    first = spec.objectives[0]
    if len(spec.objectives) > 1:
        notes.append(f"{len(spec.objectives)} objectives: trials are ranked by the first, {first.metric}")
    knobs = {path: _knob(path, dim) for path, dim in spec.search.space.items()}
    baseline = dict(spec.search.baseline[0]) if spec.search.baseline else None
    config = {k: v for k, v in resolved(spec).items() if k in ("data", "model", "loss", "train", "eval")}
    return Study(results, spec.name, digest, spec, config, knobs, baseline, first.metric, first.direction, first.on, notes)


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


def journal_damage(results: Path) -> str | None:
    """One line when the results' journal is damaged (the report then reads Parquet alone), saying
    how to mend it; None when it is whole or absent."""
    from search.journal import describe_damage

    directory = ResultsDir(results)
    line = describe_damage(str(directory / directory.JOURNAL))
    return f"{line}; the report is from the Parquet tables alone. `fbp-search resume {results}` rebuilds the journal from them" if line else None


def load_journal_study(results: Path, name: str):
    """(optuna study or None, note or None). Never raises for a bad journal: it is optional."""
    directory = ResultsDir(results)
    path = directory / directory.JOURNAL
    if not path.is_file():
        return None, f"no optuna.journal in {results}: knob importance skipped"
    if (damaged := journal_damage(results)) is not None:
        return None, f"{damaged}: knob importance skipped"
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = directory.journal()
        names = [s.study_name for s in storage.get_all_studies()]
        if name not in names:
            if len(names) != 1:
                return None, f"{path} holds no study named {name!r} (it has: {', '.join(names) or 'none'}): knob importance skipped"
            name = names[0]
        return optuna.load_study(study_name=name, storage=storage), None
    except Exception as e:  # a journal we cannot replay must not sink the whole report
        return None, f"{path}: cannot read the journal ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}): knob importance skipped"

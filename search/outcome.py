"""What a study came to, from its folds table: trials by status, distinct errors, the best trial.

The closing lines of `fbp-search run` and `resume` are made here, from the rows on disk (not
from Tune's in-memory view), so a resumed study counts the trials of every session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from search.results import read_table

LOGS = "logs"  # RESULTS/logs/<trial_id>.log: a trial's epochs and, if it failed, its traceback


def log_path(results: Path, trial_id: str) -> Path:
    return results / LOGS / f"{trial_id}.log"


def append_log(results: Path, trial_id: str, text: str) -> None:
    """Add lines to a trial's log (the driver writes it: workers may be on other nodes)."""
    path = log_path(results, trial_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(text if text.endswith("\n") else text + "\n")


@dataclass(frozen=True)
class DistinctError:
    line: str  # the exception's own line, e.g. "InputError: dataset root not found: ..."
    trials: int
    first_trial: str


@dataclass
class Outcome:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    incomplete: int = 0  # started, neither finished nor marked (a stop, a kill)
    errors: list[DistinctError] = field(default_factory=list)
    best: tuple[str, float, dict] | None = None  # trial_id, objective value, params

    @property
    def trials(self) -> int:
        return self.complete + self.pruned + self.failed + self.incomplete


def trial_status(folds: pd.DataFrame, num_folds: int) -> pd.Series:
    """trial_id -> COMPLETE (every fold complete), FAIL (a fold failed), PRUNED, INCOMPLETE."""
    if folds.empty:
        return pd.Series(dtype=object)

    def status(rows: pd.DataFrame) -> str:
        states = set(rows["status"])
        if "FAIL" in states:
            return "FAIL"
        if "PRUNED" in states:
            return "PRUNED"
        return "COMPLETE" if (rows["status"] == "COMPLETE").sum() >= num_folds else "INCOMPLETE"

    return folds.groupby("trial_id", sort=False)[["status"]].apply(status)


def study_outcome(results: Path, num_folds: int, metric: str, mode: str) -> Outcome:
    """Count the study's trials by status, group its errors, find its best complete trial."""
    folds = read_table(results, "folds")
    statuses = trial_status(folds, num_folds)
    counts = statuses.value_counts()
    outcome = Outcome(
        complete=int(counts.get("COMPLETE", 0)), pruned=int(counts.get("PRUNED", 0)),
        failed=int(counts.get("FAIL", 0)), incomplete=int(counts.get("INCOMPLETE", 0)),
    )
    if folds.empty:
        return outcome
    failed = folds[folds["status"] == "FAIL"]
    if len(failed):
        first_rows = failed.drop_duplicates("trial_id")
        for line, rows in first_rows.groupby(first_rows["error"].fillna("(no error message)"), sort=False):
            outcome.errors.append(DistinctError(str(line), len(rows), str(rows["trial_id"].iloc[0])))
        outcome.errors.sort(key=lambda e: -e.trials)
    complete = statuses[statuses == "COMPLETE"].index
    if len(complete):
        rows = folds[folds["trial_id"].isin(complete) & (folds["status"] == "COMPLETE")]
        means = rows.groupby("trial_id")[metric].mean().dropna()
        if len(means):
            best = means.idxmax() if mode == "max" else means.idxmin()
            first = rows[rows["trial_id"] == best].iloc[0]
            params = {c.removeprefix("param."): _plain(first[c]) for c in rows.columns if c.startswith("param.") and not _empty(first[c])}
            outcome.best = (str(best), float(means[best]), params)
    return outcome


def _empty(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _value(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def closing_lines(outcome: Outcome, results: Path, metric: str) -> list[str]:
    """One line per distinct error, then the last line: counts, the best trial, what next."""
    lines = []
    logs = results / LOGS
    for e in outcome.errors:
        lines.append(f"failed: {_count(e.trials, 'trial')} with {e.line} (first: {e.first_trial}; traceback in {log_path(results, e.first_trial)})")
    counts = f"{_count(outcome.trials, 'trial')}: {outcome.complete} complete, {outcome.pruned} pruned, {outcome.failed} failed"
    if outcome.incomplete:
        counts += f", {outcome.incomplete} incomplete"
    if not outcome.complete:
        lines.append(f"no trial completed ({counts}); see the errors above and {logs}")
        return lines
    if outcome.best is None:
        lines.append(f"finished, {counts}; no complete trial has a finite {metric}. Next: fbp-search report {results}")
        return lines
    trial_id, value, params = outcome.best
    knobs = ", ".join(f"{k}={_value(v)}" for k, v in params.items()) or "the base config"
    lines.append(f"finished, {counts}; best {trial_id}: {metric} {value:.4f} with {knobs}. Next: fbp-search report {results}")
    return lines

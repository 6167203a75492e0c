"""What a study came to, from its folds table: trials by status, distinct errors, the best trial.

The closing lines of `fbp-search run` and `resume` are made here, from the rows on disk (not
from Tune's in-memory view), so a resumed study counts the trials of every session.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from fbp.metrics import METRICS, base_name
from search.results import ResultsDir, params_of, trial_status

NO_ERROR = "(no error message)"


@dataclass(frozen=True)
class DistinctError:
    line: str  # the exception's own line, e.g. "InputError: dataset root not found: ..."
    trials: int
    first_trial: str  # the first written


@dataclass
class Outcome:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    incomplete: int = 0  # started, neither finished nor marked (a stop, a kill)
    errors: list[DistinctError] = field(default_factory=list)
    best: tuple[str, float, dict] | None = None  # trial_id, objective value, params
    best_test: float | None = None  # the best trial's test-fold value, when the objective reads validation parts

    @property
    def trials(self) -> int:
        return self.complete + self.pruned + self.failed + self.incomplete


def distinct_errors(folds) -> list[DistinctError]:
    """The FAIL trials' error lines (each trial's first), most common first; ties keep the
    order the rows were written in."""
    failed = folds[folds["status"] == "FAIL"].drop_duplicates("trial_id") if len(folds) else folds
    if not len(failed):
        return []
    lines = (failed["error"] if "error" in failed.columns else pd.Series(None, index=failed.index)).fillna(NO_ERROR).astype(str)
    grouped = failed.groupby(lines.to_numpy(), sort=False)["trial_id"]
    errors = [DistinctError(str(line), len(ids), str(ids.iloc[0])) for line, ids in grouped]
    return sorted(errors, key=lambda e: -e.trials)


def study_outcome(results: ResultsDir, num_folds: int, metric: str) -> Outcome:
    """Count the study's trials by status, group its errors, find its best complete trial by
    `metric` (a reported key: `pc`, or `val_pc` for an objective on the validation parts)."""
    return outcome_of(results.read("folds"), num_folds, metric)


def outcome_of(folds: pd.DataFrame, num_folds: int, metric: str) -> Outcome:
    """`study_outcome` of a folds table already read."""
    statuses = trial_status(folds, num_folds)
    counts = statuses.value_counts()
    outcome = Outcome(
        complete=int(counts.get("COMPLETE", 0)), pruned=int(counts.get("PRUNED", 0)),
        failed=int(counts.get("FAIL", 0)), incomplete=int(counts.get("INCOMPLETE", 0)),
        errors=distinct_errors(folds),
    )
    complete = statuses[statuses == "COMPLETE"].index
    if len(complete):
        rows = folds[folds["trial_id"].isin(complete) & (folds["status"] == "COMPLETE")]
        means = rows.groupby("trial_id")[metric].mean().dropna() if metric in rows else pd.Series(dtype=float)
        if len(means):
            test = base_name(metric)
            best = means.idxmax() if METRICS[test].direction == "max" else means.idxmin()
            best_rows = rows[rows["trial_id"] == best]
            outcome.best = (str(best), float(means[best]), params_of(best_rows.iloc[0]))
            if test != metric:
                outcome.best_test = float(best_rows[test].mean())
    return outcome


def exit_code(outcome: Outcome, interrupted: bool) -> int:
    """A study's run as the command line ends it: 130 interrupted, 0 when a trial completed,
    else 1 (the work ran and nothing came of it)."""
    if interrupted:
        return 130
    return 0 if outcome.complete else 1


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _value(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def closing_lines(outcome: Outcome, results: ResultsDir, metric: str) -> list[str]:
    """One line per distinct error, then the last line: counts, the best trial, what next."""
    lines = []
    for e in outcome.errors:
        lines.append(f"failed: {_count(e.trials, 'trial')} with {e.line} (first: {e.first_trial}; traceback in {results.log(e.first_trial)})")
    counts = f"{_count(outcome.trials, 'trial')}: {outcome.complete} complete, {outcome.pruned} pruned, {outcome.failed} failed"
    if outcome.incomplete:
        counts += f", {outcome.incomplete} incomplete"
    if not outcome.complete:
        lines.append(f"no trial completed ({counts}); see the errors above and {results / results.LOGS}")
        return lines
    if outcome.best is None:
        lines.append(f"finished, {counts}; no complete trial has a finite {metric}. Next: fbp-search report {results.path}")
        return lines
    trial_id, value, params = outcome.best
    knobs = ", ".join(f"{k}={_value(v)}" for k, v in params.items()) or "the base config"
    if outcome.best_test is not None:  # chosen on the validation parts: its test figure beside
        figure = f"{base_name(metric)} {value:.4f} on validation (test {outcome.best_test:.4f})"
    else:
        figure = f"{metric} {value:.4f}"
    kept = f"; its fold models are kept, export them: fbp-search export {results.path} --out MODEL_DIR" if trial_id in results.kept_trials() else ""
    lines.append(f"finished, {counts}; best {trial_id}: {figure} with {knobs}{kept}. Next: fbp-search report {results.path}")
    return lines

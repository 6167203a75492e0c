"""FBP metrics: MAE, RMSE and Pearson's correlation (PC), per fold and aggregated.

The k-fold figure is the mean of the per-fold values (the literature's convention), shown with
its sample std; pooled figures are `scores` over all out-of-fold predictions; `by_subset` over
each subset (AF/AM/CF/CM on SCUT-FBP5500). A constant prediction has no correlation: PC is
NaN, recorded, not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np


def mae(y_true, y_pred) -> float:
    return float(np.mean(np.abs(np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64))))


def rmse(y_true, y_pred) -> float:
    return float(np.sqrt(np.mean((np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)) ** 2)))


def pearson(y_true, y_pred) -> float:
    a = np.asarray(y_true, np.float64) - np.mean(y_true)
    b = np.asarray(y_pred, np.float64) - np.mean(y_pred)
    denominator = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / denominator) if denominator > 0 else float("nan")


@dataclass(frozen=True)
class Metric:
    """One metric of the vocabulary: what studies optimise, trials report and tables show."""

    name: str  # the key everywhere: config (objective.metric), rows, columns
    label: str  # how tables print it
    direction: Literal["max", "min"]  # which way is better
    compute: Callable[..., float]  # (y_true, y_pred) -> value

    def better(self, a: float, b: float) -> bool:
        """Whether `a` is better than `b` (a NaN is never better)."""
        return a > b if self.direction == "max" else a < b


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("mae", "MAE", "min", mae),
    Metric("rmse", "RMSE", "min", rmse),
    Metric("pc", "PC", "max", pearson),
)}
"""The FBP metrics, in the order tables show them. Everything that names a metric asks here."""

NAMES = tuple(METRICS)

VAL = "val_"
"""The prefix of a validation-part metric (`val_pc`): measured on rows held out of the training
folds (eval.holdout), beside the test fold's metric of the same name."""


def val_name(metric: str) -> str:
    """The column of `metric` on the validation part: `pc` -> `val_pc`."""
    return f"{VAL}{metric}"


TEST_CURVE = "test_"
"""The prefix of the test fold's metric in the per-epoch rows (`test_pc`), where the training
loss terms (`train_<term>`) sit beside it; a fold's row names it plainly (`pc`)."""


def curve_name(metric: str) -> str:
    """The per-epoch column of `metric` on the test fold: `pc` -> `test_pc` (`val_name` names the
    validation part's, in the epoch rows as in the fold rows)."""
    return f"{TEST_CURVE}{metric}"


def base_name(column: str) -> str:
    """The metric a column measures, wherever it was measured: `val_pc`, `test_pc`, `pc` -> `pc`."""
    for prefix in (VAL, TEST_CURVE):
        if column.startswith(prefix) and column.removeprefix(prefix) in METRICS:
            return column.removeprefix(prefix)
    return column


VAL_NAMES = tuple(val_name(m) for m in NAMES)
"""The validation part's metrics, in table order (NaN in a row without eval.holdout)."""

REPORTED = (*NAMES, *VAL_NAMES)
"""Every metric a fold carries: the test fold's, then the validation part's."""

TEST_CURVES = tuple(curve_name(m) for m in NAMES)
"""The test fold's metrics in the per-epoch rows, in table order."""


def scores(y_true, y_pred) -> dict[str, float]:
    """Every metric of `y_pred` against `y_true`."""
    return {name: m.compute(y_true, y_pred) for name, m in METRICS.items()}


def mean_std(per_fold: Sequence[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and sample std over folds of each metric (std is NaN for one fold)."""
    out = {}
    for key in NAMES:
        values = np.array([f[key] for f in per_fold], np.float64)
        out[key] = (float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"))
    return out


def by_subset(y_true, y_pred, subsets) -> dict[str, dict[str, float]]:
    y_true, y_pred, subsets = np.asarray(y_true), np.asarray(y_pred), np.asarray(subsets)
    return {s: scores(y_true[subsets == s], y_pred[subsets == s]) for s in sorted(set(subsets.tolist()))}

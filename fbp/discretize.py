"""Scores to classes, class values and class weights.

ComboLoss discretizes the continuous beauty score s into K classes c(s); the cross-entropy term
is trained on c(s), and the expectation term E = sum_k softmax(z)_k * v_k multiplies the class
probabilities by the class values v_k. Rules (registry `RULES`):

- `paper`:           c = ceil(s - 1/2) on the 1..5 scale, values 1..5 (a score exactly on a
                     half point goes down: 2.5 -> 2). The rule of the ComboLoss paper.
- `round_half_even`: c = round(s) with Python's round (ties to the even class: 2.5 -> 2,
                     3.5 -> 4), what the published ComboLoss code does. Values 1..5.
- `uniform`:         K equal-width bins [lo, hi) over `score_range` (default: the training
                     scores' min and max); the last bin includes hi.
- `quantile`:        K bins holding equal counts of the training scores.
- `intervals`:       explicit inner edges, bins left-closed: HotOrNot's three classes are
                     edges [-1, 1] -> s < -1, -1 <= s < 1, s >= 1.

For the last three the class values are, by `values`, the mean training score in each bin
(`mean`, the default; an empty bin falls back to its centre) or the bin centre (`centre`;
an unbounded outer bin is closed at the training min or max). `values` may instead be an
explicit list of K numbers, which replaces the values of any rule (`paper` included): the
published code's expectation weights class k by its number k + 1 (1..5 on SCUT-FBP*, 1, 2, 3
for HotOrNot's three z-score intervals), whatever the scores of the class.

Class weights follow the paper's eq. 6, w_c = max_m |m| / |c|, with |c| the number of training
scores in class c, counted on the training split only. An empty class gets weight 0 and a
warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from fbp.errors import InputError

Ties = Literal["low", "high", "even"]


@dataclass(frozen=True)
class Discretization:
    """K classes given by K-1 inner `edges`; `values[k]` is the score that class k stands for.

    `ties` says where a score exactly on an edge goes: `low` (the class below), `high` (the
    class above, i.e. left-closed bins) or `even` (where Python's round sends it: half points
    go to the even integer, 2.5 -> 2 and 3.5 -> 4; decided by the score, not by `values`).
    """

    rule: str
    edges: tuple[float, ...]
    values: tuple[float, ...]
    ties: Ties = "high"

    @property
    def num_classes(self) -> int:
        return len(self.values)

    def classes(self, scores: Sequence[float] | np.ndarray) -> np.ndarray:
        """Class index 0..K-1 of each score, as int64."""
        s = np.asarray(scores, dtype=np.float64)
        edges = np.asarray(self.edges, dtype=np.float64)
        c = np.searchsorted(edges, s, side="right")
        on_edge = np.isin(s, edges)
        if self.ties == "low":
            c = np.where(on_edge, c - 1, c)
        elif self.ties == "even":
            c = np.where(on_edge & (np.round(s) < s), c - 1, c)  # np.round: half to even
        return c.astype(np.int64)


def class_counts(classes: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(classes, dtype=np.int64), minlength=num_classes)


def class_weights(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Paper eq. 6: w_c = max_m |m| / |c|; an empty class gets 0 (and a warning)."""
    counts = np.asarray(counts, dtype=np.float64)
    empty = counts == 0
    if empty.any():
        warnings.warn(
            f"classes {np.flatnonzero(empty).tolist()} have no training scores; their weight is 0",
            stacklevel=2,
        )
    with np.errstate(divide="ignore"):
        return np.where(empty, 0.0, counts.max() / np.where(empty, 1.0, counts))


# --- rules ------------------------------------------------------------------------------------

RuleFn = Callable[..., Discretization]
RULES: dict[str, RuleFn] = {}


def rule(name: str) -> Callable[[RuleFn], RuleFn]:
    def register(fn: RuleFn) -> RuleFn:
        RULES[name] = fn
        return fn

    return register


_HALF_POINTS = (1.5, 2.5, 3.5, 4.5)  # class boundaries on the 1..5 scale
_ONE_TO_FIVE = (1.0, 2.0, 3.0, 4.0, 5.0)


def _five_classes(name: str, num_classes: int | None) -> None:
    if num_classes not in (None, 5):
        raise InputError(f"discretization rule {name!r} has 5 classes on the 1..5 scale, got num_classes={num_classes}")


@rule("paper")
def _paper(train_scores, num_classes=None, **_) -> Discretization:
    _five_classes("paper", num_classes)
    return Discretization("paper", _HALF_POINTS, _ONE_TO_FIVE, ties="low")


@rule("round_half_even")
def _round_half_even(train_scores, num_classes=None, **_) -> Discretization:
    _five_classes("round_half_even", num_classes)
    return Discretization("round_half_even", _HALF_POINTS, _ONE_TO_FIVE, ties="even")


def _need_classes(name: str, num_classes: int | None) -> int:
    if num_classes is None or num_classes < 2:
        raise InputError(f"discretization rule {name!r} needs num_classes >= 2, got {num_classes}")
    return num_classes


@rule("uniform")
def _uniform(train_scores, num_classes=None, score_range=None, values="mean", **_) -> Discretization:
    k = _need_classes("uniform", num_classes)
    lo, hi = score_range if score_range is not None else (float(np.min(train_scores)), float(np.max(train_scores)))
    if not lo < hi:
        raise InputError(f"uniform discretization needs score_range low < high, got ({lo}, {hi})")
    edges = np.linspace(lo, hi, k + 1)[1:-1]
    return _binned("uniform", train_scores, edges, values, bounds=(lo, hi))


@rule("quantile")
def _quantile(train_scores, num_classes=None, values="mean", **_) -> Discretization:
    k = _need_classes("quantile", num_classes)
    edges = np.quantile(np.asarray(train_scores, dtype=np.float64), np.linspace(0, 1, k + 1)[1:-1])
    if np.any(np.diff(edges) <= 0):
        raise InputError(f"quantile discretization: {k} classes need distinct quantiles of the training scores, got edges {edges.round(4).tolist()}")
    return _binned("quantile", train_scores, edges, values)


@rule("intervals")
def _intervals(train_scores, num_classes=None, edges=None, values="mean", **_) -> Discretization:
    if not edges:
        raise InputError("discretization rule 'intervals' needs edges, e.g. [-1, 1]")
    edges = np.asarray(edges, dtype=np.float64)
    if np.any(np.diff(edges) <= 0):
        raise InputError(f"discretization edges must increase strictly, got {edges.tolist()}")
    if num_classes not in (None, len(edges) + 1):
        raise InputError(f"{len(edges)} edges make {len(edges) + 1} classes, got num_classes={num_classes}")
    return _binned("intervals", train_scores, edges, values)


def _binned(name: str, train_scores, edges: np.ndarray, values: str, bounds=None) -> Discretization:
    """Left-closed bins over `edges`, valued by bin centre or by the mean training score."""
    if values not in ("mean", "centre"):
        raise InputError(f"discretization values must be 'mean' or 'centre', got {values!r}")
    s = np.asarray(train_scores, dtype=np.float64)
    lo, hi = bounds if bounds is not None else (min(s.min(), edges[0]), max(s.max(), edges[-1]))
    closed = np.concatenate([[lo], edges, [hi]])
    centres = (closed[:-1] + closed[1:]) / 2
    d = Discretization(name, tuple(edges.tolist()), tuple(centres.tolist()), ties="high")
    if values == "centre":
        return d
    c = d.classes(s)
    sums = np.bincount(c, weights=s, minlength=d.num_classes)
    counts = class_counts(c, d.num_classes)
    means = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
    return Discretization(name, d.edges, tuple(means.tolist()), ties="high")


FIXED_CLASSES = {"paper": 5, "round_half_even": 5}
"""Rules whose class count is fixed; `class_count` reads it."""


def class_count(rule: str, num_classes: int | None = None, edges: Sequence[float] | None = None) -> int | None:
    """K, the number of classes `rule` makes, known before fitting (the config checks lists of
    class weights and values against it); None when only the fit can tell."""
    if rule in FIXED_CLASSES:
        return FIXED_CLASSES[rule]
    if rule == "intervals" and isinstance(edges, (list, tuple)) and edges:
        return len(edges) + 1
    if rule in ("uniform", "quantile") and isinstance(num_classes, int):
        return num_classes
    return None


def fit_discretization(
    rule: str,
    train_scores: Sequence[float] | np.ndarray,
    num_classes: int | None = None,
    edges: Sequence[float] | None = None,
    values: str | Sequence[float] = "mean",
    score_range: tuple[float, float] | None = None,
) -> Discretization:
    """The discretization `rule` fitted on the training scores (only those: no test leakage).
    `values`: `mean` or `centre` for the binned rules, or an explicit list of K class values
    that replaces the rule's own."""
    if rule not in RULES:
        raise InputError(f"unknown discretization rule {rule!r}; valid: {', '.join(sorted(RULES))}")
    explicit = None if isinstance(values, str) else tuple(float(v) for v in values)
    d = RULES[rule](train_scores, num_classes=num_classes, edges=edges, values="mean" if explicit is not None else values, score_range=score_range)
    if explicit is None:
        return d
    if len(explicit) != d.num_classes:
        raise InputError(f"discretization values: {len(explicit)} given, but rule {rule!r} makes {d.num_classes} classes")
    return replace(d, values=explicit)

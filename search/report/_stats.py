"""Metrics and tests the report needs, vectorized over trials, folds and bootstrap draws.

- `fold_summary`: mean and sample std over each trial's COMPLETE folds. A NaN in any fold
  (PC of a constant prediction) makes that metric's mean and std NaN, as `fbp.metrics.mean_std`.
- `pooled`: MAE, RMSE, PC over all out-of-fold predictions of a trial, and per subset.
- `paired_tests`: paired t and Wilcoxon signed-rank over the folds two trials share.
- `bootstrap_pc_difference`: percentile CI of PC(a) - PC(b) on pooled out-of-fold
  predictions, resampling images (pairs kept together), seeded.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from fbp import metrics
from fbp.metrics import NAMES


def fold_summary(complete: pd.DataFrame) -> pd.DataFrame:
    """complete: COMPLETE fold rows. -> index trial_id; folds, <m>_mean, <m>_std."""
    values = complete[["trial_id", *NAMES]].copy()
    for m in NAMES:
        values[m] = pd.to_numeric(values[m], errors="coerce").astype(np.float64)
    g = values.groupby("trial_id", sort=False)
    mean, std = g[list(NAMES)].mean(), g[list(NAMES)].std(ddof=1)
    poisoned = values[list(NAMES)].isna().groupby(values["trial_id"], sort=False).any()
    out = pd.DataFrame({"folds": g.size()})
    for m in NAMES:
        out[f"{m}_mean"] = mean[m].mask(poisoned[m])
        out[f"{m}_std"] = std[m].mask(poisoned[m])
    return out


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """n and every metric of `fbp.metrics` (NaN for no rows; PC NaN for fewer than two)."""
    if not len(y):
        return {"n": 0, **{m: float("nan") for m in NAMES}}
    return {"n": len(y), **metrics.scores(y, p)}


def pooled(predictions: pd.DataFrame) -> pd.DataFrame:
    """predictions of one trial -> rows subset ('all' first, then each subset), n, mae, rmse, pc."""
    y = predictions["y_true"].to_numpy(np.float64)
    p = predictions["y_pred"].to_numpy(np.float64)
    rows = [{"subset": "all", **scores(y, p)}]
    if "subset" in predictions.columns:
        subsets = predictions["subset"].astype(str).to_numpy()
        names = sorted(set(subsets.tolist()))
        if names != ["all"]:
            for s in names:
                m = subsets == s
                rows.append({"subset": s, **scores(y[m], p[m])})
    return pd.DataFrame(rows)


def paired_tests(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Per-fold values of two trials over the same folds -> k, mean difference, t and Wilcoxon
    p-values (NaN where a test cannot be computed: k < 2, or all differences equal / zero)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    d = a - b
    out = {"k": int(len(d)), "diff": float(d.mean()) if len(d) else float("nan"), "t_p": float("nan"), "wilcoxon_p": float("nan")}
    if len(d) < 2:
        return out
    from scipy import stats  # here: importing scipy.stats costs about a second

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if np.std(d) > 0:
            out["t_p"] = float(stats.ttest_rel(a, b).pvalue)
        if np.any(d != 0):
            try:
                out["wilcoxon_p"] = float(stats.wilcoxon(d).pvalue)
            except ValueError:
                pass
    return out


def bootstrap_pc_difference(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, draws: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """PC(y, pred_a) - PC(y, pred_b) on paired out-of-fold predictions, and its percentile
    bootstrap CI: each draw resamples the n images with replacement (pairs stay together)."""
    return bootstrap_pc_differences([(y, pred_a, pred_b)], draws, seed, level)[0]


def bootstrap_pc_differences(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], draws: int = 2000, seed: int = 0, level: float = 0.95, chunk: int = 256) -> list[dict[str, float]]:
    """`bootstrap_pc_difference` for many (y, pred_a, pred_b) at once. A draw is a row of
    counts W (B, n); every pair's weighted sums for all draws come out of one matrix product
    W @ columns (n, 8 per pair). Pairs of equal n share the draws (each alone would draw the
    same ones: same seed), so comparing five trials costs about what one does."""
    out: list[dict[str, float] | None] = [None] * len(pairs)
    by_n: dict[int, list[int]] = {}
    for i, (y, pred_a, pred_b) in enumerate(pairs):
        n = len(y)
        point = metrics.pearson(y, pred_a) - metrics.pearson(y, pred_b)
        out[i] = {"n": n, "pc_diff": point, "ci_low": float("nan"), "ci_high": float("nan")}
        if n >= 3 and draws >= 1:
            by_n.setdefault(n, []).append(i)
    tail = (1 - level) / 2
    for n, members in by_n.items():
        columns = []
        for i in members:
            y, pred_a, pred_b = (np.asarray(v, np.float64) for v in pairs[i])
            y, pred_a, pred_b = y - y.mean(), pred_a - pred_a.mean(), pred_b - pred_b.mean()  # centred: no cancellation
            columns.append(np.stack([y, y * y, pred_a, pred_a * pred_a, y * pred_a, pred_b, pred_b * pred_b, y * pred_b], axis=1))
        columns = np.concatenate(columns, axis=1)  # (n, 8 P)
        rng = np.random.default_rng(seed)
        diffs = np.empty((draws, len(members)))
        for start in range(0, draws, chunk):
            b = min(chunk, draws - start)
            idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
            counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)  # (b, n)
            s = (counts @ columns / n).reshape(b, len(members), 8)  # weighted means per draw and pair
            var_y = s[..., 1] - s[..., 0] ** 2
            with np.errstate(all="ignore"):
                pc_a = (s[..., 4] - s[..., 0] * s[..., 2]) / np.sqrt(var_y * (s[..., 3] - s[..., 2] ** 2))
                pc_b = (s[..., 7] - s[..., 0] * s[..., 5]) / np.sqrt(var_y * (s[..., 6] - s[..., 5] ** 2))
            diffs[start : start + b] = pc_a - pc_b
        for j, i in enumerate(members):
            d = diffs[:, j][np.isfinite(diffs[:, j])]
            if len(d):
                low, high = np.quantile(d, [tail, 1 - tail])
                out[i].update(ci_low=float(low), ci_high=float(high))
    return out

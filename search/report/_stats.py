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
from scipy import stats

METRICS = ("mae", "rmse", "pc")


def fold_summary(complete: pd.DataFrame) -> pd.DataFrame:
    """complete: COMPLETE fold rows. -> index trial_id; folds, <m>_mean, <m>_std."""
    values = complete[["trial_id", *METRICS]].copy()
    for m in METRICS:
        values[m] = pd.to_numeric(values[m], errors="coerce").astype(np.float64)
    g = values.groupby("trial_id", sort=False)
    mean, std = g[list(METRICS)].mean(), g[list(METRICS)].std(ddof=1)
    poisoned = values[list(METRICS)].isna().groupby(values["trial_id"], sort=False).any()
    out = pd.DataFrame({"folds": g.size()})
    for m in METRICS:
        out[f"{m}_mean"] = mean[m].mask(poisoned[m])
        out[f"{m}_std"] = std[m].mask(poisoned[m])
    return out


def _pearson(y: np.ndarray, p: np.ndarray) -> float:
    if len(y) < 2:
        return float("nan")
    a, b = y - y.mean(), p - p.mean()
    d = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / d) if d > 0 else float("nan")


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    e = p - y
    n = len(y)
    return {
        "n": n,
        "mae": float(np.mean(np.abs(e))) if n else float("nan"),
        "rmse": float(np.sqrt(np.mean(e * e))) if n else float("nan"),
        "pc": _pearson(y, p),
    }


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


def bootstrap_pc_difference(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, draws: int = 2000, seed: int = 0, level: float = 0.95, chunk: int = 128) -> dict[str, float]:
    """PC(y, pred_a) - PC(y, pred_b) on paired out-of-fold predictions, and its percentile bootstrap CI."""
    y, pred_a, pred_b = (np.asarray(v, np.float64) for v in (y, pred_a, pred_b))
    n = len(y)
    point = _pearson(y, pred_a) - _pearson(y, pred_b)
    if n < 3 or draws < 1:
        return {"n": n, "pc_diff": point, "ci_low": float("nan"), "ci_high": float("nan")}
    rng = np.random.default_rng(seed)
    diffs = np.empty(draws)
    for start in range(0, draws, chunk):
        idx = rng.integers(0, n, size=(min(chunk, draws - start), n))  # (B, n) resampled images
        ys = y[idx]
        yc = ys - ys.mean(axis=1, keepdims=True)
        syy = np.einsum("ij,ij->i", yc, yc)
        r = []
        for p in (pred_a, pred_b):
            ps = p[idx]
            pc = ps - ps.mean(axis=1, keepdims=True)
            with np.errstate(all="ignore"):
                r.append(np.einsum("ij,ij->i", yc, pc) / np.sqrt(syy * np.einsum("ij,ij->i", pc, pc)))
        diffs[start : start + len(idx)] = r[0] - r[1]
    diffs = diffs[np.isfinite(diffs)]
    if not len(diffs):
        return {"n": n, "pc_diff": point, "ci_low": float("nan"), "ci_high": float("nan")}
    tail = (1 - level) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return {"n": n, "pc_diff": point, "ci_low": float(low), "ci_high": float(high)}

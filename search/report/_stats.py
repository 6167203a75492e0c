"""Metrics and tests the report needs, vectorized over trials, folds and bootstrap draws.

- `fold_summary`: mean and sample std over each trial's COMPLETE runs, one per (fold, seed)
  (train.repeats trains every fold once per seed). A NaN in any run (PC of a constant
  prediction) makes that metric's mean and std NaN, as `fbp.metrics.mean_std`.
- `seed_spread`: the seed-to-seed spread of a trial: the sample std over seeds of each seed's
  mean over folds.
- `pooled`: MAE, RMSE, PC over all out-of-fold predictions of a trial, and per subset.
- `paired_tests`: paired t and Wilcoxon signed-rank over the (fold, seed) runs two trials share.
- `bootstrap_pc_difference`: percentile CI of PC(a) - PC(b) on pooled out-of-fold
  predictions, resampling images (pairs, and an image's runs over seeds, kept together), seeded.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from fbp import metrics
from fbp.metrics import NAMES

VAL_NAMES = tuple(f"val_{m}" for m in NAMES)
"""The validation part's metrics a row carries beside the test fold's (NaN without eval.holdout)."""


def fold_summary(complete: pd.DataFrame) -> pd.DataFrame:
    """complete: COMPLETE rows, one per (trial, fold, seed). -> index trial_id; folds (distinct),
    runs (rows: folds x seeds), seeds (distinct), and <m>_mean, <m>_std over all the trial's
    runs for every test metric and every val_ metric the rows carry."""
    names = [*NAMES, *(m for m in VAL_NAMES if m in complete.columns)]
    values = complete[["trial_id", *names]].copy()
    for m in names:
        values[m] = pd.to_numeric(values[m], errors="coerce").astype(np.float64)
    g = values.groupby("trial_id", sort=False)
    mean, std = g[names].mean(), g[names].std(ddof=1)
    poisoned = values[names].isna().groupby(values["trial_id"], sort=False).any()
    keys = complete.groupby("trial_id", sort=False)
    out = pd.DataFrame({"folds": keys["fold"].nunique(), "runs": g.size()})
    out["seeds"] = keys["seed"].nunique().clip(lower=1) if "seed" in complete.columns else 1
    for m in names:
        out[f"{m}_mean"] = mean[m].mask(poisoned[m])
        out[f"{m}_std"] = std[m].mask(poisoned[m])
    return out


def seed_spread(runs: pd.DataFrame, metric: str) -> tuple[float, int]:
    """runs: one trial's COMPLETE rows, one per (fold, seed). -> (sample std over its seeds of
    each seed's mean `metric` over folds, number of seeds); NaN for fewer than two seeds."""
    if "seed" not in runs.columns or not len(runs):
        return float("nan"), min(len(runs), 1)
    per_seed = pd.to_numeric(runs[metric], errors="coerce").groupby(runs["seed"]).mean()
    return (float(per_seed.std(ddof=1)) if len(per_seed) >= 2 else float("nan")), len(per_seed)


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


def bootstrap_pc_difference(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, draws: int = 2000, seed: int = 0, level: float = 0.95, groups: np.ndarray | None = None) -> dict[str, float]:
    """PC(y, pred_a) - PC(y, pred_b) on paired out-of-fold predictions, and its percentile
    bootstrap CI: each draw resamples the n images with replacement (pairs stay together).
    groups: the image of each row, when an image has several rows (its runs over seeds): a draw
    then resamples images, each with all its rows."""
    return bootstrap_pc_differences([(y, pred_a, pred_b) if groups is None else (y, pred_a, pred_b, groups)], draws, seed, level)[0]


def bootstrap_pc_differences(pairs: list[tuple[np.ndarray, ...]], draws: int = 2000, seed: int = 0, level: float = 0.95, chunk: int = 256) -> list[dict[str, float]]:
    """`bootstrap_pc_difference` for many (y, pred_a, pred_b[, groups]) at once. A draw is a row
    of counts W (B, G) over the G images; every pair's weighted sums for all draws come out of
    one matrix product W @ columns (G, 9 per pair: per image, the sums of its rows' 8 products
    and its number of rows). Pairs of equal G share the draws (each alone would draw the same
    ones: same seed), so comparing five trials costs about what one does."""
    out: list[dict[str, float] | None] = [None] * len(pairs)
    by_g: dict[int, list[int]] = {}
    grouped: list[tuple[np.ndarray | None, int]] = []  # per pair: each row's image code (None: a row per image), and G
    for i, (y, pred_a, pred_b, *groups) in enumerate(pairs):
        if groups:
            codes = np.unique(np.asarray(groups[0]), return_inverse=True)[1].ravel()
            g = int(codes.max()) + 1 if len(codes) else 0
        else:
            codes, g = None, len(y)
        grouped.append((codes, g))
        point = metrics.pearson(y, pred_a) - metrics.pearson(y, pred_b)
        out[i] = {"n": len(y), "pc_diff": point, "ci_low": float("nan"), "ci_high": float("nan")}
        if g >= 3 and draws >= 1:
            by_g.setdefault(g, []).append(i)
    tail = (1 - level) / 2
    for g, members in by_g.items():
        columns = []
        for i in members:
            y, pred_a, pred_b = (np.asarray(v, np.float64) for v in pairs[i][:3])
            y, pred_a, pred_b = y - y.mean(), pred_a - pred_a.mean(), pred_b - pred_b.mean()  # centred: no cancellation
            rows = np.stack([y, y * y, pred_a, pred_a * pred_a, y * pred_a, pred_b, pred_b * pred_b, y * pred_b, np.ones_like(y)], axis=1)  # (n, 9)
            codes = grouped[i][0]
            if codes is not None:  # (G, 9): each image's sums over its rows
                rows = np.stack([np.bincount(codes, weights=rows[:, c], minlength=g) for c in range(9)], axis=1)
            columns.append(rows)
        columns = np.concatenate(columns, axis=1)  # (G, 9 P)
        rng = np.random.default_rng(seed)
        diffs = np.empty((draws, len(members)))
        for start in range(0, draws, chunk):
            b = min(chunk, draws - start)
            idx = rng.integers(0, g, size=(b, g)) + (np.arange(b) * g)[:, None]
            counts = np.bincount(idx.ravel(), minlength=b * g).reshape(b, g).astype(np.float64)  # (b, G)
            sums = (counts @ columns).reshape(b, len(members), 9)  # weighted sums per draw and pair
            s = sums[..., :8] / sums[..., 8:]  # weighted means (the last column: rows drawn)
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

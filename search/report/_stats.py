"""Metrics and tests the report needs, vectorized over trials, folds and bootstrap draws.

- `fold_summary`: mean and sample std over each trial's COMPLETE runs, one per (fold, seed)
  (train.repeats trains every fold once per seed). A NaN in any run (PC of a constant
  prediction) makes that metric's mean and std NaN, as `fbp.metrics.mean_std`.
- `seed_spread`: the seed-to-seed spread of a trial: the sample std over seeds of each seed's
  mean over folds.
- `pooled`: MAE, RMSE, PC over all out-of-fold predictions of a trial, and per subset.
- `paired_tests`: paired t (with its CI) and Wilcoxon signed-rank over per-fold values.
- `paired_by_fold`: the one pairing rule: a fold's seeds averaged, then `paired_tests` over the
  folds two trials share (one split: no test).
- `bootstrap_pc_difference`: percentile CI of PC(a) - PC(b) on pooled out-of-fold
  predictions, resampling images (pairs, and an image's runs over seeds, kept together), seeded;
  with clusters, folds (or seeds) first, then images within them. Both treat what the clusters
  do not resample as fixed: bench/stats_null.py measures what that costs under the null.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from fbp import metrics
from fbp.metrics import NAMES, VAL_NAMES


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
    p-values, and the t test's 95% CI of the mean difference, ci_low and ci_high (NaN where a
    test cannot be computed: k < 2, or all differences equal / zero). The CI excludes 0 exactly
    when t_p < 0.05: one test, printed two ways."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    d = a - b
    nan = float("nan")
    out = {"k": int(len(d)), "diff": float(d.mean()) if len(d) else nan, "t_p": nan, "wilcoxon_p": nan, "ci_low": nan, "ci_high": nan}
    if len(d) < 2:
        return out
    from scipy import stats  # here: importing scipy.stats costs about a second

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if np.std(d) > 0:
            out["t_p"] = float(stats.ttest_rel(a, b).pvalue)
            half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
            out["ci_low"], out["ci_high"] = out["diff"] - half, out["diff"] + half
        if np.any(d != 0):
            try:
                out["wilcoxon_p"] = float(stats.wilcoxon(d).pvalue)
            except ValueError:
                pass
    return out


def paired_by_fold(a: pd.Series, b: pd.Series) -> dict[str, float]:
    """One metric of two trials, each indexed (fold, seed) -> `paired_tests` over folds, each
    fold's value the mean over the seeds both trials ran on it; k is the number of folds, runs
    the (fold, seed) runs paired. Why folds and not runs: the seeds of a fold share its
    training and test images, and a configuration's errors on them, so its runs are not
    independent replicates of the comparison; pairing the runs as if they were rejected a true
    null 28-32% of the time at a nominal 5% (bench/stats_null.py). A run with a NaN makes
    its fold's mean NaN (paired_tests then drops that fold). One fold (a single split): k = 1,
    no p-value."""
    shared = a.index.intersection(b.index)
    d = pd.DataFrame({"a": a.loc[shared].to_numpy(np.float64), "b": b.loc[shared].to_numpy(np.float64)}, index=shared)
    fold = d.index.get_level_values(0)
    means = d.groupby(fold, sort=True).mean().mask(d.isna().groupby(fold, sort=True).any())
    return {**paired_tests(means["a"].to_numpy(), means["b"].to_numpy()), "runs": len(shared)}


def bootstrap_pc_difference(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, draws: int = 2000, seed: int = 0, level: float = 0.95,
                            groups: np.ndarray | None = None, clusters: np.ndarray | None = None) -> dict[str, float]:
    """PC(y, pred_a) - PC(y, pred_b) on paired out-of-fold predictions, and its percentile
    bootstrap CI: each draw resamples the n images with replacement (pairs stay together).
    groups: the image of each row, when an image has several rows (its runs over seeds): a draw
    then resamples images, each with all its rows. clusters: the fold (or the seed, on one
    split) of each row: a draw then first resamples clusters, then images within each drawn
    cluster (`bootstrap_pc_differences`)."""
    pair = (y, pred_a, pred_b, groups, clusters)
    return bootstrap_pc_differences([pair], draws, seed, level)[0]


def _units(pair: tuple) -> tuple[np.ndarray, tuple[int, ...]]:
    """Each row's resampling unit, units numbered cluster by cluster, and each cluster's number
    of units. A unit is an image (with all its rows) within a cluster; no groups: a row is an
    image; no clusters: one cluster."""
    y, _, _, *rest = pair
    groups, clusters = (list(rest) + [None, None])[:2]
    n = len(y)
    image = np.arange(n) if groups is None else np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    cluster = np.zeros(n, np.int64) if clusters is None else np.unique(np.asarray(clusters), return_inverse=True)[1].ravel()
    keys, codes = np.unique(np.stack([cluster, image], axis=1), axis=0, return_inverse=True) if n else (np.empty((0, 2), np.int64), np.empty(0, np.int64))
    sizes = np.bincount(keys[:, 0]) if len(keys) else np.empty(0, np.int64)
    return codes.ravel(), tuple(int(x) for x in sizes)


def _counts(rng: np.random.Generator, b: int, sizes: tuple[int, ...]) -> np.ndarray:
    """(b, G) draws of unit counts. One cluster: the G units resampled with replacement. Several:
    the C clusters resampled with replacement, then each drawn cluster's units resampled with
    replacement (a cluster drawn twice gets two independent resamples)."""
    g = sum(sizes)
    if len(sizes) == 1:
        idx = rng.integers(0, g, size=(b, g)) + (np.arange(b) * g)[:, None]
        return np.bincount(idx.ravel(), minlength=b * g).reshape(b, g).astype(np.float64)
    size = np.asarray(sizes)
    offset = np.concatenate([[0], np.cumsum(size)[:-1]])
    drawn = rng.integers(0, len(size), size=(b, len(size)))  # (b, C): the clusters of each draw
    n = size[drawn][..., None]  # (b, C, 1)
    place = np.arange(size.max())
    unit = offset[drawn][..., None] + np.minimum((rng.random((b, len(size), size.max())) * n).astype(np.int64), n - 1)
    idx = unit + (np.arange(b) * g)[:, None, None]
    return np.bincount(idx.ravel(), weights=(place < n).ravel().astype(np.float64), minlength=b * g).reshape(b, g)


def bootstrap_pc_differences(pairs: list[tuple], draws: int = 2000, seed: int = 0, level: float = 0.95, chunk: int = 256) -> list[dict[str, float]]:
    """`bootstrap_pc_difference` for many (y, pred_a, pred_b[, groups[, clusters]]) at once. A
    draw is a row of counts W (B, G) over the G units (images within clusters); every pair's
    weighted sums for all draws come out of one matrix product W @ columns (G, 9 per pair: per
    unit, the sums of its rows' 8 products and its number of rows). Pairs of the same layout
    (clusters of the same sizes) share the draws (each alone would draw the same ones: same
    seed), so comparing five trials costs about what one does."""
    out: list[dict[str, float] | None] = [None] * len(pairs)
    layouts: dict[tuple[int, ...], list[int]] = {}
    units: list[np.ndarray] = []
    for i, pair in enumerate(pairs):
        y, pred_a, pred_b = pair[:3]
        codes, sizes = _units(pair)
        units.append(codes)
        point = metrics.pearson(y, pred_a) - metrics.pearson(y, pred_b)
        out[i] = {"n": len(y), "pc_diff": point, "ci_low": float("nan"), "ci_high": float("nan")}
        if sum(sizes) >= 3 and draws >= 1:
            layouts.setdefault(sizes, []).append(i)
    tail = (1 - level) / 2
    for sizes, members in layouts.items():
        g = sum(sizes)
        columns = []
        for i in members:
            y, pred_a, pred_b = (np.asarray(v, np.float64) for v in pairs[i][:3])
            y, pred_a, pred_b = y - y.mean(), pred_a - pred_a.mean(), pred_b - pred_b.mean()  # centred: no cancellation
            rows = np.stack([y, y * y, pred_a, pred_a * pred_a, y * pred_a, pred_b, pred_b * pred_b, y * pred_b, np.ones_like(y)], axis=1)  # (n, 9)
            codes = units[i]  # (G, 9): each unit's sums over its rows
            columns.append(np.stack([np.bincount(codes, weights=rows[:, c], minlength=g) for c in range(9)], axis=1))
        columns = np.concatenate(columns, axis=1)  # (G, 9 P)
        rng = np.random.default_rng(seed)
        diffs = np.empty((draws, len(members)))
        for start in range(0, draws, chunk):
            b = min(chunk, draws - start)
            sums = (_counts(rng, b, sizes) @ columns).reshape(b, len(members), 9)  # weighted sums per draw and pair
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

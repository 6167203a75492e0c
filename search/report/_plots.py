"""The report's plots, PNG, drawn with matplotlib's object API on the Agg canvas (no pyplot,
no display, no global state). Each function returns the file it wrote, or None with a note."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from fbp.files import atomic_path
from fbp.loss_names import TOTAL, train_name
from fbp.metrics import TEST_CURVES, base_name, curve_name, val_name
from search.report._build import ORACLE, Report, plural
from search.report._stats import scores

DPI = 120
SUBSET_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=DPI, layout="constrained")


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _label(report: Report) -> str:
    """The objective, as the axes name it: `mean PC over folds`, `mean val PC over folds`."""
    return f"mean {'val ' if report.on_val else ''}{report.study.metric.upper()} over folds"


def history(report: Report, path: Path) -> Path | None:
    h = report.history
    if not len(h) or h["objective"].notna().sum() == 0:
        report.notes.append("optimization history: no trial has a value yet")
        return None
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    done = h[h["status"] == "COMPLETE"]
    partial = h[h["status"].isin(["PRUNED", "INCOMPLETE"]) & h["objective"].notna()]
    small = len(h) > 2000
    ax.scatter(done["order"], done["objective"], s=6 if small else 18, alpha=0.5 if small else 0.8, color="#1f77b4", label=f"complete ({len(done)})", rasterized=small)
    if len(partial):
        ax.scatter(partial["order"], partial["objective"], s=6 if small else 18, marker="x", color="0.6", alpha=0.6, label=f"pruned / incomplete, partial mean ({len(partial)})", rasterized=small)
    ax.step(h["order"], h["best_so_far"], where="post", color="#ff7f0e", lw=2, label="best so far")
    for trial, marker, colour, name in ((report.baseline, "s", "#2ca02c", "baseline"), (report.best, "*", "#d62728", "best")):
        row = h[h["trial_id"] == trial] if trial else h.iloc[0:0]
        if len(row):
            ax.scatter(row["order"], row["objective"], s=160 if marker == "*" else 70, marker=marker, color=colour, edgecolor="k", zorder=5, label=f"{name} {trial}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    failed = int((h["status"] == "FAIL").sum())
    ax.set_xlabel("trial, in the order it started" + (f"  ({plural(failed, 'failed trial')} not drawn)" if failed else ""))
    ax.set_ylabel(_label(report))
    ax.set_title(f"{report.study.name}: optimization history ({'higher' if report.study.direction == 'max' else 'lower'} is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def importance(report: Report, path: Path) -> Path | None:
    t = report.importance.dropna(subset=["importance"]) if len(report.importance) else report.importance
    if not len(t):
        return None
    t = t.sort_values("importance")
    fig = _figure(7, 0.9 + 0.45 * len(t))
    ax = fig.subplots()
    colours = ["#d62728" if e in ("lower edge", "upper edge") else "#1f77b4" for e in t["edge"]]
    ax.barh(t["knob"], t["importance"], color=colours)
    for y, v in enumerate(t["importance"]):
        ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1e-9, float(t["importance"].max())) * 1.2)
    ax.set_xlabel(f"importance for {_label(report).removeprefix('mean ').removesuffix(' over folds')} ({(report.importance_method or '').split(' (')[0]})")
    edge = any(c == "#d62728" for c in colours)
    ax.set_title("knob importance" + ("  (red: best value on the edge of the space)" if edge else ""))
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def knobs(report: Report, path: Path) -> Path | None:
    numeric = [k for k in report.study.knobs.values() if k.numeric and k.column in report.leaderboard.columns]
    board = report.leaderboard
    done = board[(board["status"] == "COMPLETE") & board[report.objective].notna()]
    if not numeric:
        report.notes.append("no numeric knob searched: no objective-vs-knob plot")
        return None
    if not len(done):
        return None
    cols = min(3, len(numeric))
    rows = math.ceil(len(numeric) / cols)
    fig = _figure(4.2 * cols, 3.4 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    small = len(done) > 2000
    for ax, knob in zip(axes, numeric):
        x = pd.to_numeric(done[knob.column], errors="coerce")
        ax.scatter(x, done[report.objective], s=5 if small else 16, alpha=0.4 if small else 0.8, color="#1f77b4", rasterized=small)
        if report.best in done.index:
            ax.scatter([board.at[report.best, knob.column]], [board.at[report.best, report.objective]], marker="*", s=180, color="#d62728", edgecolor="k", zorder=5, label="best")
        if knob.low is not None:
            for bound in (knob.low, knob.high):
                ax.axvline(bound, color="0.5", ls="--", lw=1)
        if knob.log:
            ax.set_xscale("log")
        ax.set_xlabel(knob.path + (" (log)" if knob.log else ""))
        ax.set_ylabel(_label(report))
        ax.grid(alpha=0.3)
    for ax in axes[len(numeric):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"{_label(report).removeprefix('mean ')} against each numeric knob (complete trials; dashed: range bounds)")
    return _save(fig, path)


def predicted_vs_true(report: Report, path: Path) -> Path | None:
    p = report.best_predictions
    if report.best is None or not len(p):
        if report.best is not None:
            report.notes.append(f"no predictions for the best trial {report.best}: no predicted-vs-true plot")
        return None
    fig = _figure(5.6, 5.4)
    ax = fig.subplots()
    y, yhat = p["y_true"].to_numpy(np.float64), p["y_pred"].to_numpy(np.float64)
    subsets = p["subset"].astype(str) if "subset" in p.columns else pd.Series("all", index=p.index)
    small = len(p) > 3000
    for i, s in enumerate(sorted(subsets.unique())):
        m = (subsets == s).to_numpy()
        ax.scatter(y[m], yhat[m], s=4 if small else 10, alpha=0.35 if small else 0.6, color=SUBSET_COLOURS[i % len(SUBSET_COLOURS)], label=f"{s} ({m.sum()})", rasterized=small)
    lo, hi = float(min(y.min(), yhat.min())), float(max(y.max(), yhat.max()))
    pad = 0.03 * (hi - lo or 1)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=1, ls="--", label="y = x")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    s = scores(y, yhat)
    mark = (" †test_oracle" if report.is_oracle(report.best) else "") + (" §selected on test folds" if report.chosen_on_test(report.best) else "")
    ax.set_title(f"best trial {report.best}{mark}: out-of-fold predictions\npooled PC {s['pc']:.4f}  MAE {s['mae']:.4f}  RMSE {s['rmse']:.4f}  (n={s['n']})", fontsize=10)
    ax.set_xlabel("true score (mean rating)")
    ax.set_ylabel("predicted score")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, markerscale=2)
    return _save(fig, path)


def curves(report: Report, path: Path) -> Path | None:
    e = report.best_epochs
    if report.best is None or not len(e) or "epoch" not in e.columns:
        return None
    runs = report.best_folds
    seeds = sorted(set(e["seed"])) if "seed" in e.columns else []
    if len(seeds) > 1:  # train.repeats: one seed's runs, or the lines of every seed would tangle
        e, runs = e[e["seed"] == seeds[0]], runs[runs["seed"] == seeds[0]]
    e = e.sort_values(["fold", "epoch"])
    selected = runs.set_index("fold")["selected_epoch"] if "selected_epoch" in runs.columns else pd.Series(dtype=float)
    panels = [c for c in (train_name(TOTAL), curve_name("pc")) if c in e.columns and e[c].notna().any()]
    panels += [c for c in (curve_name("mae"),) if c in e.columns and e[c].notna().any() and len(panels) < 2]
    if not panels:
        return None
    from matplotlib.ticker import MaxNLocator

    fig = _figure(5.2 * len(panels), 4)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, column in zip(axes, panels):
        for i, (fold, g) in enumerate(e.groupby("fold")):
            colour = SUBSET_COLOURS[i % len(SUBSET_COLOURS)]
            # test_ and val_ metrics exist only at the evaluated epochs (train.eval_every), NaN
            # between: each line joins the points it has, or matplotlib would break it at every gap
            points = g.dropna(subset=[column])
            few = len(points) <= 30  # points visible, and a one-epoch run still shows
            ax.plot(points["epoch"], points[column], color=colour, lw=1.2, marker="." if few else None, label=f"fold {fold}")
            val = val_name(base_name(column))
            if column in TEST_CURVES and val in g.columns and g[val].notna().any():
                inner = g.dropna(subset=[val])
                ax.plot(inner["epoch"], inner[val], color=colour, lw=1, ls=":", marker="." if len(inner) <= 30 else None, label=f"fold {fold} inner val")
            if fold in selected.index and pd.notna(selected[fold]):
                at = points[points["epoch"] == selected[fold]]
                if len(at):
                    ax.scatter(at["epoch"], at[column], color=colour, edgecolor="k", s=40, zorder=5)
        ax.set_xlabel("epoch")
        if e["epoch"].nunique() == 1:
            ax.set_xlim(e["epoch"].iloc[0] - 1, e["epoch"].iloc[0] + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(column)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    select = report.leaderboard.at[report.best, "select"] if report.best in report.leaderboard.index else ""
    warn = " (chosen on the test fold: optimistic)" if select == ORACLE else ""
    seed = f", seed {seeds[0]} of {len(seeds)}" if len(seeds) > 1 else ""
    fig.suptitle(f"best trial {report.best}: learning curves{seed}; dots: the epoch each fold reports, select={select or '?'}{warn}", fontsize=10)
    return _save(fig, path)


PLOTS = {
    "history": history,
    "importance": importance,
    "knobs": knobs,
    "predicted_vs_true": predicted_vs_true,
    "curves": curves,
}


def draw_all(report: Report, out: Path) -> list[Path]:
    written = []
    for name, draw in PLOTS.items():
        path = draw(report, out / f"{name}.png")
        if path is not None:
            written.append(path)
        else:  # a plot of an earlier report that this one cannot draw would mislead
            (out / f"{name}.png").unlink(missing_ok=True)
    return written

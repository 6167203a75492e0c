"""The document's figures, PNG, on matplotlib's Agg canvas (search.report._plots' figure and
atomic save): Figure 2 (the faces with their true and predicted scores) and one plot per
ablation study."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from search.paper._build import FIGURE_N, AblationResult, Figure2, level_label
from search.report._plots import _figure, _save

TRUE_COLOUR, PREDICTED_COLOUR = "#00c000", "#e00000"  # the paper's caption: green groundtruth, red predicted


def _face(path: str) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError):
        return None


def figure2(figure: Figure2, path: Path, title: str) -> Path | None:
    """A 2 x FIGURE_N grid: the best predicted faces above, the worst below, each with its true
    score (green) and predicted score (red) drawn on it; a grey tile with the scores where the
    face cannot be read."""
    picks = figure.picks
    if not len(picks):
        return None
    fig = _figure(2.0 * FIGURE_N, 5.0)
    axes = np.atleast_2d(fig.subplots(2, FIGURE_N))
    for row, kind in enumerate(("best", "worst")):
        shown = picks[picks["kind"] == kind].reset_index(drop=True)
        for col in range(FIGURE_N):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col >= len(shown):
                ax.set_visible(False)
                continue
            r = shown.loc[col]
            face = _face(r["path"]) if r["drawn"] else None
            if face is not None:
                ax.imshow(face)
            else:
                ax.set_facecolor("0.85")
                ax.text(0.5, 0.55, "image not\navailable", transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.4")
            box = {"facecolor": "black", "alpha": 0.55, "pad": 1.5, "edgecolor": "none"}
            ax.text(0.04, 0.04, f"{r['y_true']:.2f}", transform=ax.transAxes, color=TRUE_COLOUR, fontsize=12, fontweight="bold", va="bottom", ha="left", bbox=box)
            ax.text(0.96, 0.04, f"{r['y_pred']:.2f}", transform=ax.transAxes, color=PREDICTED_COLOUR, fontsize=12, fontweight="bold", va="bottom", ha="right", bbox=box)
            ax.set_title(f"{r['image']}  |err| {r['error']:.2f}", fontsize=7)
        axes[row, 0].set_ylabel("most accurate" if kind == "best" else "least accurate", fontsize=9)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def ablation(result: AblationResult, path: Path) -> Path | None:
    """Mean test PC +- std over (fold, seed) runs of each trial: the first knob's levels along
    x, one series per combination of the others; dashed, the reference's mean."""
    frame = result.frame
    done = frame[(frame["status"] == "COMPLETE") & frame["pc_mean"].notna()] if len(frame) else frame
    if not len(done):
        return None
    knobs = result.knobs
    x_knob = knobs[0] if knobs else None
    xs = [level_label(v) for v in done[x_knob]] if x_knob else ["base config"] * len(done)
    position = {level: i for i, level in enumerate(dict.fromkeys(xs))}  # the frame is in the grid's order
    hue = [", ".join(f"{k} = {level_label(v)}" for k, v in zip(knobs[1:], values)) for values in done[knobs[1:]].itertuples(index=False)] if len(knobs) > 1 else [""] * len(done)
    series = list(dict.fromkeys(hue))
    width = 0.6
    fig = _figure(max(5.0, 1.3 * len(position) + 2.5), 4.2)
    ax = fig.subplots()
    for j, name in enumerate(series):
        mask = np.array([h == name for h in hue])
        offset = (j - (len(series) - 1) / 2) * (width / max(len(series), 1)) if len(series) > 1 else 0.0
        x = np.array([position[v] for v, m in zip(xs, mask) if m], dtype=np.float64) + offset
        sub = done[mask]
        ax.errorbar(x, sub["pc_mean"], yerr=sub["pc_std"].fillna(0).to_numpy(), fmt="o", capsize=4, label=name or None)
    if result.reference is not None and result.reference in set(done["trial_id"]):
        ref = done[done["trial_id"] == result.reference].iloc[0]
        ax.axhline(ref["pc_mean"], color="0.5", ls="--", lw=1, label=f"reference {result.reference} ({ref['role'] or 'best'})")
    ax.set_xticks(list(position.values()), list(position.keys()))
    ax.set_xlim(-0.6, len(position) - 0.4)
    ax.set_xlabel(x_knob or "")
    ax.set_ylabel("test PC, mean ± std over folds × seeds")
    ax.set_title(f"{result.study.name}\n{result.what}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if any(series) or result.reference is not None:
        ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def draw_all(figure: Figure2, ablations: list[AblationResult], out: Path, figure_title: str) -> list[Path]:
    """Figure 2 and each ablation's plot; a file of an earlier run that this one cannot draw
    is removed (it would show results that are no longer there)."""
    wanted: dict[Path, object] = {out / "figure2.png": lambda p: figure2(figure, p, figure_title)}
    for result in ablations:
        wanted[out / f"ablation_{result.short}.png"] = lambda p, r=result: ablation(r, p)
    written = []
    for path, draw in wanted.items():
        done = draw(path)
        if done is not None:
            written.append(done)
        else:
            path.unlink(missing_ok=True)
    return written


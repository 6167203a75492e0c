"""`fbp-search report RESULTS_DIR`: the paper's tables, ablations with statistics, and plots,
from a results directory's study.yaml and Parquet tables alone (no Ray, no GPU).

    fbp-search report results/loss_weights --by loss.name
      -> results/loss_weights/report/{tables.md, tables.tex, leaderboard.csv, paper.csv,
         ablation.csv, pooled.csv, importance.csv, status.csv, errors.csv, history.png, importance.png,
         knobs.png, predicted_vs_true.png, curves.png}

In Python: `build_report(results)` gives the tables as DataFrames; `write_report` writes them.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["FORMATS", "build_report", "write_report"]

FORMATS = ("md", "tex", "csv", "png")


def build_report(results: Path, by: str | None = None, draws: int = 2000, seed: int = 0, cache: bool = True):
    """The report's tables as DataFrames (`search.report._build.Report`); writes nothing but
    the folds snapshot in RESULTS/report/.cache (unless cache=False)."""
    from search.report._build import build_report as build

    return build(Path(results), by=by, draws=draws, seed=seed, cache=cache)


def write_report(report, out: Path, formats=FORMATS, top: int = 20, draws: int = 2000, seed: int = 0) -> list[Path]:
    """Write the chosen formats into `out`; returns the files written."""
    from search.report import _plots, _render

    out.mkdir(parents=True, exist_ok=True)
    secs = _render.sections(report, top=top, draws=draws, seed=seed)
    written: list[Path] = []
    start = time.perf_counter()
    figures = _plots.draw_all(report, out) if "png" in formats else []
    report.timings["plots"] = time.perf_counter() - start
    start = time.perf_counter()
    if "csv" in formats:
        written += _render.write_csvs(out, secs)
    if "md" in formats:
        written.append(_render.write_text(out / "tables.md", _render.markdown(report, secs, figures)))
    if "tex" in formats:
        written.append(_render.write_text(out / "tables.tex", _render.latex(report, secs)))
    report.timings["tables"] = time.perf_counter() - start
    return written + figures

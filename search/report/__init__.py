"""`fbp-search report RESULTS_DIR`: the paper's tables, ablations with statistics, and plots,
from a results directory's study.yaml and Parquet tables alone (no Ray, no GPU).

    fbp-search report results/loss_weights --by loss.name
      -> results/loss_weights/report/{tables.md, tables.tex, leaderboard.csv, paper.csv,
         ablation.csv, pooled.csv, importance.csv, status.csv, errors.csv, history.png, importance.png,
         knobs.png, predicted_vs_true.png, curves.png}

In Python: `build_report(results)` gives the tables as DataFrames; `write_report` writes them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fbp.errors import InputError

__all__ = ["FORMATS", "build_report", "register", "run_report", "write_report"]

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


def parse_formats(text: str) -> tuple[str, ...]:
    chosen = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise InputError(f"--format {text!r}: choose from {','.join(FORMATS)} (comma-separated), got {', '.join(unknown) or 'nothing'}")
    return chosen


def register(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="tables (md, tex, csv) and plots (png) from a results directory")
    report.add_argument("results", type=Path, help="a results directory, e.g. results/<study>")
    report.add_argument("--out", type=Path, help="where to write (default RESULTS/report)")
    report.add_argument("--format", default=",".join(FORMATS), help="comma-separated subset of %(default)s")
    report.add_argument("--by", metavar="PATH", help="knob for the paper-format table, e.g. loss.name (default: the first categorical knob)")
    report.add_argument("--top", type=int, default=20, help="leaderboard rows in tables.md and .tex (default %(default)s; the CSV has all)")
    report.add_argument("--bootstrap", type=int, default=2000, metavar="B", help="bootstrap draws for the CI of the PC difference (default %(default)s)")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed (default %(default)s)")
    report.add_argument("--no-cache", action="store_true", help="neither read nor write the snapshot of folds.parquet in RESULTS/report/.cache")
    report.set_defaults(run=run_report)


def run_report(args: argparse.Namespace) -> int:
    from search.console import command_console
    from search.report import _render

    formats = parse_formats(args.format)
    if args.top < 1 or args.bootstrap < 0:
        raise InputError(f"--top must be >= 1 and --bootstrap >= 0, got --top {args.top} --bootstrap {args.bootstrap}")
    out = args.out or Path(args.results) / "report"
    start = time.perf_counter()
    report = build_report(args.results, by=args.by, draws=args.bootstrap, seed=args.seed, cache=not args.no_cache)
    written = write_report(report, out, formats, top=args.top, draws=args.bootstrap, seed=args.seed)
    console = command_console()
    _render.summary(console, report, written, out)
    console.print(f"report took {time.perf_counter() - start:.1f} s")
    return 0

"""`fbp-search report RESULTS_DIR`: the report's tables and plots (`search.report`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fbp.errors import InputError
from search.console import command_console
from search.report import FORMATS


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
    from search.report import _render, build_report, write_report

    formats = parse_formats(args.format)
    if args.top < 1 or args.bootstrap < 0:
        raise InputError(f"--top must be >= 1 and --bootstrap >= 0, got --top {args.top} --bootstrap {args.bootstrap}")
    out = args.out or Path(args.results) / "report"
    start = time.perf_counter()
    from search.report._io import journal_damage

    console = command_console()
    if (damaged := journal_damage(args.results)) is not None:
        console.print(f"warning: {damaged}")
    report = build_report(args.results, by=args.by, draws=args.bootstrap, seed=args.seed, cache=not args.no_cache)
    written = write_report(report, out, formats, top=args.top, draws=args.bootstrap, seed=args.seed)
    _render.summary(console, report, written, out)
    console.print(f"report took {time.perf_counter() - start:.1f} s")
    return 0

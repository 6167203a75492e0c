"""`fbp-search paper RESULTS_ROOT`: the paper's tables, Figure 2 and ablations in one document
(`search.paper`), from a folder holding one results directory per study."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fbp.errors import InputError
from search.commands.report import parse_formats
from search.console import command_console


def register(commands: argparse._SubParsersAction) -> None:
    paper = commands.add_parser("paper", help="the paper's Tables 1-5, Figure 2 and ablations in one document (md, tex, csv, png) from a folder of study results")
    paper.add_argument("root", type=Path, metavar="RESULTS_ROOT", help="the folder holding one results directory per study (table1_scut_fbp, ..., ablation_schedule, ...)")
    paper.add_argument("--out", type=Path, help="where to write (default RESULTS_ROOT/paper)")
    paper.add_argument("--format", default="md,tex,csv,png", help="comma-separated subset of %(default)s")
    paper.add_argument("--alpha", type=float, default=0.05, help="level of the paired t test that marks a verdict on the paper's ordering significant (default %(default)s)")
    paper.add_argument("--no-cache", action="store_true", help="neither read nor write the snapshot of each study's folds.parquet in <study>/report/.cache")
    paper.set_defaults(run=run_paper)


def run_paper(args: argparse.Namespace) -> int:
    formats = parse_formats(args.format)
    if not 0 < args.alpha < 1:
        raise InputError(f"--alpha must lie in (0, 1), got {args.alpha}")
    write_document(args.root, command_console(), args.out, formats, args.alpha, cache=not args.no_cache)
    return 0


def write_document(root: Path, console, out: Path | None = None, formats=None, alpha: float | None = None, cache: bool = True) -> None:
    """Build the document of `root`, write it into `out` (default ROOT/paper) and say what it holds."""
    from search.paper import ALPHA, FORMATS, build_paper, write_paper
    from search.paper._render import summary

    start = time.perf_counter()
    paper = build_paper(root, alpha=ALPHA if alpha is None else alpha, cache=cache)
    out = out or Path(root) / "paper"
    written = write_paper(paper, out, formats or FORMATS)
    summary(console, paper, written, out)
    console.print(f"paper took {time.perf_counter() - start:.1f} s")

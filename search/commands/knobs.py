"""`fbp-search knobs [FILTER]`: every knob of a trial config, found by its dotted name.

The rows are `fbp.config.knobs()`, read from the schema itself: each field's type, default,
allowed values and docstring. Listing the registered names imports the registries (and torch),
so they are imported when the command runs, not for `--help`.
"""

from __future__ import annotations

import argparse
import json

from fbp.errors import InputError
from search.console import command_console, print_table


def register(commands: argparse._SubParsersAction) -> None:
    knobs = commands.add_parser("knobs", help="list every knob of a trial config: dotted name, type, default, allowed values, what it does")
    knobs.add_argument("filter", nargs="?", default="", metavar="FILTER", help="only the dotted names containing it, e.g. loss. or schedule")
    knobs.set_defaults(run=run_knobs)


def _shown(value) -> str:
    """A default as a study file writes it: names bare, the rest as YAML's flow style reads it."""
    return value if isinstance(value, str) else json.dumps(value)


def run_knobs(args: argparse.Namespace) -> int:
    from rich.table import Table
    from rich.text import Text

    from fbp.config import knobs

    rows = [k for k in knobs() if args.filter in k.path]
    if not rows:
        raise InputError(f"knobs: no dotted name contains {args.filter!r}; `fbp-search knobs` lists them all")
    title = f"{len(rows)} knobs of a trial config" + (f" containing {args.filter!r}" if args.filter else "")
    table = Table(title=Text(title), title_justify="left")
    table.add_column("knob", no_wrap=True)
    table.add_column("type")
    table.add_column("default")
    table.add_column("allowed")
    table.add_column("what it does", ratio=1)
    for k in rows:
        section = k.type == "section"
        cells = (k.path, k.type, "" if section else _shown(k.default), k.allowed, k.doc)  # Text: `tuple[float, float]` is no markup
        table.add_row(*(Text(cell, style="bold" if section and i == 0 else "") for i, cell in enumerate(cells)))
    print_table(command_console(), table)
    return 0

"""The console every command prints to.

On a terminal, rich lays out tables and live panels at the terminal's width, and lines are
soft-wrapped: a path or a command is never broken inside. Without a terminal (a pipe, a log
file, CI, nohup) the output is plain lines no wider than `COLUMNS` (80 when unset), one fact a
line: a table prints a line per row (`loss.alpha · type: float · default: 2.0`), and a status of
several facts wraps at its spaces (`print_lines`). A rich table laid out off a terminal pads
every row to the widest one: 836 columns of spaces for `fbp-search knobs | less`. A line that
is one fact (an error, the closing line of a run) stays whole, so grep finds it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fbp.metrics import METRICS

if TYPE_CHECKING:
    from fbp.records import TrainProgress

CONTINUED = "  "  # a wrapped line's continuation is indented this much more than its first line


# --- progress ----------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    """`1:02:33`: every elapsed and left time a command prints, as rich's bar shows its clock."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def fold_text(fold: int, position: int, total: int) -> str:
    """`fold 2/5`, or `fold 4 (2/5)` where the folds run are not 1..k (data.folds: [2, 4])."""
    return f"fold {position}/{total}" if fold == position else f"fold {fold} ({position}/{total})"


def progress_parts(p: TrainProgress, loss: float | None = None, elapsed: bool = True) -> list[str]:
    """The pieces of a progress line: fold, epoch, (step,) loss, test metrics, images/s, time.
    `loss` stands in for a step event's (the last epoch's mean)."""
    if p.event in ("prepare", "ready"):
        return [p.message]
    parts = [fold_text(p.fold, p.fold_position, p.folds_total), f"epoch {p.epoch}/{p.epochs}"]
    if p.event == "step":
        parts.append(f"step {p.step}/{p.steps}")
    loss = p.loss if p.loss is not None else loss
    if loss is not None:
        parts.append(f"loss {loss:.4f}")
    if p.test:
        parts.append("test " + " ".join(f"{m.label} {p.test[name]:.4f}" for name, m in METRICS.items()))
    if p.images_per_second is not None:
        parts.append(f"{p.images_per_second:.0f} images/s")
    if elapsed:
        parts.append(f"{duration(p.seconds)} elapsed")
    parts.append(f"~{duration(p.seconds_left)} left" if p.seconds_left is not None else "time left: after the first epoch")
    return parts


def progress_line(p: TrainProgress) -> str:
    """One whole line for a log (`fbp-search train` off a terminal, a trial's log):
    `fold 1/5  epoch 3/200  loss 0.4123  ...  ~1:02:33 left`."""
    return "  ".join(progress_parts(p))


# --- the console ---------------------------------------------------------------------------------


def command_console(stderr: bool = False) -> Console:
    # rich takes its width off a terminal from COLUMNS, else 80. No markup: a path or value with
    # [brackets] prints as written; a styled word is a Text (`styled`)
    return Console(highlight=False, soft_wrap=True, stderr=stderr, markup=False)


def styled(label: str, style: str, rest: str) -> Text:
    """`label rest`, the label in `style` (`error:` in bold red), the rest as written."""
    return Text.assemble((label, style), " ", rest)


def wrap(line: str, width: int) -> list[str]:
    """`line` broken at its spaces into lines no wider than `width`, continuations indented; a
    word longer than a line (a path) stays whole on its own line rather than being cut."""
    line = line.rstrip()
    if len(line) <= width:
        return [line]
    lead = line[: len(line) - len(line.lstrip())]
    return textwrap.wrap(line, max(width, len(lead) + len(CONTINUED) + 1), subsequent_indent=lead + CONTINUED, break_long_words=False, break_on_hyphens=False)


def print_lines(console: Console, lines: Iterable[str]) -> None:
    """Lines of plain text (each may hold several, split at newlines); off a terminal each is
    wrapped to the console's width. Text, not markup: a `[0.0, 4.0]` prints as written."""
    for line in (part for text in lines for part in text.split("\n")):
        for piece in (wrap(line, console.width) if not console.is_terminal else [line]):
            console.print(Text(piece))


def table_lines(table: Table, console: Console) -> list[str]:
    """A rich table as plain lines: its title, then a line per row, `first cell · header: cell`
    for every other non-empty cell."""
    def plain(cell) -> str:
        return cell.plain if isinstance(cell, Text) else console.render_str(str(cell)).plain

    headers = [plain(c.header) for c in table.columns]
    columns = [[plain(cell) for cell in c.cells] for c in table.columns]
    lines = [plain(table.title)] if table.title else []
    for row in zip(*columns):
        lines.append(" · ".join([row[0], *(f"{h}: {v}" for h, v in zip(headers[1:], row[1:]) if v.strip())]))
    return lines


def print_table(console: Console, table: Table) -> None:
    """The table itself on a terminal; off one, a plain line per row (`table_lines`)."""
    if console.is_terminal:
        console.print(table)
    else:
        print_lines(console, table_lines(table, console))


def yaml_lines(data, width: int) -> list[str]:
    """`data` as YAML in lines no wider than `width`, except a line that holds one word (a path)
    beside its key: YAML folds long strings itself, validly, but overshoots its `width` by up to
    a word, so the fold width is lowered until every breakable line fits."""
    import yaml

    def fits(line: str) -> bool:
        return len(line) <= width or " " not in line.strip().split(": ", 1)[-1]

    for fold in range(width, max(20, width // 2) - 1, -4):
        lines = yaml.safe_dump(data, sort_keys=False, width=fold).rstrip().splitlines()
        if all(fits(line) for line in lines):
            break
    return lines

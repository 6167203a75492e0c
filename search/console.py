"""The console every command prints to.

Lines are soft-wrapped: a path or a command is never broken inside. Without a terminal (a log
file, CI, nohup) rich would lay tables out at 80 columns and cut them; there they get a width
no row reaches, so every line is whole.
"""

from __future__ import annotations

from rich.console import Console

LOG_WIDTH = 1000  # columns tables are laid out in when the output is no terminal


def command_console(stderr: bool = False) -> Console:
    console = Console(highlight=False, soft_wrap=True, stderr=stderr)
    if not console.is_terminal:
        console.width = LOG_WIDTH
    return console

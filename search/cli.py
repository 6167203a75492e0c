"""`fbp-search`: the command line. A table of commands, each a function of parsed arguments.

Bad input (`fbp.errors.InputError`) ends any command with one line on stderr and exit code 2,
never a traceback. A full disk (`search.results.DiskFull`, or an ENOSPC from anywhere, Tune's
own writes included) ends it with one line naming the file and the space left, and exit code 1:
the work ran and could not finish; `resume` continues it once space is freed.
"""

from __future__ import annotations

import argparse
import sys

from fbp.errors import InputError
from search.commands import dashboard, data, export, knobs, paper, predict, report, study, train, weights
from search.console import command_console, styled

COMMANDS = (study, train, export, predict, report, paper, dashboard, knobs, data, weights)  # the order --help lists them in


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fbp-search", description="Facial beauty prediction studies: ComboLoss, Optuna and Ray Tune.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except InputError as e:
        command_console(stderr=True).print(styled("error:", "bold red", str(e)))
        return 2
    except KeyboardInterrupt:
        command_console(stderr=True).print("interrupted")
        return 130
    except Exception as e:
        from search.results import disk_full_in

        full = disk_full_in(e)
        if full is None:
            raise
        command_console(stderr=True).print(styled("error:", "bold red", str(full)))
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""`fbp-search`: the command line. A table of commands, each a function of parsed arguments.

Bad input (`fbp.errors.InputError`) ends any command with one line on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from fbp.errors import InputError
from search import data_commands, knobs_command, report, study_commands, train_command, weights_command
from search.console import command_console

COMMANDS = {
    "data": data_commands.register,
    "train": train_command.register,
    "study": study_commands.register,
    "report": report.register,
    "weights": weights_command.register,
    "knobs": knobs_command.register,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fbp-search", description="Facial beauty prediction studies: ComboLoss, Optuna and Ray Tune.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS.values():
        register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except InputError as e:
        command_console(stderr=True).print(f"[bold red]error:[/] {e}")
        return 2
    except KeyboardInterrupt:
        command_console(stderr=True).print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())

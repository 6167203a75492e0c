"""The `fbp-search` commands, one module each; `search.cli` lists them.

Each module has `register(commands)`, which adds its subparsers and sets `run` to a function of
the parsed arguments. Nothing heavy is imported at module level: torch, Ray and Optuna load
when a command runs, so `fbp-search --help` is instant.
"""

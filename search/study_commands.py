"""`fbp-search run` and `fbp-search validate`: studies from YAML."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

from fbp.config import apply_overrides, read_yaml
from fbp.errors import InputError
from search.space import describe, to_distributions
from search.spec import StudySpec, load_base, resolved, validate_spec


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run a study: Optuna proposes, Ray Tune trains, Parquet records")
    _common(run)
    run.add_argument("--results", type=Path, help="results directory (default results/<study name>)")
    run.add_argument("--address", help="join a running Ray cluster: auto, or ray://HOST:PORT (default: start a local Ray)")
    run.add_argument("--max-failures", type=int, default=0, help="times Ray retries a failed trial (default %(default)s)")
    run.add_argument(
        "--storage", metavar="PATH_OR_URI",
        help="where Ray Tune keeps trial state and checkpoints; every node must reach it: a shared path or a URI pyarrow opens (s3://, gs://, ...). Default: RESULTS/tune",
    )
    run.set_defaults(run=run_command)

    resume = commands.add_parser("resume", help="continue a stopped study from its results directory")
    resume.add_argument("results", type=Path, help="the study's results directory, e.g. results/quickstart")
    resume.add_argument("--address", help="join a running Ray cluster (default: start a local Ray)")
    resume.add_argument("--max-failures", type=int, default=0, help="times Ray retries a failed trial (default %(default)s)")
    resume.set_defaults(run=resume_command)

    validate = commands.add_parser("validate", help="check a study file and print the resolved study and its space")
    _common(validate)
    validate.set_defaults(run=validate_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", type=Path, help="study YAML, e.g. studies/quickstart.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE", help="override a dotted path of the study, e.g. train.epochs=2 (repeatable)")
    parser.add_argument("--smoke", action="store_true", help="tiny synthetic data and model, 1 epoch, 2 folds, 2 trials: checks the study runs end to end")


def _single(args: argparse.Namespace) -> str:
    return f"{args.study} has no search section: it is one configuration; train it with: fbp-search train {args.study}"


def load(args: argparse.Namespace) -> StudySpec:
    from search.runner import smoke

    raw = read_yaml(args.study)
    if "search" not in raw:  # e.g. studies/paper.yaml; a default search would be a tpe over nothing
        raise InputError(_single(args))
    if args.smoke:
        raw = smoke(raw)
    return validate_spec(apply_overrides(raw, args.overrides), str(args.study))


def validate_command(args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    if "search" not in read_yaml(args.study):  # one configuration: checked as `train` reads it
        config, _ = load_base(args.study, args.overrides)
        console.print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).rstrip())
        console.print(_single(args))
        return 0
    spec = load(args)
    console.print(yaml.safe_dump(resolved(spec), sort_keys=False).rstrip())
    table = Table(title=f"search space of {spec.name}: sampler {spec.search.sampler}, {spec.search.num_trials} trials")
    for column in ("path", "distribution", "when"):
        table.add_column(column)
    for path, distribution in to_distributions(dict(spec.search.space)).items():
        when = spec.search.space[path].when
        table.add_row(path, describe(distribution), ", ".join(f"{k} in {v}" for k, v in when.items()) if when else "")
    console.print(table)
    console.print(f"objective: {', '.join(f'{o.direction} {o.metric}' for o in spec.objectives)}; baseline points: {len(spec.search.baseline)}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    from search.runner import run_study

    spec = load(args)
    results = args.results or Path("results") / (spec.name + ("-smoke" if args.smoke else ""))
    console = Console(highlight=False, soft_wrap=True)
    console.print(f"study {spec.name}: {spec.search.num_trials} trials, sampler {spec.search.sampler}, results in {results}")
    outcome = run_study(spec, str(args.study), results, address=args.address, max_failures=args.max_failures, console=console, storage=args.storage)
    return _closing(outcome, results, console)


def _closing(outcome: dict, results: Path, console: Console) -> int:
    if outcome["interrupted"]:
        console.print(f"interrupted: every completed fold is saved. Continue with: fbp-search resume {results}")
        return 130
    mended = f"; {outcome['retrained']} folds whose rows were missing trained again" if outcome.get("retrained") else ""
    console.print(f"finished: {outcome['trials']} trials, {outcome['errors']} failed{mended}. Next: fbp-search report {results}")
    return 0


def resume_command(args: argparse.Namespace) -> int:
    from search.runner import resume_study

    console = Console(highlight=False, soft_wrap=True)
    console.print(f"resuming the study in {args.results}")
    return _closing(resume_study(args.results, address=args.address, max_failures=args.max_failures, console=console), args.results, console)

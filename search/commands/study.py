"""`fbp-search run` and `fbp-search validate`: studies from YAML."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from search.console import command_console, print_lines, print_table, yaml_lines

if TYPE_CHECKING:  # the schema, Optuna and Ray are imported when a command runs, not for --help
    from search.spec import StudySpec

TRACKERS = ("mlflow", "wandb", "tensorboard")
"""--track's choices: search.spec.Tracking's fields (a test holds them equal), spelled here so --help imports no schema."""


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run a study: Optuna proposes, Ray Tune trains, Parquet records")
    _common(run)
    run.add_argument("--results", type=Path, help="results directory (default results/<study name>)")
    run.add_argument("--address", help="join a running Ray cluster: auto, or ray://HOST:PORT (default: start a local Ray)")
    run.add_argument("--max-failures", type=int, default=0, help="times Ray retries a failed trial (default %(default)s)")
    _ray_dashboard(run)
    run.add_argument(
        "--storage", metavar="PATH_OR_URI",
        help="where Ray Tune keeps trial state and checkpoints; every node must reach it: a shared path or a URI pyarrow opens (s3://, gs://, ...). Default: RESULTS/tune",
    )
    run.set_defaults(run=run_command)

    run.add_argument("--track", action="append", default=[], choices=TRACKERS, help="log every trial to this tracker too (repeatable; RESULTS/tracking)")
    resume = commands.add_parser("resume", help="continue a stopped study from its results directory")
    resume.add_argument("--track", action="append", default=[], choices=TRACKERS, help="log every trial to this tracker too, from now on (repeatable)")
    resume.add_argument("results", type=Path, help="the study's results directory, e.g. results/quickstart")
    resume.add_argument("--address", help="join a running Ray cluster (default: start a local Ray)")
    resume.add_argument("--max-failures", type=int, default=0, help="times Ray retries a failed trial (default %(default)s)")
    _ray_dashboard(resume)
    resume.set_defaults(run=resume_command)

    validate = commands.add_parser("validate", help="check a study file as run would (data, weights, backbone, device), print the resolved study and its space")
    _common(validate)
    validate.add_argument("--offline", action="store_true", help="skip the checks that need the dataset or the network")
    validate.set_defaults(run=validate_command)


def _ray_dashboard(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray-dashboard", action="store_true", help='turn on the dashboard of the local Ray the command starts, on 127.0.0.1, and print its URL (needs pip install "ray[default]")')


SMOKE = {
    "data.dataset": "synthetic", "data.root": None, "data.protocol": "5fold", "data.image_size": 32, "data.resize": None, "data.folds": [1, 2],
    "model.backbone": "test_resnet", "model.pretrained": False,
    "train.epochs": 1, "train.batch_size": 16, "train.device": "cpu", "train.compile": "off", "eval.batch_size": 64,
    "search.num_trials": 2, "resources.cpu": 1, "resources.gpu": 0, "resources.max_concurrent": 2,
}
"""--smoke (`smoke_sized`): dotted paths set before the user's --set, as --set would set them; data.options
is `fbp.data.synthetic.SMALL`."""


def smoke_sized(raw: dict) -> dict:
    """A small synthetic dataset, a tiny backbone, 1 epoch, 2 folds, 2 trials (one trial for a
    study without a space: one configuration)."""
    from fbp.config import set_path
    from fbp.data.synthetic import SMALL

    out = copy.deepcopy(raw)
    for path, value in {**SMOKE, "data.options": dict(SMALL)}.items():
        set_path(out, path, value)
    if not (raw.get("search") or {}).get("space"):
        set_path(out, "search.num_trials", 1)
    return out


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("studies", type=Path, nargs="+", metavar="STUDY", help="study YAML files, or directories of them (every *.yaml below), e.g. studies/quickstart.yaml or studies/paper/")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE", help="override a dotted path of every study, e.g. train.epochs=2 (repeatable)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_true", help="tiny synthetic data and model, 1 epoch, 2 folds, 2 trials: checks the study runs end to end")
    size.add_argument(
        "--rehearsal", action="store_true",
        help="every fold, grid cell and row as written, on drawn faces in each study's dataset layout with a small model for 2 epochs (search.rehearsal); "
        "run writes into results/<folder>-rehearsal and then the paper document",
    )


def study_files(paths: list[Path]) -> list[Path]:
    """The study files the arguments name: files as given, directories by their *.yaml files."""
    from fbp.errors import InputError

    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.rglob("*.yaml"))
            if not found:
                raise InputError(f"{path}: a directory with no study file (*.yaml) in it")
            files += found
        else:
            files.append(path)  # read_yaml names a missing one
    return files


def load(path: Path, args: argparse.Namespace) -> StudySpec:
    from fbp.config import read_yaml

    return prepare(read_yaml(path), str(path), args.overrides, smoke=args.smoke, rehearsal=args.rehearsal)


def prepare(raw: dict, source: str, overrides: list[str] = (), smoke: bool = False, rehearsal: bool = False) -> StudySpec:
    """A study as a command runs it: `raw` (a study file's contents; `source` names it in
    errors) made small by --smoke or --rehearsal, then the --set `overrides`, validated, its
    relative paths made absolute."""
    from fbp.config import apply_overrides
    from search.spec import validate_spec, with_absolute_paths

    if smoke:
        raw = smoke_sized(raw)
    if rehearsal:
        from search.rehearsal import rehearse

        raw = rehearse(raw, source)
    spec = validate_spec(apply_overrides(raw, list(overrides)), source)
    # relative paths mean the directory the command runs from; trials run elsewhere
    return with_absolute_paths(spec, Path.cwd())


def default_results(name: str, smoke: bool = False) -> Path:
    """Where a study writes without --results: results/<name>, or results/<name>-smoke."""
    return Path("results") / (name + ("-smoke" if smoke else ""))


def validate_command(args: argparse.Namespace) -> int:
    for path in study_files(args.studies):
        _validate(path, args)
    return 0


def _validate(path: Path, args: argparse.Namespace) -> None:
    from rich.table import Table
    from rich.text import Text

    from search.preflight import preflight
    from search.space import SearchSpace, describe
    from search.spec import resolved

    spec = load(path, args)
    preflight(spec, str(path), offline=args.offline)
    console = command_console()
    # YAML, folded validly within the width; a path longer than a line stays beside its key
    for line in yaml_lines(resolved(spec), console.width):
        console.print(Text(line))
    if not spec.search.space:
        # a command on a line of its own, whole: it is copied, not read
        console.print("one configuration, no search. Train it here with:")
        console.print(Text(f"  fbp-search train {path}"))
        console.print("or as one trial on Ray with:")
        console.print(Text(f"  fbp-search run {path}"))
        return
    table = Table(title=f"search space of {spec.name}: sampler {spec.search.sampler}, {spec.search.num_trials} trials")
    for column in ("path", "distribution", "when"):
        table.add_column(column)
    space = SearchSpace.of(spec)
    for dotted, distribution in space.distributions.items():
        when = space.conditions.get(dotted, {})
        table.add_row(dotted, describe(distribution), ", ".join(f"{k} in {v}" for k, v in when.items()))
    print_table(console, table)
    print_lines(console, [f"objective: {', '.join(f'{o.direction} {o.metric} on {o.on}' for o in spec.objectives)}", f"baseline points: {len(spec.search.baseline)}"])


def run_command(args: argparse.Namespace) -> int:
    """One study file: that study. A directory or several files: a set, run together (search.studyset).
    A rehearsal then writes the paper document of its results root."""
    from fbp.errors import InputError
    from search import rehearsal

    files = study_files(args.studies)
    console = command_console()
    suffix = "-smoke" if args.smoke else "-rehearsal" if args.rehearsal else ""
    if len(files) == 1 and not args.studies[0].is_dir():
        from search.runner import run_study

        spec = load(files[0], args)
        if args.results is not None:
            results = args.results
        elif args.rehearsal:  # beside the other studies of its folder's rehearsal, where `fbp-search paper` finds them all
            results = Path("results") / (files[0].resolve().parent.name + suffix) / spec.name
        else:
            results = default_results(spec.name, args.smoke)
        root = results.parent
        rehearsal.check_root(root, args.rehearsal)
        if args.rehearsal:
            rehearsal.write_record(root)
        outcome = run_study(spec, str(files[0]), results, address=args.address, max_failures=args.max_failures, console=console, storage=args.storage,
                            ray_dashboard=args.ray_dashboard, track=tuple(args.track))
        code = _closing(outcome, results, console)
        return _rehearsal_paper(root, [spec.name], code, console) if args.rehearsal else code
    from search.runner import run_set

    if args.results is None and not (len(args.studies) == 1 and args.studies[0].is_dir()):
        raise InputError("--results: several study files run as one set need a results root; each study writes RESULTS/<study name>")
    root = args.results or Path("results") / (args.studies[0].resolve().name + suffix)
    studies = [(load(path, args), str(path)) for path in files]
    rehearsal.check_root(root, args.rehearsal)
    if args.rehearsal:
        rehearsal.write_record(root)
    code = _closing_set(run_set(studies, root, address=args.address, max_failures=args.max_failures, console=console, storage=args.storage,
                                ray_dashboard=args.ray_dashboard, track=tuple(args.track)), root, console)
    return _rehearsal_paper(root, [spec.name for spec, _ in studies], code, console) if args.rehearsal else code


def _rehearsal_paper(root: Path, names: list[str], code: int, console: Console) -> int:
    """After a rehearsal that was not interrupted: the paper document of its root, when it ran
    one of the paper's studies. The exit code stays the run's."""
    from search.commands.paper import write_document
    from search.paper import STUDIES

    if code == 130 or not set(names) & set(STUDIES):
        return code
    console.print(f"the rehearsal's paper document: fbp-search paper {root}")
    write_document(root, console)
    return code


def _closing(outcome: dict, results: Path, console: Console) -> int:
    """The closing lines; exit code 130 when interrupted, 1 when no trial completed, else 0."""
    from search.outcome import closing_lines, exit_code
    from search.results import ResultsDir

    if outcome["interrupted"]:
        console.print(f"interrupted: every completed fold is saved. Continue with: fbp-search resume {results}")
        return exit_code(outcome["study"], True)
    if outcome.get("retrained"):
        console.print(f"{outcome['retrained']} folds whose rows were missing trained again")
    for line in closing_lines(outcome["study"], ResultsDir(results), outcome["metric"]):
        console.print(line)
    return exit_code(outcome["study"], False)


def _closing_set(outcome: dict, root: Path, console: Console) -> int:
    """Each study's closing lines under its name; exit code 1 when a study completed no trial."""
    from search.outcome import closing_lines

    if outcome["interrupted"]:
        console.print(f"interrupted: every completed fold is saved. Continue with: fbp-search resume {root}")
        return 130
    if outcome.get("retrained"):
        console.print(f"{outcome['retrained']} folds whose rows were missing trained again")
    empty = []
    for name, own in outcome["studies"].items():
        for line in closing_lines(own["study"], own["results"], own["metric"]):
            console.print(f"{name}: {line}")
        if not own["study"].complete:
            empty.append(name)
    if empty:
        console.print(f"{len(empty)} of {len(outcome['studies'])} studies completed no trial: {', '.join(empty)}")
        return 1
    console.print(f"all {len(outcome['studies'])} studies finished. Next: fbp-search paper {root}, or fbp-search report {root}/<study>")
    return 0


def resume_command(args: argparse.Namespace) -> int:
    from search.runner import resume_set, resume_study
    from search.studyset import SET

    console = command_console()
    if (args.results / SET).is_file():
        console.print(f"resuming the set of studies in {args.results}")
        return _closing_set(resume_set(args.results, address=args.address, max_failures=args.max_failures, console=console, ray_dashboard=args.ray_dashboard), args.results, console)
    console.print(f"resuming the study in {args.results}")
    return _closing(resume_study(args.results, address=args.address, max_failures=args.max_failures, console=console, ray_dashboard=args.ray_dashboard,
                                 track=tuple(args.track)), args.results, console)

"""The Python API beside the command line: run a study, resume it, read its results.

    from search import load_results, run_study

    run = run_study("studies/quickstart.yaml", smoke=True)    # as `fbp-search run ... --smoke`
    run.exit_code, run.best.params, run.best.metrics["pc"]
    results = load_results("results/quickstart-smoke")        # pandas and pyarrow: no torch, no Ray
    results.folds.groupby("trial_id")["pc"].mean()

`run_study` and `resume_study` drive a study exactly as `fbp-search run` and `resume` do (the
same checks, the lock, Ray, the Parquet tables, the live progress on the console) and return
what the command's last lines say as typed values, `StudyRun`. `load_results` reads any results
directory, while its study runs or after, into a `StudyResults`. Neither this module nor
`load_results` imports torch or Ray; running a study does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from search.outcome import DistinctError, Outcome, exit_code, outcome_of
from search.results import ResultsDir, expected_folds

if TYPE_CHECKING:
    from ray.tune import Callback
    from rich.console import Console

    from search.spec import StudySpec

__all__ = ["BestTrial", "StudyPaths", "StudyResults", "StudyRun", "load_results", "resume_study", "run_study"]


@dataclass(frozen=True)
class StudyPaths:
    """Where a study's files are (`search.results.ResultsDir` owns the layout)."""

    results: Path
    """The results directory."""
    journal: Path
    """The Optuna journal (`fbp-search dashboard` serves it; `optuna.load_study` opens it)."""
    models: Path
    """The kept fold models of the best trials, one folder per trial."""
    logs: Path
    """One log per trial: its epochs, and its traceback if it failed."""

    @classmethod
    def of(cls, results: Path) -> StudyPaths:
        directory = ResultsDir(results)
        return cls(directory.path, directory / directory.JOURNAL, directory / directory.MODELS, directory / directory.LOGS)

    def log(self, trial_id: str) -> Path:
        """A trial's log."""
        return ResultsDir(self.results).log(trial_id)

    def model_dir(self, trial_id: str) -> Path:
        """A trial's kept fold models (exists for the best `search.keep_models` trials)."""
        return ResultsDir(self.results).model_dir(trial_id)


@dataclass(frozen=True)
class BestTrial:
    """The best complete trial by the study's (first) objective."""

    trial_id: str
    """Its id: the `trial_id` of its rows, the `tune_trial_id` of its Optuna trial."""
    objective: str
    """The column it was chosen by: `pc` (the test folds) or `val_pc` (the validation parts)."""
    value: float
    """Its objective: the mean of `objective` over its folds (and seeds)."""
    params: dict[str, Any]
    """The searched knobs it ran with, by dotted path (empty for a study without a space)."""
    metrics: dict[str, float]
    """Each metric's mean over its folds (and seeds): `mae`, `rmse`, `pc` on the test folds, and
    `val_mae` ... on the validation parts where the study held them out."""
    kept: bool
    """Its fold models are in `StudyPaths.model_dir(trial_id)` (fbp-search export reads them)."""


@dataclass(frozen=True, eq=False)
class StudyResults:
    """A results directory read: the study, its trials and its tables as pandas frames."""

    name: str
    """The study's name."""
    spec: StudySpec | None
    """The resolved study of study.yaml (None for a directory without one)."""
    paths: StudyPaths
    folds: pd.DataFrame
    """One row per (trial_id, fold, seed): status, error, metrics, timing, `param.<path>`."""
    statuses: pd.Series
    """trial_id -> COMPLETE, PRUNED, FAIL or INCOMPLETE (started, neither finished nor marked)."""
    errors: list[DistinctError]
    """The failed trials' distinct error lines, most common first."""
    best: BestTrial | None
    """None until a trial completes with a finite objective."""
    outcome: Outcome = field(repr=False)
    """The counts the command line's last line gives."""

    @cached_property
    def epochs(self) -> pd.DataFrame:
        """One row per (trial_id, fold, seed, epoch): the loss terms, the LR, the test metrics.
        Read on first use; `table("epochs", trials)` reads a few trials' rows of a large study."""
        return self.table("epochs")

    @cached_property
    def predictions(self) -> pd.DataFrame:
        """One row per (trial_id, fold, seed, image): out-of-fold predictions. Read on first use
        (the largest table: `table("predictions", trials)` for a few trials)."""
        return self.table("predictions")

    def table(self, name: str, trials: set[str] | None = None) -> pd.DataFrame:
        """A table's rows (`folds`, `epochs` or `predictions`), of `trials` alone if given (the
        other trials' part files are not opened).

        Raises:
            fbp.errors.InputError: a part file is damaged (it names the file).
        """
        return ResultsDir(self.paths.results).read(name, trials=trials)


@dataclass(frozen=True, eq=False)
class StudyRun(StudyResults):
    """A study run or resumed here: its results, and how the run ended."""

    exit_code: int = 0
    """What `fbp-search run` would exit with: 0 a trial completed, 1 none did, 130 interrupted."""
    interrupted: bool = False
    """Ctrl-C stopped it; `resume_study(paths.results)` continues it."""
    retrained: int = 0
    """Folds whose rows were lost and that a resume trained again."""


def load_results(results: str | Path) -> StudyResults:
    """Read a results directory (of `fbp-search run`, `train`, or this module) into frames.

    It works while a study runs: each part file appears whole. Without the dataset at hand, a
    study whose `data.folds` is not listed counts a trial complete when it has as many complete
    folds as the trial with the most (as `fbp-search report` does).

    Args:
        results: The results directory, e.g. ``results/quickstart``.

    Returns:
        A :class:`StudyResults`: the study, its folds frame, each trial's status, the best trial
        with its params and metrics, the paths; `epochs` and `predictions` read on first use.

    Raises:
        fbp.errors.InputError: ``results`` is missing, not a directory, not a results directory,
            or holds an unreadable study.yaml or a damaged part file.
    """
    from search.report._build import objective_split
    from search.report._io import load_study

    study = load_study(Path(results))  # names what is wrong with the directory; no torch
    folds = ResultsDir(study.results).read("folds")
    objective_split(study, folds, [])  # rows older than objective.on: ranked by the test metric, as the report ranks them
    return _results(study.results, study.name, study.spec, folds, expected_folds(study.config, folds), study.key)


def run_study(study: str | Path | dict | StudySpec, *, results: str | Path | None = None, overrides: Sequence[str] = (), smoke: bool = False,
              callbacks: Sequence[Callback] = (), address: str | None = None, max_failures: int = 0, storage: str | None = None,
              ray_dashboard: bool = False, track: Sequence[str] = (), console: Console | None = None) -> StudyRun:
    """Run a study to its end, as ``fbp-search run STUDY`` does.

    The study is checked first (its schema, its dataset, each backbone and its weights); a study
    that fails a check raises before anything is written. Ctrl-C stops it cleanly: the returned
    run says ``interrupted`` and :func:`resume_study` continues it.

    Args:
        study: A study file's path, its contents as a dict, or a validated
            :class:`search.spec.StudySpec`.
        results: The results directory (new, or empty). Default ``results/<study name>``, with
            ``-smoke`` appended under ``smoke``.
        overrides: ``PATH=VALUE`` strings, as ``--set`` takes them (``"train.epochs=2"``).
        smoke: Tiny synthetic data and model, 1 epoch, 2 folds, 2 trials, as ``--smoke``.
        callbacks: Ray Tune callbacks (:class:`ray.tune.Callback`), called on this process
            after the study's own: when one hears of a fold, its rows and model are on disk.
            Not pickled: they need not survive a restart, and :func:`resume_study` takes its own.
        address: A Ray cluster to join (``"auto"``, ``"ray://HOST:PORT"``); default: a local Ray.
        max_failures: Times Ray retries a failed trial.
        storage: Where Tune keeps its state and checkpoints (a shared path or a URI pyarrow
            opens); default ``RESULTS/tune``.
        ray_dashboard: Turn on the local Ray's dashboard, on 127.0.0.1 (needs ``ray[default]``).
        track: Experiment trackers to log every trial to beside the study's own ``tracking:``
            (``"mlflow"``, ``"wandb"``, ``"tensorboard"``; :mod:`search.tracking`).
        console: The :class:`rich.console.Console` for the progress and the closing lines;
            default standard output (``Console(quiet=True)`` for none).

    Returns:
        A :class:`StudyRun`: the best trial with its params and metrics, the folds frame, the
        paths, the exit code the command line would give.

    Raises:
        fbp.errors.InputError: A bad study, a check it fails, a results directory that holds
            another study (or this one: resume it), a cluster that does not answer.
        search.results.DiskFull: The disk filled while it ran (resume it once space is freed).
    """
    from fbp.config import read_yaml
    from search.commands.study import default_results, prepare
    from search.console import command_console
    from search.runner import run_study as drive
    from search.spec import StudySpec, resolved

    if isinstance(study, StudySpec):
        raw, source = resolved(study), f"<StudySpec {study.name}>"
    elif isinstance(study, dict):
        raw, source = study, "<dict>"
    else:
        raw, source = read_yaml(Path(study)), str(study)
    spec = prepare(raw, source, list(overrides), smoke=smoke)
    folder = Path(results) if results is not None else default_results(spec.name, smoke)
    console = console or command_console()
    outcome = drive(spec, source, folder, address=address, max_failures=max_failures, console=console, storage=storage,
                    ray_dashboard=ray_dashboard, callbacks=list(callbacks), track=tuple(track))
    return _run(folder, spec, outcome, console)


def resume_study(results: str | Path, *, callbacks: Sequence[Callback] = (), address: str | None = None, max_failures: int = 0,
                 ray_dashboard: bool = False, track: Sequence[str] = (), console: Console | None = None) -> StudyRun:
    """Continue a study whose driver stopped, as ``fbp-search resume RESULTS`` does: finished
    folds stay, running trials continue at their next fold, lost rows are trained again.

    Args:
        results: The study's results directory (a set of studies: ``fbp-search resume``).
        callbacks: Ray Tune callbacks, as for :func:`run_study`. They are called for a study
            started by this version of fbp-search, whichever way it was started.
        address: A Ray cluster to join; default: a local Ray.
        max_failures: Times Ray retries a failed trial.
        ray_dashboard: Turn on the local Ray's dashboard, on 127.0.0.1.
        track: Trackers to add, from now on, to those the study logs to.
        console: As for :func:`run_study`.

    Returns:
        A :class:`StudyRun`, with the folds it trained again in ``retrained``.

    Raises:
        fbp.errors.InputError: Not a results directory, a study.yaml edited or written by a
            version that resolves it otherwise, a check the study fails now, another driver
            using the directory.
        search.results.DiskFull: The disk filled while it ran.
    """
    from search.console import command_console
    from search.runner import resume_study as drive

    folder = Path(results)
    console = console or command_console()
    outcome = drive(folder, address=address, max_failures=max_failures, console=console, ray_dashboard=ray_dashboard, callbacks=list(callbacks), track=tuple(track))
    return _run(folder, ResultsDir(folder).load_spec()[0], outcome, console)


def _run(folder: Path, spec: StudySpec, outcome: dict, console: Console) -> StudyRun:
    """The runner's outcome as a StudyRun: its rows read again, counted with the folds the
    driver knows exactly (not inferred from the rows, as `load_results` must). The command
    line's closing lines go to the console."""
    from rich.text import Text

    from search.outcome import closing_lines

    read = _results(folder, spec.name, spec, ResultsDir(folder).read("folds"), outcome["num_folds"], outcome["metric"])
    values = {f: getattr(read, f) for f in read.__dataclass_fields__}
    code = exit_code(read.outcome, outcome["interrupted"])
    if outcome["interrupted"]:
        lines = [f"interrupted: every completed fold is saved. Continue with: resume_study({str(folder)!r})"]
    else:
        lines = closing_lines(read.outcome, ResultsDir(folder), outcome["metric"])
    for line in lines:
        console.print(Text(line))
    return StudyRun(**values, exit_code=code, interrupted=outcome["interrupted"], retrained=outcome.get("retrained", 0))


def _results(folder: Path, name: str, spec: StudySpec | None, folds: pd.DataFrame, num_folds: int, key: str) -> StudyResults:
    """`key`: the objective's column (`pc`, `val_pc`)."""
    from search.results import trial_status

    paths = StudyPaths.of(folder)
    outcome = outcome_of(folds, num_folds, key)
    return StudyResults(name=name, spec=spec, paths=paths, folds=folds, statuses=trial_status(folds, num_folds), errors=outcome.errors,
                        best=_best(outcome, folds, key, paths), outcome=outcome)


def _best(outcome: Outcome, folds: pd.DataFrame, key: str, paths: StudyPaths) -> BestTrial | None:
    from fbp.metrics import REPORTED

    if outcome.best is None:
        return None
    trial_id, value, params = outcome.best
    rows = folds[(folds["trial_id"] == trial_id) & (folds["status"] == "COMPLETE")]
    metrics = {m: float(rows[m].mean()) for m in REPORTED if m in rows and rows[m].notna().any()}
    return BestTrial(trial_id, key, value, params, metrics, paths.model_dir(trial_id).is_dir())

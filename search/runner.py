"""`fbp-search run` and `resume`: a study, start to end.

    run:    paths made absolute -> preflight (nothing written if it fails) -> the results
            directory locked -> Ray -> the directory claimed -> the Tuner (search.tuner) runs
            every trial -> the outcome
    resume: the study from its results directory -> preflight -> the directory locked -> Ray ->
            the Tuner restored from its state -> folds whose rows were lost, and trials Tune
            lost, trained again (search.repair) -> the outcome

The lock (search.lock) is held until the driver ends: a second driver into the same directory
is refused. Taking it, a driver ends what a killed driver's local Ray left running there.

While Tune runs, Ctrl-C stops it gracefully, Tune's own log lines go to RESULTS/logs/tune.log,
and the study's progress board (search.board) collects the trials' epochs.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.text import Text

from fbp.errors import InputError
from search import tracking
from search.board import board_name, close_board, open_board
from search.cluster import dashboard_line, start_ray
from search.console import command_console
from search.lock import DRIVER_FILES, hold
from search.outcome import study_outcome
from search.preflight import preflight
from search.processes import end_recorded
from search.rebuild import mend
from search.results import ResultsDir, spec_hash
from search.spec import StudySpec, resolved, with_absolute_paths

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # our Parquet is the record
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Tune keeps every fold's checkpoint (tuner.py says why) and by default each with its report's
# metrics, ~30 values, in memory and in every state snapshot; resume reads a checkpoint's
# folds from the checkpoint itself, so the copies are kept without their metrics
os.environ.setdefault("TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE", "1")


def run_study(spec: StudySpec, source: str, results: Path, address: str | None = None, resume: bool = False, max_failures: int = 0,
              console: Console | None = None, storage: str | None = None, run_folds: str | None = None, ray_dashboard: bool = False,
              callbacks: list | None = None, track: tuple[str, ...] = ()) -> dict:
    """`run_folds`: what trains a trial's folds (`search.trainable.StudyContext.run_folds`);
    by default fbp.kfold's training. `ray_dashboard`: the local Ray's dashboard on, on
    127.0.0.1 (search.cluster.init_options), its URL printed. `callbacks`: Tune callbacks
    called after the study's own (search.callbacks.CallerCallbacks). `track`: trackers to log
    to beside the study's own `tracking:` (search.tracking)."""
    import optuna

    from search.trainable import StudyContext
    from search.tuner import build_tuner

    console = console or command_console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = ResultsDir(results)
    spec = with_absolute_paths(spec, Path.cwd())  # trials run elsewhere: they get the paths the user meant
    study = resolved(spec)
    study["spec_hash"] = digest = spec_hash(study)
    results.check(digest, resume)
    fold_numbers = preflight(spec, source, results=results.path)
    tracking.check_available([*spec.tracking.options(), *track])
    location = results.tune_location(storage, f"{spec.name}-{digest}")
    with _driving([results.path], console):
        results.check(digest, resume)  # again, locked: a driver that held the lock may have claimed it since
        with _undone_unless_a_fold_lands(results.path, [results], fresh=not resume):
            _ray(address, spec, results.path, ray_dashboard, console)  # before the claim: a study the cluster cannot run writes nothing
            results.claim(study)
            tracking.track(results.path, spec, track, extend=resume)
            results.record_tune_location(*location)
            console.print(f"study {spec.name}: {spec.search.num_trials} trials of {len(fold_numbers)} folds, sampler {spec.search.sampler}, results in {results.path}")

            context = StudyContext(spec.name, digest, str(results.path.resolve()), board_name(digest), run_folds)
            tuner, progress = build_tuner(spec, ResultsDir(results.path.resolve()), context, fold_numbers, location, console, max_failures)
            grid, interrupted = _fit(tuner, results, context, spec, callbacks)
        return _finish(grid, results, spec, interrupted, len(fold_numbers), progress.max_running)


@contextmanager
def _undone_unless_a_fold_lands(folder: Path, studies: list[ResultsDir], fresh: bool):
    """A new study (or set, under `folder`) that raises before any of its `studies` wrote a
    fold leaves no results directory.

    What it would leave (study.yaml, a journal of asked trials, Tune's half-pickled state)
    holds no training, yet `run` would refuse the directory as taken and `resume` could not
    read it. `fresh`: this run made the directory (check() accepted it new or empty); a
    resumed study's directory is never removed. Ctrl-C and SIGKILL are not undone: those
    stop a study that `resume` continues."""
    try:
        yield
    except Exception:
        if fresh and not any(study.parts("folds") for study in studies):
            # emptied of all but the lock's files: the lock (search.lock.hold) removes those, and
            # the folder itself if it made it; one the user gave stays, empty
            for child in folder.iterdir():
                if child.name not in DRIVER_FILES:
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() and not child.is_symlink() else child.unlink(missing_ok=True)
        raise


def resume_study(results: Path, address: str | None = None, max_failures: int = 0, console: Console | None = None,
                 run_folds: str | None = None, ray_dashboard: bool = False, callbacks: list | None = None, track: tuple[str, ...] = ()) -> dict:
    """Continue a study whose driver stopped: finished folds stay, running trials continue at
    their next fold, the sampler goes on until `num_trials`. `run_folds`, `ray_dashboard` and
    `callbacks` as for `run_study`; `track` adds trackers to those the study logs to."""
    from ray import tune

    from search.repair import repair
    from search.trainable import StudyContext
    from search.tuner import restore_tuner

    console = console or command_console()
    results = ResultsDir(results)
    spec, digest = results.load_spec()
    source = str(results / results.STUDY)
    with _driving([results.path], console):
        if not tune.Tuner.can_restore(results.tune_state()):  # it stopped before Tune saved anything
            return run_study(spec, source, results.path, address, resume=True, max_failures=max_failures, console=console, storage=results.tune_storage(),
                             run_folds=run_folds, ray_dashboard=ray_dashboard, callbacks=callbacks, track=track)
        fold_numbers = preflight(spec, source, results=results.path)
        tracking.track(results.path, spec, track, extend=True)
        for line in mend(results, spec, fold_numbers):  # Parquet is the record: a damaged journal or folds part is rebuilt from it
            console.print(line)
        _ray(address, spec, results.path, ray_dashboard, console)
        context = StudyContext(spec.name, digest, str(results.path.resolve()), board_name(digest), run_folds)
        grid, interrupted = _fit(restore_tuner(spec, results, context), results, context, spec, callbacks)
        if interrupted:
            return _finish(grid, results, spec, True, len(fold_numbers))
        retrained = repair(grid, results, spec, context, fold_numbers)
        if retrained:
            tracking.catch_up(results.path, spec.name)  # folds trained outside Tune's run, which its Tracker never saw
        return {**_finish(grid, results, spec, False, len(fold_numbers)), "retrained": retrained}


def _ray(address: str | None, spec: StudySpec, record: Path, dashboard: bool, console: Console) -> None:
    """Ray for the study (search.cluster.start_ray), and the address of its dashboard when one
    was asked for."""
    if (url := start_ray(address, spec, record=record, dashboard=dashboard)) is not None:
        console.print(Text(dashboard_line(url)))


@contextmanager
def _driving(folders: list[Path], console: Console):
    """This driver's hold on `folders` (search.lock), taken in one order (a set's root, then
    its studies) and kept for the block; what a killed driver's local Ray left running in them
    is ended first, and said in one line."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        for folder in folders:
            stack.enter_context(hold(folder))
        for folder in folders:
            if ended := end_recorded(folder):
                console.print(f"ended {ended} processes that a killed driver's local Ray left running ({folder})")
        yield


def _fit(tuner, results: ResultsDir, context, spec: StudySpec, callbacks: list | None = None) -> tuple:
    """Tune's run, with Ctrl-C, its log, the progress board and a caller's callbacks around it:
    (grid, interrupted)."""
    from search.callbacks import caller_callbacks

    with _ctrl_c() as interrupted, _tune_logs(results), _board(context.board), _staged(spec), caller_callbacks(results, callbacks):
        grid = tuner.fit()
    return grid, interrupted.is_set()


MAX_STAGED = 32


def staged_trials(spec: StudySpec) -> int | None:
    """How many trials Tune may start at once, for a study whose trials at once the cluster's
    resources decide (`resources.max_concurrent: 0`); None for one that sets max_concurrent.

    Tune starts a trial (a placement group, then a worker) only while fewer than this many wait
    to start, and by default for a searcher like ours that is one: a cluster of 256 GPUs would
    fill one trial start (seconds each) at a time, and a trial that ends would find no trial
    waiting to reuse its worker. As many as the cluster holds, at most MAX_STAGED (each is an
    Optuna ask made before it runs), overlap the starts and keep a trial waiting for each worker
    that frees up. With max_concurrent, Tune's own limit already allows that many."""
    import ray

    if spec.resources.max_concurrent:
        return None
    total = ray.cluster_resources()
    fits = [total.get(name, 0) / need for name, need in (("CPU", spec.resources.cpu), ("GPU", spec.resources.gpu)) if need]
    return max(1, min(MAX_STAGED, int(min(fits)) if fits else 1))


@contextmanager
def _staged(spec: StudySpec):
    """TUNE_MAX_PENDING_TRIALS_PG (Tune reads it when its run starts) at `staged_trials`, unless
    the user set it."""
    n = staged_trials(spec)
    if n is None or "TUNE_MAX_PENDING_TRIALS_PG" in os.environ:
        yield
        return
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(n)
    try:
        yield
    finally:
        os.environ.pop("TUNE_MAX_PENDING_TRIALS_PG", None)


def _finish(grid, results: ResultsDir, spec: StudySpec, interrupted: bool, num_folds: int, max_running: int = 0) -> dict:
    """After Tune. Interrupted (Ctrl-C): the unfinished trials resume later. Finished: no Optuna
    trial may stay RUNNING (a killed driver leaves some behind), so fail those, compact the
    folds table, and keep only the best trials' models (search.keep: what a killed driver or an
    unfinished trial left goes). `study` is what the rows on disk say: trials by status, errors,
    the best."""
    metric = spec.objectives[0].key
    outcome = {"trials": len(grid), "errors": grid.num_errors, "max_running": max_running, "interrupted": interrupted, "orphans_failed": 0, "metric": metric,
               "num_folds": num_folds}
    if not interrupted:
        outcome["orphans_failed"] = _close(results, spec, num_folds)
    return {**outcome, "study": study_outcome(results, num_folds, metric)}


def _close(results: ResultsDir, spec: StudySpec, num_folds: int) -> int:
    """A finished study's last steps, alone or in a set: its Optuna trials left RUNNING failed,
    its folds table compacted, its models settled. Returns how many trials it failed."""
    import optuna

    from search.keep import settle

    study = optuna.load_study(study_name=spec.name, storage=results.journal())
    orphans = [t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))]
    for number in orphans:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    # one folds part instead of one per fold: the report opens it in milliseconds. The other
    # tables keep their per-(trial, fold) parts, which the report opens only for the trials it shows.
    results.compact("folds")
    settle(results, spec, num_folds)
    return len(orphans)


@contextmanager
def _ctrl_c():
    """Ctrl-C asks Tune to stop gracefully (its SIGUSR1 path: trials stop, state is saved) and
    remembers that it did; a second Ctrl-C stops at once."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"

    def on_sigint(signum, frame):
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _tune_logs(results: ResultsDir):
    """Tune's own log lines (a traceback per failed trial among them) go to RESULTS/logs/tune.log,
    not the console: the console gets one line per distinct error, each trial's traceback is in
    its own log (search.callbacks.ParquetWriter writes it)."""
    (results / results.LOGS).mkdir(exist_ok=True)
    handler = _QuietFileHandler(results / results.LOGS / "tune.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in ("ray.tune", "ray.train", "ray.air")]
    propagate = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, before in zip(loggers, propagate):
            logger.removeHandler(handler)
            logger.propagate = before
        handler.close()


class _QuietFileHandler(logging.FileHandler):
    """A log file that a full disk silences instead of printing a traceback to the console for
    every line it could not write (Python's `--- Logging error ---`): the study's own writes
    stop it with one line (search.results.DiskFull)."""

    def handleError(self, record):
        pass


@contextmanager
def _board(name: str):
    """The study's progress board (search.board) for the length of Tune's run. The handle is
    held here: an actor whose last handle goes is ended, named or not."""
    handle = open_board(name)
    try:
        yield handle
    finally:
        close_board(name)


# --- several studies as one run (search.studyset) --------------------------------------------


def run_set(studies: list[tuple[StudySpec, str]], root: Path, address: str | None = None, resume: bool = False, max_failures: int = 0,
            console: Console | None = None, storage: str | None = None, ray_dashboard: bool = False, track: tuple[str, ...] = ()) -> dict:
    """Run studies together in one Ray Tune run that shares the cluster; each writes its own
    results directory under `root`. Returns {"interrupted": bool, "studies": {name: outcome}}."""
    import optuna

    from search.studyset import Member, MultiScheduler, MultiSearcher, RoutedCallback, SetProgress, record_set, trainable
    from search.trainable import StudyContext
    from search.tuner import make_tuner, scheduler, searcher, study_callbacks

    console = console or command_console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = [spec.name for spec, _ in studies]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"{', '.join(twice)}: two studies of the set have this name; each needs its own results directory")
    root_dir = ResultsDir(root)
    if root_dir.path.exists() and not root_dir.path.is_dir():
        raise InputError(f"--results {root}: is a file, not a directory; choose a directory")
    members, sources, claims = {}, {}, {}
    for spec, source in studies:  # every study checked before anything is written
        spec = with_absolute_paths(spec, Path.cwd())
        study = resolved(spec)
        study["spec_hash"] = digest = spec_hash(study)
        results = ResultsDir(root_dir.path / spec.name)
        results.check(digest, resume)
        fold_numbers = preflight(spec, source, results=results.path)
        tracking.check_available([*spec.tracking.options(), *track])
        absolute = ResultsDir(results.path.resolve())
        members[spec.name] = Member(spec, StudyContext(spec.name, digest, str(absolute.path), board_name(digest)), absolute, tuple(fold_numbers))
        sources[spec.name], claims[spec.name] = source, study
    set_digest = spec_hash({n: m.context.spec_hash for n, m in members.items()})
    location = root_dir.tune_location(storage, f"set-{set_digest}")
    # a root that held anything before this run is not this run's to empty
    fresh = not resume and not (root_dir.path.is_dir() and any(root_dir.path.iterdir()))
    studies = [m.results for m in members.values()]
    with _driving([root_dir.path, *(m.path for m in studies)], console):
        for m in members.values():
            m.results.check(m.context.spec_hash, resume)  # again, locked: a driver that held the lock may have claimed it since
        with _undone_unless_a_fold_lands(root_dir.path, studies, fresh):
            for m in members.values():
                _ray(address, m.spec, root_dir.path, ray_dashboard, console)
            for name, m in members.items():
                m.results.claim(claims[name])
                tracking.track(m.results.path, m.spec, track, extend=resume)
            record_set(root_dir.path, members, sources)
            root_dir.record_tune_location(*location)
            console.print(f"{len(members)} studies in one run, results under {root}: " + ", ".join(f"{n} ({m.spec.search.num_trials} trials)" for n, m in members.items()))

            limits = {n: m.spec.search.num_trials for n, m in members.items()}
            concurrent = [m.spec.resources.max_concurrent for m in members.values()]
            tuner = make_tuner(
                trainable(members),
                search_alg=MultiSearcher({n: searcher(m.spec, m.results, len(m.fold_numbers)) for n, m in members.items()}, limits),
                scheduler=MultiScheduler({n: scheduler(m.spec, len(m.fold_numbers), own_metric=True, results=m.results) for n, m in members.items()}),
                num_samples=sum(limits.values()),
                max_concurrent=None if 0 in concurrent else sum(concurrent),
                callbacks=[RoutedCallback({n: study_callbacks(m.spec, m.results, m.context, list(m.fold_numbers)) for n, m in members.items()}),
                           SetProgress(console, members)],
                tune_location=location,
                max_failures=max_failures,
            )
            grid, interrupted = _fit_set(tuner, root_dir, members)
        return _finish_set(grid, members, interrupted)


def resume_set(root: Path, address: str | None = None, max_failures: int = 0, console: Console | None = None, ray_dashboard: bool = False) -> dict:
    """Continue a set whose driver stopped: its one Tune run restored, then each study mended
    as a single study's resume mends it."""
    from types import SimpleNamespace

    from ray import tune

    from search.repair import repair
    from search.studyset import STUDY_KEY, Member, read_set, trainable
    from search.trainable import StudyContext

    console = console or command_console()
    root_dir = ResultsDir(root)
    members = {}
    for name in read_set(root_dir.path):
        results = ResultsDir((root_dir.path / name).resolve())
        spec, digest = results.load_spec()
        fold_numbers = preflight(spec, str(results / results.STUDY), results=results.path)
        members[name] = Member(spec, StudyContext(name, digest, str(results.path), board_name(digest)), results, tuple(fold_numbers))
    with _driving([root_dir.path, *(m.results.path for m in members.values())], console):
        for name, m in members.items():  # Parquet is the record: a damaged journal or folds part is rebuilt from it
            for line in mend(m.results, m.spec, list(m.fold_numbers)):
                console.print(f"{name}: {line}")
        state = root_dir.tune_state()
        if not tune.Tuner.can_restore(state):  # it stopped before Tune saved anything
            studies = [(m.spec, str(m.results / m.results.STUDY)) for m in members.values()]
            return run_set(studies, root_dir.path, address, resume=True, max_failures=max_failures, console=console, storage=root_dir.tune_storage(),
                           ray_dashboard=ray_dashboard)
        for m in members.values():
            _ray(address, m.spec, root_dir.path, ray_dashboard, console)
        tuner = tune.Tuner.restore(state, trainable=trainable(members), resume_unfinished=True, resume_errored=False)
        grid, interrupted = _fit_set(tuner, root_dir, members)
        if interrupted:
            return _finish_set(grid, members, True)
        retrained = 0
        for name, m in members.items():  # each study's own results, as `resume` mends a single one
            own = [SimpleNamespace(config={k: v for k, v in r.config.items() if k != STUDY_KEY}, metrics=r.metrics, checkpoint=r.checkpoint)
                   for r in grid if (r.config or {}).get(STUDY_KEY) == name]
            if again := repair(own, m.results, m.spec, m.context, list(m.fold_numbers)):
                tracking.catch_up(m.results.path, name)  # folds trained outside Tune's run, which its Tracker never saw
            retrained += again
        return {**_finish_set(grid, members, False), "retrained": retrained}


def _fit_set(tuner, root: ResultsDir, members: dict) -> tuple:
    from contextlib import ExitStack

    with ExitStack() as stack:
        interrupted = stack.enter_context(_ctrl_c())
        stack.enter_context(_tune_logs(root))
        for m in members.values():
            stack.enter_context(_board(m.context.board))
        grid = tuner.fit()
    return grid, interrupted.is_set()


def _finish_set(grid, members: dict, interrupted: bool) -> dict:
    """Each study finished as a single study is (its journal's orphans failed, its folds table
    compacted, its models settled), and what each came to."""
    outcomes = {}
    for name, m in members.items():
        metric = m.spec.objectives[0].key
        if not interrupted:
            _close(m.results, m.spec, len(m.fold_numbers))
        outcomes[name] = {"study": study_outcome(m.results, len(m.fold_numbers), metric), "metric": metric, "results": m.results}
    return {"interrupted": interrupted, "studies": outcomes, "errors": grid.num_errors}

"""`fbp-search run`: a study through Optuna (what to try) and Ray Tune (where and when).

    spec -> results dir claimed (study.yaml + spec_hash) -> Ray (local or --address)
         -> OptunaSearch (define-by-run over the spec's space, journal in the results dir)
         -> ASHA over folds -> trials (search.trial.train_trial) -> Parquet (driver callback)
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import yaml
from rich.console import Console

from fbp.errors import InputError
from search.board import board_name, close_board, open_board
from search.console import command_console
from search.outcome import LOGS, study_outcome
from search.preflight import preflight
from search.results import compact, spec_hash
from search.space import flatten, grid_space, suggest
from search.spec import StudySpec, resolved, with_absolute_paths

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # our Parquet is the record
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


SMOKE = {
    "data": {"dataset": "synthetic", "root": None, "protocol": "5fold", "options": {"n": 60, "size": 48, "seed": 0}, "image_size": 32, "resize": None, "folds": [1, 2]},
    "model": {"backbone": "test_resnet", "pretrained": False},
    "train": {"epochs": 1, "batch_size": 16, "device": "cpu", "compile": "off"},
    "eval": {"batch_size": 64},
    "search": {"num_trials": 2},
    "resources": {"cpu": 1, "gpu": 0, "max_concurrent": 2},
}


def smoke(raw: dict) -> dict:
    """--smoke: a small synthetic dataset, a tiny backbone, 1 epoch, 2 folds, 2 trials."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for section, values in SMOKE.items():
        out[section] = {**(out.get(section) or {}), **values}
    if not out["search"].get("space"):  # one configuration: one trial
        out["search"]["num_trials"] = 1
    return out


def _sampler(spec: StudySpec):
    import optuna

    s = spec.search
    samplers = {
        "tpe": lambda: optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=min(10, max(1, s.num_trials // 3))),
        "random": lambda: optuna.samplers.RandomSampler(seed=s.seed),
        "grid": lambda: optuna.samplers.GridSampler(grid_space(s.space), seed=s.seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=s.seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=s.seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=s.seed),
    }
    return samplers[s.sampler]()


def claim(results: Path, study: dict) -> None:
    """Write study.yaml into a directory `preflight.check_results` accepted (kept when resuming)."""
    marker = results / "study.yaml"
    if marker.exists():
        return
    results.mkdir(parents=True, exist_ok=True)
    tmp = results / ".study.yaml.tmp"
    tmp.write_text(yaml.safe_dump(study, sort_keys=False))
    tmp.replace(marker)


STORAGE = "storage.yaml"  # where Tune's state lives when it is not <results>/tune


def tune_location(storage: str | None, results: Path, name: str) -> tuple[str, str]:
    """(storage_path, experiment name) for Tune. By default its state and checkpoints live in
    <results>/tune: enough on one machine, or on a cluster whose nodes share the results
    directory. `storage` puts them elsewhere that every node reaches: a shared path or an
    object store URI that pyarrow opens (s3://, gs://, abfs://, hdfs://, file://)."""
    if storage is None:
        return str(results.resolve()), "tune"
    if "://" not in storage:
        return str(Path(storage).resolve()), name
    import pyarrow.fs

    try:
        pyarrow.fs.FileSystem.from_uri(storage)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError, OSError) as e:
        raise InputError(f"--storage {storage}: pyarrow cannot open it ({str(e).splitlines()[0]})") from None
    return storage.rstrip("/"), name


def tune_state(results: Path) -> str:
    """Where a study's Tune state is: recorded at its start when --storage moved it."""
    recorded = results / STORAGE
    if recorded.is_file():
        return (yaml.safe_load(recorded.read_text()) or {})["tune"]
    return str((results / "tune").resolve())


def _record_storage(results: Path, storage_path: str, name: str) -> None:
    if name == "tune" and storage_path == str(results.resolve()):
        return
    tmp = results / f".{STORAGE}.tmp"
    tmp.write_text(yaml.safe_dump({"tune": f"{storage_path}/{name}"}))
    tmp.replace(results / STORAGE)


def _start_ray(address: str | None, spec: StudySpec) -> None:
    import ray

    if not ray.is_initialized():
        # address="local" starts a fresh Ray and never joins a stale one by accident
        try:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        except ConnectionError as e:
            raise InputError(
                f"--address {address}: no Ray cluster answered ({e}). Check it with `ray status --address {address}`; "
                "if it was started with RAY_AUTH_MODE=token, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) here too"
            ) from None
    gpus = ray.cluster_resources().get("GPU", 0)
    if spec.resources.gpu > max(gpus, 0) and spec.resources.gpu > 0:
        raise InputError(f"resources.gpu: {spec.resources.gpu} per trial, but the cluster has {gpus:g} GPUs")


def run_study(spec: StudySpec, source: str, results: Path, address: str | None = None, resume: bool = False, max_failures: int = 0, console: Console | None = None, storage: str | None = None) -> dict:
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from search.callbacks import ParquetWriter, Progress
    from search.searcher import StudySearcher

    console = console or command_console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = with_absolute_paths(spec, Path.cwd())  # trials run elsewhere: they get the paths the user meant
    study = resolved(spec)
    study["spec_hash"] = spec_hash(study)
    fold_numbers = preflight(spec, source, results, study["spec_hash"], resume)
    num_folds = len(fold_numbers)
    storage_path, tune_name = tune_location(storage, results, f"{spec.name}-{study['spec_hash']}")
    _start_ray(address, spec)  # before the claim: a study the cluster cannot run writes nothing
    claim(results, study)
    _record_storage(results, storage_path, tune_name)
    console.print(f"study {spec.name}: {spec.search.num_trials} trials of {num_folds} folds, sampler {spec.search.sampler}, results in {results}")

    objectives = spec.objectives
    metrics = [o.metric for o in objectives]
    modes = [o.direction for o in objectives]
    base_flat = flatten(spec.base.model_dump(mode="json"))
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(results / "optuna.journal")))
    searcher = StudySearcher(
        space=partial(suggest, space=dict(spec.search.space), base=base_flat),
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        points_to_evaluate=[dict(p) for p in spec.search.baseline] or None,
        sampler=_sampler(spec),
        study_name=spec.name,
        storage=storage,
        num_folds=num_folds,
    )
    if spec.scheduler.name == "asha" and num_folds > 1:
        # folds are the rungs; with several objectives ASHA ranks by the first
        multi = {"metric": metrics[0], "mode": modes[0]} if len(metrics) > 1 else {}
        scheduler = ASHAScheduler(
            time_attr="folds_done",
            max_t=num_folds,
            grace_period=min(spec.scheduler.grace_folds, num_folds),
            reduction_factor=spec.scheduler.reduction_factor,
            **multi,
        )
    else:
        scheduler = FIFOScheduler()

    meta = _meta(spec.name, study["spec_hash"], results)
    progress = Progress(console, spec.search.num_trials, metrics[0], modes[0], num_folds, results.resolve(), meta["board"])
    tuner = tune.Tuner(
        _trainable(spec, meta),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            metric=metrics[0] if len(metrics) == 1 else None,
            mode=modes[0] if len(modes) == 1 else None,
            num_samples=spec.search.num_trials,
            max_concurrent_trials=spec.resources.max_concurrent or None,
            reuse_actors=True,  # a new trial reuses a finished one's worker: no second torch import
        ),
        run_config=tune.RunConfig(
            name=tune_name,
            storage_path=storage_path,
            # absolute: Tune pickles the callbacks and a resume may start elsewhere
            callbacks=[ParquetWriter(results.resolve(), meta, fold_numbers, list(spec.search.space)), progress],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            # every fold's checkpoint is kept (a few hundred bytes each): deleting the previous
            # one can race a killed driver's last state snapshot, which then names a checkpoint
            # that no longer exists and the trial cannot be restored
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        ),
    )
    with _ctrl_c() as interrupted, _tune_logs(results), _board(meta["board"]):
        grid = tuner.fit()
    return _finish(grid, results, spec, progress.max_running, interrupted.is_set(), num_folds)


@contextmanager
def _board(name: str):
    """The study's progress board (search.board) for the length of Tune's run. The handle is
    held here: an actor whose last handle goes is ended, named or not."""
    handle = open_board(name)
    try:
        yield handle
    finally:
        close_board(name)


@contextmanager
def _tune_logs(results: Path):
    """Tune's own log lines (a traceback per failed trial among them) go to RESULTS/logs/tune.log,
    not the console: the console gets one line per distinct error, each trial's traceback is in
    its own log (search.callbacks.ParquetWriter writes it)."""
    (results / LOGS).mkdir(exist_ok=True)
    handler = logging.FileHandler(results / LOGS / "tune.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in ("ray.tune", "ray.train", "ray.air")]
    before = [(logger.propagate, logger.level) for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield
    finally:
        for logger, (propagate, _) in zip(loggers, before):
            logger.removeHandler(handler)
            logger.propagate = propagate
        handler.close()


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


def _trainable(spec: StudySpec, meta: dict):
    from ray import tune

    from search.trial import train_trial

    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    return tune.with_resources(partial(train_trial, spec_json=spec.model_dump(mode="json", by_alias=True), meta=meta), resources)


def _meta(spec_name: str, digest: str, results: Path) -> dict:
    """What every trial is told: its study, the spec's hash, where the results are written."""
    return {"study": spec_name, "spec_hash": digest, "results": str(results.resolve()), "board": board_name(digest)}


def _journal(results: Path):
    import optuna

    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(results / "optuna.journal")))


def _finish(grid, results: Path, spec: StudySpec, max_running: int, interrupted: bool, num_folds: int) -> dict:
    """After Tune. Interrupted (Ctrl-C): say so, the unfinished trials resume later. Finished:
    no Optuna trial may stay RUNNING (a killed driver leaves some behind), so fail those.
    `study` is what the rows on disk say: trials by status, distinct errors, the best trial."""
    import optuna

    objective = spec.objectives[0]
    outcome = {"trials": len(grid), "errors": grid.num_errors, "max_running": max_running, "interrupted": interrupted, "orphans_failed": 0,
               "study": study_outcome(results, num_folds, objective.metric, objective.direction), "metric": objective.metric}
    if interrupted:
        return outcome
    study = optuna.load_study(study_name=spec.name, storage=_journal(results))
    orphans = [t.number for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))]
    for number in orphans:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    # one folds part instead of one per fold: the report opens it in milliseconds. The other
    # tables keep their per-(trial, fold) parts, which the report opens only for the trials it shows.
    compact(results, "folds")
    return {**outcome, "orphans_failed": len(orphans), "study": study_outcome(results, num_folds, objective.metric, objective.direction)}


def load_results_spec(results: Path) -> tuple[StudySpec, dict]:
    """The study a results directory was made by, checked against its own hash."""
    marker = results / "study.yaml"
    if not marker.is_file():
        raise InputError(f"{results} is not a results directory: no study.yaml")
    try:
        study = yaml.safe_load(marker.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"{marker}: unreadable ({e})") from None
    digest = study.pop("spec_hash", None)
    from search.spec import validate_spec

    spec = validate_spec(study, str(marker))
    if spec_hash(resolved(spec)) != digest:
        raise InputError(f"{marker}: spec_hash {digest} does not match its contents; the file was edited")
    return spec, _meta(spec.name, digest, results)


def resume_study(results: Path, address: str | None = None, max_failures: int = 0, console: Console | None = None) -> dict:
    """Continue a study whose driver stopped: finished folds stay, running trials continue at
    their next fold, the sampler goes on until `num_trials`."""
    from ray import tune

    spec, meta = load_results_spec(results)
    state = tune_state(results)
    if not tune.Tuner.can_restore(state):  # it stopped before Tune saved anything
        storage = state.rsplit("/", 1)[0] if (results / STORAGE).is_file() else None
        return run_study(spec, str(results / "study.yaml"), results, address, resume=True, max_failures=max_failures, console=console, storage=storage)
    source = str(results / "study.yaml")
    fold_numbers = preflight(spec, source)
    _start_ray(address, spec)
    tuner = tune.Tuner.restore(state, trainable=_trainable(spec, meta), resume_unfinished=True, resume_errored=False)
    with _ctrl_c() as interrupted, _tune_logs(results), _board(meta["board"]):
        grid = tuner.fit()
    if interrupted.is_set():
        return _finish(grid, results, spec, 0, True, len(fold_numbers))
    from search.repair import repair

    retrained = repair(grid, results, spec, meta, _journal(results), fold_numbers)
    return {**_finish(grid, results, spec, 0, False, len(fold_numbers)), "retrained": retrained}


"""Experiment tracking: every trial of a study in MLflow, W&B or TensorBoard, as Parquet holds it.

    tracking: {mlflow: {}, wandb: {mode: offline}, tensorboard: {}}     # in a study file
    fbp-search run studies/quickstart.yaml --track mlflow                # or on run / resume

What each tracker gets, per trial: one run (MLflow: a child of the study's run; W&B: grouped
by the study; TensorBoard: a folder), the trial's params, each fold's metrics at step = fold,
each fold's epoch curves (`fold<k>/<column>` at step = epoch), its status (COMPLETE, PRUNED,
FAIL) as a tag, links (trial id, the results directory, its log and models folder) and, in
MLflow, the kept fold models as artifacts.

Why the libraries directly and not Ray Tune's logger callbacks: those log each reported result
of a trial as it comes, so a fold is a step but its epoch curves (written to Parquet, never
reported) are not there, the status is the run's end state (a PRUNED trial looks finished),
and a resumed driver, which restarts its unfinished trials, starts a second run for each.

Here the driver's `Tracker` (a Tune callback, after the Parquet writer) reads each fold's rows
back from the results directory once they are written and hands them to every tracker: what is
logged is what folds.parquet holds. A ledger (`RESULTS/tracking/ledger.json`) records what each
tracker has been given, so a resumed driver logs nothing twice and catches up on what a killed
one had not logged. Tracking never stops a study: the trackers run on a thread of their own;
one that fails (a server down, slow, a full disk) prints one warning line and is left out for
the rest of the driver, and Parquet keeps everything.

Which trackers a driver runs is in `RESULTS/tracking/tracking.yaml`, written by run (the study's
`tracking:` and --track) and extended by resume --track: the Tune callback, pickled in Tune's
state, holds only the results directory and reads that file when it starts.
"""

from __future__ import annotations

import json
import queue
import re
import sys
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from ray import tune

from fbp.files import write_atomic
from fbp.loss_names import TRAIN
from fbp.metrics import REPORTED, TEST_CURVE, VAL

FOLDER = "tracking"
CONFIG = "tracking.yaml"
LEDGER = "ledger.json"
FLUSH_SECONDS = 120.0
"""How long the end of a study waits for the trackers to log what is queued."""
TRIAL_TAG = "fbp.trial_id"
STUDY_TAG = "fbp.study"


def write_config(results: Path, tracking: dict[str, dict], extend: bool = False) -> dict[str, dict]:
    """The trackers of a results directory (name -> options), written; `extend` keeps those it
    has and adds the new (resume --track)."""
    path = Path(results) / FOLDER / CONFIG
    have = read_config(results) if extend else {}
    merged = {**have, **{name: options for name, options in tracking.items() if name not in have}}
    if merged or path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, yaml.safe_dump(merged, sort_keys=True))
    return merged


def check_available(names) -> None:
    """Each tracker's package importable, or an InputError with the pip line (before anything runs)."""
    import importlib.util

    from fbp.errors import InputError

    modules = {"mlflow": "mlflow", "wandb": "wandb", "tensorboard": "tensorboardX"}
    missing = [name for name in names if importlib.util.find_spec(modules[name]) is None]
    if missing:
        raise InputError(f"tracking: {', '.join(missing)} asked for, but not installed: pip install {' '.join(PACKAGES[n] for n in missing)} "
                         '(or pip install "fbp-search[tracking]")')


def track(results: Path, spec, names=(), extend: bool = False) -> dict[str, dict]:
    """The trackers a driver of the study in `results` logs to: the study's `tracking:` and
    `names` (--track), checked and written for its Tracker callback."""
    options = {**spec.tracking.options(), **{name: {} for name in names if name not in spec.tracking.options()}}
    check_available(options if not extend else names)
    return write_config(results, options, extend=extend)


def read_config(results: Path) -> dict[str, dict]:
    """The trackers in tracking.yaml, name -> options; written by hand as a study's `tracking:`
    is (a list of names, a name with no options), it reads the same."""
    path = Path(results) / FOLDER / CONFIG
    held = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    if isinstance(held, list):
        held = {name: {} for name in held}
    if not isinstance(held, dict) or not all(isinstance(options, dict | None) for options in held.values()):
        raise ValueError(f"{path}: expected tracker names, each with its options, got {held!r}")
    return {str(name): options or {} for name, options in held.items()}


# --- the trackers ---------------------------------------------------------------------------


class MLflowTracker:
    """MLflow through its client: an experiment per study (its name), a parent run for the study
    and a child run per trial, each found again by its tag on resume. Default store: SQLite in
    RESULTS/tracking/mlflow.db (`mlflow ui --backend-store-uri sqlite:///...` shows it)."""

    def __init__(self, results: Path, study: str, uri: str | None = None, experiment: str | None = None):
        from mlflow.tracking import MlflowClient

        self.uri = uri or f"sqlite:///{(Path(results) / FOLDER / 'mlflow.db').resolve()}"
        Path(results, FOLDER).mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        name = experiment or study
        found = self.client.get_experiment_by_name(name)
        # beside the default store, its artifacts (the kept models) too: MLflow's own default for a
        # SQLite store is ./mlruns of whatever directory the driver runs in; a server has its own
        artifacts = None if uri else (Path(results) / FOLDER / "mlflow-artifacts").resolve().as_uri()
        self.experiment = found.experiment_id if found else self.client.create_experiment(name, artifact_location=artifacts)
        self.study = study
        self.parent = self._run({STUDY_TAG: study, "fbp.kind": "study"}, f"tags.`fbp.kind` = 'study' and tags.`{STUDY_TAG}` = '{study}'", study)
        self.runs: dict[str, str] = {}

    def _run(self, tags: dict, filter_string: str, name: str) -> str:
        runs = self.client.search_runs([self.experiment], filter_string=filter_string, max_results=1)
        return runs[0].info.run_id if runs else self.client.create_run(self.experiment, tags=tags, run_name=name).info.run_id

    def _trial(self, trial_id: str) -> str:
        if trial_id not in self.runs:
            tags = {TRIAL_TAG: trial_id, STUDY_TAG: self.study, "mlflow.parentRunId": self.parent}
            self.runs[trial_id] = self._run(tags, f"tags.`{TRIAL_TAG}` = '{trial_id}'", trial_id)
        return self.runs[trial_id]

    def fold(self, trial_id: str, params: dict, links: dict, fold: int, metrics: dict, curves: dict[str, list[tuple[int, float]]]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        run = self._trial(trial_id)
        # the same params and tags at every fold: MLflow takes a value again that it has
        self.client.log_batch(run, params=[Param(k, str(v)) for k, v in params.items()], tags=[RunTag(k, str(v)) for k, v in links.items()])
        now = _now_ms()
        batch = [Metric(k, float(v), now, fold) for k, v in metrics.items()]
        batch += [Metric(f"fold{fold}/{k}", float(v), now, epoch) for k, points in curves.items() for epoch, v in points]
        for start in range(0, len(batch), 900):  # MLflow takes at most 1,000 metrics a batch
            self.client.log_batch(run, metrics=batch[start : start + 900])

    def end(self, trial_id: str, status: str, models: Path | None) -> None:
        run = self._trial(trial_id)
        self.client.set_tag(run, "fbp.status", status)
        if models is not None and models.is_dir():
            self.client.log_artifacts(run, str(models), "models")
        self.client.set_terminated(run, "FINISHED" if status == "COMPLETE" else "KILLED" if status == "PRUNED" else "FAILED")

    def close(self) -> None:
        self.client.set_terminated(self.parent, "FINISHED")  # found again and continued by the next resume


class WandbTracker:
    """W&B: a run per trial (its id derived from the study and trial, so a resumed driver
    continues it), grouped by the study; offline by default, written under RESULTS/tracking/wandb
    (`wandb sync` uploads it later)."""

    def __init__(self, results: Path, study: str, project: str | None = None, mode: str = "offline"):
        import wandb

        self.wandb, self.study, self.project, self.mode = wandb, study, project or study, mode
        self.dir = Path(results) / FOLDER
        self.dir.mkdir(parents=True, exist_ok=True)
        self.runs: dict[str, Any] = {}

    def _trial(self, trial_id: str, params: dict | None = None):
        if trial_id not in self.runs:
            run_id = re.sub(r"[^a-z0-9]", "", f"{self.study}{trial_id}".lower())[-64:]
            self.runs[trial_id] = self.wandb.init(project=self.project, group=self.study, name=trial_id, id=run_id, resume="allow", dir=str(self.dir),
                                                  mode=self.mode, config=params or {}, reinit="create_new", settings=self.wandb.Settings(silent=True))
            self.runs[trial_id].define_metric("fold")
            self.runs[trial_id].define_metric("epoch")
        return self.runs[trial_id]

    def fold(self, trial_id: str, params: dict, links: dict, fold: int, metrics: dict, curves: dict[str, list[tuple[int, float]]]) -> None:
        run = self._trial(trial_id, params)
        run.config.update(links, allow_val_change=True)
        # W&B's own step only grows: the fold and the epoch are x-axes of their own (its define_metric)
        for name in metrics:
            run.define_metric(name, step_metric="fold")
        run.define_metric(f"fold{fold}/*", step_metric="epoch")
        by_epoch: dict[int, dict[str, float]] = {}
        for name, points in curves.items():
            for epoch, value in points:
                by_epoch.setdefault(epoch, {})[f"fold{fold}/{name}"] = value
        for epoch in sorted(by_epoch):
            run.log({"epoch": epoch, **by_epoch[epoch]})
        run.log({"fold": fold, **metrics})

    def end(self, trial_id: str, status: str, models: Path | None) -> None:
        run = self._trial(trial_id)
        run.summary["status"] = status
        run.tags = (*(run.tags or ()), status)
        run.finish(exit_code=0 if status != "FAIL" else 1)
        self.runs.pop(trial_id, None)

    def close(self) -> None:
        for run in self.runs.values():
            run.finish()
        self.runs.clear()


class TensorBoardTracker:
    """TensorBoard event files through tensorboardX: RESULTS/tracking/tensorboard/<trial_id>/,
    each fold's metrics at step = fold, `fold<k>/<column>` at step = epoch, the params and
    status as text (`tensorboard --logdir RESULTS/tracking/tensorboard`)."""

    def __init__(self, results: Path, study: str):
        from tensorboardX import SummaryWriter

        self.SummaryWriter, self.root, self.writers = SummaryWriter, Path(results) / FOLDER / "tensorboard", {}

    def _trial(self, trial_id: str):
        if trial_id not in self.writers:
            self.writers[trial_id] = self.SummaryWriter(str(self.root / trial_id))
        return self.writers[trial_id]

    def fold(self, trial_id: str, params: dict, links: dict, fold: int, metrics: dict, curves: dict[str, list[tuple[int, float]]]) -> None:
        writer = self._trial(trial_id)
        writer.add_text("params", json.dumps({**params, **links}, sort_keys=True, default=str), fold)
        for name, value in metrics.items():
            writer.add_scalar(name, float(value), fold)
        for name, points in curves.items():
            for epoch, value in points:
                writer.add_scalar(f"fold{fold}/{name}", float(value), epoch)
        writer.flush()

    def end(self, trial_id: str, status: str, models: Path | None) -> None:
        writer = self._trial(trial_id)
        writer.add_text("status", status, 0)
        writer.close()
        self.writers.pop(trial_id, None)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


TRACKERS: dict[str, type] = {"mlflow": MLflowTracker, "wandb": WandbTracker, "tensorboard": TensorBoardTracker}
"""--track NAME / tracking.NAME -> the tracker; each takes (results, study, **its options)."""
PACKAGES = {"mlflow": "mlflow-skinny", "wandb": "wandb", "tensorboard": "tensorboardX"}


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


# --- what the driver runs -----------------------------------------------------------------------


class Tracker(tune.Callback):
    """Hands each fold Parquet holds, and each trial's end, to the study's trackers, on a thread
    of its own: a slow or unreachable tracker never holds the driver's loop, not even while it
    is set up (MLflow retries a server that is down for minutes). The thread first catches up
    on what Parquet holds and the ledger says a tracker lacks (a resumed driver: the trials a
    killed one finished, the folds it had not logged), and does so again at the end of the
    study (an end whose rows could not be read when it came)."""

    def __init__(self, results: Path, study: str):
        self.results, self.study = Path(results), study
        self._started = False

    def __getstate__(self):
        return {"results": self.results, "study": self.study}  # Tune pickles its callbacks: the thread and the trackers start again

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._started = False

    def _start(self) -> bool:
        if not self._started:
            self._started = True
            self.trackers, self.queue = {}, queue.Queue()
            try:
                self.config = read_config(self.results)
            except Exception as e:  # noqa: BLE001 - a damaged tracking.yaml never stops the study
                _warn("tracking", e)
                self.config = {}
            self.thread = threading.Thread(target=self._work, name="fbp-tracking", daemon=True)
            if self.config:
                self.queue.put(("sweep", None))
                self.thread.start()
        return bool(self.config)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "fold" in result and self._start():
            self.queue.put(("folds", trial.trial_id))

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self._start():
            self.queue.put(("end", trial.trial_id))

    def on_trial_error(self, iteration, trials, trial, **info):
        if self._start():
            self.queue.put(("end", trial.trial_id))

    def on_experiment_end(self, trials, **info):
        if self._start():
            self.queue.put(("sweep", None))
            self.queue.put(("close", None))
            self.thread.join(FLUSH_SECONDS)
            if self.thread.is_alive():
                print(f"warning: tracking: still logging after {FLUSH_SECONDS:.0f} s; what is left is logged on the next resume", file=sys.stderr, flush=True)

    def _work(self) -> None:
        self.trackers = open_trackers(self.results, self.study, self.config)
        self.ledger = _Ledger(self.results / FOLDER / LEDGER)
        swept = False  # a sweep with no event since the last one would read the tables again for nothing
        while True:
            kind, trial_id = self.queue.get()
            if kind == "close":
                for name, tracker in list(self.trackers.items()):
                    _guarded(self.trackers, name, tracker.close)
                return
            if not self.trackers or (kind == "sweep" and swept):
                continue
            swept = kind == "sweep"
            try:
                pending = _unlogged(self.results) if kind == "sweep" else [(trial_id, _trial_rows(self.results, trial_id), kind == "end")]
            except Exception as e:  # noqa: BLE001 - the record stays in Parquet; the sweep at the end tries again
                _warn("tracking", e)
                continue
            for trial, rows, ended in pending:
                for name, tracker in list(self.trackers.items()):
                    _guarded(self.trackers, name, log_trial, tracker, name, self.ledger, self.results, trial, rows, ended)


def open_trackers(results: Path, study: str, config: dict[str, dict]) -> dict[str, Any]:
    """The trackers `config` names, each set up; one that cannot start is a warning line."""
    trackers = {}
    for name, options in config.items():
        try:
            trackers[name] = TRACKERS[name](results, study, **options)
        except Exception as e:  # noqa: BLE001 - a tracker that cannot start never stops the study
            _warn(name, e)
    return trackers


def catch_up(results: Path, study: str) -> None:
    """Log what Parquet holds and the trackers lack, then close them: after what a driver wrote
    outside Tune's run (the folds `resume` trains again for missing rows). A Tracker's own
    start and end: its thread's sweep, waited for at most FLUSH_SECONDS."""
    Tracker(results, study).on_experiment_end([])


def _guarded(trackers: dict[str, Any], name: str, call, *args) -> None:
    """`call(*args)`; a tracker that fails is closed (its files and threads) and left out."""
    try:
        call(*args)
    except Exception as e:  # noqa: BLE001 - tracking never stops a study
        _warn(name, e)
        tracker = trackers.pop(name, None)
        if tracker is not None and call != tracker.close:
            try:
                tracker.close()
            except Exception:  # noqa: BLE001, S110 - it already failed once: said above
                pass


def _unlogged(results: Path) -> list[tuple[str, tuple[pd.DataFrame, pd.DataFrame], bool]]:
    """Every trial Parquet holds, with its rows and whether it has ended (COMPLETE, PRUNED or
    FAIL; an INCOMPLETE one, stopped by a kill or Ctrl-C, continues on resume): log_trial and
    the ledger give each tracker only what it lacks."""
    from search.results import ResultsDir, expected_folds, trial_status

    r = ResultsDir(results)
    folds, epochs = r.read("folds"), r.read("epochs")
    if not len(folds):
        return []
    study = yaml.safe_load((results / r.STUDY).read_text()) or {}
    status = trial_status(folds, expected_folds(study, folds))
    by_trial = dict(tuple(epochs.groupby("trial_id", sort=False))) if len(epochs) and "trial_id" in epochs.columns else {}
    return [(str(trial), (rows, by_trial.get(trial, epochs.iloc[0:0])), status.get(trial) != "INCOMPLETE")
            for trial, rows in folds.groupby("trial_id", sort=False)]


def _warn(name: str, e: Exception) -> None:
    line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    print(f"warning: tracking: {name} failed ({line}); left out for the rest of this run, the study goes on and Parquet holds everything",
          file=sys.stderr, flush=True)


def _trial_rows(results: Path, trial_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from search.results import ResultsDir

    r = ResultsDir(results)
    return r.read("folds", trials={trial_id}), r.read("epochs", trials={trial_id})


def log_trial(tracker, name: str, ledger: _Ledger, results: Path, trial_id: str, rows: tuple[pd.DataFrame, pd.DataFrame], ended: bool) -> None:
    """Give `tracker` the folds of `trial_id` it has not had (the ledger says which), then its
    end when the trial ended and every fold row is in."""
    folds, epochs = rows
    if not len(folds):
        return
    status = folds["status"].astype(str).str.upper() if "status" in folds.columns else pd.Series("COMPLETE", index=folds.index)
    complete = folds[status.eq("COMPLETE").to_numpy()]
    per_fold = complete.groupby("fold", sort=True)
    params = {c.removeprefix("param."): v for c, v in folds.iloc[0].items() if c.startswith("param.") and not _missing(v)}
    links = {TRIAL_TAG: trial_id, "fbp.results": str(results.resolve()), "fbp.log": str((results / "logs" / f"{trial_id}.log").resolve()),
             "fbp.models": str((results / "models" / trial_id).resolve())}
    value_columns = [c for c in complete.columns if c in REPORTED]
    for fold, runs in per_fold:
        fold = int(fold)
        if ledger.has(name, trial_id, fold):
            continue
        metrics = {c: float(runs[c].mean()) for c in value_columns if runs[c].notna().any()}  # a fold's seeds (train.repeats) averaged
        curves = _curves(epochs, fold)
        tracker.fold(trial_id, params, links, fold, metrics, curves)
        ledger.add(name, trial_id, fold)
    if ended and not ledger.ended(name, trial_id):
        final = "FAIL" if status.eq("FAIL").any() else "PRUNED" if status.eq("PRUNED").any() else "COMPLETE"
        models = results / "models" / trial_id
        tracker.end(trial_id, final, models if models.is_dir() else None)
        ledger.end(name, trial_id, final)


def _curves(epochs: pd.DataFrame, fold: int) -> dict[str, list[tuple[int, float]]]:
    """A fold's epoch curves, each column a list of (epoch, value), seeds averaged."""
    if not len(epochs) or "fold" not in epochs.columns:
        return {}
    rows = epochs[epochs["fold"] == fold]
    columns = [c for c in rows.columns if c.startswith((TRAIN, TEST_CURVE, VAL)) or c == "lr"]
    means = rows.groupby("epoch", sort=True)[columns].mean()
    return {c: [(int(e), float(v)) for e, v in means[c].items() if pd.notna(v)] for c in columns}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


class _Ledger:
    """What each tracker has been given: {tracker: {trial_id: {"folds": [...], "ended": status}}}."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            self.data = {}  # a damaged ledger: trackers may get a fold twice, never lose one

    def _trial(self, name: str, trial_id: str) -> dict:
        return self.data.setdefault(name, {}).setdefault(trial_id, {"folds": [], "ended": None})

    def has(self, name: str, trial_id: str, fold: int) -> bool:
        return fold in self._trial(name, trial_id)["folds"]

    def ended(self, name: str, trial_id: str) -> bool:
        return self._trial(name, trial_id)["ended"] is not None

    def add(self, name: str, trial_id: str, fold: int) -> None:
        self._trial(name, trial_id)["folds"].append(fold)
        self._save()

    def end(self, name: str, trial_id: str, status: str) -> None:
        self._trial(name, trial_id)["ended"] = status
        self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(self.data, sort_keys=True))

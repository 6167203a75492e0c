"""Driver-side Tune callbacks: the model keeper, the Parquet writer (and trial logs), the
console progress, and the callbacks a Python caller passes (search.api)."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from ray import tune
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from search import board, keep
from search.console import command_console, duration, print_lines
from search.results import DiskFull, ResultsDir, disk_full_in, is_disk_full, marks_frame
from search.spec import StudySpec
from search.trainable import DISK_FULL, MODELS_KEY, ROWS, StudyContext

ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the remote task's name


def _error_text(trial) -> str:
    """The traceback Tune just wrote on the driver (the copy in storage is synced later)."""
    path = trial.error_file
    return ANSI.sub("", str(Path(path).read_text() if path and Path(path).exists() else (trial.get_error() or "")))


def error_line(text: str) -> str:
    """The exception's own line (the traceback's last), without its module path:
    `InputError: dataset root not found: ...` rather than `fbp.errors.InputError: ...`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "the trial failed without an error message"
    kind, sep, message = lines[-1].partition(": ")
    if sep and " " not in kind:
        kind = kind.rsplit(".", 1)[-1]
    return f"{kind}{sep}{message}"


LIVE = ("RUNNING", "PENDING", "PAUSED")  # Tune's statuses of a trial that may still report folds


class ModelKeeper(tune.Callback):
    """RESULTS/models (search.keep): each reported fold's model moved there from the trial's
    checkpoint; when a trial ends, the models of every trial that is neither among the best
    `search.keep_models` nor the baseline's, nor still running, deleted. Listed before the
    ParquetWriter: a fold's model is in place before its rows say the fold is done."""

    def __init__(self, results: ResultsDir, spec: StudySpec, num_folds: int):
        self.results, self.spec, self.num_folds = results, spec, num_folds
        self.standings = keep.Standings(spec, num_folds)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        names, checkpoint = result.get(MODELS_KEY), result.get("checkpoint_dir_name")
        if not (names and checkpoint):
            return
        try:
            keep.collect(self.results, trial.trial_id, trial.storage.storage_filesystem, f"{trial.path}/{checkpoint}", names)
        except (OSError, pa.ArrowException) as e:  # a model not kept is no reason to stop the study: export names what is missing
            if is_disk_full(e):  # but a full disk is: the fold's rows could not be written either
                raise disk_full_in(e) from None
            self.results.append_log(trial.trial_id, f"fold {result.get('fold')}: its model was not kept ({type(e).__name__}: {e})")

    def _settle(self, trials, ended) -> None:
        if not self.results.kept_trials():
            return  # nothing to delete (a study whose runner keeps no models, or none yet): no table to read
        self.standings.update(self.results, ended.trial_id)
        keep.settle(self.results, self.spec, self.num_folds, running={t.trial_id for t in trials if t.status in LIVE and t is not ended},
                    keep=self.standings.kept())

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._settle(trials, trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._settle(trials, trial)


class ParquetWriter(tune.Callback):
    """Writes each reported fold's rows, and a row per fold a trial did not complete
    (PRUNED when the scheduler stopped it, FAIL with the error when it raised); a failed
    trial's traceback goes to its log.

    A fold's parts (a paper-protocol fold: 200 epoch rows and 1,100 predictions, ~40 KB of
    Parquet) are written here and needed nowhere else, so they are taken out of what Tune
    keeps: out of the result (Tune lets a callback change it in place) before it
    becomes the trial's last result, and out of the copy the worker hands over again with the
    fold's checkpoint. Kept, they made the driver's memory and every experiment-state snapshot
    grow by ~1 MB per trial (bench/scale.py measured it, with the rows then sent as lists).

    A trial's marks are final: no fold row is written for a trial that has them, and no second
    marks part (a PRUNED mark has no seed, a fold's row has one: both would stay, two keys for
    one fold). A resumed driver stops such trials before they start (search.tuner.LiveFIFO);
    this is the last line should one report anyway."""

    def __init__(self, results: ResultsDir, context: StudyContext, folds: list[int], param_paths: list[str]):
        self.results, self.context, self.folds, self.param_paths = results, context, folds, param_paths

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if DISK_FULL in result:  # the trial could not save its fold: stop the study here, the trial resumes at that fold
            raise DiskFull(*result[DISK_FULL])
        parts = result.pop(ROWS, None)  # search.results.fold_parts, encoded by the trial
        if not parts:
            return
        if marked := self.results.marked(trial.trial_id):
            self.results.append_log(trial.trial_id, f"fold {result['fold']}: reported after the trial was marked {marked}; its rows are not written")
            return
        self.results.write_fold(parts, trial.trial_id, result["fold"])

    def on_trial_save(self, iteration, trials, trial, **info):
        latest = trial.run_metadata.checkpoint_manager.latest_checkpoint_result
        if latest is not None and latest.metrics.pop(ROWS, None) is not None:
            trial.run_metadata.invalidate_cache()  # its JSON for the next snapshot, without them

    def _close(self, trial, status: str, error: str | None) -> None:
        if self.results.marked(trial.trial_id):
            return  # marked by an earlier driver (or earlier in this one): the first decision stands
        # a stat per fold: listing the folds table (one part per fold of every trial) at every
        # trial's end made a study's cost grow with the square of its trials
        missing = [f for f in self.folds if not self.results.has_part("folds", trial.trial_id, f)]
        if not missing:
            return
        fields = {"study": self.context.study, "spec_hash": self.context.spec_hash, "trial_id": trial.trial_id,
                  **{f"param.{p}": trial.config.get(p) for p in self.param_paths}}
        self.results.write_marks(marks_frame(fields, missing, status, error), trial.trial_id, status)

    def on_trial_complete(self, iteration, trials, trial, **info):
        status = "PRUNED"
        if trial.status in ("PENDING", "PAUSED"):
            # stopped before it ran in this driver (LiveFIFO): its record says how it ended, and
            # a driver killed between telling the journal and writing the marks left the journal's word
            status = self.results.ended(self.context.study, {trial.trial_id}).get(trial.trial_id, status)
        self._close(trial, status, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        text = _error_text(trial)
        self.results.append_log(trial.trial_id, f"failed:\n{text}")
        self._close(trial, "FAIL", error_line(text))


@dataclass
class Tally:
    """One study's trials as the console counts them: finished (ended or failed), pruned among
    the ended, running, and the best complete trial by `metric`."""

    metric: str  # the objective's key: pc, or val_pc
    mode: str  # max or min
    num_folds: int  # a trial that ended with fewer folds was pruned
    running: int = 0
    terminated: int = 0
    pruned: int = 0
    failed: int = 0
    best: tuple[float, str] | None = None  # (value, trial_id)

    @property
    def finished(self) -> int:
        return self.terminated + self.failed

    def ended(self, trial) -> None:
        self.terminated += 1
        last = trial.last_result or {}
        if last.get("folds_done", 0) < self.num_folds:
            self.pruned += 1
        value = last.get(self.metric)
        if value is not None and not math.isnan(value) and last.get("folds_done") == self.num_folds:
            if self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0]):
                self.best = (value, trial.trial_id)


class Progress(tune.Callback):
    """What the console shows while a study runs.

    On a terminal, a live panel: one status line (trials finished, running, done, pruned,
    failed, the best so far, time) and a line per running trial with its fold and epoch. Without
    a terminal (a log file, CI, nohup), whole lines: the status line when it changes, at most
    every `quiet_seconds`. Either way a trial that fails prints one line the first time its
    error is seen, and every trial's epochs go to its log, RESULTS/logs/<trial_id>.log.

    The line's counts are taken from every trial once, when a run (or a restored one) starts,
    and kept by Tune's hooks after that: counting 10,000 trials at each of Tune's steps cost
    the driver more as the study grew than anything else it did per step (bench/scale.py).
    """

    def __init__(self, console: Console, num_trials: int, metric: str, mode: str, num_folds: int,
                 results: ResultsDir | None = None, board: str | None = None, quiet_seconds: float = 30.0):
        self.console, self.num_trials, self.metric, self.mode, self.num_folds = console, num_trials, metric, mode, num_folds
        self.results, self.board, self.quiet_seconds = results, board, quiet_seconds
        self.started = time.monotonic()
        self.live: Live | None = None
        self.max_running = 0  # most trials Ray ran at once
        self.states: dict[str, dict] = {}  # trial_id -> its latest post on the board
        self.errors_seen: set[str] = set()
        self._polled = 0.0
        self._printed: tuple = ((), 0.0)  # without a terminal: the last status's counts printed, and when
        self._forget_counts()

    def _forget_counts(self) -> None:
        self.counted = False  # the next step counts every trial (a run starts, or a restored one)
        self.running: dict[str, None] = {}  # trial ids, in the order they started
        self.tallies = self._new_tallies()
        self._board_handle = None

    def _new_tallies(self) -> dict[str, Tally]:
        """A tally per study the line counts: this study's."""
        return {"": Tally(self.metric, self.mode, self.num_folds)}

    def _tally(self, trial) -> Tally:
        """The tally `trial` counts in."""
        return self.tallies[""]

    def __getstate__(self):
        # Tune pickles its callbacks with the experiment state; a console holds locks, an actor
        # handle belongs to this Ray session
        return {k: v for k, v in self.__dict__.items() if k not in ("console", "live", "_board_handle")}

    def __setstate__(self, state):
        self.__dict__.update(state, console=command_console(), live=None, started=time.monotonic())
        self._forget_counts()

    # --- the counts

    def _count(self, trials) -> None:
        self._forget_counts()
        for t in trials:
            if t.status == "RUNNING":
                self._started(t)
            elif t.status == "TERMINATED":
                self._tally(t).ended(t)
            elif t.status == "ERROR":
                self._tally(t).failed += 1
        self.counted = True

    def _started(self, trial) -> None:
        if trial.trial_id not in self.running:  # a restarted trial starts again: counted once
            self.running[trial.trial_id] = None
            self._tally(trial).running += 1

    def _stopped(self, trial) -> None:
        if trial.trial_id in self.running:
            del self.running[trial.trial_id]
            self._tally(trial).running -= 1

    # --- what is shown

    def _status(self, trials) -> tuple[tuple, str]:
        """(what the line counts, the line): a line is printed again, without a terminal, when
        its counts change."""
        t = self.tallies[""]
        elapsed = time.monotonic() - self.started
        eta = elapsed / t.finished * (self.num_trials - t.finished) if t.finished else float("nan")
        best_text = f"{t.best[0]:.4f} ({t.best[1]})" if t.best else "-"
        left = f"~{duration(eta)} left" if not math.isnan(eta) else "? left"
        counts = (t.finished, t.running, t.pruned, t.failed)
        return counts, (
            f"trials {t.finished}/{self.num_trials} · running {t.running} · done {t.terminated - t.pruned}"
            f" · pruned {t.pruned} · failed {t.failed} · best {self.metric} {best_text} · {duration(elapsed)} elapsed, {left}"
        )

    def _running(self, trials) -> list[str]:
        return [f"  {trial_id}: {board.describe(self.states[trial_id]) if trial_id in self.states else 'starting'}" for trial_id in self.running]

    def _board(self):
        """The board's actor handle, looked up once (each look-up asks Ray's control store)."""
        if self._board_handle is None:
            import ray

            self._board_handle = ray.get_actor(self.board)
        return self._board_handle

    def _poll(self, force: bool = False) -> None:
        """Read the board (about once a second): the running trials' states, and their new
        epoch lines into their logs."""
        now = time.monotonic()
        if self.board is None or (now - self._polled < 1.0 and not force):
            return
        self._polled = now
        try:
            import ray

            latest, lines = ray.get(self._board().take.remote(), timeout=5)
        except Exception:  # no board (yet): nothing to show beyond the status line
            self._board_handle = None
            return
        self.states = latest
        if self.results is not None:
            for trial_id, new in lines.items():
                self.results.append_log(trial_id, "\n".join(new))

    # --- Tune's hooks

    def on_step_end(self, iteration, trials, **info):
        if not self.counted:
            self._count(trials)
        self.max_running = max(self.max_running, len(self.running))
        self._poll()
        counts, status = self._status(trials)
        if not self.console.is_terminal:
            previous, when = self._printed
            if counts != previous or (time.monotonic() - when > self.quiet_seconds and self.states):
                print_lines(self.console, [status, *self._running(trials)])  # a fact a line, as wide as COLUMNS
                self._printed = (counts, time.monotonic())
            return
        panel = Group(Text(status), *(Text(line) for line in self._running(trials)))
        if self.live is None:
            self.live = Live(panel, console=self.console, refresh_per_second=2, transient=False)
            self.live.start()
        else:
            self.live.update(panel)

    def _forget(self, trial) -> None:
        self._poll(force=True)  # its last epoch lines into its log first
        try:
            self._board().forget.remote(trial.trial_id)
        except Exception:  # no board: nothing to forget
            self._board_handle = None

    def on_trial_start(self, iteration, trials, trial, **info):
        if self.counted:
            self._started(trial)

    def on_trial_complete(self, iteration, trials, trial, **info):
        if self.counted:
            self._stopped(trial)
            self._tally(trial).ended(trial)
        if self.board is not None:
            self._forget(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        if self.counted:
            self._stopped(trial)
            self._tally(trial).failed += 1
        if self.board is not None:
            self._forget(trial)
        line = error_line(_error_text(trial))
        if line not in self.errors_seen:  # the closing lines count them all
            self.errors_seen.add(line)
            where = f" (traceback: {self.results.log(trial.trial_id)})" if self.results is not None else ""
            self.console.print(f"trial {trial.trial_id} failed: {line}{where}")

    def on_experiment_end(self, trials, **info):
        self._poll(force=True)
        counts, status = self._status(trials)
        if self.live is not None:
            self.live.update(Text(status))
            self.live.stop()
            self.live = None
        elif not self.console.is_terminal and counts != self._printed[0]:
            print_lines(self.console, [status])


# --- the callbacks a Python caller passes (search.api) --------------------------------------

_CALLERS: dict[str, list] = {}  # a study's results path -> the callbacks its driver was given


class CallerCallbacks(tune.Callback):
    """The Tune callbacks passed to `search.api.run_study` or `resume_study`, called after the
    study's own (so a fold's rows and model are on disk when a caller hears of it).

    Tune pickles its callbacks into its saved state and a resumed study gets those copies back,
    not the objects passed to `resume_study` (and a callback that holds a lock or a socket would
    not pickle at all). So the study's Tuner holds this forwarder, which pickles as the study's
    key alone, and it calls whatever the running driver registered for that key
    (`caller_callbacks`): nothing when none was passed. Every study's Tuner holds one, so
    callbacks passed to `resume_study` are called whichever way the study was started (except a
    study started by a version without it)."""

    IS_CALLBACK_CONTAINER = True  # Tune's metaclass then checks that every hook is forwarded

    def __init__(self, results: ResultsDir):
        self.key = _key(results)

    def _each(self, hook: str, *args, **kwargs) -> None:
        for callback in _CALLERS.get(self.key, ()):
            getattr(callback, hook)(*args, **kwargs)

    def setup(self, **info):
        self._each("setup", **info)

    def on_step_begin(self, iteration, trials, **info):
        self._each("on_step_begin", iteration, trials, **info)

    def on_step_end(self, iteration, trials, **info):
        self._each("on_step_end", iteration, trials, **info)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._each("on_trial_start", iteration, trials, trial, **info)

    def on_trial_restore(self, iteration, trials, trial, **info):
        self._each("on_trial_restore", iteration, trials, trial, **info)

    def on_trial_save(self, iteration, trials, trial, **info):
        self._each("on_trial_save", iteration, trials, trial, **info)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._each("on_trial_result", iteration, trials, trial, result, **info)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._each("on_trial_complete", iteration, trials, trial, **info)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._each("on_trial_recover", iteration, trials, trial, **info)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._each("on_trial_error", iteration, trials, trial, **info)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self._each("on_checkpoint", iteration, trials, trial, checkpoint, **info)

    def on_experiment_end(self, trials, **info):
        self._each("on_experiment_end", trials, **info)


def _key(results: ResultsDir) -> str:
    return str(results.path.resolve())


@contextmanager
def caller_callbacks(results: ResultsDir, callbacks) -> Iterator[None]:
    """`callbacks` called by the study's CallerCallbacks for the length of the block."""
    _CALLERS[_key(results)] = list(callbacks or ())
    try:
        yield
    finally:
        _CALLERS.pop(_key(results), None)

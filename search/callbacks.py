"""Driver-side Tune callbacks: the Parquet writer and the terminal progress."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd
from ray import tune
from rich.console import Console
from rich.live import Live
from rich.text import Text

from search.results import write_part


def _error_line(trial) -> str:
    """The exception's own line (the traceback's last) from the error file Tune just wrote
    on the driver; the copy in storage is synced later."""
    path = trial.error_file
    text = Path(path).read_text() if path and Path(path).exists() else (trial.get_error() or "")
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else "the trial failed without an error message"


class ParquetWriter(tune.Callback):
    """Writes each reported fold's rows, and a row per fold a trial did not complete
    (PRUNED when the scheduler stopped it, FAIL with the error when it raised)."""

    def __init__(self, results: Path, meta: dict, folds: list[int], param_paths: list[str]):
        self.results, self.meta, self.folds, self.param_paths = results, meta, folds, param_paths

    def on_trial_result(self, iteration, trials, trial, result, **info):
        rows = result.get("fbp_rows")
        if not rows:
            return
        part = f"{trial.trial_id}-fold{result['fold']}"
        for table in ("epochs", "predictions", "folds"):  # folds last: it marks the fold done
            frame = pd.DataFrame(rows[table])
            if table == "folds":  # a knob switched off by its condition still gets its column
                for path in self.param_paths:
                    frame[f"param.{path}"] = frame.get(f"param.{path}", None)
            write_part(self.results, table, part, frame)

    def _completed(self, trial_id: str) -> set[int]:
        """Folds of a trial already on disk: the part names say (this survives restarts)."""
        return {int(p.stem.rsplit("-fold", 1)[1]) for p in (self.results / "folds.parquet").glob(f"{trial_id}-fold*.parquet")}

    def _close(self, trial, status: str, error: str | None) -> None:
        done = self._completed(trial.trial_id)
        missing = [f for f in self.folds if f not in done]
        if not missing:
            return
        params = {f"param.{p}": trial.config.get(p) for p in self.param_paths}
        frame = pd.DataFrame([
            {"study": self.meta["study"], "spec_hash": self.meta["spec_hash"], "trial_id": trial.trial_id, "fold": f, "seed": None, "status": status, "error": error, **params}
            for f in missing
        ])
        write_part(self.results, "folds", f"{trial.trial_id}-{status.lower()}", frame)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._close(trial, "PRUNED", None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._close(trial, "FAIL", _error_line(trial))


class Progress(tune.Callback):
    """One live panel: trials running, done, pruned and failed; the best so far; time."""

    def __init__(self, console: Console, num_trials: int, metric: str, mode: str, num_folds: int):
        self.console, self.num_trials, self.metric, self.mode, self.num_folds = console, num_trials, metric, mode, num_folds
        self.started = time.monotonic()
        self.live: Live | None = None
        self.max_running = 0  # most trials Ray ran at once

    def __getstate__(self):
        # Tune pickles its callbacks with the experiment state; a console holds locks.
        return {k: v for k, v in self.__dict__.items() if k not in ("console", "live")}

    def __setstate__(self, state):
        self.__dict__.update(state, console=Console(highlight=False, soft_wrap=True), live=None)

    def _line(self, trials) -> Text:
        states = {"RUNNING": 0, "TERMINATED": 0, "ERROR": 0, "PENDING": 0, "PAUSED": 0}
        pruned, best = 0, None
        for t in trials:
            states[t.status] = states.get(t.status, 0) + 1
            last = t.last_result or {}
            if t.status == "TERMINATED" and last.get("folds_done", 0) < self.num_folds:
                pruned += 1
            value = last.get(self.metric)
            if value is not None and not math.isnan(value) and last.get("folds_done") == self.num_folds:
                if best is None or (value > best[0] if self.mode == "max" else value < best[0]):
                    best = (value, t.trial_id)
        finished = states["TERMINATED"] + states["ERROR"]
        elapsed = time.monotonic() - self.started
        eta = elapsed / finished * (self.num_trials - finished) if finished else float("nan")
        best_text = f"{best[0]:.4f} ({best[1]})" if best else "-"
        left = f"~{eta:.0f} s left" if not math.isnan(eta) else "? left"
        return Text(
            f"trials {finished}/{self.num_trials} · running {states['RUNNING']} · done {states['TERMINATED'] - pruned}"
            f" · pruned {pruned} · failed {states['ERROR']} · best {self.metric} {best_text} · {elapsed:.0f} s elapsed, {left}"
        )

    def on_step_end(self, iteration, trials, **info):
        self.max_running = max(self.max_running, sum(t.status == "RUNNING" for t in trials))
        if self.live is None:
            self.live = Live(self._line(trials), console=self.console, refresh_per_second=2, transient=False)
            self.live.start()
        else:
            self.live.update(self._line(trials))

    def on_experiment_end(self, trials, **info):
        if self.live is not None:
            self.live.update(self._line(trials))
            self.live.stop()
            self.console.print()

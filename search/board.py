"""Live progress of the running trials: trials post, the driver reads.

A trial runs wherever Ray puts it; its fold and epoch reach the driver through one small Ray
actor per study (no CPU reserved), not through `tune.report`, whose results drive ASHA and
Optuna and are saved with Tune's state. Posts are fire-and-forget and throttled, so a study of
hundreds of trials costs the driver a few calls a second.

    trial:  run_kfold(config, on_progress=poster(board_name, trial_id))
    driver: latest, lines = ray.get(board.take.remote())   # latest state per trial; new epoch lines
"""

from __future__ import annotations

import time
from collections.abc import Callable

import ray

from search.console import duration, fold_text, progress_line

MIN_SECONDS_BETWEEN_POSTS = 2.0  # per trial, for mid-epoch posts; epoch ends always post


@ray.remote(num_cpus=0)
class ProgressBoard:
    def __init__(self):
        self.latest: dict[str, dict] = {}
        self.lines: dict[str, list[str]] = {}

    def post(self, trial_id: str, state: dict, line: str | None = None) -> None:
        self.latest[trial_id] = state
        if line:
            self.lines.setdefault(trial_id, []).append(line)

    def forget(self, trial_id: str) -> None:
        """A trial ended: its state is no longer news (the board stays small over 10,000 trials)."""
        self.latest.pop(trial_id, None)

    def take(self) -> tuple[dict[str, dict], dict[str, list[str]]]:
        """Every trial's latest state, and the epoch lines posted since the last take."""
        lines, self.lines = self.lines, {}
        return self.latest, lines


def board_name(spec_hash: str) -> str:
    return f"fbp-search-progress-{spec_hash}"


def open_board(name: str):
    """The study's board, created by the driver (or found, when a resumed driver reuses it)."""
    return ProgressBoard.options(name=name, get_if_exists=True).remote()


def close_board(name: str) -> None:
    try:
        ray.kill(ray.get_actor(name))
    except ValueError:  # never created, or gone already
        pass


def poster(name: str | None, trial_id: str) -> Callable | None:
    """The `on_progress` hook of a trial: posts to the study's board (none: no hook)."""
    if name is None:
        return None
    try:
        board = ray.get_actor(name)
    except ValueError:  # a task outside the study's run (resume's repairs): nobody is watching
        return None
    last = [0.0]

    def post(p) -> None:
        now = time.monotonic()
        if p.event == "step" and now - last[0] < MIN_SECONDS_BETWEEN_POSTS:
            return
        last[0] = now
        state = {"event": p.event, "fold": p.fold, "fold_position": p.fold_position, "folds_total": p.folds_total,
                 "epoch": p.epoch, "epochs": p.epochs, "step": p.step, "steps": p.steps,
                 "images_per_second": p.images_per_second, "seconds_left": p.seconds_left, "message": p.message}
        try:
            board.post.remote(trial_id, state, progress_line(p) if p.event == "epoch" else None)
        except Exception:  # the board is gone (the driver stopped): training goes on
            pass

    return post


def describe(state: dict) -> str:
    """`fold 2/5 epoch 7/200` (or what it is doing before its first epoch)."""
    if state.get("event") in ("prepare", "ready") or not state.get("epochs"):
        return state.get("message") or "starting"
    text = f"{fold_text(state['fold'], state['fold_position'], state['folds_total'])} epoch {state['epoch']}/{state['epochs']}"
    if state.get("seconds_left") is not None:
        text += f", ~{duration(state['seconds_left'])} left"
    return text

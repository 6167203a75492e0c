"""Several studies as one Ray Tune run: `fbp-search run studies/paper/` shares the cluster.

    RESULTS_ROOT/
      set.yaml          the studies of the set (name, source, spec_hash): what resume reads
      tune/             the one Tune experiment of the set (its state and checkpoints)
      <study>/          each study's own results directory, as a single study writes it

Every trial carries its study's name in its config (`STUDY_KEY`). The pieces Tune takes one of
route each trial to its study's own:

    MultiSearcher    one StudySearcher (Optuna, its own journal) per study, asked in turn
                     until each has proposed its search.num_trials
    MultiScheduler   one ASHA (folds as rungs, the study's own objective) per study
    RoutedCallback   one model keeper and Parquet writer per study: models and rows go to the
                     study's directory
    trainable        the study's base config + the trial's params, with its resources

A trial that fails is its study's FAIL rows; the other studies go on. Resume restores the one
experiment and mends each study as `fbp-search resume` does a single one.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import yaml
from ray import tune
from ray.tune.execution.placement_groups import PlacementGroupFactory
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from rich.console import Console

from fbp.errors import InputError
from fbp.files import write_atomic
from search.callbacks import Progress, Tally
from search.console import duration
from search.results import ResultsDir
from search.spec import StudySpec
from search.trainable import StudyContext, train_trial
from search.tuner import LiveFIFO

STUDY_KEY = "__study__"
SET = "set.yaml"


@dataclass(frozen=True)
class Member:
    """One study of a set, as the Tune run needs it."""

    spec: StudySpec
    context: StudyContext
    results: ResultsDir  # absolute: Tune pickles what holds it
    fold_numbers: tuple[int, ...]

    @property
    def name(self) -> str:
        return self.spec.name


def _study_of(trial) -> str:
    return trial.config[STUDY_KEY]


# --- the trainable ---------------------------------------------------------------------------


def train_member_trial(config: dict, members: dict[str, tuple[StudySpec, StudyContext]]) -> None:
    """A trial of the set: its study's trainable on the params without the study's name."""
    params = dict(config)
    spec, context = members[params.pop(STUDY_KEY)]
    train_trial(params, spec, context)


def _resources(config: dict, members: dict[str, tuple[StudySpec, StudyContext]]) -> PlacementGroupFactory:
    spec = members[config[STUDY_KEY]][0]
    bundle = {"CPU": spec.resources.cpu, **({"GPU": spec.resources.gpu} if spec.resources.gpu else {})}
    return PlacementGroupFactory([bundle])


def trainable(members: dict[str, Member]):
    plain = {name: (m.spec, m.context) for name, m in members.items()}
    return tune.with_resources(partial(train_member_trial, members=plain), partial(_resources, members=plain))


# --- searcher, scheduler, callback: one of Tune's, routing to each study's own ----------------


class MultiSearcher(Searcher):
    """Asks each study's searcher in turn (the one that has proposed least, first), so that the
    studies' trials are queued together and share the cluster from the start."""

    def __init__(self, searchers: dict[str, Searcher], limits: dict[str, int]):
        super().__init__(metric=None, mode=None)
        self.searchers, self.limits = searchers, limits
        self.proposed = dict.fromkeys(searchers, 0)
        self.finished: set[str] = set()
        self.owner: dict[str, str] = {}  # trial_id -> study

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # each study's searcher has its own metric and mode

    def suggest(self, trial_id: str):
        for name in sorted(self.searchers, key=lambda n: self.proposed[n] / self.limits[n]):
            if name in self.finished or self.proposed[name] >= self.limits[name]:
                continue
            config = self.searchers[name].suggest(trial_id)
            if config == Searcher.FINISHED:
                self.finished.add(name)
                continue
            if config is None:
                continue
            self.owner[trial_id] = name
            self.proposed[name] += 1
            return {**config, STUDY_KEY: name}
        done = all(n in self.finished or self.proposed[n] >= self.limits[n] for n in self.searchers)
        return Searcher.FINISHED if done else None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.owner:
            self.searchers[self.owner[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.owner:
            self.searchers[self.owner[trial_id]].on_trial_complete(trial_id, result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


class MultiScheduler(LiveFIFO, FIFOScheduler):
    """Each trial's results go to its study's scheduler (ASHA ranks a study's trials among
    themselves: PCs of two datasets are not comparable); trials run first in, first out."""

    def __init__(self, schedulers: dict[str, TrialScheduler]):
        super().__init__()
        self.schedulers = schedulers

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)  # LiveFIFO's order
        self.schedulers[_study_of(trial)].on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self.schedulers[_study_of(trial)].on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self.schedulers[_study_of(trial)].on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller, trial) -> None:
        self.schedulers[_study_of(trial)].on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self.schedulers[_study_of(trial)].on_trial_remove(tune_controller, trial)

    def ended(self, trials: list) -> list:
        """Each study's scheduler reads its own study's record (LiveFIFO.ended)."""
        by_study: dict[str, list] = {}
        for trial in trials:
            by_study.setdefault(_study_of(trial), []).append(trial)
        return [t for name, own in by_study.items() for t in self.schedulers[name].ended(own)]


class RoutedCallback(tune.Callback):
    """A trial's models, rows, marks and traceback go to its own study's results directory:
    each hook to its study's callbacks, in their order. A keeper settles among its study's
    trials only."""

    def __init__(self, callbacks: dict[str, list[tune.Callback]]):
        self.callbacks = callbacks

    def _own(self, trials, trial) -> tuple[list, list[tune.Callback]]:
        name = _study_of(trial)
        return [t for t in trials if t.config.get(STUDY_KEY) == name], self.callbacks[name]

    def on_trial_result(self, iteration, trials, trial, result, **info):
        own, callbacks = self._own(trials, trial)
        for callback in callbacks:
            callback.on_trial_result(iteration, own, trial, result, **info)

    def on_trial_save(self, iteration, trials, trial, **info):
        own, callbacks = self._own(trials, trial)
        for callback in callbacks:
            callback.on_trial_save(iteration, own, trial, **info)

    def on_trial_complete(self, iteration, trials, trial, **info):
        own, callbacks = self._own(trials, trial)
        for callback in callbacks:
            callback.on_trial_complete(iteration, own, trial, **info)

    def on_trial_error(self, iteration, trials, trial, **info):
        own, callbacks = self._own(trials, trial)
        for callback in callbacks:
            callback.on_trial_error(iteration, own, trial, **info)


class SetProgress(Progress):
    """The console of a set: the time, then one status line per study (its trials finished,
    running, failed, its best so far), then a line per running trial. Each study's counts are
    kept by Tune's hooks as a single study's are (`Progress`), not recounted at every step."""

    def __init__(self, console: Console, members: dict[str, Member], quiet_seconds: float = 30.0):
        self.studies = {name: (m.spec.search.num_trials, m.spec.objectives[0], len(m.fold_numbers), m.results, m.context.board) for name, m in members.items()}
        super().__init__(console, sum(m.spec.search.num_trials for m in members.values()), "", "max", 0, None, None, quiet_seconds)

    def _new_tallies(self) -> dict[str, Tally]:
        return {name: Tally(objective.key, objective.direction, num_folds) for name, (_, objective, num_folds, _, _) in self.studies.items()}

    def _tally(self, trial) -> Tally:
        return self.tallies[_study_of(trial)]

    def _status(self, trials) -> tuple[tuple, str]:
        elapsed = time.monotonic() - self.started
        parts, counts = [], []
        for name, (num_trials, objective, _, _, _) in self.studies.items():
            t = self.tallies[name]
            parts.append(f"  {name} {t.finished}/{num_trials}" + (f" ({t.running} running)" if t.running else "") + (f" {t.failed} failed" if t.failed else "")
                         + (f" best {objective.key} {t.best[0]:.4f}" if t.best is not None else ""))
            counts.append((t.finished, t.running, t.failed))
        # a line per study: joined into one, a set of 17 studies ran past 400 columns
        return tuple(counts), "\n".join([f"set of {len(self.studies)} studies · {duration(elapsed)} elapsed", *parts])

    def _poll(self, force: bool = False) -> None:
        """The running trials' states from every study's board; epoch lines into their logs."""
        now = time.monotonic()
        if now - self._polled < 1.0 and not force:
            return
        self._polled = now
        import ray

        states = {}
        for _, _, _, results, board in self.studies.values():
            try:
                latest, lines = ray.get(ray.get_actor(board).take.remote(), timeout=5)
            except Exception:  # no board (yet)
                continue
            states.update(latest)
            for trial_id, new in lines.items():
                results.append_log(trial_id, "\n".join(new))
        self.states = states

    def _forget(self, trial) -> None:
        self._poll(force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        results = self.studies[_study_of(trial)][3]
        self.results = results  # the traceback's log is in the trial's own study
        super().on_trial_error(iteration, trials, trial, **info)


# --- the set's record, for resume ------------------------------------------------------------


def record_set(root: Path, members: dict[str, Member], sources: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(root / SET, yaml.safe_dump({"studies": [{"name": n, "source": sources[n], "spec_hash": m.context.spec_hash} for n, m in members.items()]}, sort_keys=False))


def read_set(root: Path) -> list[str]:
    """The names of a set's studies (each a results directory under `root`)."""
    try:
        recorded = yaml.safe_load((root / SET).read_text()) or {}
        return [s["name"] for s in recorded["studies"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise InputError(f"{root / SET}: cannot read the set ({type(e).__name__}: {e})") from None

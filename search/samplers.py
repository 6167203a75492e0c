"""Optuna's samplers by the name a study gives in `search.sampler`.

    tpe      Tree-structured Parzen Estimator (Optuna's default); the first trials are random.
             It models the `search.tpe_window` most recent finished trials (RecentTPESampler)
    random   independent uniform draws
    grid     every combination of a space of choices and stepped ranges, then the study ends
    gp       Gaussian-process Bayesian optimisation
    cmaes    CMA evolution strategy (numeric spaces only)
    nsga2    NSGA-II, for several objectives
"""

from __future__ import annotations

from collections.abc import Callable

import optuna

from search.space import grid_space
from search.spec import SearchSpec


class _Recent:
    """A study as RecentTPESampler shows it to TPE: a list of finished trials cut to the
    `window` most recent; everything else is the study itself."""

    def __init__(self, study: optuna.Study, window: int):
        self._study, self._window = study, window

    def __getattr__(self, name: str):
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False) -> list:
        # TPE reads every trial it models through this one method (Optuna 3 to 5)
        return self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)[-self._window:]


class RecentTPESampler(optuna.samplers.TPESampler):
    """TPE that models only the `window` most recent finished trials (trials are listed in
    the order they were asked), so an ask costs the same at 10,000 trials as at `window`.

    TPE builds its two densities from every finished trial at every ask, once per knob: its
    cost grows with the study (bench/scale.py: ~15 ms more per 1,000 trials, past 1 s at the
    slowest of 10,000). TPE already weighs older trials less; the window drops them. A study of
    at most `window` trials samples exactly as plain TPE does."""

    def __init__(self, window: int, **options):
        super().__init__(**options)
        self.window = window

    def infer_relative_search_space(self, study, trial):
        return super().infer_relative_search_space(_Recent(study, self.window), trial)

    def sample_relative(self, study, trial, search_space):
        return super().sample_relative(_Recent(study, self.window), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return super().sample_independent(_Recent(study, self.window), trial, param_name, param_distribution)


def _tpe(s: SearchSpec) -> optuna.samplers.BaseSampler:
    # a third of a small study, at most 10, is random before TPE models the space
    return RecentTPESampler(s.tpe_window, seed=s.seed, n_startup_trials=min(10, max(1, s.num_trials // 3)))


SAMPLERS: dict[str, Callable[[SearchSpec], optuna.samplers.BaseSampler]] = {
    "tpe": _tpe,
    "random": lambda s: optuna.samplers.RandomSampler(seed=s.seed),
    "grid": lambda s: optuna.samplers.GridSampler(grid_space(s.space), seed=s.seed),
    "gp": lambda s: optuna.samplers.GPSampler(seed=s.seed),
    "cmaes": lambda s: optuna.samplers.CmaEsSampler(seed=s.seed),
    "nsga2": lambda s: optuna.samplers.NSGAIISampler(seed=s.seed),
}


def sampler(search: SearchSpec) -> optuna.samplers.BaseSampler:
    return SAMPLERS[search.sampler](search)

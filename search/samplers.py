"""Optuna's samplers by the name a study gives in `search.sampler`.

    tpe      Tree-structured Parzen Estimator (Optuna's default); the first trials are random
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


def _tpe(s: SearchSpec) -> optuna.samplers.BaseSampler:
    # a third of a small study, at most 10, is random before TPE models the space
    return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=min(10, max(1, s.num_trials // 3)))


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

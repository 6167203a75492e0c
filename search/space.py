"""The search space as Optuna distributions, built once per study.

    space = SearchSpace.of(spec)      # {path: distribution} and each path's `when` condition
    params = space(trial)             # define-by-run: Ray Tune's OptunaSearch calls it per trial

A knob whose `when` condition does not hold is not asked for, so the trial's params omit it and
its config keeps the base value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import Trial

from search.spec import Dimension, StudySpec

DISTRIBUTIONS = {
    "float": lambda d: FloatDistribution(*d.float_, log=d.log, step=d.step),
    "int": lambda d: IntDistribution(*d.int_, log=d.log, step=int(d.step) if d.step else 1),
    "choice": lambda d: CategoricalDistribution(list(d.choice)),
}
"""A dimension's kind -> its Optuna distribution."""


def to_distribution(dim: Dimension) -> BaseDistribution:
    return DISTRIBUTIONS[dim.kind](dim)


SUGGEST = {
    FloatDistribution: lambda trial, path, d: trial.suggest_float(path, d.low, d.high, step=d.step, log=d.log),
    IntDistribution: lambda trial, path, d: trial.suggest_int(path, d.low, d.high, step=d.step, log=d.log),
    CategoricalDistribution: lambda trial, path, d: trial.suggest_categorical(path, d.choices),
}
"""A distribution's type -> the public `Trial.suggest_*` call that records that same
distribution (same bounds, step, log, choices): a journal written by the earlier
`trial._suggest(path, distribution)` resumes unchanged."""


def suggest(trial: Trial, path: str, distribution: BaseDistribution):
    """Ask `trial` for `path` on `distribution`, through Optuna's public API."""
    return SUGGEST[type(distribution)](trial, path, distribution)


@dataclass(frozen=True)
class SearchSpace:
    distributions: dict[str, BaseDistribution]  # in the space's order: a condition names an earlier knob
    conditions: dict[str, dict[str, Any]]  # path -> {other path: wanted value or values}
    base: dict[str, Any]  # the base config's values by dotted path, for conditions on fixed knobs

    @classmethod
    def of(cls, spec: StudySpec) -> SearchSpace:
        space = spec.search.space
        return cls(
            distributions={path: to_distribution(dim) for path, dim in space.items()},
            conditions={path: dict(dim.when) for path, dim in space.items() if dim.when},
            base=flatten(spec.base.model_dump(mode="json")),
        )

    def holds(self, path: str, params: dict[str, Any]) -> bool:
        """Whether `path`'s condition holds given the params asked so far and the base config."""
        for other, wanted in self.conditions.get(path, {}).items():
            value = params[other] if other in params else self.base.get(other)
            if value not in (wanted if isinstance(wanted, list) else [wanted]):
                return False
        return True

    def __call__(self, trial) -> dict[str, Any]:
        """Ask the Optuna trial for each active knob, in order. Nothing else happens here:
        Ray Tune calls it on the driver for every trial."""
        params: dict[str, Any] = {}
        for path, distribution in self.distributions.items():
            if self.holds(path, params):
                # the distributions are built once per study; each is asked through its public
                # suggest_* call (a private `trial._suggest` is a version bound owed)
                params[path] = suggest(trial, path, distribution)
        return params


def grid_space(space: dict[str, Dimension]) -> dict[str, list]:
    """Every value of every dimension, for Optuna's GridSampler."""
    return {path: dim.grid() for path, dim in space.items()}


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"loss": {"alpha": 2}} -> {"loss.alpha": 2}; the loader's options stay one value."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and not (prefix + key == "data.options"):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def describe(d: BaseDistribution) -> str:
    """`float [0.0, 4.0] log`, `int [10, 100] step 10`, `choice ['step', 'cosine']`."""
    if isinstance(d, CategoricalDistribution):
        return f"choice {list(d.choices)}"
    kind = "int" if isinstance(d, IntDistribution) else "float"
    extra = " log" if d.log else f" step {d.step}" if d.step not in (None, 1) or (kind == "float" and d.step) else ""
    return f"{kind} [{d.low}, {d.high}]{extra}"

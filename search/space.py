"""The search space as data -> Optuna. `to_distributions` is the one pure mapping;
`suggest` walks it define-by-run, skipping knobs whose `when` condition does not hold."""

from __future__ import annotations

from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from search.spec import Dimension


def to_distribution(dim: Dimension) -> BaseDistribution:
    if dim.kind == "choice":
        return CategoricalDistribution(list(dim.choice))
    if dim.kind == "int":
        low, high = dim.int_
        return IntDistribution(low, high, log=dim.log, step=int(dim.step) if dim.step else 1)
    low, high = dim.float_
    return FloatDistribution(low, high, log=dim.log, step=dim.step)


def to_distributions(space: dict[str, Dimension]) -> dict[str, BaseDistribution]:
    return {path: to_distribution(dim) for path, dim in space.items()}


def condition_holds(dim: Dimension, params: dict[str, Any], base: dict[str, Any]) -> bool:
    """`base` maps dotted paths to the base config's values, for conditions on fixed knobs."""
    for path, wanted in (dim.when or {}).items():
        value = params[path] if path in params else base.get(path)
        if value not in (wanted if isinstance(wanted, list) else [wanted]):
            return False
    return True


def suggest(trial, space: dict[str, Dimension], base: dict[str, Any]) -> dict[str, Any]:
    """Define-by-run: ask the Optuna trial for each active knob, in the space's order.
    No computation here beyond the asking (Ray Tune calls it on the driver)."""
    params: dict[str, Any] = {}
    for path, dim in space.items():
        if condition_holds(dim, params, base):
            params[path] = _ask(trial, path, to_distribution(dim))
    return params


def _ask(trial, path: str, d: BaseDistribution) -> Any:
    """The public suggest_* call for a distribution."""
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(path, list(d.choices))
    if isinstance(d, IntDistribution):
        return trial.suggest_int(path, d.low, d.high, step=d.step, log=d.log)
    return trial.suggest_float(path, d.low, d.high, step=d.step, log=d.log)


def grid_space(space: dict[str, Dimension]) -> dict[str, list]:
    return {path: dim.grid() for path, dim in space.items()}


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"loss": {"alpha": 2}} -> {"loss.alpha": 2}"""
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

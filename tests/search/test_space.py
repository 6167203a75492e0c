import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from search.space import SearchSpace, flatten, grid_space, to_distribution
from search.spec import Dimension


def _space(dims: dict[str, Dimension], base: dict | None = None) -> SearchSpace:
    return SearchSpace({p: to_distribution(d) for p, d in dims.items()}, {p: d.when for p, d in dims.items() if d.when}, base or {})


@pytest.mark.parametrize(
    "entry, distribution",
    [
        ({"float": [0.0, 4.0]}, FloatDistribution(0.0, 4.0)),
        ({"float": [0.001, 0.1], "log": True}, FloatDistribution(0.001, 0.1, log=True)),
        ({"float": [0.0, 4.0], "step": 0.5}, FloatDistribution(0.0, 4.0, step=0.5)),
        ({"int": [3, 10]}, IntDistribution(3, 10)),
        ({"int": [10, 100], "step": 10}, IntDistribution(10, 100, step=10)),
        ({"int": [1, 64], "log": True}, IntDistribution(1, 64, log=True)),
        ({"choice": ["step", "cosine"]}, CategoricalDistribution(["step", "cosine"])),
        ({"choice": [True, False]}, CategoricalDistribution([True, False])),
    ],
)
def test_each_entry_maps_to_its_optuna_distribution(entry, distribution):
    assert to_distribution(Dimension.model_validate(entry)) == distribution


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"float": [4.0, 0.0]}, "low <= high must hold, but got (low=4.0, high=0.0)"),
        ({"float": [0.0, 1.0], "log": True}, "log needs a float or int range with low > 0"),
        ({"float": [0.0, 1.0], "int": [0, 1]}, "give exactly one of float, int, choice"),
        ({}, "give exactly one of float, int, choice; got none"),
        ({"choice": []}, "choice needs at least one value"),
    ],
)
def test_bad_entries(entry, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Dimension.model_validate(entry)


def test_grid_values():
    space = {
        "a": Dimension.model_validate({"float": [0.0, 1.0], "step": 0.25}),
        "b": Dimension.model_validate({"int": [1, 3]}),
        "c": Dimension.model_validate({"choice": ["x", "y"]}),
    }
    assert grid_space(space) == {"a": [0.0, 0.25, 0.5, 0.75, 1.0], "b": [1, 2, 3], "c": ["x", "y"]}
    assert Dimension.model_validate({"float": [0.0, 1.0]}).grid() is None


def test_conditions_on_searched_and_fixed_knobs():
    space = {
        "train.schedule.name": Dimension.model_validate({"choice": ["step", "cosine"]}),
        "train.schedule.step_size": Dimension.model_validate({"int": [10, 100], "when": {"train.schedule.name": "step"}}),
        "train.schedule.warmup_epochs": Dimension.model_validate({"float": [0, 5], "when": {"train.schedule.name": ["cosine"]}}),
    }
    seen = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        trial = study.ask()
        params = _space(space)(trial)
        name = params["train.schedule.name"]
        assert ("train.schedule.step_size" in params) == (name == "step")
        assert ("train.schedule.warmup_epochs" in params) == (name == "cosine")
        seen.add(name)
        study.tell(trial, 0.0)
    assert seen == {"step", "cosine"}
    fixed = {"loss.beta": Dimension.model_validate({"int": [1, 2], "when": {"loss.name": "combo"}})}
    assert _space(fixed, {"loss.name": "combo"}).holds("loss.beta", {}) and not _space(fixed, {"loss.name": "l1"}).holds("loss.beta", {})


def test_flatten_keeps_loader_options_whole():
    assert flatten({"loss": {"alpha": 2, "discretization": {"rule": "paper"}}, "data": {"options": {"n": 5}}}) == {
        "loss.alpha": 2,
        "loss.discretization.rule": "paper",
        "data.options": {"n": 5},
    }

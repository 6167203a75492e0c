import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from search.samplers import RecentTPESampler, sampler
from search.space import suggest
from search.spec import SearchSpec

SPACE = {"x": FloatDistribution(-5, 5), "c": CategoricalDistribution(["a", "b"])}


def _history(values: list[tuple[float, str]], offset: float = 0.0) -> list:
    """Finished trials of SPACE: every third pruned at step 1, the others complete."""
    trials = []
    for i, (x, c) in enumerate(values):
        params = {"x": x, "c": c}
        if i % 3 == 0:
            trials.append(create_trial(state=TrialState.PRUNED, params=params, distributions=SPACE, intermediate_values={1: x * x}))
        else:
            trials.append(create_trial(value=(x - 1) ** 2 + (c == "b") + offset, params=params, distributions=SPACE))
    return trials


def _next(sampler_: optuna.samplers.BaseSampler, history: list) -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler_)
    study.add_trials(history)
    trial = study.ask()
    return {name: suggest(trial, name, d) for name, d in SPACE.items()}


@pytest.mark.parametrize("multivariate", [False, True])
def test_a_study_within_the_window_samples_as_plain_tpe(multivariate):
    history = _history([((i * 7919) % 100 / 10 - 5, "ab"[i % 2]) for i in range(60)])
    plain = _next(optuna.samplers.TPESampler(seed=3, multivariate=multivariate), history)
    assert _next(RecentTPESampler(60, seed=3, multivariate=multivariate), history) == plain


def test_trials_older_than_the_window_are_not_modelled():
    recent = _history([((i * 7919) % 100 / 10 - 5, "ab"[i % 2]) for i in range(40)])
    old_good, old_bad = _history([(1.0, "a")] * 30), _history([(-4.0, "b")] * 30, offset=50.0)
    window = RecentTPESampler(40, seed=0)
    assert _next(window, old_good + recent) == _next(RecentTPESampler(40, seed=0), old_bad + recent)
    assert _next(optuna.samplers.TPESampler(seed=0), old_good + recent) != _next(optuna.samplers.TPESampler(seed=0), old_bad + recent)


def test_the_study_sets_the_window():
    tpe = sampler(SearchSpec(sampler="tpe", num_trials=50, space={"loss.alpha": {"float": [0, 4]}}, tpe_window=200))
    assert isinstance(tpe, RecentTPESampler) and tpe.window == 200
    assert SearchSpec().tpe_window == 1000

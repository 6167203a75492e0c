import pickle

import optuna
import pytest
from ray import cloudpickle

from search.results import TUNE_TRIAL_ID, ResultsDir
from search.samplers import SAMPLERS
from search.spec import validate_spec
from search.tuner import searcher

SPACE = {"loss.alpha": {"float": [0.0, 4.0]}, "loss.beta": {"float": [0.5, 1.0]}}  # floats: every sampler takes them


def _searcher(tmp_path, sampler: str, objectives=({"metric": "pc"},)):
    study = {"name": "pickled", "data": {"dataset": "synthetic", "protocol": "5fold"}, "model": {"backbone": "test_resnet", "pretrained": False},
             "search": {"sampler": sampler, "num_trials": 4, "seed": 3, "space": SPACE, "baseline": []}, "objective": list(objectives)}
    return searcher(validate_spec(study, "pickled.yaml"), ResultsDir(tmp_path), 5)


@pytest.mark.parametrize("name", sorted(set(SAMPLERS) - {"grid"}))
def test_the_searcher_pickles_as_tune_pickles_it_whatever_its_sampler_holds(tmp_path, name):
    # Tune cloudpickles the searcher when the Tuner is built; optuna 5.1's NSGA-II holds a thread lock
    original = _searcher(tmp_path, name)
    copy = cloudpickle.loads(cloudpickle.dumps(original))
    assert type(copy._sampler) is type(original._sampler)
    config = copy.suggest("t1")
    assert 0.0 <= config["loss.alpha"] <= 4.0 and 0.5 <= config["loss.beta"] <= 1.0


def test_nsga2_with_two_objectives_survives_save_and_restore_with_its_random_state(tmp_path):
    original = _searcher(tmp_path, "nsga2", [{"metric": "pc"}, {"metric": "mae"}])
    original.save(str(tmp_path / "searcher.pkl"))  # Tune's state snapshot of the searcher
    (tmp_path / "elsewhere").mkdir()
    restored = _searcher(tmp_path / "elsewhere", "random")
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert type(restored._sampler).__name__ == "NSGAIISampler"
    lock = restored._sampler._thread_lock  # a new, unlocked lock in the restored process
    assert lock.acquire(blocking=False)
    lock.release()
    # the same random state: the first generation is drawn at random, so the next draws agree
    twin = pickle.loads(pickle.dumps(original))
    assert twin._sampler._random_sampler._rng.rng.random() == restored._sampler._random_sampler._rng.rng.random()


def _asked_by_a_killed_driver(tmp_path, tune_id: str) -> optuna.trial.FrozenTrial:
    """What a driver killed right after Optuna's ask leaves: a RUNNING trial with its params and
    its Tune id, no fold value; and the searcher of the resumed driver, which knows none of it."""
    first = _searcher(tmp_path, "random")
    first.suggest(tune_id)
    (trial,) = first._ot_study.get_trials(deepcopy=False)
    return trial


def test_a_resumed_searcher_runs_the_trial_a_killed_driver_asked_for_and_never_ran(tmp_path):
    asked = _asked_by_a_killed_driver(tmp_path, "old")
    resumed = _searcher(tmp_path, "random")
    config = resumed.suggest("new")
    trials = resumed._ot_study.get_trials(deepcopy=False)
    assert len(trials) == 1 and config == asked.params  # its params, no new ask
    assert trials[0].user_attrs[TUNE_TRIAL_ID] == "new"
    assert trials[0].user_attrs["log"] == str(tmp_path / "logs" / "new.log") and trials[0].user_attrs["models"] == str(tmp_path / "models" / "new")
    resumed.suggest("next")  # the asked trial is taken: the next one is Optuna's new ask
    assert len(resumed._ot_study.get_trials(deepcopy=False)) == 2


def test_a_trial_that_wrote_rows_is_not_run_again(tmp_path):
    import pandas as pd

    asked = _asked_by_a_killed_driver(tmp_path, "old")
    ResultsDir(tmp_path).write("folds", "old-fold1", pd.DataFrame([{"trial_id": "old", "fold": 1, "seed": 0, "status": "COMPLETE", "pc": 0.5}]))
    resumed = _searcher(tmp_path, "random")
    resumed.suggest("new")
    trials = resumed._ot_study.get_trials(deepcopy=False)
    assert len(trials) == 2 and trials[0].number == asked.number and trials[0].user_attrs[TUNE_TRIAL_ID] == "old"  # repair finishes it

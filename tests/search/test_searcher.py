import pickle

import pytest
from ray import cloudpickle

from search.results import ResultsDir
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

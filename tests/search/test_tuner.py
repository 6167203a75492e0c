import pickle
from dataclasses import dataclass

import optuna
from ray.tune.schedulers import TrialScheduler

from search.results import ResultsDir
from search.spec import validate_spec
from search.tuner import FoldASHA, scheduler

STUDY = {
    "name": "rungs", "data": {"dataset": "synthetic", "protocol": "5fold"}, "model": {"backbone": "test_resnet", "pretrained": False},
    "search": {"num_trials": 20, "space": {"loss.alpha": {"float": [0.0, 4.0]}}},
    "scheduler": {"name": "asha", "grace_folds": 1, "reduction_factor": 2},
}


@dataclass(frozen=True)
class Trial:
    trial_id: str


def _journal(results: ResultsDir, fold_values: list[list[float]], state=optuna.trial.TrialState.PRUNED) -> None:
    """Finished trials as the study's searcher leaves them: each fold's value at step = fold."""
    study = optuna.create_study(study_name="rungs", storage=results.journal(), direction="maximize", load_if_exists=True)
    for values in fold_values:
        trial = study.ask()
        trial.suggest_float("loss.alpha", 0.0, 4.0)
        for fold, value in enumerate(values, 1):
            trial.report(value, fold)
        study.tell(trial, state=state)


def _asha(results: ResultsDir) -> FoldASHA:
    asha = scheduler(validate_spec(STUDY, "rungs.yaml"), 5, results=results)
    asha.set_search_properties("val_pc", "max")
    return asha


def _decision(asha: FoldASHA, trial_id: str, value: float, folds_done: int = 1) -> str:
    trial = Trial(trial_id)
    asha.on_trial_add(None, trial)
    return asha.on_trial_result(None, trial, {"folds_done": folds_done, "val_pc": value})


def test_a_resumed_asha_ranks_new_trials_against_the_journals(tmp_path):
    results = ResultsDir(tmp_path)
    _journal(results, [[0.5], [0.6], [0.7, 0.9], [0.8, 0.9]])  # rung 1 held 0.5, 0.6, 0.7, 0.8; rung 2 0.8, 0.85
    restored = pickle.loads(pickle.dumps(_asha(results)))  # as Tune restores it: unpickled, nothing recalled yet
    assert _decision(restored, "new-1", 0.62) == TrialScheduler.STOP  # below the median of the four (0.65)
    assert _decision(restored, "new-2", 0.75) == TrialScheduler.CONTINUE
    assert _decision(restored, "new-2", 0.8, folds_done=2) == TrialScheduler.STOP  # (0.7 + 0.9) / 2 and (0.8 + 0.9) / 2 stand before it


def test_a_new_study_starts_with_empty_rungs(tmp_path):
    asha = _asha(ResultsDir(tmp_path))  # no journal at all
    assert _decision(asha, "first", 0.1) == TrialScheduler.CONTINUE
    assert _decision(asha, "second", 0.05) == TrialScheduler.STOP


def test_running_trials_are_not_recalled(tmp_path):
    results = ResultsDir(tmp_path)
    study = optuna.create_study(study_name="rungs", storage=results.journal(), direction="maximize")
    running = study.ask()
    running.report(0.9, 1)  # still RUNNING: it reports its own rungs when it resumes
    asha = _asha(results)
    assert _decision(asha, "new", 0.1) == TrialScheduler.CONTINUE


@dataclass(frozen=True)
class MemberTrial:
    trial_id: str
    config: dict


def test_every_scheduler_finds_the_trials_its_study_ended(tmp_path):
    from search.results import marks_frame
    from search.studyset import STUDY_KEY, MultiScheduler

    def marked(folder, trial, status):
        results = ResultsDir(folder)
        results.write_marks(marks_frame({"trial_id": trial}, [2], status, None), trial, status)
        return results

    asha = scheduler(validate_spec(STUDY, "rungs.yaml"), 5, results=marked(tmp_path / "a", "a-pruned", "PRUNED"))
    fifo = scheduler(validate_spec({**STUDY, "scheduler": {"name": "none"}}, "b.yaml"), 5, results=marked(tmp_path / "b", "b-failed", "FAIL"))
    trials = [MemberTrial(t, {STUDY_KEY: study}) for t, study in (("a-pruned", "a"), ("a-live", "a"), ("b-failed", "b"), ("b-live", "b"))]
    assert [t.trial_id for t in asha.ended(trials[:2])] == ["a-pruned"]
    assert [t.trial_id for t in pickle.loads(pickle.dumps(fifo)).ended(trials[2:])] == ["b-failed"]
    assert sorted(t.trial_id for t in MultiScheduler({"a": asha, "b": fifo}).ended(trials)) == ["a-pruned", "b-failed"]
    assert scheduler(validate_spec(STUDY, "rungs.yaml"), 5).ended(trials) == []  # no results directory: nothing to read

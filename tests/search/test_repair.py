"""search.repair on results a killed driver leaves, built by hand: which trials are orphans, and
what resume tells their Optuna trials (no training: every case here has all its folds)."""

from __future__ import annotations

import optuna
import pytest

from search.repair import missing_folds, repair
from search.results import ResultsDir, read_table
from search.spec import validate_spec
from tests.search.report.make_results import SPACE, T, make_results, write_journal


def _space_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    return {"loss.name": CategoricalDistribution(SPACE["loss.name"]["choice"]), "loss.alpha": FloatDistribution(0.0, 4.0),
            "train.lr": FloatDistribution(0.001, 0.1, log=True)}


def test_an_orphan_killed_after_its_last_fold_is_told_its_result_not_failed(tmp_path):
    # the driver wrote the 5th fold of trial "b", then died before telling Optuna and before
    # Tune's next snapshot: the restored Tune knows only "a"; b's Optuna trial stays RUNNING
    root = tmp_path / "results"
    done = T("a", {"loss.name": "combo", "loss.alpha": 2.0, "train.lr": 0.01})
    orphan = T("b", {"loss.name": "l1", "loss.alpha": 1.25, "train.lr": 0.02})
    make_results(root, [done, orphan], journal=False, on="test")
    write_journal(root, "toy", [done], SPACE, 5)
    study = optuna.load_study(study_name="toy", storage=ResultsDir(root).journal())
    study.enqueue_trial(orphan.params)
    number = study.ask(_space_distributions()).number
    folds = read_table(root, "folds")

    class Known:  # what a restored Tune's result grid holds of trial "a"
        metrics, checkpoint, config = {"trial_id": "a"}, None, done.params

    todo, orphans = missing_folds([Known], ResultsDir(root), [1, 2, 3, 4, 5], folds)
    assert todo == {} and orphans == {"b"}  # nothing to train, but a trial to tell

    spec = validate_spec(_study(root), "toy.yaml")
    assert repair([Known], ResultsDir(root), spec, None, [1, 2, 3, 4, 5]) == 0
    told = optuna.load_study(study_name="toy", storage=ResultsDir(root).journal()).trials[number]
    assert told.state == optuna.trial.TrialState.COMPLETE
    assert told.value == pytest.approx(folds.loc[folds["trial_id"] == "b", "pc"].mean())  # the objective: mean test PC


def test_a_trial_tune_knows_is_never_an_orphan(tmp_path):
    root = tmp_path / "results"
    trials = [T("a", {"loss.name": "combo", "loss.alpha": 2.0, "train.lr": 0.01}), T("b", {"loss.name": "mse", "loss.alpha": 0.5, "train.lr": 0.05})]
    make_results(root, trials)

    def known(trial):
        return type("Result", (), {"metrics": {"trial_id": trial.trial_id}, "checkpoint": None, "config": trial.params})

    assert missing_folds([known(t) for t in trials], ResultsDir(root), [1, 2, 3, 4, 5]) == ({}, set())


def _study(root) -> dict:
    """study.yaml as the runner wrote it, less its hash (make_results writes a placeholder)."""
    study = dict(ResultsDir(root).read_study())
    study.pop("spec_hash", None)
    return study

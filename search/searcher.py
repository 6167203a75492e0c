"""Tune's Optuna searcher, made safe for studies resumed after their driver was killed."""

from __future__ import annotations

import optuna
from ray.tune.search.optuna import OptunaSearch


class StudySearcher(OptunaSearch):
    """OptunaSearch that accepts a result for a trial the Optuna journal already finished.

    Tune restores a killed study from its last state snapshot, which may predate a trial's end
    that the journal did record. The restored trial then finds all its folds on disk and reports
    its result once more; Optuna refuses updates to a finished trial, and that refusal must not
    stop the study. (The journal skips the refused entry on every later read.)
    """

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        try:
            super().on_trial_result(trial_id, result)
        except optuna.exceptions.UpdateFinishedTrialError:
            self._completed_trials.add(trial_id)

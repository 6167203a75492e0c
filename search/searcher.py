"""Tune's Optuna searcher, telling the journal what really happened to each trial.

Ray's `OptunaSearch` reports the running mean as the intermediate value and tells every trial
that stopped with a result COMPLETE, an ASHA-stopped one included; TPE then learns from
one-fold means as if they were finished trials, and optuna-dashboard shows another best than
the report. Here:

- each fold's own value is the intermediate value, at step = the fold's number;
- a trial is COMPLETE only when all its folds are done; stopped earlier it is PRUNED; one that
  raised is FAIL (with the intermediate values it had reached).

Multi-objective studies have no intermediate values (Optuna has none for them); their states
follow the same rules.

Each Optuna trial names its Tune trial (user attribute `search.results.TUNE_TRIAL_ID`): a resumed
driver finds by Tune's id which trials the journal says ended (`ResultsDir.ended`), and a reader
of the journal (optuna-dashboard, the fault drill) matches its trials to the Parquet rows.
"""

from __future__ import annotations

import io
import pickle
import threading

import optuna
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from search.results import TUNE_TRIAL_ID, ResultsDir
from search.trainable import fold_key


class StudySearcher(OptunaSearch):
    """OptunaSearch with the journal states above. It also accepts a result for a trial the
    journal already finished: Tune restores a killed study from its last state snapshot, which
    may predate a trial's end that the journal did record; Optuna's refusal to update a
    finished trial must not stop the study (the journal skips the refused entry on reads).

    It pickles whatever its sampler holds (`__getstate__`): Tune pickles the searcher when the
    Tuner is built and at every state snapshot, and some samplers hold a thread lock (optuna
    5.1's NSGA-II), which plain pickling refuses. A lock is process state, not study state:
    the searcher's state is pickled with each lock standing for a new, unlocked one, so the
    sampler's random state and everything else survives a resume as it was."""

    def __init__(self, *args, num_folds: int, results: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_folds = num_folds
        self.results = results  # the study's results directory: which trials wrote rows (`_never_ran`)
        self._reported_folds: set[tuple[str, int]] = set()  # saved with the searcher's state

    def __getstate__(self) -> dict:
        return {"pickled": _dumps_without_locks(self.__dict__)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(pickle.loads(state["pickled"]))
        self._unran = None  # a restored searcher looks for the trials its killed driver never ran, once

    def save(self, checkpoint_path: str) -> None:
        # OptunaSearch.save pickles __dict__ itself, bypassing __getstate__
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(pickle.load(f))

    def suggest(self, trial_id: str) -> dict | None:
        if trial_id not in self._ot_trials and (asked := self._never_ran()) is not None:
            self._ot_trials[trial_id] = asked  # OptunaSearch.suggest takes its params from it
        config = super().suggest(trial_id)
        if trial_id in self._ot_trials:
            trial = self._ot_trials[trial_id]
            trial.set_user_attr(TUNE_TRIAL_ID, trial_id)
            if self.results is not None:  # where optuna-dashboard's reader finds the trial's log and kept models
                results = ResultsDir(self.results)
                trial.set_user_attr("log", str(results.log(trial_id)))
                trial.set_user_attr("models", str(results.model_dir(trial_id)))
        return config

    def _never_ran(self) -> optuna.trial.Trial | None:
        """An Optuna trial a killed driver asked for that never ran, for a resumed driver's next
        Tune trial: RUNNING in the journal, unknown to this searcher (it was asked after Tune's
        last state snapshot, which restored this searcher), no fold value, no fold rows under
        the Tune id it was given. Asking Optuna for another instead left it RUNNING, to be failed
        at the study's end: a FAIL in the journal that Parquet has no trial for, and one trial
        more than num_trials. Its params were proposed already: the trial runs them."""
        if getattr(self, "_unran", None) is None:  # one scan of the journal per driver, not one per trial asked
            known = {t.number for t in self._ot_trials.values()}
            self._unran = [t for t in self._ot_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                           if t.number not in known and not t.intermediate_values and not self._wrote_rows(t.user_attrs.get(TUNE_TRIAL_ID))]
        if not self._unran:
            return None
        return optuna.trial.Trial(self._ot_study, self._unran.pop(0)._trial_id)  # Optuna's id of the trial in its storage (no public accessor)

    def _wrote_rows(self, tune_id: str | None) -> bool:
        if tune_id is None or self.results is None:
            return False
        return not ResultsDir(self.results).read("folds", trials={tune_id}).empty

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if isinstance(self.metric, list) or trial_id in self._completed_trials:
            return
        value = result.get(fold_key(self.metric))
        if value is None or "fold" not in result:
            return  # not a fold's report (a restarted trial re-announcing its result)
        if (trial_id, result["fold"]) in self._reported_folds:
            return
        try:
            self._ot_trials[trial_id].report(float(value), step=int(result["fold"]))
            self._reported_folds.add((trial_id, result["fold"]))
        except optuna.exceptions.UpdateFinishedTrialError:
            self._completed_trials.add(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials:
            return
        if result:
            # Tune hands the result that ends a trial (the last fold, or the one ASHA stopped
            # it at) to on_trial_complete alone: record its fold here
            self.on_trial_result(trial_id, result)
            if trial_id in self._completed_trials:
                return
        if not error and result and result.get("folds_done", 0) >= self.num_folds:
            super().on_trial_complete(trial_id, result)
            return
        state = TrialState.FAIL if error else TrialState.PRUNED
        # a trial the journal ended already (a restored one stopped before it ran: search.tuner.LiveFIFO)
        # keeps its state: Optuna refuses a second tell with a ValueError, skip_if_finished is its way to ask
        self._ot_study.tell(self._ot_trials[trial_id], state=state, skip_if_finished=True)
        self._completed_trials.add(trial_id)


_LOCKS = (type(threading.Lock()), type(threading.RLock()))


class _FreshLocks(pickle.Pickler):
    """Pickles a lock as a call that makes a new unlocked one of its kind."""

    def reducer_override(self, obj):
        if isinstance(obj, _LOCKS):
            return (threading.RLock if isinstance(obj, _LOCKS[1]) else threading.Lock), ()
        return NotImplemented


def _dumps_without_locks(obj) -> bytes:
    buffer = io.BytesIO()
    _FreshLocks(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()

"""A study as a Ray Tune experiment: the searcher, the scheduler, the callbacks, the trainable.

    searcher   Optuna (search.searcher.StudySearcher) over the study's space, its journal in
               the results directory, the baseline points first
    scheduler  ASHA with folds as its rungs (or none), its rungs rebuilt from the journal on resume
    callbacks  the model keeper, the Parquet writer, the console progress and a Python caller's
               own (search.callbacks)
    trainable  search.trainable.train_trial with the study's resources
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from rich.console import Console

from search.callbacks import CallerCallbacks, ModelKeeper, ParquetWriter, Progress
from search.results import ResultsDir
from search.samplers import sampler
from search.searcher import StudySearcher
from search.space import SearchSpace
from search.spec import StudySpec
from search.tracking import Tracker
from search.trainable import StudyContext, train_trial


def trainable(spec: StudySpec, context: StudyContext):
    """The trial function with its study bound, and the resources each trial reserves. The
    validated study itself travels to the workers (pickled), not its YAML."""
    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    return tune.with_resources(partial(train_trial, spec=spec, context=context), resources)


def searcher(spec: StudySpec, results: ResultsDir, num_folds: int) -> StudySearcher:
    metrics = [o.key for o in spec.objectives]  # pc on the test folds, or val_pc on the validation parts
    modes = [o.direction for o in spec.objectives]
    return StudySearcher(
        space=SearchSpace.of(spec),
        metric=metrics if len(metrics) > 1 else metrics[0],
        mode=modes if len(modes) > 1 else modes[0],
        points_to_evaluate=[dict(p) for p in spec.search.baseline] or None,
        sampler=sampler(spec.search),
        study_name=spec.name,
        storage=results.journal(),
        num_folds=num_folds,
        results=str(results.path),
    )


class LiveFIFO:
    """Tune's first-in first-out choice of the next trial to start, made among the live trials
    (waiting, running, paused) instead of every trial of the study. Tune asks at every step of
    its loop, several times per fold result; its own scan of all trials, twice when none waits,
    grew with the study (bench/scale.py). Mixed into a scheduler before its Tune base class.

    It also keeps a resumed study from running again a trial the driver had ended. Tune restores
    its trials from its last state snapshot, taken every ten seconds or so; a trial ASHA stopped
    (or one that raised) after it comes back waiting to run, and would train its next fold, though
    the driver had told Optuna PRUNED and marked its folds (issue 20: a fold both PRUNED and
    COMPLETE, the trial counted pruned and done). So before the first trial starts in a driver,
    each waiting trial whose record says it ended (`ResultsDir.ended`: its marks, or the journal)
    is stopped through Tune's own `stop_trial`, the call a scheduler's STOP goes through: the
    searcher, the other callbacks and Tune's bookkeeping see an ordinary end, and nothing trains.
    Other seams were weighed: the trainable returning at once still needs a worker, and sees the
    results only where it shares their file system; the restored state file is Tune's private
    format. `results` and `study` name the study's record (None: nothing to check)."""

    def __init__(self, *args, results: str | None = None, study: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.results, self.study = results, study

    def __setstate__(self, state):
        self.__dict__.update(state, _settled=False)  # unpickled by a resumed driver: look at its restored trials

    def on_trial_add(self, tune_controller, trial):
        self._added = getattr(self, "_added", {})
        self._added.setdefault(trial.trial_id, len(self._added))  # the order Tune added them in
        super().on_trial_add(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller):
        if not getattr(self, "_settled", False):
            self._settled = True
            waiting = [t for t in tune_controller.get_live_trials() if t.status in (Trial.PENDING, Trial.PAUSED)]
            for trial in self.ended(waiting):
                tune_controller.stop_trial(trial)
        live = tune_controller.get_live_trials()
        added = getattr(self, "_added", {})
        for status in (Trial.PENDING, Trial.PAUSED):
            waiting = [t for t in live if t.status == status]
            if waiting:
                return min(waiting, key=lambda t: added.get(t.trial_id, -1))
        return None

    def ended(self, trials: list) -> list:
        """The trials among these that the study's record says ended."""
        if self.results is None or not trials:
            return []
        record = ResultsDir(self.results).ended(self.study, {t.trial_id for t in trials})
        return [t for t in trials if t.trial_id in record]


class LiveASHA(LiveFIFO, ASHAScheduler):
    """ASHA whose next trial to start is chosen among the live ones (LiveFIFO)."""


class FoldASHA(LiveASHA):
    """ASHA with folds as its rungs, which keeps its rungs across a resume.

    Tune saves no scheduler state with its experiment: a restored ASHA would rank the trials
    that follow only against each other, as if the study had started at the kill (bench/scale.py:
    killed at 1,000 of 2,000 trials, it went on to stop half the trials at every rung, where the
    same study unkilled stopped a third at the first rung and fewer after). So before its first
    decision in a driver, it records every trial the journal says has finished as if that trial
    had just reported each rung it reached: its fold values are there (intermediate values at
    step = fold, search.searcher), their running means are what it reported. Trials still
    RUNNING in the journal report their next rungs themselves. A study with several objectives
    has no intermediate values: its ASHA starts empty on resume."""

    def __init__(self, *, results: str, study: str, **options):
        super().__init__(results=results, study=study, **options)
        self._recalled = False

    def __setstate__(self, state):
        super().__setstate__(state)
        self._recalled = False  # unpickled by a resumed driver: recall again

    def on_trial_add(self, tune_controller, trial):
        if not self._recalled:
            self._recalled = True
            self._recall()
        super().on_trial_add(tune_controller, trial)

    def _recall(self) -> None:
        import optuna

        try:
            finished = optuna.load_study(study_name=self.study, storage=ResultsDir(self.results).journal()).get_trials(
                deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL))
        except KeyError:  # no study in the journal yet: a new one
            return
        for t in finished:
            values = [t.intermediate_values[step] for step in sorted(t.intermediate_values)]
            if not values:
                continue
            stand_in = _Recalled(f"journal-{t.number}")
            ASHAScheduler.on_trial_add(self, None, stand_in)  # not LiveFIFO's: no trial to start
            for k in range(1, len(values) + 1):  # each rung it reached, with the running mean it reported there
                super().on_trial_result(None, stand_in, {self._time_attr: k, self._metric: sum(values[:k]) / k})
            self.on_trial_remove(None, stand_in)


@dataclass(frozen=True)
class _Recalled:
    trial_id: str


class LiveFIFOScheduler(LiveFIFO, FIFOScheduler):
    """No early stopping: trials start first in, first out (among the live ones)."""


def scheduler(spec: StudySpec, num_folds: int, own_metric: bool = False, results: ResultsDir | None = None) -> TrialScheduler:
    """ASHA with folds as its rungs (or none). `own_metric`: it ranks by the study's first
    objective itself (in a set, where Tune is told no metric); alone, Tune tells it. `results`:
    the study's directory, whose journal rebuilds ASHA's rungs on resume (FoldASHA) and whose
    record keeps the trials it ended from running again (LiveFIFO)."""
    record = {"results": str(results.path), "study": spec.name} if results is not None else {}
    if spec.scheduler.name != "asha" or num_folds < 2:
        return LiveFIFOScheduler(**record)
    first = spec.objectives[0]
    # folds are the rungs; with several objectives ASHA ranks by the first
    multi = {"metric": first.key, "mode": first.direction} if len(spec.objectives) > 1 or own_metric else {}
    options = dict(time_attr="folds_done", max_t=num_folds, grace_period=min(spec.scheduler.grace_folds, num_folds),
                   reduction_factor=spec.scheduler.reduction_factor, **multi)
    if results is None or len(spec.objectives) > 1:
        return LiveASHA(**record, **options)
    return FoldASHA(**record, **options)


def study_callbacks(spec: StudySpec, results: ResultsDir, context: StudyContext, fold_numbers: list[int]) -> list[tune.Callback]:
    """A study's own callbacks, alone or in a set: the keeper first (a fold's model is in
    RESULTS/models before its rows are written), then the writer, then the tracker (it logs the
    rows written)."""
    return [ModelKeeper(results, spec, len(fold_numbers)), ParquetWriter(results, context, list(fold_numbers), list(spec.search.space)),
            Tracker(results.path, spec.name)]


def make_tuner(trainable, *, search_alg, scheduler: TrialScheduler, num_samples: int, max_concurrent: int | None, callbacks: list,
               tune_location: tuple[str, str], max_failures: int, metric: str | None = None, mode: str | None = None) -> tune.Tuner:
    """A new Tune run, of one study (`build_tuner`) or of a set (search.runner.run_set): the
    settings every run shares are here. `metric`, `mode`: what Tune ranks by (None: the
    searcher's and the scheduler's own)."""
    storage_path, name = tune_location
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search_alg, scheduler=scheduler, metric=metric, mode=mode, num_samples=num_samples, max_concurrent_trials=max_concurrent,
            reuse_actors=True,  # a new trial reuses a finished one's worker: no second torch import
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            callbacks=callbacks,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=max_failures),
            # every fold's checkpoint is kept (a few hundred bytes each): deleting the previous
            # one can race a killed driver's last state snapshot, which then names a checkpoint
            # that no longer exists and the trial cannot be restored
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        ),
    )


def build_tuner(spec: StudySpec, results: ResultsDir, context: StudyContext, fold_numbers: list[int], tune_location: tuple[str, str],
                console: Console, max_failures: int) -> tuple[tune.Tuner, Progress]:
    """The Tuner of a new study, and its progress callback (it counts the trials run at once)."""
    first = spec.objectives[0]
    single = len(spec.objectives) == 1
    progress = Progress(console, spec.search.num_trials, first.key, first.direction, len(fold_numbers), results, context.board)
    tuner = make_tuner(
        trainable(spec, context),
        search_alg=searcher(spec, results, len(fold_numbers)),
        scheduler=scheduler(spec, len(fold_numbers), results=results),
        num_samples=spec.search.num_trials,
        max_concurrent=spec.resources.max_concurrent or None,
        # a Python caller's callbacks last: a fold's rows and model are on disk when it hears of it
        callbacks=[*study_callbacks(spec, results, context, fold_numbers), progress, CallerCallbacks(results)],
        tune_location=tune_location,
        max_failures=max_failures,
        metric=first.key if single else None,
        mode=first.direction if single else None,
    )
    return tuner, progress


def restore_tuner(spec: StudySpec, results: ResultsDir, context: StudyContext) -> tune.Tuner:
    """The Tuner of a stopped study, from its saved state: finished trials stay, unfinished ones
    continue at their next fold (errored ones stay failed)."""
    return tune.Tuner.restore(results.tune_state(), trainable=trainable(spec, context), resume_unfinished=True, resume_errored=False)

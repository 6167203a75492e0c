"""The seams with Ray Tune and Optuna, one contract per class search overrides (issue 23): what
each tells Optuna, which trial it picks, what it writes, on hand-built inputs, with no Ray
cluster. The slow tests run the same classes inside real studies; these say what each owes.

Tune's trials are real `ray.tune.experiment.Trial`s (stubs: no trainable, no cluster), Optuna's
studies real journals, the results real Parquet. Two things only a running Tune provides stand
in here, each showing just what the override reads: the TuneController a scheduler is handed
(`Controller`), and a failed trial's error file (`FailedTrial`)."""

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState, create_trial
from ray import tune
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher
from rich.console import Console

from search.callbacks import ModelKeeper, ParquetWriter, Progress
from search.results import TUNE_TRIAL_ID, DiskFull, ResultsDir, marks_frame, part_bytes, read_table
from search.samplers import _Recent
from search.space import SearchSpace
from search.spec import validate_spec
from search.studyset import STUDY_KEY, MultiScheduler, MultiSearcher, RoutedCallback
from search.trainable import DISK_FULL, MODELS_KEY, ROWS, StudyContext, fold_key
from search.tuner import FoldASHA, LiveASHA, LiveFIFOScheduler, scheduler, searcher

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP

# every kind of dimension, a log range, a stepped one, and choices of bools and of None
SPACE = {
    "loss.alpha": {"float": [0.0, 4.0]},
    "train.lr": {"float": [1e-5, 1e-1], "log": True},
    "train.epochs": {"int": [10, 90], "step": 10},
    "train.augment.hflip": {"choice": [True, False]},
    "data.resize": {"choice": [None, 256]},
}


def _spec(name: str = "s", space: dict | None = None, **sections):
    study = {"name": name, "data": {"dataset": "synthetic", "protocol": "5fold"}, "model": {"backbone": "test_resnet", "pretrained": False},
             "eval": {"view": "center_crop"}, "search": {"num_trials": 4, "seed": 3, "space": space or SPACE, "baseline": []}, **sections}
    return validate_spec(study, f"{name}.yaml")


def _trial(trial_id: str, status: str = Trial.PENDING, study: str | None = None, storage: StorageContext | None = None, **config) -> Trial:
    """A real Tune trial, as Tune hands it to schedulers and callbacks (a stub: nothing runs)."""
    trial = Trial("train_trial", config={**config, **({STUDY_KEY: study} if study else {})}, trial_id=trial_id, stub=True, storage=storage)
    trial.set_status(status)
    return trial


def _ended(trial: Trial, status: str, last: dict) -> Trial:
    trial.update_last_result(last)
    trial.set_status(status)
    return trial


class Controller:
    """What Tune's TuneController shows a scheduler: the live trials, and `stop_trial`, which
    ends a trial as a scheduler's STOP does."""

    def __init__(self, trials: list[Trial]):
        self.trials, self.stopped = trials, []

    def get_live_trials(self) -> list[Trial]:
        return [t for t in self.trials if t.status not in (Trial.TERMINATED, Trial.ERROR)]

    def stop_trial(self, trial: Trial) -> None:
        trial.set_status(Trial.TERMINATED)
        self.stopped.append(trial.trial_id)


@dataclass
class FailedTrial:
    """A trial that raised, as Tune hands it to callbacks: its traceback in its error file
    (a real Trial finds that file only inside a Ray session)."""

    trial_id: str
    error_file: str
    status: str = Trial.ERROR
    config: dict = field(default_factory=dict)


def _journal_trials(results: ResultsDir, study: str) -> dict[str, optuna.trial.FrozenTrial]:
    """The journal's trials by the Tune trial each names."""
    return {t.user_attrs[TUNE_TRIAL_ID]: t for t in optuna.load_study(study_name=study, storage=results.journal()).get_trials()}


def _fold_report(key: str, fold: int, value: float, mean: float) -> dict:
    """A fold's report as a trial sends it: the running mean under `key`, the fold's own value beside it."""
    return {"fold": fold, "folds_done": fold, key: mean, fold_key(key): value}


# --- StudySearcher ------------------------------------------------------------------------------


def test_study_searcher_suggests_the_spaces_params_and_names_its_tune_trial(tmp_path):
    results, spec = ResultsDir(tmp_path), _spec()
    config = searcher(spec, results, 3).suggest("t1")
    (trial,) = optuna.load_study(study_name="s", storage=results.journal()).get_trials()
    assert trial.state == TrialState.RUNNING and config == trial.params and set(config) == set(SPACE)
    # the journal holds the space's own distributions (a journal written before resumes with them)
    assert trial.distributions == SearchSpace.of(spec).distributions
    assert trial.user_attrs == {TUNE_TRIAL_ID: "t1", "log": str(results.log("t1")), "models": str(results.model_dir("t1"))}


def test_study_searcher_tells_optuna_each_folds_value_and_how_the_trial_ended(tmp_path):
    results, spec = ResultsDir(tmp_path), _spec()
    key = spec.objectives[0].key
    s = searcher(spec, results, 3)
    for trial_id in ("done", "stopped", "raised"):
        s.suggest(trial_id)
    s.on_trial_result("done", _fold_report(key, 1, 0.5, 0.5))
    s.on_trial_result("done", _fold_report(key, 1, 0.5, 0.5))  # a restarted trial reports fold 1 again: told once
    s.on_trial_result("done", _fold_report(key, 2, 0.7, 0.6))
    s.on_trial_result("done", {"folds_done": 2, key: 0.6})  # no fold: a re-announced result, not a fold's
    s.on_trial_complete("done", _fold_report(key, 3, 0.9, 0.7))  # the last fold's result comes to on_trial_complete alone
    s.on_trial_result("stopped", _fold_report(key, 1, 0.2, 0.2))
    s.on_trial_complete("stopped", _fold_report(key, 2, 0.1, 0.15))  # ASHA stopped it at fold 2 of 3
    s.on_trial_result("raised", _fold_report(key, 1, 0.4, 0.4))
    s.on_trial_complete("raised", None, error=True)
    told = _journal_trials(results, "s")
    assert (told["done"].state, told["done"].value) == (TrialState.COMPLETE, pytest.approx(0.7))  # the mean over all folds
    assert told["done"].intermediate_values == {1: 0.5, 2: 0.7, 3: 0.9}  # each fold's own value at step = fold
    assert (told["stopped"].state, told["stopped"].intermediate_values) == (TrialState.PRUNED, {1: 0.2, 2: 0.1})
    assert (told["raised"].state, told["raised"].intermediate_values) == (TrialState.FAIL, {1: 0.4})


def test_study_searcher_takes_a_result_for_a_trial_the_journal_ended(tmp_path):
    """A restored driver's copy of a pruned trial reports again: Optuna refuses to update a
    finished trial, and the study goes on with the journal's word."""
    results, spec = ResultsDir(tmp_path), _spec()
    key = spec.objectives[0].key
    first = searcher(spec, results, 3)
    first.suggest("t")
    first.save(str(tmp_path / "searcher.pkl"))  # Tune's last state snapshot
    first.on_trial_complete("t", _fold_report(key, 1, 0.2, 0.2))  # ASHA stopped it after the snapshot; then the kill
    restored = searcher(spec, results, 3)
    restored.restore(str(tmp_path / "searcher.pkl"))
    restored.on_trial_result("t", _fold_report(key, 2, 0.9, 0.55))
    restored.on_trial_complete("t", _fold_report(key, 3, 0.9, 0.67))
    told = _journal_trials(results, "s")["t"]
    assert (told.state, told.intermediate_values) == (TrialState.PRUNED, {1: 0.2})


# --- LiveFIFO, LiveASHA, FoldASHA -------------------------------------------------------------


def _record_ended(results: ResultsDir, study: str, marked: dict[str, str], journal: dict[str, TrialState]) -> None:
    """What a killed driver left: marks parts for `marked`, journal states alone for `journal`."""
    for trial_id, status in marked.items():
        results.write_marks(marks_frame({"trial_id": trial_id}, [2, 3], status, None), trial_id, status)
    storage_study = optuna.create_study(study_name=study, storage=results.journal(), load_if_exists=True)
    for trial_id, state in journal.items():
        trial = storage_study.ask()
        trial.set_user_attr(TUNE_TRIAL_ID, trial_id)
        storage_study.tell(trial, state=state)


def test_live_fifo_stops_the_restored_trials_its_record_ended_and_starts_the_rest_first_in_first_out(tmp_path):
    results = ResultsDir(tmp_path)
    _record_ended(results, "s", marked={"pruned": "PRUNED"}, journal={"failed": TrialState.FAIL})
    fifo = scheduler(_spec(scheduler={"name": "none"}), 3, results=results)
    assert type(fifo) is LiveFIFOScheduler
    added = [_trial("pruned"), _trial("paused", Trial.PAUSED), _trial("first"), _trial("running", Trial.RUNNING), _trial("failed"), _trial("second")]
    for trial in added:
        fifo.on_trial_add(None, trial)
    fifo = pickle.loads(pickle.dumps(fifo))  # a resumed driver unpickles it with Tune's state
    controller = Controller(list(reversed(added)))  # Tune lists them in any order: the order added decides
    assert fifo.choose_trial_to_run(controller).trial_id == "first"
    assert sorted(controller.stopped) == ["failed", "pruned"]  # stopped through Tune, before anything starts
    controller.trials[3].set_status(Trial.RUNNING)  # "first" starts
    assert fifo.choose_trial_to_run(controller).trial_id == "second"
    controller.trials[0].set_status(Trial.RUNNING)
    assert fifo.choose_trial_to_run(controller).trial_id == "paused"  # paused trials once none waits to start
    controller.trials[4].set_status(Trial.RUNNING)
    assert fifo.choose_trial_to_run(controller) is None
    assert sorted(controller.stopped) == ["failed", "pruned"]  # the record is read once per driver


def test_live_asha_ranks_several_objectives_by_the_first(tmp_path):
    spec = _spec(objective=[{"metric": "pc"}, {"metric": "mae"}], scheduler={"name": "asha", "grace_folds": 1, "reduction_factor": 2})
    asha = scheduler(spec, 4, results=ResultsDir(tmp_path))
    assert type(asha) is LiveASHA  # several objectives: no intermediate values to recall on resume
    strong, weak = _trial("strong"), _trial("weak")
    for trial in (strong, weak):
        asha.on_trial_add(None, trial)
    assert asha.on_trial_result(None, strong, {"folds_done": 1, "val_pc": 0.8, "val_mae": 0.9}) == CONTINUE
    # the best MAE, but the first objective, PC, is below the rung's cutoff
    assert asha.on_trial_result(None, weak, {"folds_done": 1, "val_pc": 0.3, "val_mae": 0.1}) == STOP


def test_fold_asha_decides_at_its_fold_rungs_only(tmp_path):
    """5 folds, grace 1, reduction factor 2: rungs after folds 1, 2 and 4; a rung stops a trial
    whose running mean is below the top half of those recorded there (the 50th percentile)."""
    asha = scheduler(_spec(scheduler={"name": "asha", "grace_folds": 1, "reduction_factor": 2}), 5, results=ResultsDir(tmp_path))
    assert type(asha) is FoldASHA
    key = _spec().objectives[0].key
    asha.set_search_properties(key, "max")
    trials = {name: _trial(name) for name in "abcd"}
    for trial in trials.values():
        asha.on_trial_add(None, trial)

    def report(name: str, folds_done: int, mean: float) -> str:
        return asha.on_trial_result(None, trials[name], {"folds_done": folds_done, key: mean})

    assert [report("a", k, 0.9) for k in (1, 2, 3, 4)] == [CONTINUE] * 4  # first at every rung
    assert report("b", 1, 0.2) == STOP  # rung 1 holds 0.9: cutoff 0.9
    assert report("c", 1, 0.95) == CONTINUE  # rung 1 holds 0.9, 0.2: cutoff 0.55
    assert report("c", 2, 0.5) == STOP  # rung 2 holds 0.9
    assert report("d", 1, 0.95) == CONTINUE  # rung 1: 0.9, 0.2, 0.95: cutoff 0.9
    assert report("d", 2, 0.95) == CONTINUE  # rung 2: 0.9, 0.5: cutoff 0.7
    assert report("d", 3, 0.1) == CONTINUE  # fold 3 is no rung, however poor the mean
    assert report("d", 4, 0.1) == STOP  # rung 4 holds 0.9
    assert report("a", 5, 0.9) == STOP  # every fold done: the trial ends


# --- MultiSearcher, MultiScheduler, RoutedCallback ----------------------------------------------


def _results_dirs(tmp_path, names: str) -> dict[str, ResultsDir]:
    """Each study's results directory, made (as `claim` makes it before a set runs)."""
    for name in names:
        (tmp_path / name).mkdir()
    return {name: ResultsDir(tmp_path / name) for name in names}


def test_multi_searcher_asks_its_studies_in_turn_until_each_proposed_its_trials(tmp_path):
    results = _results_dirs(tmp_path, "ab")
    studies = {name: searcher(_spec(name), results[name], 3) for name in "ab"}
    multi = MultiSearcher(studies, {"a": 2, "b": 1})
    configs = [multi.suggest(f"t{i}") for i in range(1, 4)]
    assert [c[STUDY_KEY] for c in configs] == ["a", "b", "a"]  # the study that proposed least (for its share) first
    assert multi.suggest("t4") == Searcher.FINISHED
    key = _spec().objectives[0].key
    multi.on_trial_result("t1", _fold_report(key, 1, 0.4, 0.4))
    multi.on_trial_complete("t2", _fold_report(key, 3, 0.6, 0.5))
    multi.on_trial_complete("unknown", None, error=True)  # not one of its trials: nothing to tell
    a, b = _journal_trials(results["a"], "a"), _journal_trials(results["b"], "b")
    assert sorted(a) == ["t1", "t3"] and sorted(b) == ["t2"]
    assert {k: v for k, v in configs[1].items() if k != STUDY_KEY} == b["t2"].params
    assert a["t1"].intermediate_values == {1: 0.4} and a["t1"].state == TrialState.RUNNING
    assert (b["t2"].state, b["t2"].value) == (TrialState.COMPLETE, 0.5)


def test_multi_scheduler_routes_each_trial_to_its_studys_asha_and_record(tmp_path):
    asha = {"scheduler": {"name": "asha", "grace_folds": 1, "reduction_factor": 2}}
    results = _results_dirs(tmp_path, "ab")
    _record_ended(results["b"], "b", marked={"b-pruned": "PRUNED"}, journal={})
    multi = MultiScheduler({name: scheduler(_spec(name, **asha), 3, own_metric=True, results=results[name]) for name in "ab"})
    key = _spec().objectives[0].key
    trials = [_trial("a1", study="a"), _trial("b-pruned", study="b"), _trial("b1", study="b"), _trial("b2", study="b"), _trial("a2", study="a")]
    for trial in trials:
        multi.on_trial_add(None, trial)
    controller = Controller(trials)
    assert multi.choose_trial_to_run(controller).trial_id == "a1" and controller.stopped == ["b-pruned"]  # b's record, read by b's scheduler
    decisions = [multi.on_trial_result(controller, trial, {"folds_done": 1, key: value}) for trial, value in zip([trials[i] for i in (0, 2, 3, 4)], (0.9, 0.1, 0.05, 0.5))]
    # b1 is the first of study b at its rung: 0.9 of study a is not its cutoff (PCs of two studies do not compare)
    assert decisions == [CONTINUE, CONTINUE, STOP, STOP]


@dataclass
class Recorder(tune.Callback):
    """A study's callback that notes the trials each hook was shown."""

    seen: list = field(default_factory=list)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.seen.append((trial.trial_id, sorted(t.trial_id for t in trials)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.seen.append((trial.trial_id, sorted(t.trial_id for t in trials)))


def _fold_rows(trial_id: str, fold: int, pc: float) -> dict:
    """A fold's report as a trial sends it: its rows encoded, one row per table."""
    key = {"trial_id": trial_id, "fold": fold, "seed": 0}
    rows = {"folds": pd.DataFrame([{**key, "status": "COMPLETE", "pc": pc, "val_pc": pc}]), "epochs": pd.DataFrame([{**key, "epoch": 1}]),
            "predictions": pd.DataFrame([{**key, "image": "a.jpg", "y_pred": 3.0}])}
    return {"fold": fold, "folds_done": fold, ROWS: {table: part_bytes(table, frame) for table, frame in rows.items()}}


def _writer(results: ResultsDir, study: str = "s") -> ParquetWriter:
    return ParquetWriter(results, StudyContext(study, "hash", str(results.path)), [1, 2, 3], ["loss.alpha"])


def test_routed_callback_sends_each_trial_to_its_own_studys_callbacks(tmp_path):
    results = {name: ResultsDir(tmp_path / name) for name in "ab"}
    recorders = {name: Recorder() for name in "ab"}
    routed = RoutedCallback({name: [_writer(results[name], name), recorders[name]] for name in "ab"})
    a1, a2 = _trial("a1", Trial.RUNNING, "a", **{"loss.alpha": 1.0}), _trial("a2", Trial.RUNNING, "a")
    b1 = _trial("b1", Trial.TERMINATED, "b", **{"loss.alpha": 2.0})
    everyone = [a1, b1, a2]
    routed.on_trial_result(0, everyone, a1, _fold_rows("a1", 1, 0.5))
    routed.on_trial_complete(0, everyone, b1)  # stopped before it reported a fold
    assert read_table(results["a"].path, "folds")[["trial_id", "fold", "pc"]].values.tolist() == [["a1", 1, 0.5]]
    b = read_table(results["b"].path, "folds").sort_values("fold")
    assert b[["trial_id", "fold", "status", "param.loss.alpha"]].values.tolist() == [["b1", f, "PRUNED", 2.0] for f in (1, 2, 3)]
    assert recorders["a"].seen == [("a1", ["a1", "a2"])] and recorders["b"].seen == [("b1", ["b1"])]  # each study's own trials


# --- ParquetWriter, ModelKeeper, Progress ------------------------------------------------------


def test_parquet_writer_writes_the_reported_rows_and_a_row_per_fold_not_completed(tmp_path):
    results = ResultsDir(tmp_path)
    writer = _writer(results)
    pruned = _trial("pruned", Trial.RUNNING, **{"loss.alpha": 0.5})
    result = _fold_rows("pruned", 1, 0.61)
    writer.on_trial_result(0, [pruned], pruned, result)
    assert ROWS not in result  # taken out of what Tune keeps
    writer.on_trial_complete(0, [pruned], _ended(pruned, Trial.TERMINATED, {"folds_done": 1}))
    traceback = tmp_path / "error.txt"
    traceback.write_text("Traceback (most recent call last):\n  ...\nfbp.errors.TrainingError: fold 1: the loss is NaN\n")
    writer.on_trial_error(0, [], FailedTrial("failed", str(traceback), config={"loss.alpha": 3.0}))
    folds = read_table(tmp_path, "folds").sort_values(["trial_id", "fold"])
    assert folds[["trial_id", "fold", "status", "pc"]].fillna(-1).values.tolist() == [
        ["failed", 1, "FAIL", -1], ["failed", 2, "FAIL", -1], ["failed", 3, "FAIL", -1],
        ["pruned", 1, "COMPLETE", 0.61], ["pruned", 2, "PRUNED", -1], ["pruned", 3, "PRUNED", -1]]
    failed = folds[folds["trial_id"] == "failed"]
    assert set(failed["error"]) == {"TrainingError: fold 1: the loss is NaN"} and set(failed["param.loss.alpha"]) == {3.0}
    assert "fbp.errors.TrainingError: fold 1: the loss is NaN" in results.log("failed").read_text()  # the whole traceback
    assert results.has_part("epochs", "pruned", 1) and results.has_part("predictions", "pruned", 1)
    with pytest.raises(DiskFull):  # the trial could not save its fold: the study stops there
        writer.on_trial_result(0, [], _trial("full", Trial.RUNNING), {"folds_done": 0, DISK_FULL: [str(tmp_path), 0]})


def _reports_a_model(keeper: ModelKeeper, trial: Trial) -> None:
    """A trial's fold: its model in the checkpoint Tune persisted, reported to the keeper."""
    checkpoint = Path(trial.path) / "checkpoint_000000"
    checkpoint.mkdir(parents=True)
    (checkpoint / "fold1.safetensors").write_bytes(f"weights of {trial.trial_id}".encode())
    keeper.on_trial_result(0, [], trial, {"fold": 1, MODELS_KEY: ["fold1.safetensors"], "checkpoint_dir_name": checkpoint.name})
    assert not (checkpoint / "fold1.safetensors").exists()  # moved, not copied: the checkpoint keeps what a restart needs


def _row(results: ResultsDir, trial_id: str, value: float) -> None:
    """The fold's row, as the ParquetWriter (after the keeper) writes it."""
    results.write("folds", f"{trial_id}-fold1", pd.DataFrame([{"trial_id": trial_id, "fold": 1, "seed": 0, "status": "COMPLETE", "val_pc": value, "pc": value}]))


def test_model_keeper_moves_each_folds_model_and_keeps_the_best_n_and_the_running(tmp_path):
    results = ResultsDir(tmp_path / "results")
    spec = _spec(search={"num_trials": 3, "space": {"loss.alpha": {"float": [0.0, 4.0]}}, "keep_models": 1})
    keeper = ModelKeeper(results, spec, 1)
    trials = [_trial(t, Trial.RUNNING, storage=StorageContext(str(tmp_path / "tune"), "exp", trial_dir_name=t)) for t in ("t1", "t2", "t3")]
    for trial in trials:
        _reports_a_model(keeper, trial)
    assert (results.model_dir("t2") / "fold1.safetensors").read_bytes() == b"weights of t2"
    _row(results, "t1", 0.5)
    keeper.on_trial_complete(0, trials, _ended(trials[0], Trial.TERMINATED, {}))
    assert results.kept_trials() == ["t1", "t2", "t3"]  # t1 is the best complete trial; t2 and t3 still run
    _row(results, "t2", 0.8)
    keeper.on_trial_complete(0, trials, _ended(trials[1], Trial.TERMINATED, {}))
    assert results.kept_trials() == ["t2", "t3"]  # t2 is better: the best one (keep_models 1)
    keeper.on_trial_error(0, trials, _ended(trials[2], Trial.ERROR, {}))
    assert results.kept_trials() == ["t2"]  # failed: neither the best nor running
    assert (results.model_dir("t2") / "fold1.safetensors").read_bytes() == b"weights of t2"


def test_progress_counts_the_trials_and_the_best_complete_one(tmp_path):
    out = io.StringIO()
    progress = Progress(Console(file=out, force_terminal=False, width=300), 5, "val_pc", "max", 2)
    done, pruned, waiting = _trial("done", Trial.RUNNING), _trial("pruned", Trial.RUNNING), _trial("waiting")
    earlier = _ended(_trial("earlier"), Trial.TERMINATED, {"folds_done": 2, "val_pc": 0.6})  # ended before this driver
    trials = [earlier, done, pruned, waiting]
    progress.on_step_end(0, trials)  # the first step counts every trial
    assert "trials 1/5 · running 2 · done 1 · pruned 0 · failed 0 · best val_pc 0.6000 (earlier)" in out.getvalue()
    progress.on_trial_complete(0, trials, _ended(done, Trial.TERMINATED, {"folds_done": 2, "val_pc": 0.7}))
    progress.on_trial_complete(0, trials, _ended(pruned, Trial.TERMINATED, {"folds_done": 1, "val_pc": 0.9}))  # pruned: never the best
    waiting.set_status(Trial.RUNNING)
    progress.on_trial_start(0, trials, waiting)
    traceback = tmp_path / "error.txt"
    traceback.write_text("Traceback ...\nfbp.errors.TrainingError: diverged\n")
    for trial_id in ("f1", "f2"):
        progress.on_trial_error(0, trials, FailedTrial(trial_id, str(traceback)))
    progress.on_step_end(1, trials)
    assert out.getvalue().count("failed: TrainingError: diverged") == 1  # one line per distinct error
    assert "trials 5/5 · running 1 · done 2 · pruned 1 · failed 2 · best val_pc 0.7000 (done)" in out.getvalue()
    assert progress.max_running == 2
    restored = pickle.loads(pickle.dumps(progress))  # a resumed driver counts again from Tune's trials
    restored.console = Console(file=io.StringIO(), force_terminal=False, width=300)
    restored.on_step_end(0, trials)
    tally = restored.tallies[""]  # a single study's counts (a set keeps one per study)
    assert (tally.terminated, tally.pruned, tally.running, len(restored.running), tally.best) == (3, 1, 1, 1, (0.7, "done"))


# --- RecentTPESampler --------------------------------------------------------------------------


def test_recent_tpe_shows_tpe_the_windows_most_recent_finished_trials_and_the_study_otherwise():
    """RecentTPESampler's seam with Optuna: TPE reads a study's trials through `_get_trials`
    (a private method: test_samplers checks the sampling it gives, this the view)."""
    study = optuna.create_study(direction="maximize")
    distributions = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for i in range(6):
        state = TrialState.PRUNED if i == 4 else TrialState.COMPLETE
        study.add_trial(create_trial(state=state, value=None if state == TrialState.PRUNED else i / 10, params={"x": i / 10},
                                     distributions=distributions, intermediate_values={1: i / 10}))
    recent = _Recent(study, 3)
    assert [t.number for t in recent._get_trials(deepcopy=False, states=(TrialState.COMPLETE,))] == [2, 3, 5]
    assert [t.number for t in recent._get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))] == [3, 4, 5]
    assert recent.direction == study.direction and recent.study_name == study.study_name
    assert len(study.get_trials()) == 6  # the study itself is untouched


"""The driver's Parquet writer: a trial's marks are final."""

from dataclasses import dataclass, field

import optuna
import pandas as pd

from search.callbacks import ParquetWriter
from search.results import TUNE_TRIAL_ID, ResultsDir, part_bytes, read_table
from search.trainable import ROWS, StudyContext


@dataclass
class Trial:
    """What the writer reads of a Tune trial."""

    trial_id: str
    status: str = "RUNNING"
    config: dict = field(default_factory=lambda: {"loss.alpha": 1.0})


def _writer(results: ResultsDir) -> ParquetWriter:
    return ParquetWriter(results, StudyContext("s", "hash", str(results.path)), [1, 2, 3], ["loss.alpha"])


def _fold_result(trial: str, fold: int) -> dict:
    """A fold's report as a trial sends it: its rows encoded, one row per table."""
    key = {"trial_id": trial, "fold": fold, "seed": 0}
    rows = {"folds": pd.DataFrame([{**key, "status": "COMPLETE", "pc": 0.5}]), "epochs": pd.DataFrame([{**key, "epoch": 1}]),
            "predictions": pd.DataFrame([{**key, "image": "a.jpg", "y_pred": 3.0}])}
    return {"fold": fold, "folds_done": fold, ROWS: {table: part_bytes(table, frame) for table, frame in rows.items()}}


def test_no_fold_row_and_no_second_mark_for_a_marked_trial(tmp_path):
    results = ResultsDir(tmp_path)
    writer = _writer(results)
    writer.on_trial_result(0, [], Trial("t"), _fold_result("t", 1))
    writer.on_trial_complete(0, [], Trial("t"))  # ASHA stopped it after fold 1
    # a restored copy of the trial reports its next fold, then ends as a FAIL: neither is written
    writer.on_trial_result(0, [], Trial("t"), _fold_result("t", 2))
    writer._close(Trial("t"), "FAIL", "RuntimeError: later")
    folds = read_table(tmp_path, "folds").sort_values("fold")
    assert folds[["fold", "status"]].values.tolist() == [[1, "COMPLETE"], [2, "PRUNED"], [3, "PRUNED"]]
    assert sorted(p.name for p in results.table_dir("folds").iterdir()) == ["t-fold1.parquet", "t-pruned.parquet"]
    assert not results.has_part("epochs", "t", 2) and not results.has_part("predictions", "t", 2)


def test_a_trial_stopped_before_it_ran_gets_the_journals_state(tmp_path):
    # the killed driver told the journal FAIL and died before writing the marks; the restored trial
    # is stopped while it waits (search.tuner.LiveFIFO): its marks say FAIL, not PRUNED
    results = ResultsDir(tmp_path)
    study = optuna.create_study(study_name="s", storage=results.journal())
    trial = study.ask()
    trial.set_user_attr(TUNE_TRIAL_ID, "t")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    writer = _writer(results)
    writer.on_trial_result(0, [], Trial("t"), _fold_result("t", 1))
    writer.on_trial_complete(0, [], Trial("t", status="PENDING"))
    writer.on_trial_complete(0, [], Trial("u", status="PENDING"))  # the journal says nothing of it: PRUNED
    folds = read_table(tmp_path, "folds")
    assert sorted(folds.loc[folds["trial_id"] == "t", "status"]) == ["COMPLETE", "FAIL", "FAIL"]
    assert set(folds.loc[folds["trial_id"] == "u", "status"]) == {"PRUNED"}

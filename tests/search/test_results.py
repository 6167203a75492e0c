import time

import pandas as pd
import pytest

from fbp.errors import InputError
from search.results import ResultsDir, read_table


def _fold(trial, fold, pc):
    return pd.DataFrame([{"trial_id": trial, "fold": fold, "status": "COMPLETE", "pc": pc}])


def test_last_written_copy_wins_and_temporary_files_are_not_parts(tmp_path):
    ResultsDir(tmp_path).write("folds", "a-fold1", _fold("a", 1, 0.5))
    ResultsDir(tmp_path).write("folds", "a-fold1-again", _fold("a", 1, 0.6))
    ResultsDir(tmp_path).write("folds", "a-fold2", _fold("a", 2, 0.7))
    (tmp_path / "folds.parquet" / ".a-fold3.tmp-999").write_bytes(b"PAR1 half a file")  # a killed writer's
    frame = read_table(tmp_path, "folds").sort_values("fold")
    assert frame["pc"].tolist() == [0.6, 0.7]


def test_a_damaged_part_is_named(tmp_path):
    ResultsDir(tmp_path).write("folds", "a-fold1", _fold("a", 1, 0.5))
    path = ResultsDir(tmp_path).write("folds", "a-fold2", _fold("a", 2, 0.7))
    path.write_bytes(path.read_bytes()[:20])  # truncated by hand
    with pytest.raises(InputError, match=r"a-fold2.parquet: damaged part file"):
        read_table(tmp_path, "folds")


def test_compact_keeps_every_row_once(tmp_path):
    for fold in (1, 2, 3):
        ResultsDir(tmp_path).write("folds", f"a-fold{fold}", _fold("a", fold, fold / 10))
    ResultsDir(tmp_path).write("folds", "a-fold3-rewritten", _fold("a", 3, 0.9))
    before = read_table(tmp_path, "folds").sort_values("fold").reset_index(drop=True)
    assert ResultsDir(tmp_path).compact("folds") == 4
    assert len(list((tmp_path / "folds.parquet").glob("*.parquet"))) == 1
    after = read_table(tmp_path, "folds").sort_values("fold").reset_index(drop=True)
    pd.testing.assert_frame_equal(before, after)
    assert after["pc"].tolist() == [0.1, 0.2, 0.9]


WRITER = """
import sys
from pathlib import Path
import numpy as np, pandas as pd
from search.results import ResultsDir
rows = 200_000  # a part big enough that a kill lands mid-write
frame = pd.DataFrame({"trial_id": ["t"] * rows, "fold": 1, "image": np.arange(rows), "y_pred": np.random.rand(rows)})
print("ready", flush=True)
for i in range(10_000):
    ResultsDir(Path(sys.argv[1])).write("predictions", f"t-fold{i % 3}", frame)
"""


@pytest.mark.slow
def test_a_writer_killed_mid_write_leaves_no_damaged_part(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    for delay in (0.05, 0.13, 0.31, 0.57):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        frame = read_table(tmp_path, "predictions")  # raises, naming the part, if one is damaged
        parts = list((tmp_path / "predictions.parquet").glob("t-fold*.parquet"))
        assert len(frame) == (200_000 if parts else 0)  # every visible part whole; keys repeat across parts
    assert parts, "no write finished before the last kill"
    hidden = [p.name for p in (tmp_path / "predictions.parquet").iterdir() if p.name.startswith(".")]
    assert all(name.endswith(".tmp") for name in hidden)  # only a killed writer's temporary (fbp.files.temporary)


def test_a_trial_is_complete_when_each_fold_is_whatever_its_seeds():
    from search.results import trial_status

    rows = pd.DataFrame([
        *({"trial_id": "seeds", "fold": f, "seed": s, "status": "COMPLETE"} for f in (1, 2) for s in (0, 1, 2)),  # 2 folds x 3 seeds
        *({"trial_id": "all", "fold": f, "seed": 0, "status": "COMPLETE"} for f in (1, 2, 3)),
        {"trial_id": "pruned", "fold": 1, "seed": 0, "status": "COMPLETE"}, {"trial_id": "pruned", "fold": 2, "seed": None, "status": "PRUNED"},
        {"trial_id": "failed", "fold": 1, "seed": None, "status": "FAIL"},
    ])
    assert trial_status(rows, num_folds=3).to_dict() == {"seeds": "INCOMPLETE", "all": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}


def _marks(results: ResultsDir, trial: str, status: str, folds=(2, 3)) -> None:
    from search.results import marks_frame

    results.write_marks(marks_frame({"trial_id": trial}, list(folds), status, "RuntimeError: x" if status == "FAIL" else None), trial, status)


def test_a_trial_the_driver_ended_is_known_by_its_marks_or_else_by_the_journal(tmp_path):
    import optuna

    from search.results import TUNE_TRIAL_ID

    results = ResultsDir(tmp_path)
    _marks(results, "pruned", "PRUNED")
    _marks(results, "failed", "FAIL")
    assert results.ended("s", {"pruned", "failed", "running"}) == {"pruned": "PRUNED", "failed": "FAIL"}  # no journal yet

    # the journal: told PRUNED / FAIL before the marks are written; a driver killed in between left only it
    study = optuna.create_study(study_name="s", storage=results.journal())
    for tune_id, state in (("told-pruned", "PRUNED"), ("told-failed", "FAIL"), ("running", None), ("complete", "COMPLETE")):
        trial = study.ask()
        trial.set_user_attr(TUNE_TRIAL_ID, tune_id)
        if state:
            study.tell(trial, 0.5 if state == "COMPLETE" else None, state=optuna.trial.TrialState[state])
    asked = {"pruned", "failed", "told-pruned", "told-failed", "running", "complete", "unknown"}
    assert results.ended("s", asked) == {"pruned": "PRUNED", "failed": "FAIL", "told-pruned": "PRUNED", "told-failed": "FAIL"}
    assert results.ended("s", {"running"}) == {} and results.ended("another", {"told-pruned"}) == {}
    assert results.marked("pruned") == "PRUNED" and results.marked("told-pruned") is None

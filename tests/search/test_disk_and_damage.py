"""A full disk, a damaged journal, a damaged compacted folds table (issue 20, parts 4 and 5).

The disk tests mount a real tmpfs when they may (root); without it they skip, saying so, except
the preflight's, which may stand in a smaller disk through shutil.disk_usage."""

import errno
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from fbp.errors import InputError
from fbp.metrics import scores
from search import results as results_module
from search.journal import JournalFile, damage
from search.rebuild import rebuild_folds, rebuild_journal, set_aside_damaged
from search.results import TUNE_TRIAL_ID, DiskFull, ResultsDir, disk_full_in, marks_frame, part_name, read_table, trial_status
from search.spec import validate_spec

DRILL = yaml.safe_load((Path(__file__).parents[2] / "scripts" / "drill.yaml").read_text())
FOLDS = [1, 2, 3]


@contextmanager
def tmpfs(folder: Path, megabytes: int):
    """A tmpfs of this size at `folder`, or None where this process may not mount one."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)], capture_output=True).returncode == 0
    try:
        yield folder if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)


def _fill(disk: Path, leave: int) -> Path:
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(0, shutil.disk_usage(disk).free - leave))
    return filler


# --- a full disk -----------------------------------------------------------------------------


def test_preflight_refuses_a_study_that_would_not_fit(tmp_path, monkeypatch):
    from search.cli import main

    study = tmp_path / "drill.yaml"
    study.write_text(yaml.safe_dump(DRILL))
    with tmpfs(tmp_path / "disk", 3) as disk:
        if disk is None:  # no tmpfs here: a 3 MB disk stood in (the free-space question only)
            disk = tmp_path / "disk"
            real = shutil.disk_usage
            monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=3_000_000) if str(p).startswith(str(disk)) else real(p))
        results = disk / "results"
        with pytest.raises(InputError, match=rf"results {results}: the study needs ~1[34]\.\d MB \(.*models 13\.\d MB\), [0-3]\.\d MB free on "):
            from search.preflight import preflight

            preflight(validate_spec(DRILL, str(study)), str(study), results=results)
        # through the command: exit 2, one line, nothing written (Ray never started)
        assert main(["run", str(study), "--results", str(results)]) == 2
        assert not results.exists()


def test_a_part_the_disk_cannot_take_raises_disk_full_and_leaves_nothing(tmp_path, monkeypatch):
    results = ResultsDir(tmp_path)
    written = []

    def half_then_full(self, data):  # the write a full disk cuts short
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        written.append(self)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(DiskFull, match=r"disk full while writing .*a-fold1\.parquet: \d+\.\d MB free on /"):
        results.write("folds", "a-fold1", pd.DataFrame([{"trial_id": "a", "fold": 1, "status": "COMPLETE"}]))
    assert written and not written[0].exists()  # the half-written temporary file is gone
    assert list((tmp_path / "folds.parquet").iterdir()) == []


def test_disk_full_is_found_behind_tunes_wrapping():
    from ray.tune.error import TuneError

    try:
        try:
            raise DiskFull("/r/folds.parquet/a-fold1.parquet", 1_000)
        except DiskFull:
            raise TuneError("Traceback ...")  # noqa: B904 as Tune does: the text of the original, which stays the context
    except TuneError as wrapped:
        found = disk_full_in(wrapped)
    assert found is not None and found.path == "/r/folds.parquet/a-fold1.parquet" and found.free == 1_000
    assert disk_full_in(OSError(errno.ENOSPC, "No space left on device")).path == "an unnamed file"
    assert disk_full_in(ValueError("no")) is None


def test_real_full_disk_part_and_journal(tmp_path):
    with tmpfs(tmp_path / "disk", 1) as disk:
        if disk is None:
            pytest.skip("cannot mount a tmpfs (needs root)")
        results = ResultsDir(disk / "r")
        results.path.mkdir()
        journal = JournalFile(str(results.path / "optuna.journal"))
        journal.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}])
        whole = (results.path / "optuna.journal").read_bytes()
        _fill(disk, 20_000)
        with pytest.raises(DiskFull, match=r"optuna\.journal: 0\.0 MB free"):
            journal.append_logs([{"op_code": 4, "worker_id": "w", "blob": "x" * 200_000}])
        assert (results.path / "optuna.journal").read_bytes() == whole  # the half line written is undone
        with pytest.raises(DiskFull, match=r"a-fold1\.parquet"):
            results.write_bytes("folds", "a-fold1", b"x" * 200_000)
        assert [p.name for p in (results.path / "folds.parquet").iterdir()] == []


@pytest.mark.slow
def test_disk_full_mid_run_is_one_line_and_resume_agrees(local_ray, tmp_path):
    from search.runner import resume_study

    study = tmp_path / "drill.yaml"
    study.write_text(yaml.safe_dump(DRILL))
    with tmpfs(tmp_path / "disk", 32) as disk:
        if disk is None:
            pytest.skip("cannot mount a tmpfs (needs root)")
        results = disk / "results"
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
        driver = subprocess.Popen([sys.executable, "-m", "search.cli", "run", str(study), "--results", str(results)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 240
        while not list((results / "folds.parquet").glob("*-fold1.parquet")) if (results / "folds.parquet").is_dir() else True:
            assert time.monotonic() < deadline and driver.poll() is None, "no fold was written"
            time.sleep(0.1)
        filler = _fill(disk, 64_000)  # the next fold's model (1.5 MB) will not fit
        out, err = driver.communicate(timeout=300)
        lines = [line for line in err.splitlines() if line.strip()]
        assert driver.returncode == 1, err
        assert len(lines) == 1 and "Traceback" not in out + err, err
        assert f"disk full while writing {results}" in lines[0] and " MB free on " in lines[0] and f"fbp-search resume {results}" in lines[0]
        before = read_table(results, "folds")

        filler.unlink()
        resume_study(results)
        after = read_table(results, "folds")
        assert len(after) == 9 and (after["status"] == "COMPLETE").all() and not after.duplicated(["trial_id", "fold"]).any()
        assert set(zip(before["trial_id"], before["fold"])) <= set(zip(after["trial_id"], after["fold"]))
        journal = optuna.load_study(study_name="drill", storage=ResultsDir(results).journal()).trials
        assert sorted(t.user_attrs[TUNE_TRIAL_ID] for t in journal) == sorted(set(after["trial_id"]))
        assert all(t.state.name == "COMPLETE" for t in journal)
        assert not [p for p in results.rglob("*") if p.is_file() and p.stat().st_size == 0 and "tune" in p.parts and p.suffix != ""]


# --- a damaged journal ---------------------------------------------------------------------------


def _spec():
    return validate_spec(DRILL, "drill.yaml")


def _rows(trial_id: str, alpha: float, values: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame([{"study": "drill", "trial_id": trial_id, "fold": f, "seed": 0, "status": "COMPLETE", "val_pc": v, "pc": v / 2,
                          "param.loss.alpha": alpha} for f, v in values.items()])


def _finished_study(results: ResultsDir) -> dict:
    """Three trials as a study leaves them: COMPLETE (3 folds), PRUNED after fold 1, FAIL at
    fold 2, in the journal (with their Tune ids) and in the folds table."""
    study = optuna.create_study(study_name="drill", storage=results.journal(), direction="maximize")
    dist = {"loss.alpha": optuna.distributions.FloatDistribution(0.0, 4.0)}
    plan = {"t-complete": (1.0, {1: 0.3, 2: 0.5, 3: 0.4}, "COMPLETE"), "t-pruned": (2.0, {1: 0.1}, "PRUNED"), "t-fail": (3.0, {1: 0.2}, "FAIL")}
    for trial_id, (alpha, values, state) in plan.items():
        study.enqueue_trial({"loss.alpha": alpha})
        t = study.ask(dist)
        t.set_user_attr(TUNE_TRIAL_ID, trial_id)
        for fold, v in values.items():
            t.report(v, fold)
        results.write("folds", f"{trial_id}-rows", _rows(trial_id, alpha, values))
        if state == "COMPLETE":
            study.tell(t, float(np.mean(list(values.values()))))
        else:
            study.tell(t, state=optuna.trial.TrialState[state])
            missing = [f for f in FOLDS if f not in values]
            results.write_marks(marks_frame({"study": "drill", "trial_id": trial_id, "param.loss.alpha": alpha}, missing, state, None), trial_id, state)
    return plan


def test_a_truncated_journal_is_rebuilt_from_parquet(tmp_path):
    results = ResultsDir(tmp_path)
    plan = _finished_study(results)
    journal = tmp_path / "optuna.journal"
    data = journal.read_bytes()
    journal.write_bytes(data[: int(len(data) * 0.6)])
    assert damage(str(journal))[2] == "cut short"

    line = rebuild_journal(results, _spec(), len(FOLDS))
    assert "was damaged" in line and "recreated from Parquet" in line
    (aside,) = tmp_path.glob("optuna.journal.damaged-*")
    assert aside.read_bytes() == data[: int(len(data) * 0.6)]  # kept as it was, for a look
    assert damage(str(journal)) is None
    trials = optuna.load_study(study_name="drill", storage=results.journal()).get_trials()
    by_id = {t.user_attrs.get(TUNE_TRIAL_ID): t for t in trials}
    statuses = trial_status(read_table(tmp_path, "folds"), len(FOLDS))
    assert len(trials) == 3 and {k: by_id[k].state.name for k in statuses.index} == statuses.to_dict()
    for trial_id, (alpha, values, state) in plan.items():
        t = by_id[trial_id]
        assert t.params == {"loss.alpha": alpha} and t.intermediate_values == values
        if state == "COMPLETE":
            assert t.value == pytest.approx(0.4)  # (0.3 + 0.5 + 0.4) / 3
    assert rebuild_journal(results, _spec(), len(FOLDS)) is None  # whole now: nothing to do


def test_report_says_the_journal_is_damaged(tmp_path):
    from search.report._io import load_journal_study

    results = ResultsDir(tmp_path)
    _finished_study(results)
    journal = tmp_path / "optuna.journal"
    journal.write_bytes(journal.read_bytes()[:-10])
    study, note = load_journal_study(tmp_path, "drill")
    assert study is None and "optuna.journal is damaged (line" in note and f"fbp-search resume {tmp_path}" in note


# --- a damaged compacted folds table ---------------------------------------------------------------


def _trained_fold(results: ResultsDir, trial_id: str, fold: int, alpha: float, rng) -> dict:
    """A fold's epochs and predictions parts as a trial writes them; returns its folds row."""
    y_true = rng.uniform(1, 5, 12)
    y_pred = y_true + rng.normal(0, 0.5, 12)
    test = scores(y_true, y_pred)
    epochs = pd.DataFrame([{"trial_id": trial_id, "fold": fold, "seed": 0, "epoch": e, "lr": 0.01,
                            **{f"test_{m}": test[m] + (0 if e == 2 else 0.1) for m in test}, **{f"val_{m}": 0.1 * e + fold for m in test}} for e in (1, 2, 3)])
    predictions = pd.DataFrame({"trial_id": trial_id, "fold": fold, "seed": 0, "image": [f"i{k}" for k in range(12)], "subset": "AF",
                                "y_true": y_true, "y_pred": y_pred, "y_reg": y_pred, "y_exp": y_pred})
    results.write("epochs", part_name(trial_id, fold), epochs)
    results.write("predictions", part_name(trial_id, fold), predictions)
    row = {"study": "drill", "trial_id": trial_id, "fold": fold, "seed": 0, "status": "COMPLETE", **test, **{f"val_{m}": 0.2 + fold for m in test},
           "n_test": 12, "epochs_run": 3, "selected_epoch": 2, "param.loss.alpha": alpha}
    results.write("folds", part_name(trial_id, fold), pd.DataFrame([row]))
    return row


def test_compaction_bounds_what_a_damaged_part_loses_and_resume_rebuilds_it(tmp_path, monkeypatch):
    monkeypatch.setattr(results_module, "COMPACT_TRIALS", 2)
    results = ResultsDir(tmp_path)
    rng = np.random.default_rng(0)
    rows = [_trained_fold(results, f"t{k}", f, 0.5 * k, rng) for k in range(5) for f in FOLDS]
    before = read_table(tmp_path, "folds").sort_values(["trial_id", "fold"]).reset_index(drop=True)
    assert results.compact("folds") == 15
    parts = sorted((tmp_path / "folds.parquet").glob("*.parquet"))
    assert len(parts) == 3  # 2 + 2 + 1 trials
    damaged = parts[0]
    held = set(pd.read_parquet(damaged)["trial_id"])
    damaged.write_bytes(damaged.read_bytes()[:64])

    assert set_aside_damaged(results, "folds") == [damaged.name]
    left = read_table(tmp_path, "folds")
    assert len(left) == 15 - 3 * len(held) and len(held) <= 2  # a bounded slice

    assert rebuild_folds(results, _spec(), FOLDS) == 0  # whose params nothing here knows: left for repair, which has Tune's configs
    tune_configs = {f"t{k}": {"loss.alpha": 0.5 * k} for k in range(5)}
    assert rebuild_folds(results, _spec(), FOLDS, known_params=tune_configs) == 3 * len(held)
    after = read_table(tmp_path, "folds").sort_values(["trial_id", "fold"]).reset_index(drop=True)
    columns = ["trial_id", "fold", "seed", "status", "mae", "rmse", "pc", "val_mae", "val_rmse", "val_pc", "n_test", "epochs_run", "selected_epoch", "param.loss.alpha"]
    expected = before[columns].copy()
    expected[["val_mae", "val_rmse", "val_pc"]] = expected[["val_mae", "val_rmse", "val_pc"]].where(~expected["trial_id"].isin(held))
    rebuilt = after["trial_id"].isin(held)
    # the rebuilt rows' validation metrics are the selected epoch's (epoch 2: 0.2 + fold), as written
    expected.loc[rebuilt, ["val_mae", "val_rmse", "val_pc"]] = np.repeat((0.2 + after.loc[rebuilt, "fold"].to_numpy())[:, None], 3, axis=1)
    pd.testing.assert_frame_equal(after[columns], expected, check_dtype=False)
    assert len(rows) == 15


def test_a_compacted_part_that_reads_back_wrong_keeps_the_parts(tmp_path, monkeypatch):
    results = ResultsDir(tmp_path)
    for f in FOLDS:
        results.write("folds", part_name("a", f), _rows("a", 1.0, {f: 0.1 * f}))
    real = results_module.pq.ParquetFile

    class Misread:  # the disk gives back other bytes than were written
        def __init__(self, path, **options):
            self.file = real(path, **options)

        def read(self, **options):
            return self.file.read(**options).slice(0, 1)

    monkeypatch.setattr(results_module.pq, "ParquetFile", Misread)
    with pytest.raises(OSError, match="read back differs"):
        results.compact("folds")
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "folds.parquet").glob("*.parquet")) == [f"a-fold{f}.parquet" for f in FOLDS]


def test_the_journal_marks_come_back_with_the_rows(tmp_path):
    results = ResultsDir(tmp_path)
    _finished_study(results)
    for part in (tmp_path / "folds.parquet").glob("t-pruned-*.parquet"):
        part.unlink()  # its rows and its PRUNED marks lost; no epochs to rebuild its fold from
    rebuild_folds(results, _spec(), FOLDS, known_params={"t-pruned": {"loss.alpha": 2.0}})
    folds = read_table(tmp_path, "folds")
    assert sorted(folds.loc[folds["trial_id"] == "t-pruned", "status"]) == ["PRUNED"] * 3

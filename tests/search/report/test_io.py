"""The results reader, as the report uses it: the last written copy of each key, only the trials
asked for, and a folds snapshot that stays exact as parts are added and rewritten."""

from __future__ import annotations

import os

import pandas as pd

from search.report import _io
from search.results import Part, ResultsDir, marks_name, part_name, read_table


def _rows(trial: str, fold: int, pc: float) -> pd.DataFrame:
    return pd.DataFrame([{"trial_id": trial, "fold": fold, "status": "COMPLETE", "pc": pc, "error": None}])


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a = a.drop(columns=[_io.WRITTEN], errors="ignore").sort_values(["trial_id", "fold"]).reset_index(drop=True)
    b = b.sort_values(["trial_id", "fold"]).reset_index(drop=True)[list(a.columns)]
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def _touch(path, ns: int) -> None:
    os.utime(path, ns=(ns, ns))


def test_reader_matches_search_results_and_keeps_the_last_copy(tmp_path):
    for i, trial in enumerate(["a_00000", "b_00001"]):
        for fold in (1, 2):
            _touch(ResultsDir(tmp_path).write("folds", f"{trial}-fold{fold}", _rows(trial, fold, 0.5 + i)), 10**18 + 10 * i + fold)
    # a later part holding a second copy of a key: the later one wins
    _touch(ResultsDir(tmp_path).write("folds", "compacted-0001", _rows("a_00000", 2, 0.99)), 10**18 + 100)
    ours, theirs = _io.read_table(tmp_path, "folds"), read_table(tmp_path, "folds")
    _same(ours, theirs)
    assert ours.set_index(["trial_id", "fold"]).at[("a_00000", 2), "pc"] == 0.99


def test_reader_opens_only_the_trials_asked_for(tmp_path):
    for trial in ("a_00000", "b_00001"):
        ResultsDir(tmp_path).write("predictions", f"{trial}-fold1", pd.DataFrame({"trial_id": trial, "fold": 1, "image": ["x", "y"], "y_true": 1.0, "y_pred": 2.0}))
    (tmp_path / "predictions.parquet" / "b_00001-fold2.parquet").write_bytes(b"damaged, but never opened")
    got = _io.read_table(tmp_path, "predictions", trials={"a_00000"})
    assert set(got["trial_id"]) == {"a_00000"} and len(got) == 2


def test_snapshot_reads_only_new_parts_and_stays_exact(tmp_path):
    cache = tmp_path / "report" / ".cache"
    ResultsDir(tmp_path).write("folds", "a_00000-fold1", _rows("a_00000", 1, 0.1))
    first = _io.read_table(tmp_path, "folds", cache=cache)
    assert (cache / "folds.parquet").is_file()
    # unchanged parts come from the snapshot: damage one behind the reader's back (same mtime, size)
    part = tmp_path / "folds.parquet" / "a_00000-fold1.parquet"
    stat = part.stat()
    part.write_bytes(b"x" * stat.st_size)
    os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _same(_io.read_table(tmp_path, "folds", cache=cache), first.drop(columns=[_io.WRITTEN]))
    # a new part and a rewritten part are read
    ResultsDir(tmp_path).write("folds", "a_00000-fold1", _rows("a_00000", 1, 0.7))
    ResultsDir(tmp_path).write("folds", "b_00001-fold1", _rows("b_00001", 1, 0.8))
    _same(_io.read_table(tmp_path, "folds", cache=cache), read_table(tmp_path, "folds"))


def test_part_names_map_to_trials():
    def part(name: str) -> Part:
        return Part("/x/" + name, name, 0, 0)

    assert part("ab12_00003-fold2.parquet").trial == "ab12_00003"
    assert part("ab12_00003-pruned.parquet").trial == "ab12_00003"
    assert part("ab12_00003-fail.parquet").trial == "ab12_00003"
    assert part("t-fold-1.parquet").trial == "t"
    assert part("compacted-0001.parquet").trial is None
    # the names the writers give are the names the reader maps back
    assert part(part_name("ab12_00003", 4) + ".parquet").trial == "ab12_00003"
    assert part(marks_name("ab12_00003", "PRUNED") + ".parquet").trial == "ab12_00003"

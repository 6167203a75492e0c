import os

import pytest

from fbp.files import atomic_path, temporary, write_atomic


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("old")
    assert write_atomic(path, "név: 1\n") == path and path.read_text(encoding="utf-8") == "név: 1\n"
    write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01" and os.listdir(tmp_path) == ["study.yaml"]


def test_a_failed_write_leaves_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "part.parquet"
    path.write_text("whole")
    with pytest.raises(OSError, match="disk full"):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise OSError("disk full")
    assert path.read_text() == "whole" and os.listdir(tmp_path) == ["part.parquet"]


def test_a_folder_is_published_whole_and_a_killed_writers_temporary_is_cleared(tmp_path):
    out = tmp_path / "model"
    stale = temporary(out)  # as a killed process with our pid left it
    stale.mkdir()
    (stale / "half.safetensors").write_text("x")
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "config.yaml").write_text("a: 1\n")
    assert os.listdir(out) == ["config.yaml"] and sorted(os.listdir(tmp_path)) == ["model"]


def test_a_refused_publish_keeps_the_target_and_removes_the_folder(tmp_path):
    out = tmp_path / "data"

    def refuse(tmp, path):
        raise FileExistsError(f"{path} appeared meanwhile")

    with pytest.raises(FileExistsError, match="appeared meanwhile"):
        with atomic_path(out, publish=refuse) as tmp:
            tmp.mkdir()
            (tmp / "manifest.json").write_text("{}")
    assert os.listdir(tmp_path) == []

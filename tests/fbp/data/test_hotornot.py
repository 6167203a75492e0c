import pytest

from fbp.data import load_dataset
from fbp.errors import InputError
from tests.conftest import write_hotornot


def _hotornot(root, n=20):
    """A HotOrNot-shaped root: n images with z-scores -2.0, -1.8, .., released as .jpg, listed as .bmp in five splits."""
    return write_hotornot(root, [(i - n / 2) / 5 for i in range(n)])


def test_five_official_splits_and_bmp_names_resolve(tmp_path):
    names = _hotornot(tmp_path)
    dataset = load_dataset("hotornot", tmp_path)
    assert sorted(dataset.records) == [f"{n}.jpg" for n in names]
    folds = dataset.folds("5split")
    assert [(len(f.train), len(f.test)) for f in folds] == [(16, 4)] * 5
    assert folds[1].test == ("face001.jpg", "face006.jpg", "face011.jpg", "face016.jpg")
    assert dataset.records["face000.jpg"].score == -2.0 and dataset.score_range is None


def test_bad_row_and_missing_split(tmp_path):
    _hotornot(tmp_path)
    (tmp_path / "eccv2010_split3.csv").write_text("face000.bmp,0.1,train\nface001.bmp,0.2,validation\n")
    with pytest.raises(InputError, match=r"eccv2010_split3.csv:2: expected 'filename,score,train\|test', got 'face001.bmp,0.2,validation'"):
        load_dataset("hotornot", tmp_path)
    (tmp_path / "eccv2010_split5.csv").unlink()
    (tmp_path / "eccv2010_split3.csv").unlink()
    with pytest.raises(InputError, match=r"split file missing: .*eccv2010_split3.csv"):
        load_dataset("hotornot", tmp_path)

import shutil

import numpy as np
import openpyxl
import pytest

from fbp.data import load_dataset
from fbp.errors import InputError
from tests.conftest import SCUT_FBP_WORKBOOK, write_stand_in_images


@pytest.fixture(scope="module")
def scut_fbp_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("scut-fbp")
    shutil.copy(SCUT_FBP_WORKBOOK, root / "SCUT-FBP.xlsx")
    write_stand_in_images(root, [f"SCUT-FBP-{n}.jpg" for n in range(1, 501)])
    return root


def test_reads_the_real_workbook(scut_fbp_root):
    dataset = load_dataset("scut-fbp", scut_fbp_root)
    assert len(dataset.records) == 500
    scores = dataset.scores(dataset.images)
    # facts from the release: Attractiveness label spans 1.197..4.889
    assert (round(scores.min(), 3), round(scores.max(), 3)) == (1.197, 4.889)
    sheet = openpyxl.load_workbook(SCUT_FBP_WORKBOOK, read_only=True).worksheets[0]
    first = next(r for r in sheet.iter_rows(min_row=2, values_only=True))
    assert dataset.records[f"SCUT-FBP-{first[0]}.jpg"].score == pytest.approx(first[1])


def test_five_stratified_folds_are_seeded_and_partition(scut_fbp_root):
    folds = load_dataset("scut-fbp", scut_fbp_root).folds("5fold")
    assert [(len(f.train), len(f.test)) for f in folds] == [(400, 100)] * 5
    assert sorted(i for f in folds for i in f.test) == sorted(f"SCUT-FBP-{n}.jpg" for n in range(1, 501))
    assert load_dataset("scut-fbp", scut_fbp_root).folds("5fold") == folds
    other = load_dataset("scut-fbp", scut_fbp_root, split_seed=1).folds("5fold")
    assert other != folds
    # stratified: every fold's test scores span the range and their means are close
    dataset = load_dataset("scut-fbp", scut_fbp_root)
    means = [dataset.scores(f.test).mean() for f in folds]
    assert np.ptp(means) < 0.05
    for f in folds:
        assert dataset.scores(f.test).min() < 1.6 and dataset.scores(f.test).max() > 4.3


def test_missing_workbook_and_bad_cell(tmp_path, scut_fbp_root):
    with pytest.raises(InputError, match="label workbook missing: .*SCUT-FBP.xlsx"):
        load_dataset("scut-fbp", tmp_path)
    book = openpyxl.load_workbook(SCUT_FBP_WORKBOOK)
    book.worksheets[0]["B5"] = 9.0
    book.save(tmp_path / "SCUT-FBP.xlsx")
    with pytest.raises(InputError, match=r"SCUT-FBP.xlsx:Sheet1!row 5: score 9.0 is outside the rating scale 1..5"):
        load_dataset("scut-fbp", tmp_path, check_images=False)

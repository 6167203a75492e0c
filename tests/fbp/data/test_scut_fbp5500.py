import shutil

import pytest

from fbp.data import load_dataset
from fbp.errors import InputError

FOLDS = "train_test_files/5_folders_cross_validations_files"
SIXTY = "train_test_files/split_of_60%training and 40%testing"


def test_five_official_folds_partition_all_images(scut5500_root):
    dataset = load_dataset("scut-fbp5500", scut5500_root)
    assert len(dataset.records) == 5500
    folds = dataset.folds("5fold")
    assert [(len(f.train), len(f.test)) for f in folds] == [(4400, 1100)] * 5
    tested = [i for f in folds for i in f.test]
    assert len(tested) == len(set(tested)) == 5500 and set(tested) == set(dataset.records)
    for f in folds:
        assert set(f.train) == set(dataset.records) - set(f.test)


def test_sixty_forty_split_and_subsets(scut5500_root):
    dataset = load_dataset("scut-fbp5500", scut5500_root)
    (fold,) = dataset.folds("60-40")
    assert (len(fold.train), len(fold.test)) == (3300, 2200)
    subsets = dataset.subsets(dataset.images)
    assert {s: subsets.count(s) for s in set(subsets)} == {"AF": 2000, "AM": 2000, "CF": 750, "CM": 750}
    scores = dataset.scores(dataset.images)
    # facts from the release: min 1.016667, max 4.75, mean 2.99089
    assert (scores.min(), scores.max(), round(scores.mean(), 5)) == (1.016667, 4.75, 2.99089)
    assert dataset.records["CF437.jpg"].score == 2.883333


FIRST_RELEASE = {"AF": "fty", "AM": "mty", "CF": "ftw", "CM": "mtw"}


def _rename_to_first_release(root):
    for path in list((root / "train_test_files").rglob("*.txt")):
        text = path.read_text()
        for new, old in FIRST_RELEASE.items():
            text = text.replace(new, old)
        path.unlink()  # break the hard link before writing
        path.write_text(text)
    for image in list((root / "Images").iterdir()):
        image.rename(image.with_name(FIRST_RELEASE[image.name[:2]] + image.name[2:]))
    (root / SIXTY).rename(root / "train_test_files/split_of_60%training_40%testing")


def test_first_release_names_and_folder(scut5500_root, scut5500_copy):
    _rename_to_first_release(scut5500_copy)
    old = load_dataset("scut-fbp5500", scut5500_copy)
    new = load_dataset("scut-fbp5500", scut5500_root)
    assert old.records["ftw437.jpg"].subset == "CF" and old.records["ftw437.jpg"].score == 2.883333
    assert sorted(r.subset for r in old.records.values()) == sorted(r.subset for r in new.records.values())
    assert [len(f.test) for f in old.folds("60-40")] == [2200]
    assert [f.test[:3] for f in old.folds("5fold")][0] == tuple(
        FIRST_RELEASE[n[:2]] + n[2:] for n in new.folds("5fold")[0].test[:3]
    )


def test_crlf_line_ends_and_trailing_blanks(scut5500_root, scut5500_copy):
    for path in (scut5500_copy / "train_test_files").rglob("*.txt"):
        lines = path.read_text().splitlines()
        path.unlink()
        path.write_bytes(("\r\n".join(line + "  \t" for line in lines) + "\r\n\r\n").encode())
    crlf = load_dataset("scut-fbp5500", scut5500_copy)
    plain = load_dataset("scut-fbp5500", scut5500_root)
    assert crlf.records == plain.records
    assert crlf.folds("5fold") == plain.folds("5fold")


def _edit(path, old, new):
    text = path.read_text().replace(old, new, 1)
    path.unlink()
    path.write_text(text)


def _raises(root, message, protocol=None):
    with pytest.raises(InputError) as e:
        dataset = load_dataset("scut-fbp5500", root)
        dataset.folds(protocol)
    assert message in str(e.value), str(e.value)
    return str(e.value)


def test_missing_root(tmp_path):
    _raises(tmp_path / "nowhere", f"dataset root not found: {tmp_path / 'nowhere'}")


def test_missing_split_file_names_the_layouts_tried(scut5500_copy):
    shutil.rmtree(scut5500_copy / SIXTY)
    msg = _raises(scut5500_copy, "split file missing:", "60-40")
    assert "split_of_60%training and 40%testing/train.txt" in msg and "split_of_60%training_40%testing/train.txt" in msg
    # the other protocol still loads
    assert len(load_dataset("scut-fbp5500", scut5500_copy).folds("5fold")) == 5


def test_line_that_does_not_parse_names_file_and_line(scut5500_copy):
    _edit(scut5500_copy / "train_test_files/All_labels.txt", "AM1384.jpg 2.466667", "AM1384.jpg")
    _raises(scut5500_copy, "All_labels.txt:2: expected '<image> <score>', got 'AM1384.jpg'")


def test_score_out_of_range(scut5500_copy):
    _edit(scut5500_copy / "train_test_files/All_labels.txt", "AM1234.jpg 2.15", "AM1234.jpg 7.5")
    _raises(scut5500_copy, "All_labels.txt:3: score 7.5 is outside the rating scale 1..5")


def test_score_not_a_number(scut5500_copy):
    _edit(scut5500_copy / "train_test_files/All_labels.txt", "AM1234.jpg 2.15", "AM1234.jpg high")
    _raises(scut5500_copy, "All_labels.txt:3: score 'high' is not a number")


def test_missing_images_count_and_first_names(scut5500_copy):
    for name in ("AF1.jpg", "AF2.jpg", "CM7.jpg"):
        (scut5500_copy / "Images" / name).unlink()
    msg = _raises(scut5500_copy, "3 of 5500 listed images are missing in")
    assert "AF1.jpg" in msg and "CM7.jpg" in msg


@pytest.mark.parametrize("name", ["../AF1.jpg", "sub/AF1.jpg", "..", "C:\\AF1.jpg"])
def test_names_must_stay_inside_the_root(scut5500_copy, name):
    _edit(scut5500_copy / "train_test_files/All_labels.txt", "CF437.jpg", name)
    _raises(scut5500_copy, f"All_labels.txt:1: image name {name!r} must be a plain file name inside the dataset root")


def test_split_score_disagreeing_with_all_labels(scut5500_copy):
    _edit(scut5500_copy / FOLDS / "cross_validation_1/train_1.txt", "CM148.jpg 3.516667", "CM148.jpg 3.9")
    _raises(scut5500_copy, "CM148.jpg has score 3.9 but All_labels.txt says 3.516667", "5fold")


def test_unknown_dataset_and_protocol(scut5500_root):
    with pytest.raises(InputError, match="unknown dataset 'scut'; valid: scut-fbp5500, scut-fbp, hotornot, synthetic"):
        load_dataset("scut", scut5500_root)
    _raises(scut5500_root, "unknown protocol '10fold' for dataset 'scut-fbp5500'; valid: 5fold, 60-40", "10fold")

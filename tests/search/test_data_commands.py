import json
import shutil

import pytest

from search.cli import main
from tests.conftest import review_scores, write_hotornot


def test_synth_then_check_prints_the_summary(tmp_path, capsys):
    out = tmp_path / "faces"
    assert main(["data", "synth", "--out", str(out), "--n", "60", "--size", "48", "--seed", "3"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert 0.5 < manifest["noise_ceiling"] <= 1.0
    assert "noise ceiling" in capsys.readouterr().out

    assert main(["data", "check", "scut-fbp5500", str(out)]) == 0
    text = capsys.readouterr().out
    assert "60 images, all present" in text
    assert "protocol 5fold" in text and "protocol 60-40" in text
    assert "test parts partition all 60 images: yes" in text


def test_check_on_the_real_label_files(scut5500_root, capsys):
    assert main(["data", "check", "scut-fbp5500", str(scut5500_root), "--protocol", "5fold", "--rule", "round_half_even"]) == 0
    text = capsys.readouterr().out
    assert "5500 images" in text and "AF 2000, AM 2000, CF 750, CM 750" in text
    # fold 1's class vector and weights, as checked on the real label files
    assert "[23, 1085, 2146, 1125, 21]" in text and "[93.30, 1.98, 1.00, 1.91, 102.19]" in text


def test_check_counts_hotornots_classes_by_its_own_intervals(tmp_path, capsys):
    write_hotornot(tmp_path, review_scores())  # -2 -> 0; -0.5, 0, 0.7 -> 1; 1.2 -> 2; fold 1 tests one each of -2, -0.5, 0, 0.7
    assert main(["data", "check", "hotornot", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "classes by rule intervals" in text and "fold 1: train 16, test 4 (all 4); train classes [3, 9, 4], weights [3.00, 1.00, 2.25]" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["data", "check", "scut-fbp5500", "{root}/nowhere"], "dataset root not found: {root}/nowhere"),
        (["data", "check", "celeba", "{root}"], "unknown dataset 'celeba'; valid: scut-fbp5500, scut-fbp, hotornot, synthetic"),
        (["data", "check", "scut-fbp5500", "{root}", "--protocol", "10fold"], "unknown protocol '10fold'"),
        (["data", "check", "scut-fbp5500", "{root}", "--rule", "bins"], "unknown discretization rule 'bins'"),
        (["data", "check", "scut-fbp5500", "{root}", "--rule", "uniform"], "needs num_classes >= 2"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_no_traceback(scut5500_root, capsys, argv, message):
    argv = [a.replace("{root}", str(scut5500_root)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message.replace("{root}", str(scut5500_root)) in err.replace("\n", "")
    assert "Traceback" not in err


def test_synth_refuses_a_non_empty_directory(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--n", "40"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def _edit(path, old, new):
    text = path.read_text().replace(old, new, 1)
    path.unlink()  # the copy's files are hard links: never write through them
    path.write_text(text)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: shutil.rmtree(r / "train_test_files/split_of_60%training and 40%testing"),
         "split file missing:"),
        (lambda r: _edit(r / "train_test_files/All_labels.txt", "AM1384.jpg 2.466667", "AM1384.jpg"),
         "All_labels.txt:2: expected '<image> <score>', got 'AM1384.jpg'"),
        (lambda r: _edit(r / "train_test_files/All_labels.txt", "AM1234.jpg 2.15", "AM1234.jpg 7.5"),
         "All_labels.txt:3: score 7.5 is outside the rating scale 1..5"),
        (lambda r: (r / "Images/AF1.jpg").unlink(), "1 of 5500 listed images are missing in"),
        (lambda r: _edit(r / "train_test_files/All_labels.txt", "CF437.jpg", "../CF437.jpg"),
         "All_labels.txt:1: image name '../CF437.jpg' must be a plain file name inside the dataset root"),
        (lambda r: _edit(r / "train_test_files/All_labels.txt", "CF437.jpg", "sub/CF437.jpg"),
         "image name 'sub/CF437.jpg' must be a plain file name"),
    ],
    ids=["split-file-missing", "line-does-not-parse", "score-out-of-range", "image-missing", "dotdot", "separator"],
)
def test_damaged_dataset_exits_2_naming_file_and_line(scut5500_copy, capsys, damage, message):
    damage(scut5500_copy)
    assert main(["data", "check", "scut-fbp5500", str(scut5500_copy)]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert message in err and "Traceback" not in err

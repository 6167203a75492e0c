"""`fbp-search predict`: a CSV of scores; bad inputs named, the good images still scored."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from fbp.export import MANIFEST
from fbp.predict import load_model
from search.cli import main


@pytest.fixture(scope="module")
def model(trained_results, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model"
    assert main(["export", str(trained_results), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    out = tmp_path_factory.mktemp("faces") / "faces"
    assert main(["data", "synth", "--out", str(out), "--n", "20", "--size", "48"]) == 0
    return out


def test_a_folder_of_faces_becomes_a_csv_of_scores(model, faces, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert main(["predict", str(model), str(faces), "--out", str(out), "--batch-size", "8"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["image", "score", "spread", "score_exp", "warning", "fold1", "fold2"]
    images = sorted((faces / "Images").glob("*.jpg"))  # the folder's label files and manifest are no images
    assert list(frame["image"]) == [str(p) for p in images]
    members = frame[["fold1", "fold2"]].to_numpy()
    assert np.allclose(frame["score"], members.mean(1)) and np.allclose(frame["spread"], members.std(1))
    assert np.allclose(frame["score"], load_model(model, device="cpu").predict(images), atol=1e-9)
    # no terminal: whole lines, the last one with the rate
    lines = capsys.readouterr().out.splitlines()
    assert "scored 20/20 images" in lines[-2] and lines[-1].startswith("scored 20 of 20 images in") and "images/s on cpu" in lines[-1]


def test_without_out_the_csv_goes_to_stdout_and_the_rest_to_stderr(model, faces, capsys):
    image = sorted((faces / "Images").glob("*.jpg"))[0]
    assert main(["predict", str(model), str(image)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == "image,score,spread,score_exp,warning,fold1,fold2" and len(captured.out.splitlines()) == 2
    assert "scored 1 of 1 images" in captured.err


def test_bad_inputs_exit_2_one_line_each_and_the_good_images_are_still_scored(model, faces, tmp_path, capsys):
    images = sorted((faces / "Images").glob("*.jpg"))[:3]
    text = tmp_path / "notes.txt"
    text.write_text("not a face")
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "scores.csv"
    argv = ["predict", str(model), str(images[0]), str(text), str(tmp_path / "gone.jpg"), str(empty), *map(str, images[1:]), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3
    assert err[0].startswith(f"error: {tmp_path / 'gone.jpg'}: no such file or folder")
    assert err[1].startswith(f"error: {empty}: a folder with no images")
    assert err[2].startswith(f"error: {text}: cannot decode the image")
    assert list(pd.read_csv(out)["image"]) == [str(p) for p in images]


def test_a_tiny_image_is_scored_with_one_warning_line_and_its_reason_in_the_csv(model, faces, tmp_path, capsys):
    from PIL import Image

    dot = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 150, 120)).save(dot)
    image = sorted((faces / "Images").glob("*.jpg"))[0]
    out = tmp_path / "scores.csv"
    assert main(["predict", str(model), str(dot), str(image), "--out", str(out)]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {dot}: tiny image, 1x1 px: the model sees")
    frame = pd.read_csv(out, keep_default_na=False)
    assert frame["warning"].str.startswith("tiny image, 1x1 px").tolist() == [True, False] and frame["warning"].iloc[1] == ""


@pytest.mark.parametrize("damage, message", [
    ("version", "format_version 2, but this fbp-search reads version 1"),
    ("manifest", "not an exported model (no model.json)"),
])
def test_a_folder_that_is_no_model_of_this_version_is_refused(model, faces, tmp_path, capsys, damage, message):
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    if damage == "version":
        manifest = json.loads((broken / MANIFEST).read_text())
        (broken / MANIFEST).write_text(json.dumps({**manifest, "format_version": 2}))
    else:
        (broken / MANIFEST).unlink()
    out = tmp_path / "scores.csv"
    assert main(["predict", str(broken), str(faces), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()

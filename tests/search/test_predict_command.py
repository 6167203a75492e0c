"""`fbp-search predict`: a CSV of scores; bad inputs named, the good images still scored."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from fbp.export import MANIFEST
from fbp.predict import load_model
from search.cli import main
from tests.conftest import write_broken_png


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
    broken = write_broken_png(tmp_path / "broken.png")  # PIL raises SyntaxError for it, not OSError
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "scores.csv"
    argv = ["predict", str(model), str(images[0]), str(text), str(broken), str(tmp_path / "gone.jpg"), str(empty), *map(str, images[1:]), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4
    assert err[0].startswith(f"error: {tmp_path / 'gone.jpg'}: no such file or folder")
    assert err[1].startswith(f"error: {empty}: a folder with no images")
    assert err[2].startswith(f"error: {text}: cannot decode the image")
    assert err[3].startswith(f"error: {broken}: cannot decode the image (SyntaxError: broken PNG file")
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


def test_detect_faces_scores_each_face_of_a_photo_beside_its_box(model, tmp_path, capsys):
    """skimage's astronaut photo (her face, read off the image by eye: eyes at (202, 101) and
    (247, 101), mouth at (222, 145)), two of her side by side, and a photo with no face."""
    skimage_data = pytest.importorskip("skimage.data")
    pytest.importorskip("cv2")
    from PIL import Image

    astronaut = skimage_data.astronaut()
    one, two, none = tmp_path / "astronaut.png", tmp_path / "two.png", tmp_path / "coffee.png"
    Image.fromarray(astronaut).save(one)
    Image.fromarray(np.concatenate([astronaut, astronaut], axis=1)).save(two)
    Image.fromarray(skimage_data.coffee()).save(none)
    out = tmp_path / "scores.csv"
    assert main(["predict", str(model), str(one), str(two), str(none), "--detect-faces", "--out", str(out)]) == 0
    frame = pd.read_csv(out, keep_default_na=False)
    assert list(frame.columns) == ["image", "box_x", "box_y", "box_w", "box_h", "score", "spread", "score_exp", "warning", "fold1", "fold2"]
    assert list(frame["image"]) == [f"{one}#1", f"{two}#1", f"{two}#2", str(none)]
    # each face's box holds her eyes and mouth (the second face 512 px to the right); the photo without one has no box and no score
    for (x, y, w, h), dx in zip(frame.loc[:2, ["box_x", "box_y", "box_w", "box_h"]].astype(int).to_numpy(), (0, 0, 512)):
        assert all(x <= px + dx < x + w and y <= py < y + h for px, py in ((202, 101), (247, 101), (222, 145))) and w <= 130
    assert frame.iloc[3][["box_x", "box_y", "box_w", "box_h", "score", "fold1"]].tolist() == ["", "", "", "", "", ""]
    assert frame["warning"].tolist() == ["", "", "", "no face found"]
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: {none}: no face found"]
    # a face's score is its crop's: 1.8 box sides, centred 0.1 box above the box's centre, cut here with PIL
    x, y, w, h = frame.loc[0, ["box_x", "box_y", "box_w", "box_h"]].astype(int)
    side = round(1.8 * w)
    left, top = round(x + w / 2 - side / 2), round(y + h / 2 - 0.1 * h - side / 2)
    crop = Image.fromarray(astronaut).crop((left, top, left + side, top + side))
    assert abs(float(frame.loc[0, "score"]) - load_model(model, device="cpu").predict([crop])[0]) < 1e-6


def test_detect_faces_without_opencv_says_how_to_install_it(model, faces, tmp_path, capsys, monkeypatch):
    import sys

    from fbp.detect import cascade

    cascade.cache_clear()
    monkeypatch.setitem(sys.modules, "cv2", None)  # what `import cv2` meets where OpenCV is not installed: ImportError
    out = tmp_path / "scores.csv"
    try:
        assert main(["predict", str(model), str(faces), "--detect-faces", "--out", str(out)]) == 2
    finally:
        cascade.cache_clear()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "fbp-search[faces]"' in err[0]
    assert not out.exists()


def test_paths_with_brackets_print_as_written(model, faces, tmp_path, capsys):
    """The command consoles take no markup: `[final]` and `[/x]` in a path are a path's characters
    (rich's markup ate the first and raised on the second, after the CSV was written)."""
    image = sorted((faces / "Images").glob("*.jpg"))[0]
    for folder in ("[final]", "[/x]"):
        out = tmp_path / folder / "s.csv"
        assert main(["predict", str(model), str(image), "--out", str(out)]) == 0
        assert f"; wrote {out}" in capsys.readouterr().out.replace("\n", "") and out.is_file()  # with --out, the summary is on stdout
    assert main(["predict", str(model), str(tmp_path / "[/gone].jpg")]) == 2
    assert f"error: {tmp_path / '[/gone].jpg'}: no such file" in capsys.readouterr().err.replace("\n", "")

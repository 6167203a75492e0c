"""Drawn faces in each published layout (fbp.data.layouts), read by that dataset's own loader.

The labels are checked against an independent source: the same faces written in the
SCUT-FBP5500 layout (face AF7 is the same face in every layout and for every n, and with the
same raters it has the same score), recomputed here by hand (z-scores, the 60/40 and fold
sizes)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import openpyxl
import pytest

from fbp.data import load_dataset
from fbp.data.faces import generate, layout_params
from fbp.data.layouts import LAYOUTS

SEED = 5


def _labels_5500(root: Path) -> dict[str, float]:
    text = (root / "train_test_files" / "All_labels.txt").read_text()
    return {name: float(score) for name, score in (line.split(" ") for line in text.splitlines())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, float]:
    """Scores of AF1..AF28 and CF1..CF10 (60 raters), from the SCUT-FBP5500 layout: n=75 splits
    28:27:10:10 (largest remainder of 2000:2000:750:750)."""
    out = tmp_path_factory.mktemp("ref") / "scut-fbp5500"
    generate(out, layout_params("scut-fbp5500", n=75, size=32, seed=SEED), workers=1)
    return _labels_5500(out)


def test_every_layout_is_read_by_its_own_loader(tmp_path):
    for name, layout in LAYOUTS.items():
        out = tmp_path / name
        manifest = generate(out, layout_params(name, n=30, size=32, seed=SEED), workers=1, layout=name)
        dataset = load_dataset(name, out)  # checks every image is there
        assert len(dataset.records) == 30, name
        scores = dataset.scores(dataset.images)
        assert (manifest["scores"]["min"], manifest["scores"]["max"]) == (round(scores.min(), 6), round(scores.max(), 6)), name
        assert manifest["rater_model"]["raters"] == layout.raters, name


def test_scut_fbp_workbook_holds_the_faces_scores(tmp_path, reference):
    out = tmp_path / "scut-fbp"
    # 60 raters, as the reference: the scores must then be the reference's AF1..AF20 (every SCUT-FBP face is AF)
    manifest = generate(out, layout_params("scut-fbp", n=20, size=32, seed=SEED, raters=60), workers=1, layout="scut-fbp")
    assert manifest["layout"] == "scut-fbp" and manifest["counts"] == {"AF": 20}
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(f"SCUT-FBP-{i}.jpg" for i in range(1, 21))
    book = openpyxl.load_workbook(out / "SCUT-FBP.xlsx", read_only=True)
    assert book.sheetnames == ["Sheet1", "Sheet2", "Sheet3"]
    rows = list(book["Sheet1"].iter_rows(values_only=True))
    assert rows[0] == ("Image", "Attractiveness label", "Standard Deviation")
    assert [r[0] for r in rows[1:]] == list(range(1, 21))
    assert [r[1] for r in rows[1:]] == pytest.approx([reference[f"AF{i}.jpg"] for i in range(1, 21)], abs=5e-7)
    assert all(0 < r[2] < 2 for r in rows[1:])  # the spread of 60 ratings on a 1..5 scale
    dataset = load_dataset("scut-fbp", out)
    assert dataset.records["SCUT-FBP-7.jpg"].score == pytest.approx(reference["AF7.jpg"], abs=5e-7)


def test_hotornot_scores_are_z_scores_of_the_faces(tmp_path, reference):
    out = tmp_path / "hotornot"
    manifest = generate(out, layout_params("hotornot", n=20, size=32, seed=SEED), workers=1, layout="hotornot")
    assert manifest["counts"] == {"AF": 10, "CF": 10}
    # the i-th face drawn: AF1..AF10, then CF1..CF10; z over these 20 by hand, population std
    raw = np.array([reference[f"AF{k}.jpg"] for k in range(1, 11)] + [reference[f"CF{k}.jpg"] for k in range(1, 11)])
    z = (raw - raw.mean()) / np.sqrt(((raw - raw.mean()) ** 2).mean())
    splits = [(out / f"eccv2010_split{k}.csv").read_text().splitlines() for k in range(1, 6)]
    for lines in splits:
        rows = [line.split(",") for line in lines]
        assert [r[0] for r in rows] == [f"hotornot-{i:04d}.bmp" for i in range(1, 21)]
        assert [float(r[1]) for r in rows] == pytest.approx(z.tolist(), abs=2e-6)
    tests = [{r.split(",")[0] for r in lines if r.endswith(",test")} for lines in splits]
    assert [len(t) for t in tests] == [4] * 5 and len(set().union(*tests)) == 20  # five test parts partition the faces
    assert manifest["z_scores"]["mean"] == pytest.approx(raw.mean(), abs=1e-6)
    dataset = load_dataset("hotornot", out)
    assert [len(f.test) for f in dataset.folds("5split")] == [4] * 5


def test_scut_fbp5500_writes_the_bytes_it_wrote_before_layouts(tmp_path):
    """Same params, same files (GENERATOR_VERSION 1): the label files, latent.csv and manifest as
    the generator wrote them before layouts existed (hashes taken from that version's output)."""
    out = tmp_path / "set"
    generate(out, layout_params("scut-fbp5500", n=60, size=48, seed=36), workers=1)
    expected = {
        "manifest.json": "cc70ba81cbc330de8de68986ba058cedb81f07994857a19f67f454fb6b7a10d3",
        "latent.csv": "511349f4ed25e09e1c4e2419b7d278bd9516de8903d2a32922f7e012c20b0529",
        "train_test_files/All_labels.txt": "6bdbf24733c5805bd042a7d3633cb41ea4ac6493a6d378bdb0271661f7ff5bf0",
        "train_test_files/split_of_60%training and 40%testing/train.txt": "0864e1e192439d62f439df027b0bb36a6ba27df13ad6f94b15f4ba5457d6cf83",
        "train_test_files/5_folders_cross_validations_files/cross_validation_3/test_3.txt": "a295a05cd21b44fa81ebf7a0c66564fbd86b652862bb04397c3215c1ead2da70",
    }
    assert {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in expected} == expected
    assert "layout" not in json.loads((out / "manifest.json").read_text())

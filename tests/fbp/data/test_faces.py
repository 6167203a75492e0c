import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import pearsonr

from fbp.data import faces as S
from fbp.data import scut_fbp5500
from fbp.data.faces import GENERATOR_VERSION, SynthParams, generate

SMALL = SynthParams(n=40, size=64, seed=3, raters=60)
TT = "train_test_files"
SPLIT = f"{TT}/split_of_60%training and 40%testing"
FOLDS = f"{TT}/5_folders_cross_validations_files"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "set"
    return out, generate(out, SMALL, workers=2)


@pytest.fixture(scope="module")
def medium(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "set300"
    return out, generate(out, SynthParams(n=300, size=64, seed=0), workers=2)


def read_labels(path: Path) -> list[tuple[str, float]]:
    text = path.read_bytes().decode()
    assert text.endswith("\n") and "\r" not in text
    rows = []
    for line in text.splitlines():
        name, score = line.split(" ")
        assert len(score.split(".")[1]) == 6
        rows.append((name, float(score)))
    return rows


def tree_hashes(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


# --- layout ---------------------------------------------------------------------------------


def test_layout_and_counts(small):
    out, manifest = small
    assert manifest["counts"] == {"AF": 15, "AM": 15, "CF": 5, "CM": 5}
    expected = {f"{s}{k}.jpg" for s, c in manifest["counts"].items() for k in range(1, c + 1)}
    assert {p.name for p in (out / "Images").iterdir()} == expected
    labels = read_labels(out / TT / "All_labels.txt")
    assert {name for name, _ in labels} == expected and len(labels) == 40
    assert all(1.0 <= score <= 5.0 for _, score in labels)
    for name in ("AF1.jpg", "CM5.jpg"):
        with Image.open(out / "Images" / name) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (64, 64))


def test_splits_partition_the_images(small):
    out, _ = small
    scores = dict(read_labels(out / TT / "All_labels.txt"))
    train, test = (dict(read_labels(out / SPLIT / f"{part}.txt")) for part in ("train", "test"))
    assert (len(train), len(test)) == (24, 16) and set(train) | set(test) == set(scores)
    seen = set()
    for k in range(1, 6):
        fold_train = dict(read_labels(out / FOLDS / f"cross_validation_{k}" / f"train_{k}.txt"))
        fold_test = dict(read_labels(out / FOLDS / f"cross_validation_{k}" / f"test_{k}.txt"))
        assert len(fold_test) == 8 and not seen & set(fold_test)
        assert set(fold_train) == set(scores) - set(fold_test)
        assert {**fold_train, **fold_test} == scores
        seen |= set(fold_test)
    assert seen == set(scores)


def test_reads_as_scut_fbp5500(small):
    dataset = scut_fbp5500.load(small[0])
    assert len(dataset.records) == 40
    assert [len(f.test) for f in dataset.folds("5fold")] == [8] * 5
    assert {r.subset for r in dataset.records.values()} == set(S.SUBSETS)


def test_manifest_and_noise_ceiling(small):
    out, manifest = small
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["generator_version"] == GENERATOR_VERSION
    assert manifest["params"] == {"n": 40, "size": 64, "seed": 3, "raters": 60}
    assert len(manifest["rater_model"]["bias"]) == 60
    lines = (out / "latent.csv").read_text().splitlines()
    assert lines[0] == "image,latent"
    latent = dict((name, float(a)) for name, a in (line.split(",") for line in lines[1:]))
    labels = read_labels(out / TT / "All_labels.txt")
    r = pearsonr([latent[name] for name, _ in labels], [score for _, score in labels])[0]
    assert 0.5 < manifest["noise_ceiling"] <= 1.0
    assert manifest["noise_ceiling"] == pytest.approx(r, abs=1e-9)
    scores = [score for _, score in labels]
    assert (manifest["scores"]["min"], manifest["scores"]["max"]) == (min(scores), max(scores))


# --- determinism and atomicity --------------------------------------------------------------


def test_same_params_give_identical_bytes_whatever_the_workers(small, tmp_path):
    again = tmp_path / "again"
    generate(again, SMALL, workers=1)
    assert tree_hashes(again) == tree_hashes(small[0])
    other = tmp_path / "other"
    generate(other, replace(SMALL, seed=4), workers=1)
    differ = [f for f, h in tree_hashes(other).items() if tree_hashes(small[0]).get(f) != h]
    assert "Images/AF1.jpg" in differ and f"{TT}/All_labels.txt" in differ


def test_a_face_does_not_depend_on_n(small, tmp_path):
    bigger = tmp_path / "bigger"
    generate(bigger, replace(SMALL, n=60), workers=1)
    assert (bigger / "Images" / "CF3.jpg").read_bytes() == (small[0] / "Images" / "CF3.jpg").read_bytes()


def test_refuses_a_non_empty_output_and_leaves_no_temp(tmp_path):
    out = tmp_path / "set"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="set"):
        generate(out, SMALL, workers=1)
    assert (out / "keep.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    generate(empty, SMALL, workers=1)  # an empty directory is replaced
    assert (empty / "manifest.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "set"]


def test_losing_a_race_raises_file_exists(tmp_path, monkeypatch):
    """Another process renamed its set onto `out` after our last check: ours must not replace it."""
    ours, out = tmp_path / ".set.tmp-1", tmp_path / "set"
    ours.mkdir()
    (ours / "manifest.json").write_text("ours")
    out.mkdir()
    (out / "manifest.json").write_text("theirs")
    monkeypatch.setattr(S, "_check_free", lambda out: None)
    with pytest.raises(FileExistsError, match="appeared meanwhile"):
        S._publish(ours, out)
    assert (out / "manifest.json").read_text() == "theirs"


def test_creates_missing_parents(tmp_path):
    generate(tmp_path / "a" / "b", SynthParams(n=20, size=32), workers=1)
    assert len(list((tmp_path / "a" / "b" / "Images").iterdir())) == 20


def test_a_failed_run_leaves_neither_output_nor_temp(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(S, "_rate", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(tmp_path / "set", SMALL, workers=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "field, value", [("n", 19), ("size", 31), ("seed", -1), ("raters", 0), ("n", 40.0)]
)
def test_params_are_checked(field, value):
    with pytest.raises(ValueError, match=f"{field} must be an integer >= "):
        SynthParams(**{field: value})


def test_subset_counts_follow_scut_fbp5500():
    assert S._largest_remainder(5500, S._SUBSET_SHARE) == [2000, 2000, 750, 750]
    for n in (20, 21, 23, 999, 1001):
        assert sum(S._largest_remainder(n, S._SUBSET_SHARE)) == n


# --- it is a vision task without shortcuts --------------------------------------------------


def test_no_brightness_or_colour_shortcut(medium):
    out, manifest = medium
    labels = read_labels(out / TT / "All_labels.txt")
    pixels = (np.asarray(Image.open(out / "Images" / name), dtype=np.float64) for name, _ in labels)
    means = np.stack([p.mean(axis=(0, 1)) for p in pixels])  # (N, 3): mean R, G, B per image
    scores = [score for _, score in labels]
    assert abs(pearsonr(means.mean(axis=1), scores)[0]) < 0.2
    for channel in range(3):
        assert abs(pearsonr(means[:, channel], scores)[0]) < 0.2


def test_scores_look_like_scut_fbp5500(medium):
    stats, ceiling = medium[1]["scores"], medium[1]["noise_ceiling"]
    assert 2.7 < stats["mean"] < 3.3 and 0.5 < stats["std"] < 0.8
    assert 1.0 <= stats["min"] and stats["max"] <= 5.0
    assert 0.9 < ceiling < 0.98


def test_ideal_traits_raise_the_latent():
    ideal = S._Traits()
    for k in range(1, 21):
        face = S._sample_face(0, "CM", k)
        assert S._latent(ideal) > S._latent(face.traits)
        better = replace(face, traits=ideal)  # same nuisance, perfect face
        assert np.asarray(S._render(better, 64)).tobytes() != np.asarray(S._render(face, 64)).tobytes()


@pytest.mark.parametrize("trait", [*S._ASYMMETRY, *S._PROPORTION])
def test_every_trait_lowers_the_latent(trait):
    assert S._latent(replace(S._Traits(), **{trait: 1.5})) < S._latent(S._Traits())
    assert S._latent(replace(S._Traits(), **{trait: -1.5})) < S._latent(S._Traits())


def test_blemishes_lower_the_latent():
    spot = S._Blemish(x=0.1, y=0.05, radius=0.02, contrast=0.8, red=True)
    assert S._latent(S._Traits(blemishes=(spot,))) < S._latent(S._Traits())


def test_nuisance_does_not_touch_the_latent():
    face = S._sample_face(0, "AF", 1)
    other = S._sample_face(1, "CM", 9)
    assert S._latent(replace(other, traits=face.traits).traits) == S._latent(face.traits)


def test_latent_constants_standardize_the_population():
    rng = np.random.default_rng(2024)
    latent = np.array([S._latent(S._sample_traits(rng)) for _ in range(5000)])
    assert abs(latent.mean()) < 0.06 and abs(latent.std() - 1) < 0.04

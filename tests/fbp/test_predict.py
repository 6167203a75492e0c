"""fbp.predict: an exported model scores a face exactly as evaluation scored its test fold."""

import numpy as np
import pytest
from PIL import Image

from fbp.errors import InputError
from fbp.predict import FIXED_COLUMNS, load_model


def _test_paths(exported, result):
    return [exported.dataset.image_path(name) for name in result.predictions["image"]]


def test_each_fold_model_alone_gives_its_test_folds_predictions(exported):
    for r in exported.results:
        model = load_model(exported.folder, device="cpu", members=[f"fold{r.fold}"])
        frame = model.predict_frame(_test_paths(exported, r))
        assert list(frame.columns) == [*FIXED_COLUMNS, f"fold{r.fold}"]
        # y_pred is fused (0.25 reg + 0.75 exp): both heads, the view and the class values all count
        difference = np.abs(frame["score"].to_numpy() - np.array(r.predictions["y_pred"])).max()
        assert difference < 1e-4, difference
        assert np.abs(frame["score_exp"].to_numpy() - np.array(r.predictions["y_exp"])).max() < 1e-4
        assert (frame["spread"] == 0).all() and (frame["score"] == frame[f"fold{r.fold}"]).all()


def test_the_ensemble_is_the_mean_of_its_members_and_its_spread_their_std(exported):
    paths = _test_paths(exported, exported.results[0])
    frame = load_model(exported.folder, device="cpu").predict_frame(paths, batch_size=5)  # batches of 5, 5 and 2
    alone = {k: load_model(exported.folder, device="cpu", members=[f"fold{k}"]).predict_frame(paths) for k in (1, 2)}
    members = np.stack([alone[k]["score"].to_numpy() for k in (1, 2)])
    assert list(frame["image"]) == [str(p) for p in paths]
    assert np.allclose(frame[["fold1", "fold2"]].to_numpy().T, members, atol=1e-6)
    assert np.allclose(frame["score"], members.mean(0), atol=1e-6)
    assert np.allclose(frame["spread"], np.sqrt(((members - members.mean(0)) ** 2).mean(0)), atol=1e-6)
    exps = np.stack([alone[k]["score_exp"].to_numpy() for k in (1, 2)])
    assert np.allclose(frame["score_exp"], exps.mean(0), atol=1e-6)


def test_a_path_a_pil_image_and_an_array_score_the_same(exported):
    model = load_model(exported.folder, device="cpu")
    path = exported.dataset.image_path(exported.dataset.images[0])
    with Image.open(path) as im:
        im.load()
        scores = model.predict([path, str(path), im, np.asarray(im)])
    assert np.allclose(scores, scores[0], atol=1e-6)


def test_a_bad_image_is_named_and_the_good_ones_are_still_scored(exported, tmp_path):
    model = load_model(exported.folder, device="cpu")
    good = [exported.dataset.image_path(name) for name in exported.dataset.images[:3]]
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(InputError, match=r"notes\.txt: cannot decode the image"):
        model.predict([good[0], text])
    errors = []
    frame = model.predict_frame([good[0], text, tmp_path / "gone.jpg", good[1], np.zeros((4, 4), np.float32), good[2]], batch_size=2, errors=errors)
    assert list(frame["image"]) == [str(p) for p in good]
    assert [e[0] for e in errors] == [str(text), str(tmp_path / "gone.jpg"), "<ndarray 4>"]
    assert "no such file" in errors[1][1] and "(H, W, 3) uint8" in errors[2][1]
    assert np.allclose(frame["score"], model.predict(good), atol=1e-6)


def test_load_model_refuses_what_it_cannot_load(exported, tmp_path):
    with pytest.raises(InputError, match=r"no member fold9; its members: fold1, fold2"):
        load_model(exported.folder, device="cpu", members=["fold9"])
    with pytest.raises(InputError, match=r"not an exported model \(no model.json\)"):
        load_model(tmp_path, device="cpu")
    with pytest.raises(InputError, match="does not exist"):
        load_model(tmp_path / "nowhere", device="cpu")
    for device in ("mps", "meta", "gpu"):  # torch knows the first two; predict runs on neither
        with pytest.raises(InputError, match=rf"device '{device}': not a device predict runs on; use auto, cpu, cuda or cuda:N"):
            load_model(exported.folder, device=device)


def _on_the_bf16_grid(values) -> np.ndarray:
    import torch

    x = torch.as_tensor(np.asarray(values, dtype=np.float32))
    return (x.bfloat16().float() == x).numpy()


def test_bf16_training_scores_in_float32_and_predict_still_equals_evaluation(tmp_path):
    # under bf16 autocast a regression head in bf16 rounds each score to steps of 1/64 on [2, 4)
    from fbp.config import validate_config
    from fbp.data import load_dataset
    from fbp.kfold import run_kfold

    from .conftest import TINY_MODEL, export_folds

    config = validate_config({**TINY_MODEL, "train": {**TINY_MODEL["train"], "precision": "bf16"}})
    dataset = load_dataset(config.data.dataset, None, **config.data.options)
    results = run_kfold(config, keep_models=True)
    export_folds(tmp_path / "model", config, results)
    for r in results:
        y_reg = np.array(r.predictions["y_reg"])
        assert _on_the_bf16_grid(y_reg).sum() <= 1, y_reg[:5]  # a float32 value lands on the grid by chance with p = 2^-16
        frame = load_model(tmp_path / "model", device="cpu", members=[f"fold{r.fold}"]).predict_frame([dataset.image_path(n) for n in r.predictions["image"]])
        assert _on_the_bf16_grid(frame["score"]).sum() <= 1
        assert np.abs(frame["score"].to_numpy() - np.array(r.predictions["y_pred"])).max() < 1e-4


def test_a_tiny_image_is_scored_with_a_warning_naming_it(exported, tmp_path):
    """A 1x1 image was scored as silently as a face. The model sees 32 px faces: below 16 px
    (MIN_SIDE, more than a quarter of 32) a side leaves no face to see."""
    import warnings

    dot = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (200, 150, 120)).save(dot)
    face = _test_paths(exported, exported.results[0])[0]
    strip = np.zeros((40, 15, 3), np.uint8)  # 15 px wide
    square = np.zeros((16, 16, 3), np.uint8)  # just big enough
    sideways = tmp_path / "sideways.png"  # stored 40 wide, 15 high; shown upright (orientation 6) 15 wide, 40 high
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(strip).transpose(Image.Transpose.ROTATE_90).save(sideways, exif=exif)
    model = load_model(exported.folder, device="cpu")
    frame = model.predict_frame([dot, face, strip, square, sideways])
    assert list(frame["warning"]) == [
        "tiny image, 1x1 px: the model sees 32 px faces and a side under 16 px leaves no face to see; its score means little", "",
        "tiny image, 15x40 px: the model sees 32 px faces and a side under 16 px leaves no face to see; its score means little", "",
        "tiny image, 15x40 px: the model sees 32 px faces and a side under 16 px leaves no face to see; its score means little"]
    assert frame["score"].notna().all()  # still scored
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict([dot, face])
    assert [str(w.message) for w in caught] == [f"{dot}: tiny image, 1x1 px: the model sees 32 px faces and a side under 16 px leaves no face to see; its score means little"]


def test_tiny_is_a_quarter_of_the_models_image_size_and_at_least_16_px():
    from fbp.predict import tiny_image

    assert tiny_image((55, 400), 224) is not None and tiny_image((56, 56), 224) is None  # 224 / 4 = 56
    assert tiny_image((15, 15), 32) is not None and tiny_image((16, 16), 32) is None  # 16 px at least
    assert tiny_image(None, 224) is None


def test_a_photo_stored_sideways_with_an_exif_orientation_is_scored_upright(exported, tmp_path):
    """A phone stores a photo taken sideways as the sensor saw it and an EXIF orientation that
    says how to turn it upright (6: 90 degrees clockwise, 8: anticlockwise). Twins in PNG, whose
    pixels are exact: the upright face and its two sideways copies score the same."""
    face = _test_paths(exported, exported.results[0])[0]
    with Image.open(face) as im:
        upright = im.convert("RGB")
    upright.save(tmp_path / "upright.png")
    for orientation, turn in ((6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)):  # ROTATE_90 turns anticlockwise
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored = upright.transpose(turn)
        assert not np.array_equal(np.asarray(stored), np.asarray(upright))  # a square face turned is another image
        stored.save(tmp_path / f"sideways{orientation}.png", exif=exif)
    model = load_model(exported.folder, device="cpu")
    paths = [tmp_path / "upright.png", tmp_path / "sideways6.png", tmp_path / "sideways8.png"]
    with Image.open(paths[1]) as opened:  # a PIL image given as it was opened: its EXIF counts too
        scores = model.predict([*paths, opened])
    assert np.abs(scores - scores[0]).max() < 1e-4, scores


def test_a_large_jpeg_is_seen_as_the_cache_holds_it_in_draft_mode(exported, tmp_path):
    """A JPEG four times the model's 37 px decode side is decoded in draft mode by predict as by
    the training cache (one function, the decoding the manifest names); a model folder that
    names the previous decoding gets the full decode it was trained with."""
    import json
    import shutil

    from fbp.data import load_dataset
    from fbp.data.cache import decoded_images

    from ..conftest import write_stand_in_images

    root = tmp_path / "large"
    (root / "train_test_files").mkdir(parents=True)
    (root / "train_test_files/All_labels.txt").write_text("AF1.jpg 2.50\nAF2.jpg 3.10\n")
    write_stand_in_images(root / "Images", ["AF1.jpg", "AF2.jpg"], side=8)
    for name in ("AF1.jpg", "AF2.jpg"):  # detail that draft and full decoding render differently
        noise = np.random.default_rng(len(name)).integers(0, 256, (12, 12, 3), dtype=np.uint8)
        Image.fromarray(noise).resize((160, 160), Image.Resampling.BICUBIC).save(root / "Images" / name, quality=95)
    cached = decoded_images(load_dataset("scut-fbp5500", root), 37)
    model = load_model(exported.folder, device="cpu")
    assert model.decode_side == 37
    for i, name in enumerate(("AF1.jpg", "AF2.jpg")):
        assert np.array_equal(model.pixels(root / "Images" / name), cached[i])

    older = tmp_path / "older"
    shutil.copytree(exported.folder, older)
    manifest = json.loads((older / "model.json").read_text())
    manifest["preprocessing"]["decode"] = "pil-bilinear-antialias-v1"
    (older / "model.json").write_text(json.dumps(manifest))
    with Image.open(root / "Images" / "AF1.jpg") as im:
        whole = np.asarray(im.convert("RGB").resize((37, 37), Image.Resampling.BILINEAR))
    assert np.array_equal(load_model(older, device="cpu").pixels(root / "Images" / "AF1.jpg"), whole)
    assert not np.array_equal(whole, cached[0])
    manifest["preprocessing"]["decode"] = "cv2-area-v9"
    (older / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"model.json: preprocessing.decode 'cv2-area-v9' is not a decoding this fbp-search knows \(pil-bilinear-antialias-v1, "):
        load_model(older, device="cpu")


def test_images_are_decoded_ahead_in_order_and_no_further_than_asked():
    """The pool decodes the next images while the caller scores the current batch (item 3 is
    decoded before item 0 is handed out), results come in the order given, and at most `ahead`
    wait beyond the one handed out, so a folder of 100,000 faces is not held in memory."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from fbp.predict import _in_order

    started = [threading.Event() for _ in range(20)]
    calls = []

    def decode(i):
        calls.append(i)
        started[i].set()
        if i == 0:
            assert started[3].wait(60)  # a guard against a hang, not a timing: item 3 runs while item 0 is not yet handed out
        return i * i

    with ThreadPoolExecutor(4) as pool:
        results = _in_order(pool, decode, range(20), ahead=4)
        assert next(results) == 0
        pool.shutdown(wait=True)  # whatever was submitted has run; nothing more can be
        assert sorted(calls) == [0, 1, 2, 3, 4]  # the first four, and one more once item 0 was handed out
    with ThreadPoolExecutor(4) as pool:
        assert list(_in_order(pool, lambda i: i * i, range(20), ahead=3)) == [i * i for i in range(20)]

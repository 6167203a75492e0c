"""fbp.export: a fold's selected model as one file, and the model folder around the members."""

import json
import shutil

import numpy as np
import pytest
import yaml
from safetensors.torch import load_file

from fbp.errors import InputError
from fbp.export import CARD, CONFIG, FORMAT_VERSION, MANIFEST, fold_model_info, read_manifest, write_model_folder
from fbp.kfold import run_kfold
from tests.fbp.conftest import TINY_MODEL, export_folds


def test_a_fold_model_file_holds_the_selected_weights_and_what_they_need(exported):
    for r in exported.results:
        path = exported.folder / f"fold{r.fold}.safetensors"
        info = fold_model_info(path)
        assert (info["fold"], info["seed"], info["selected_epoch"], info["select"]) == (r.fold, r.seed, r.selected_epoch, "last")
        assert info["class_values"] == list(r.model.class_values) and len(info["class_values"]) == 5
        assert info["metrics"]["pc"] == pytest.approx(r.pc) and info["metrics"]["val_pc"] is None  # no holdout: null, not NaN
        state = load_file(str(path))
        assert state.keys() == r.model.state.keys()
        assert all(np.array_equal(state[k].numpy(), r.model.state[k].numpy()) for k in state)


def test_the_kept_weights_are_the_chosen_epochs_not_the_last(tmp_path):
    """inner_val chooses an epoch on the held-out part; the kept model must be that epoch's: it
    reproduces the fold's predictions (which are that epoch's) exactly."""
    from fbp.config import validate_config
    from fbp.data import load_dataset
    from fbp.data.synthetic import SMALL
    from fbp.predict import load_model

    raw = {**TINY_MODEL, "data": {**TINY_MODEL["data"], "folds": [1]}, "train": {**TINY_MODEL["train"], "epochs": 4},
           "eval": {**TINY_MODEL["eval"], "select": "inner_val", "val_fraction": 0.25}}
    config = validate_config(raw)
    (r,) = run_kfold(config, keep_models=True)
    export_folds(tmp_path / "model", config, [r])
    dataset = load_dataset("synthetic", None, **SMALL)
    scores = load_model(tmp_path / "model", device="cpu").predict([dataset.image_path(i) for i in r.predictions["image"]])
    assert np.abs(scores - np.array(r.predictions["y_pred"])).max() < 1e-4
    assert fold_model_info(tmp_path / "model" / "fold1.safetensors")["selected_epoch"] == r.selected_epoch


def test_the_model_folder_holds_members_config_manifest_and_card(exported):
    assert sorted(p.name for p in exported.folder.iterdir()) == sorted([CARD, CONFIG, MANIFEST, "fold1.safetensors", "fold2.safetensors"])
    manifest = read_manifest(exported.folder)
    assert manifest["format_version"] == FORMAT_VERSION
    assert [m["file"] for m in manifest["members"]] == ["fold1.safetensors", "fold2.safetensors"]
    p = manifest["preprocessing"]
    assert (p["decode_side"], p["image_size"], p["view"]) == (37, 32, "center_crop")  # 37: data.resize, the cached side
    assert manifest["prediction"]["predict"] == "fused" and manifest["prediction"]["fused_weight"] == 0.25
    pcs = [r.pc for r in exported.results]
    assert manifest["metrics"]["pc"]["mean"] == pytest.approx(np.mean(pcs)) and manifest["metrics"]["pc"]["std"] == pytest.approx(np.std(pcs, ddof=1))
    assert yaml.safe_load((exported.folder / CONFIG).read_text()) == exported.config.model_dump(mode="json")
    card = (exported.folder / CARD).read_text()
    for heading in ("## Data and protocol", "## Metrics", "## Intended use and limits", "not a face detector"):
        assert heading in card
    assert f"{np.mean(pcs):.4f} ± {np.std(pcs, ddof=1):.4f}" in card


def test_a_folder_of_another_format_version_or_incomplete_is_refused(exported, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(exported.folder, other)
    manifest = json.loads((other / MANIFEST).read_text())
    (other / MANIFEST).write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(InputError, match=rf"format_version {FORMAT_VERSION + 1}, but this fbp-search reads version {FORMAT_VERSION}"):
        read_manifest(other)
    (other / MANIFEST).write_text(json.dumps(manifest))
    (other / "fold2.safetensors").unlink()
    with pytest.raises(InputError, match="lists fold2.safetensors, which is not there"):
        read_manifest(other)
    (other / MANIFEST).write_text("{not json")
    with pytest.raises(InputError, match="cannot read it"):
        read_manifest(other)


def test_writing_over_a_non_empty_folder_is_refused_and_leaves_nothing(exported, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    manifest = read_manifest(exported.folder)
    with pytest.raises(InputError, match="exists and is not an empty directory"):
        write_model_folder(out, manifest, exported.config, {})
    assert [p.name for p in tmp_path.iterdir()] == ["taken"] and [p.name for p in out.iterdir()] == ["keep.txt"]


def test_the_card_shows_floats_to_six_significant_digits(exported):
    """Optuna draws a knob as 2.7364823749237015 and a float32 mean reads 0.48500001430511475:
    the card printed both to 17 digits."""
    from fbp.export import model_card

    manifest = read_manifest(exported.folder)
    manifest["origin"] = {**manifest["origin"], "params": {"loss.alpha": 2.7364823749237015, "train.lr": 0.0012345678901234, "loss.name": "combo"}, "trials_complete": 12}
    manifest["preprocessing"] = {**manifest["preprocessing"], "mean": [0.48500001430511475, 0.456, 0.406], "std": [0.2290000021457672, 0.224, 0.225]}
    manifest["prediction"] = {**manifest["prediction"], "fused_weight": 0.30000000000000004}
    card = model_card(manifest)
    assert "loss.alpha=2.73648, train.lr=0.00123457, loss.name=combo." in card
    assert "normalized with mean [0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225]." in card
    assert "(0.3 x regression + 0.7 x expectation)" in card
    assert "0.30000000000000004" not in card and "2.736482" not in card and "1430511475" not in card


def test_the_card_carries_front_matter_that_huggingface_hub_reads(exported, monkeypatch):
    """The Hub and `huggingface_hub.ModelCard` read a card's YAML front matter: library, tags,
    dataset, and the test-fold figures in the model index."""
    from huggingface_hub import ModelCard

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a local file: nothing is asked of the Hub
    card = ModelCard.load(exported.folder / CARD)
    data = card.data
    assert data.library_name == "pytorch"
    assert {"facial-beauty-prediction", "fbp-search", "timm", "test_resnet"} <= set(data.tags)
    assert data.datasets == ["synthetic"]
    assert data.model_name == "tiny-t0"
    by_type = {r.metric_type: r for r in data.eval_results}
    assert sorted(by_type) == ["mae", "pearsonr", "rmse"]
    for metric, kind in (("mae", "mae"), ("rmse", "rmse"), ("pc", "pearsonr")):
        assert by_type[kind].metric_value == pytest.approx(np.mean([getattr(r, metric) for r in exported.results]))
        assert (by_type[kind].dataset_name, by_type[kind].dataset_config, by_type[kind].dataset_split) == ("synthetic", "5fold", "test")
    assert card.text.lstrip().startswith("# tiny: trial t0")  # the prose follows the front matter


def test_fold_model_info_reads_the_metadata_through_safetensors_and_refuses_other_files(tmp_path):
    from safetensors.numpy import save_file

    from fbp.export import FOLD_KIND, METADATA_KEY

    ours = tmp_path / "fold1.safetensors"
    save_file({"w": np.zeros(3, dtype=np.float32)}, str(ours), metadata={METADATA_KEY: json.dumps({"kind": FOLD_KIND, "fold": 1})})
    assert fold_model_info(ours) == {"kind": FOLD_KIND, "fold": 1}
    bare = tmp_path / "bare.safetensors"  # a safetensors file without fbp's metadata
    save_file({"w": np.zeros(3, dtype=np.float32)}, str(bare))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    for path in (bare, junk, tmp_path / "missing.safetensors"):
        with pytest.raises(InputError, match=f"{path.name}: not a fold model of fbp-search"):
            fold_model_info(path)

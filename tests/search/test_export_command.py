"""`fbp-search export`: the kept models of `train` and of a study as a model folder."""

import json

import numpy as np
import pandas as pd
import pytest

from fbp.data import load_dataset
from fbp.export import CARD, CONFIG, MANIFEST
from fbp.predict import load_model
from search.cli import main
from search.results import ResultsDir
from tests.search.conftest import TRAINED


def _trial(results) -> str:
    (trial,) = ResultsDir(results).kept_trials()
    return trial


def test_train_keeps_each_folds_model_and_the_config(trained_results):
    folder = ResultsDir(trained_results).model_dir(_trial(trained_results))
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG, "fold1.safetensors", "fold2.safetensors"]


def test_export_writes_a_folder_whose_fold_models_reproduce_the_predictions(trained_results, tmp_path, capsys):
    out = tmp_path / "model"
    assert main(["export", str(trained_results), "--out", str(out)]) == 0
    trial = _trial(trained_results)
    assert f"exported trial {trial} of tiny (the best of 1 complete" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted([CARD, CONFIG, MANIFEST, "fold1.safetensors", "fold2.safetensors"])
    manifest = json.loads((out / MANIFEST).read_text())
    study = ResultsDir(trained_results).read_study()
    assert (manifest["origin"]["trial_id"], manifest["origin"]["spec_hash"]) == (trial, study["spec_hash"])
    folds = pd.read_parquet(trained_results / "folds.parquet")
    assert manifest["metrics"]["pc"]["mean"] == pytest.approx(folds["pc"].mean())
    assert manifest["metrics"]["pc"]["std"] == pytest.approx(folds["pc"].std(ddof=1))

    predictions = pd.read_parquet(trained_results / "predictions.parquet")
    dataset = load_dataset("synthetic", None, **TRAINED["data"]["options"])
    for fold, rows in predictions.groupby("fold"):
        scores = load_model(out, device="cpu", members=[f"fold{fold}"]).predict([dataset.image_path(i) for i in rows["image"]])
        assert np.abs(scores - rows["y_pred"].to_numpy()).max() < 1e-4


def test_refit_trains_one_model_on_every_image(trained_results, tmp_path, capsys):
    out = tmp_path / "refit"
    assert main(["export", str(trained_results), "--refit", "--out", str(out)]) == 0
    assert "its configuration refit on all 60 labelled images" in capsys.readouterr().out
    manifest = json.loads((out / MANIFEST).read_text())
    assert [m["file"] for m in manifest["members"]] == ["all.safetensors"]
    assert manifest["refit"]["n_train"] == 60 and manifest["refit"]["epochs"] == TRAINED["train"]["epochs"]
    folds = pd.read_parquet(trained_results / "folds.parquet")
    assert manifest["metrics"]["pc"]["mean"] == pytest.approx(folds["pc"].mean())  # the estimate: the k-fold figures
    assert "nothing was held out" in (out / CARD).read_text()
    dataset = load_dataset("synthetic", None, **TRAINED["data"]["options"])
    frame = load_model(out, device="cpu").predict_frame([dataset.image_path(dataset.images[0])])
    assert list(frame.columns) == ["image", "score", "spread", "score_exp", "warning", "all"]


@pytest.mark.parametrize("argv, message", [
    (["--trial", "t999"], "--trial t999: no such trial in"),
    (["--out", "{taken}"], "exists and is not an empty directory"),
])
def test_bad_export_arguments_exit_2_with_one_line_and_write_nothing(trained_results, tmp_path, capsys, argv, message):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("x")
    argv = [a.format(taken=taken) for a in argv]
    out = [] if "--out" in argv else ["--out", str(tmp_path / "model")]
    assert main(["export", str(trained_results), *argv, *out]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "model").exists() and [p.name for p in taken.iterdir()] == ["x"]


def test_export_of_a_folder_that_holds_no_results_exits_2(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "model")]) == 2
    assert "is not a results directory: no study.yaml" in capsys.readouterr().err

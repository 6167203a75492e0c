"""A study through Ray Tune keeps its best trials' models; the export of the best reproduces
the study's own out-of-fold predictions; resume keeps the models' invariant."""

import json

import numpy as np
import pytest
import yaml

from fbp.data import load_dataset
from fbp.data.synthetic import SMALL
from fbp.predict import load_model
from search.cli import main
from search.results import ResultsDir, params_of, read_table
from search.runner import resume_study, run_study
from search.spec import validate_spec

pytestmark = pytest.mark.slow  # starts Ray and trains: not in the fast tier

STUDY = {
    "name": "kept",
    "data": {"dataset": "synthetic", "options": SMALL, "image_size": 32, "resize": 37, "folds": [1, 2]},
    "model": {"backbone": "test_resnet", "pretrained": False},
    "train": {"epochs": 2, "batch_size": 16, "device": "cpu"},
    # the quickstart's view (centre crop) and both heads: the prediction path is all there
    "eval": {"batch_size": 64, "view": "center_crop", "predict": "fused"},
    "search": {"sampler": "random", "num_trials": 4, "seed": 0, "space": {"loss.alpha": {"float": [0.0, 4.0]}},
               "baseline": [{"loss.alpha": 2.0}], "keep_models": 1},
    "scheduler": {"name": "none"},
    "resources": {"cpu": 1, "gpu": 0, "max_concurrent": 2},
}


@pytest.fixture(scope="module")
def study(local_ray, tmp_path_factory):
    root = tmp_path_factory.mktemp("kept")
    bucket = root / "bucket"  # Tune's storage as an object-store URI: the models travel through it, not a shared RESULTS
    outcome = run_study(validate_spec(STUDY, "kept.yaml"), "kept.yaml", root / "results", storage=bucket.as_uri())
    assert outcome["errors"] == 0 and outcome["study"].complete == 4
    return root / "results", bucket


def _expected_kept(results) -> tuple[str, str]:
    """(best trial by mean val_pc, baseline trial), recomputed from the folds table."""
    folds = read_table(results, "folds")
    means = {t: np.mean(rows["val_pc"].to_numpy()) for t, rows in folds.groupby("trial_id")}
    best = max(means, key=lambda t: -np.inf if np.isnan(means[t]) else means[t])
    baseline = next(t for t, rows in folds.groupby("trial_id") if params_of(rows.iloc[0]) == {"loss.alpha": 2.0})
    return best, baseline


def test_the_best_trial_and_the_baseline_are_kept_and_the_storage_keeps_no_model(study):
    results, bucket = study
    best, baseline = _expected_kept(results)
    kept = ResultsDir(results).kept_trials()
    assert set(kept) == {best, baseline}  # keep_models 1: the other trials' models were deleted
    for trial in kept:
        folder = ResultsDir(results).model_dir(trial)
        assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "fold1.safetensors", "fold2.safetensors"]
    assert list(bucket.rglob("folds_done.json")) and not list(bucket.rglob("*.safetensors"))  # moved out of the checkpoints


def test_the_exported_best_reproduces_each_folds_predictions(study, tmp_path):
    results, _ = study
    out = tmp_path / "model"
    assert main(["export", str(results), "--out", str(out)]) == 0
    best, _ = _expected_kept(results)
    assert json.loads((out / "model.json").read_text())["origin"]["trial_id"] == best
    predictions = read_table(results, "predictions")
    dataset = load_dataset("synthetic", None, **SMALL)
    worst = 0.0
    for fold, rows in predictions[predictions["trial_id"] == best].groupby("fold"):
        model = load_model(out, device="cpu", members=[f"fold{fold}"])
        scores = model.predict([dataset.image_path(i) for i in rows["image"]])
        worst = max(worst, float(np.abs(scores - rows["y_pred"].to_numpy()).max()))
    print(f"max |predict - y_pred| over the best trial's test folds: {worst:.3g}")
    assert worst < 1e-4


def test_resume_keeps_the_invariant(study):
    """A kept fold whose rows were lost is trained again with its model; a stray folder goes."""
    results, _ = study
    store = ResultsDir(results)
    best, baseline = _expected_kept(results)
    (results / "epochs.parquet" / f"{best}-fold2.parquet").unlink()  # the fold's rows are incomplete: resume trains it again
    (store.model_dir(best) / "fold2.safetensors").unlink()
    stray = store.model_dir("stray")
    stray.mkdir()
    (stray / "fold1.safetensors").write_bytes(b"x")
    outcome = resume_study(results)
    assert outcome["retrained"] == 1
    assert set(store.kept_trials()) == {best, baseline}
    assert (store.model_dir(best) / "fold2.safetensors").is_file()
    rows = read_table(results, "predictions")
    rows = rows[(rows["trial_id"] == best) & (rows["fold"] == 2)]
    dataset = load_dataset("synthetic", None, **SMALL)
    config = yaml.safe_load((store.model_dir(best) / "config.yaml").read_text())
    assert config["data"]["folds"] == [1, 2]  # the trial's config, not the retrained task's
    out = results.parent / "after-resume"
    assert main(["export", str(results), "--trial", best, "--out", str(out)]) == 0
    scores = load_model(out, device="cpu", members=["fold2"]).predict([dataset.image_path(i) for i in rows["image"]])
    assert np.abs(scores - rows["y_pred"].to_numpy()).max() < 1e-4

import numpy as np
import pandas as pd
import pytest
import yaml

from search.cli import main

CONFIG = {
    "data": {"dataset": "synthetic", "options": {"n": 60, "size": 48, "seed": 0}, "image_size": 32, "folds": [1, 2]},
    "model": {"backbone": "test_resnet"},
    "train": {"epochs": 2, "batch_size": 16},
}


def test_train_writes_the_three_tables_and_they_agree(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "results"
    assert main(["train", str(path), "--out", str(out), "--set", "loss.alpha=1.5"]) == 0
    assert "mean ± std" in capsys.readouterr().out

    folds = pd.read_parquet(out / "folds.parquet")
    epochs = pd.read_parquet(out / "epochs.parquet")
    predictions = pd.read_parquet(out / "predictions.parquet")
    assert sorted(folds["fold"]) == [1, 2] and (folds["status"] == "COMPLETE").all()
    assert len(epochs) == 2 * 2 and len(predictions) == 2 * 12
    assert not predictions.duplicated(["trial_id", "fold", "image"]).any()
    for _, row in folds.iterrows():
        p = predictions[predictions["fold"] == row["fold"]]
        assert row["mae"] == pytest.approx(np.mean(np.abs(p["y_pred"] - p["y_true"])))
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean((p["y_pred"] - p["y_true"]) ** 2)))
        assert row["pc"] == pytest.approx(np.corrcoef(p["y_true"], p["y_pred"])[0, 1])
    study = yaml.safe_load((out / "study.yaml").read_text())
    assert study["config"]["loss"]["alpha"] == 1.5 and len(study["spec_hash"]) == 16

    # the same config again replaces its parts, it does not add rows
    assert main(["train", str(path), "--out", str(out), "--set", "loss.alpha=1.5"]) == 0
    assert len(pd.read_parquet(out / "folds.parquet")) == 2
    # another config refuses the directory
    assert main(["train", str(path), "--out", str(out)]) == 2
    assert "holds results of another config" in capsys.readouterr().err


def test_train_bad_config_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "loss": {"alpha": -1}}))
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "loss.alpha: Input should be greater than or equal to 0, got -1" in err
    assert not (tmp_path / "r").exists()

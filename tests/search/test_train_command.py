import numpy as np
import pandas as pd
import pytest
import yaml

from fbp.data.synthetic import SMALL
from search.cli import main

CONFIG = {
    "data": {"dataset": "synthetic", "options": SMALL, "image_size": 32, "folds": [1, 2]},
    "model": {"backbone": "test_resnet", "pretrained": False},
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
    # recorded as a study of this one configuration, in the layout every results directory has
    assert study["loss"]["alpha"] == 1.5 and len(study["spec_hash"]) == 16 and study["search"]["space"] == {}

    # the same config again replaces its parts, it does not add rows
    assert main(["train", str(path), "--out", str(out), "--set", "loss.alpha=1.5"]) == 0
    assert len(pd.read_parquet(out / "folds.parquet")) == 2
    # another config refuses the directory
    assert main(["train", str(path), "--out", str(out)]) == 2
    assert "holds another study's results" in capsys.readouterr().err


def test_train_bad_config_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "loss": {"alpha": -1}}))
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "loss.alpha: Input should be greater than or equal to 0, got -1" in err
    assert not (tmp_path / "r").exists()


def test_train_without_a_terminal_prints_whole_lines_one_per_epoch(tmp_path, capsys):
    # capsys's stdout is no terminal, as a log file, CI or nohup is: plain lines, never wrapped
    path = tmp_path / "a-config-file-with-a-name-long-enough-to-push-the-first-line-past-80-columns.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    assert main(["train", str(path), "--out", str(tmp_path / "results")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{path}: test_resnet on synthetic 5fold (folds 1, 2), 2 epochs") and len(lines[0]) > 80
    assert lines[1].startswith("loading 60 synthetic images") and lines[2].startswith("60 images ready")
    epochs = [line for line in lines if "  epoch " in line]
    assert [line.split("  loss")[0] for line in epochs] == ["fold 1/2  epoch 1/2", "fold 1/2  epoch 2/2", "fold 2/2  epoch 1/2", "fold 2/2  epoch 2/2"]
    for line in epochs:  # the whole line: loss, test metrics, throughput and time left
        assert len(line) > 80 and " test MAE " in line and " images/s " in line and line.endswith(" left")
    assert lines.index(epochs[1]) < lines.index(next(line for line in lines if line.startswith("fold 1: MAE")))
    mean = next(line for line in lines if "mean ± std" in line)
    assert mean.count("±") == 4  # the table's summary row is one line, not wrapped at 80 columns


def test_train_takes_a_study_file_and_trains_its_base_config(tmp_path, capsys, monkeypatch):
    study = {
        "name": "weights_study",
        "description": "a search over the loss weights",
        **CONFIG,
        "loss": {"alpha": 1.25},
        "train": {"epochs": 1, "batch_size": 16},
        "search": {"sampler": "tpe", "num_trials": 5, "space": {"loss.alpha": {"float": [0.0, 4.0]}}},
        "objective": {"metric": "pc"},
        "scheduler": {"name": "asha", "grace_folds": 1},
        "resources": {"gpu": 0.5, "cpu": 2},
    }
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "study.yaml"]) == 0
    out = tmp_path / "results" / "weights_study"  # the study's name, not the file's
    saved = yaml.safe_load((out / "study.yaml").read_text())
    # the base configuration, recorded as a study of one configuration: the search is not kept
    assert saved["name"] == "weights_study" and saved["loss"]["alpha"] == 1.25 and saved["search"]["space"] == {} and saved["search"]["num_trials"] == 1
    folds = pd.read_parquet(out / "folds.parquet")
    assert sorted(folds["fold"]) == [1, 2] and folds["trial_id"].nunique() == 1
    assert len(pd.read_parquet(out / "epochs.parquet")) == 2  # one epoch per fold


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("search", {"sampler": "bayes"}, "search.sampler: Input should be 'tpe'"),
        ("train", {"epochs": "many"}, "train.epochs: Input should be a valid integer"),
        ("name", "has space", "name: String should match pattern"),
    ],
)
def test_train_names_the_file_and_key_of_a_bad_study(tmp_path, capsys, key, value, message):
    path = tmp_path / "bad-study.yaml"
    path.write_text(yaml.safe_dump({"name": "s", **CONFIG, key: value}))
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert f"{path}: " in err and message in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_train_out_that_is_a_file_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    taken = tmp_path / "taken.txt"
    taken.write_text("mine")
    before = sorted(tmp_path.iterdir())
    for out in (taken, taken / "below"):
        assert main(["train", str(path), "--out", str(out)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        (line,) = captured.err.strip().splitlines()
        assert f"--out {out}: " in line and "not a directory" in line
    assert sorted(tmp_path.iterdir()) == before and taken.read_text() == "mine"


def test_train_refuses_a_directory_of_other_files(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    assert main(["train", str(path), "--out", str(tmp_path / "notes")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"--out {tmp_path / 'notes'}: exists and is not a results directory" in line
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]

"""Every shipped study smoke-runs end to end with `run --smoke` (tiny data and model, 2 folds,
2 trials; one for a single configuration), and a single configuration also with `train` and
the same small overrides."""

from pathlib import Path

import pandas as pd
import pytest
import yaml

from fbp.data.synthetic import SMALL
from search.cli import main
from search.results import read_table
from search.spec import load_base

STUDIES = sorted((Path(__file__).parents[2] / "studies").glob("*.yaml"))
SEARCHED = [p for p in STUDIES if "search" in yaml.safe_load(p.read_text())]
SINGLE = [p for p in STUDIES if p not in SEARCHED]
# what `run --smoke` swaps in, as a user would type it
SMALL = [
    "data.dataset=synthetic", "data.root=null", f"data.options={SMALL}", "data.image_size=32", "data.folds=[1, 2]",
    "model.backbone=test_resnet", "model.pretrained=false",
    "train.epochs=1", "train.batch_size=16", "train.device=cpu", "train.compile=off", "eval.batch_size=64",
]


def test_there_are_studies_of_both_kinds():
    assert SEARCHED and [p.name for p in SINGLE] == ["paper.yaml"]


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES, ids=[p.stem for p in STUDIES])
def test_shipped_study_smoke_runs(local_ray, tmp_path, study, capsys):
    results = tmp_path / study.stem
    assert main(["run", str(study), "--smoke", "--results", str(results)]) == 0
    trials = 2 if study in SEARCHED else 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"finished, {trials} trial{'s' if trials > 1 else ''}: ") and " 0 failed; best " in last
    folds = read_table(results, "folds")
    assert folds["trial_id"].nunique() == trials
    assert (folds.loc[folds["status"] == "COMPLETE", "fold"].isin([1, 2])).all()
    assert not folds.duplicated(["trial_id", "fold"]).any()


def test_loss_weights_without_its_dataset_says_where_to_put_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here
    study = Path(__file__).parents[2] / "studies" / "loss_weights.yaml"
    assert main(["run", str(study)]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert f"data.root {tmp_path}/data/SCUT-FBP5500_v2 does not exist" in err  # the path it looked at
    assert "fbp-search run studies/quickstart.yaml" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("study", SINGLE, ids=[p.stem for p in SINGLE])
def test_single_configuration_study_trains_with_small_overrides(tmp_path, study, capsys):
    out = tmp_path / study.stem
    assert main(["train", str(study), "--out", str(out), *(a for item in SMALL for a in ("--set", item))]) == 0
    assert "mean ± std" in capsys.readouterr().out
    folds = pd.read_parquet(out / "folds.parquet")
    assert sorted(folds["fold"]) == [1, 2] and (folds["status"] == "COMPLETE").all()


def test_paper_study_is_the_papers_setting():
    # section 3.2 of the paper: SGD lr 0.01 momentum 0.9 weight decay 1e-3, LR / 10 every 50
    # epochs, 200 epochs, batch 64, 224 px, ImageNet weights; ComboLoss 2/1/1; 5-fold SCUT-FBP5500
    config, name = load_base(Path(__file__).parents[2] / "studies" / "paper.yaml")
    d, m, loss, t = config.data, config.model, config.loss, config.train
    assert name == "paper"
    assert (d.dataset, d.root, d.protocol, d.folds, d.image_size) == ("scut-fbp5500", "data/SCUT-FBP5500_v2", "5fold", None, 224)
    assert (m.backbone, m.pretrained) == ("seresnext50_32x4d", True)
    assert (loss.name, loss.alpha, loss.beta, loss.gamma, loss.discretization.rule) == ("combo", 2.0, 1.0, 1.0, "paper")
    assert (t.optimizer, t.lr, t.momentum, t.weight_decay, t.epochs, t.batch_size) == ("sgd", 0.01, 0.9, 1e-3, 200, 64)
    assert (t.schedule.name, t.schedule.step_size, t.schedule.step_gamma) == ("step", 50, 0.1)
    assert config.eval.select == "last"

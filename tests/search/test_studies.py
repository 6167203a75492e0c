"""Every shipped study (studies/ and the paper's, studies/paper/) smoke-runs end to end with
`run --smoke` (tiny data and model, 2 folds, 2 trials; one for a single configuration), and a
single configuration also with `train` and the same small overrides. The paper's studies are
the ones `fbp-search paper` looks for, and each holds a configuration for every row of its
table that names one."""

import itertools
from pathlib import Path

import pandas as pd
import pytest
import yaml

from fbp.data.synthetic import SMALL
from search.cli import main
from search.results import read_table
from search.spec import load_base

SHIPPED = Path(__file__).parents[2] / "studies"
STUDIES = sorted(SHIPPED.glob("**/*.yaml"))
IDS = [str(p.relative_to(SHIPPED).with_suffix("")) for p in STUDIES]
SEARCHED = [p for p in STUDIES if "search" in yaml.safe_load(p.read_text())]
SINGLE = [p for p in STUDIES if p not in SEARCHED]
# what `run --smoke` swaps in, as a user would type it
SMALL = [
    "data.dataset=synthetic", "data.root=null", "data.protocol=5fold", f"data.options={SMALL}", "data.image_size=32", "data.folds=[1, 2]",
    "model.backbone=test_resnet", "model.pretrained=false",
    "train.epochs=1", "train.batch_size=16", "train.device=cpu", "train.compile=off", "eval.batch_size=64",
]


def test_there_are_studies_of_both_kinds():
    singles = ["paper.yaml"]  # Tables 1-3 are grids of their two arms (as written, as published)
    assert SEARCHED and sorted(str(p.relative_to(SHIPPED)) for p in SINGLE) == singles


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES, ids=IDS)
def test_shipped_study_smoke_runs(local_ray, tmp_path, study, capsys):
    results = tmp_path / study.stem
    assert main(["run", str(study), "--smoke", "--results", str(results)]) == 0
    trials = 2 if study in SEARCHED else 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"finished, {trials} trial{'s' if trials > 1 else ''}: ") and " 0 failed; best " in last
    folds = read_table(results, "folds")
    assert folds["trial_id"].nunique() == trials
    assert (folds.loc[folds["status"] == "COMPLETE", "fold"].isin([1, 2])).all()
    assert not folds.duplicated(["trial_id", "fold", "seed"]).any()  # a row per (trial, fold, seed): train.repeats


def test_loss_weights_without_its_dataset_says_where_to_put_it(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here
    study = Path(__file__).parents[2] / "studies" / "loss_weights.yaml"
    assert main(["run", str(study)]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert f"data.root {tmp_path}/data/SCUT-FBP5500_v2 does not exist" in err  # the path it looked at
    assert "fbp-search run studies/quickstart.yaml" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("study", SINGLE, ids=[str(p.relative_to(SHIPPED).with_suffix("")) for p in SINGLE])
def test_single_configuration_study_trains_with_small_overrides(tmp_path, study, capsys):
    out = tmp_path / study.stem
    assert main(["train", str(study), "--out", str(out), *(a for item in SMALL for a in ("--set", item))]) == 0
    assert "mean ± std" in capsys.readouterr().out
    folds = pd.read_parquet(out / "folds.parquet")
    repeats = (yaml.safe_load(study.read_text()).get("train") or {}).get("repeats", 1)  # every fold once per seed
    assert sorted(folds["fold"]) == [1] * repeats + [2] * repeats and (folds["status"] == "COMPLETE").all()


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


# --- the paper's studies ----------------------------------------------------------------------


def _configurations(spec) -> list[dict]:
    """Every configuration a study trains, as its values at every dotted path it sets: its
    baseline points and, for a grid, every cell of the product of its choices, over the study's
    fixed config (that config alone for a study without a space)."""
    base = spec.base.model_dump(mode="json")

    def at(path: str):
        node = base
        for key in path.split("."):
            node = node[key]
        return node

    space = spec.search.space
    points = [dict(p) for p in spec.search.baseline]
    if spec.search.sampler == "grid":
        points += [dict(zip(space, values)) for values in itertools.product(*(d.grid() for d in space.values()))]
    return [lambda path, p=p: p[path] if path in p else at(path) for p in points or [{}]]


def test_the_paper_studies_are_the_ones_its_document_reads():
    from search.paper import BEYOND
    from search.paper import STUDIES as PAPER_STUDIES

    names = {p.stem: yaml.safe_load(p.read_text())["name"] for p in (SHIPPED / "paper").glob("*.yaml")}
    assert all(stem == name for stem, name in names.items())  # `fbp-search paper` names each study's command by its file
    assert sorted(names) == sorted(set(PAPER_STUDIES) - set(BEYOND))
    # beyond the paper: the document names each by its file
    assert {name: yaml.safe_load((SHIPPED.parent / path).read_text())["name"] for name, path in BEYOND.items()} == {name: name for name in BEYOND}


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5])
def test_a_table_study_trains_every_row_of_its_table(number):
    from fbp.paper import TABLES
    from search.paper import TABLE_STUDIES
    from search.spec import load_spec

    spec = load_spec(SHIPPED / "paper" / f"{TABLE_STUDIES[number]}.yaml")
    table = TABLES[number]
    assert (spec.data.dataset, spec.data.protocol) == (table.dataset, table.protocol)
    configurations = _configurations(spec)
    for row in table.rows:
        if row.config:
            for arm in (False, True):  # as written, as published: one cell each
                wanted = {**row.config, "published_code": arm}
                matches = [value for value in configurations if all(value(path) == v for path, v in wanted.items())]
                assert len(matches) == 1, (row.method, arm, len(matches))

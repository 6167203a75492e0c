"""`fbp-search run studies/paper/ --rehearsal`: every paper study as written (space, grid,
baseline points, protocol, objective) on drawn faces in its dataset's layout with a small
model; the stand-in backbones land in the rows of what they stand for; the whole set runs and
its paper document is written (slow: the full rehearsal, as CI runs it)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from fbp.config import read_yaml
from search import rehearsal
from search.cli import main
from search.paper import ABLATIONS, STUDIES, TABLE_STUDIES, build_paper
from search.results import read_table
from search.spec import load_spec, validate_spec
from tests.search.report.make_results import T, make_results

PAPER_STUDIES = Path(__file__).parents[2] / "studies" / "paper"
BEYOND_STUDIES = Path(__file__).parents[2] / "studies" / "beyond"
FILES = sorted(PAPER_STUDIES.glob("*.yaml")) + sorted(BEYOND_STUDIES.glob("*.yaml"))

# by hand from each study file: (its dataset's faces, trials, seeds per fold) in the rehearsal
EXPECTED = {
    "ablation_discretization": ("scut-fbp5500", 17, 1),  # 17 baseline points: all run
    "ablation_schedule": ("scut-fbp5500", 12, 1),  # a 3 x 4 grid
    "ablation_weighted_ce": ("scut-fbp5500", 2, 2),  # repeats 3 -> 2
    "joint_search": ("scut-fbp5500", 4, 1),  # TPE: the baseline point and 3 proposed, of 60
    "readme_alpha_beta": ("scut-fbp5500", 18, 1),
    "table1_scut_fbp": ("scut-fbp", 2, 2),  # the two arms, as written and as published
    "table2_hotornot": ("hotornot", 2, 2),
    "table3_scut_fbp5500": ("scut-fbp5500", 2, 2),
    "table4_losses": ("scut-fbp5500", 10, 2),  # 5 losses x 2 arms
    "table5_backbones": ("scut-fbp5500", 8, 2),  # 2 backbones x 2 losses x 2 arms
    "beyond_backbones": ("scut-fbp5500", 16, 2),  # 2 arms x 4 backbones x 2 losses, 5 folds
    "beyond_backbones_60_40": ("scut-fbp5500", 16, 2),  # the same on the 60/40 split
}


def _csv(path: Path) -> pd.DataFrame:
    """One of the paper's CSVs. Trial ids stay text: an id such as 10956e83 reads as a number."""
    return pd.read_csv(path, dtype={"trial_id": str})


def rehearsed(path: Path):
    return validate_spec(rehearsal.rehearse(read_yaml(path), str(path)), str(path))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_a_rehearsal_keeps_the_studys_structure(path):
    real, small = load_spec(path), rehearsed(path)
    faces, trials, seeds = EXPECTED[real.name]
    stand_in = rehearsal.STAND_INS["model.backbone"]
    assert small.name == real.name and small.description.startswith("REHEARSAL")
    assert (small.data.dataset, small.data.protocol, small.data.folds) == (real.data.dataset, real.data.protocol, real.data.folds)
    assert Path(small.data.root) == rehearsal.faces_root(faces)
    assert (small.search.sampler, small.search.num_trials, small.train.repeats) == (real.search.sampler, trials, seeds)
    assert (small.objectives, small.scheduler, small.eval.select) == (real.objectives, real.scheduler, real.eval.select)
    assert (small.loss, small.train.lr, small.train.schedule.name) == (real.loss, real.train.lr, real.train.schedule.name)
    # the paper's step: lr / 10 after 50 of 200 epochs; in 2 epochs, after the first
    assert (small.train.epochs, small.train.schedule.step_size) == (2, 1)
    assert small.model.backbone == stand_in[real.model.backbone] and small.model.pretrained is False
    assert (small.train.device, small.train.compile, small.resources.gpu, small.resources.max_concurrent) == ("cpu", "off", 0, 2)
    assert list(small.search.space) == list(real.search.space)
    for knob, dim in real.search.space.items():
        choices = [stand_in[v] for v in dim.choice] if knob == "model.backbone" else dim.choice
        assert small.search.space[knob].choice == choices and small.search.space[knob].int_ == dim.int_
    assert small.search.baseline == [{k: stand_in[v] if k == "model.backbone" else v for k, v in point.items()} for point in real.search.baseline]


def test_a_synthetic_study_gets_the_rehearsals_faces_and_keeps_its_small_model():
    quickstart = Path(__file__).parents[2] / "studies" / "quickstart.yaml"
    small = rehearsed(quickstart)
    assert (small.data.dataset, small.data.root, small.data.options) == ("synthetic", None, rehearsal.FACES)
    assert small.model.backbone == "test_resnet"  # a stand-in already: kept
    assert small.search.num_trials == 4  # 8 by TPE after 1 baseline point: 1 + 3
    raw = read_yaml(quickstart)
    del raw["search"]["num_trials"], raw["search"]["sampler"]  # TPE's 8 trials, the defaults
    assert rehearsal.rehearse(raw, "q.yaml")["search"]["num_trials"] == 4


def _discretizations(spec) -> set[tuple]:
    """Every (rule, num_classes) a study can train: its own, its baseline points', its grid's,
    and every one its space can propose."""
    d = spec.loss.discretization
    space = spec.search.space
    rules = space["loss.discretization.rule"].choice if "loss.discretization.rule" in space else [d.rule]
    counts = space["loss.discretization.num_classes"].grid() if "loss.discretization.num_classes" in space else [d.num_classes]
    found = {(d.rule, d.num_classes)} | {(p.get("loss.discretization.rule", d.rule), p.get("loss.discretization.num_classes", d.num_classes)) for p in spec.search.baseline}
    return found | {(rule, k if rule in ("uniform", "quantile") else None) for rule, k in itertools.product(rules, counts)}


def test_the_faces_fill_every_class_of_every_training_split():
    """FACES' seed: no fold of any paper study refuses its discretization on the drawn faces."""
    from fbp.data import load_dataset
    from fbp.kfold import fold_discretization

    checked = 0
    for path in FILES:
        spec = rehearsed(path)
        dataset = load_dataset(spec.data.dataset, spec.data.root)
        space = spec.search.space
        arms = [{"published_code": arm} for arm in space["published_code"].choice] if "published_code" in space else [{}]
        protocols = space["data.protocol"].choice if "data.protocol" in space else [spec.data.protocol]
        for rule, k in sorted(_discretizations(spec), key=str):
            params = {"loss.discretization.rule": rule, **({"loss.discretization.num_classes": k} if k else {})} if "loss.discretization.rule" in space else {}
            for arm in arms:  # as published: the published code's round-half-even classes
                for protocol in protocols:
                    config = spec.trial_config({**params, **arm, **({"data.protocol": protocol} if "data.protocol" in space else {})})
                    for fold in dataset.folds(protocol):
                        fold_discretization(config, dataset, fold)  # raises InputError on an empty class
                        checked += 1
    # Tables 1-3: one discretization in two arms on 5 folds each; Tables 4 and 5 in two arms and three
    # other studies of one on the 60/40 split; the discretization ablation's 17 on the 60/40 split; the
    # joint search's 17 (paper, uniform and quantile 3-10) on 5 folds; beyond the paper, two arms on the
    # 60/40 split and 5 folds
    assert checked == 3 * 2 * 5 + (2 * 2 + 3) * 1 + 17 * 1 + 17 * 5 + 2 * (1 + 5)


def test_a_backbone_without_a_stand_in_exits_2_naming_file_key_and_value(tmp_path, capsys):
    study = tmp_path / "vit.yaml"
    raw = yaml.safe_load((PAPER_STUDIES / "table5_backbones.yaml").read_text())
    raw["search"]["space"]["model.backbone"]["choice"] = ["resnet18", "efficientnet_b3"]
    study.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(study), "--rehearsal", "--offline"]) == 2
    err = capsys.readouterr().err.replace("\n", "")  # one line, wrapped at the terminal's width
    assert err.startswith("error: ") and "Traceback" not in err
    assert f"{study}: search.space.model.backbone: the rehearsal has no small stand-in for model.backbone 'efficientnet_b3'" in err


def test_rehearsal_and_smoke_are_one_or_the_other(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run", str(FILES[0]), "--smoke", "--rehearsal"])
    assert stop.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_real_and_rehearsal_results_never_share_a_root(tmp_path, capsys):
    real = tmp_path / "results"
    (real / "quickstart").mkdir(parents=True)
    (real / "quickstart" / "study.yaml").write_text("name: quickstart\n")
    assert main(["run", str(PAPER_STUDIES / "table3_scut_fbp5500.yaml"), "--rehearsal", "--results", str(real / "table3_scut_fbp5500")]) == 2
    assert f"--results: {real} holds results that are not a rehearsal's" in capsys.readouterr().err.replace("\n", "")
    staged = tmp_path / "paper-rehearsal"
    rehearsal.write_record(staged)
    quickstart = Path(__file__).parents[2] / "studies" / "quickstart.yaml"
    assert main(["run", str(quickstart), "--results", str(staged / "quickstart")]) == 2
    assert f"--results: {staged} holds a rehearsal's results (rehearsal.yaml)" in capsys.readouterr().err.replace("\n", "")
    assert not (staged / "quickstart").exists() and not (real / "table3_scut_fbp5500").exists()


# --- the paper document of a rehearsal ---------------------------------------------------------


def _table5(root: Path) -> None:
    """Table 5's grid as a rehearsal runs it: the stand-ins in the backbone's param column."""
    cells = [("test_byobnet", "mse"), ("test_byobnet", "combo"), ("test_resnet", "mse"), ("test_resnet", "combo")]
    make_results(root / "table5_backbones", [T(f"{b}_{loss}", {"model.backbone": b, "loss.name": loss}, noise=0.3) for b, loss in cells],
                 space={"model.backbone": {"choice": ["test_byobnet", "test_resnet"]}, "loss.name": {"choice": ["mse", "combo"]}},
                 k=1, test_share=0.4, protocol="60-40", n_images=40, name="table5_backbones", on="test", journal=False)


def test_the_paper_puts_each_stand_in_in_the_rows_of_what_it_stands_for(tmp_path):
    root = tmp_path / "results"
    _table5(root)
    without = build_paper(root).tables[4]
    # real results: no trial trained resnet18 or seresnext50_32x4d
    assert without.matched == {} and (without.ours["status"] == "not in the study").all()
    rehearsal.write_record(root)
    paper = build_paper(root)
    table = paper.tables[4]
    rows = {r.method: i for i, r in enumerate(table.table.rows)}
    written = "as written"  # a study that does not search published_code runs the arm its own value says
    assert table.matched == {(rows["ResNet18"], written): "test_byobnet_mse", (rows["ResNet18 + ComboLoss"], written): "test_byobnet_combo",
                             (rows["SEResNeXt50"], written): "test_resnet_mse", (rows["SEResNeXt50 + ComboLoss"], written): "test_resnet_combo"}
    assert any("No as published trial in table5_backbones" in note for note in table.notes)
    assert paper.rehearsal["stand_ins"] == rehearsal.STAND_INS
    folds = read_table(root / "table5_backbones", "folds").set_index("trial_id")
    ours = table.ours.set_index("trial_id")
    for trial in table.matched.values():  # the row's figures are its trial's own
        assert ours.at[trial, "pc_mean"] == pytest.approx(folds.loc[[trial], "pc"].mean())
    # the studies not run yet: the commands that rehearse them
    assert paper.studies["table3_scut_fbp5500"].command == "fbp-search run studies/paper/table3_scut_fbp5500.yaml --rehearsal"
    assert main(["paper", str(root), "--format", "md"]) == 0
    md = (root / "paper" / "paper.md").read_text()
    assert md.index("## Rehearsal: not the paper's figures") < md.index("## Studies")
    assert "`fbp-search run studies/paper/ --rehearsal` runs them all" in md


@pytest.mark.slow
def test_the_rehearsal_runs_every_paper_study_and_writes_the_paper(local_ray, tmp_path, capsys):
    root = tmp_path / "paper-rehearsal"
    start = time.perf_counter()
    # the paper's studies and the one beyond it, into one root: the document has them all
    assert main(["run", str(PAPER_STUDIES), str(BEYOND_STUDIES), "--rehearsal", "--results", str(root)]) == 0
    seconds = time.perf_counter() - start
    out = capsys.readouterr().out
    assert f"all {len(FILES)} studies finished" in out and f"wrote 21 files to {root / 'paper'}" in out
    assert main(["paper", str(root)]) == 0  # as a user writes it again
    print(f"rehearsal: {seconds:.0f} s")

    for name in STUDIES:  # every study's own results, as a real run writes them
        folds = read_table(root / name, "folds")
        _, trials, seeds = EXPECTED[name]
        assert folds["trial_id"].nunique() == trials, name
        assert set(folds["status"]) <= {"COMPLETE", "PRUNED"}, (name, folds["error"].dropna().unique())
        assert len(read_table(root / name, "predictions")), name
    paper = root / "paper"
    assert (paper / "paper.md").read_text().startswith("# ComboLoss") and "## Rehearsal: not the paper's figures" in (paper / "paper.md").read_text()
    for number, name in TABLE_STUDIES.items():
        table = _csv(paper / f"table{number}.csv")
        ours = table[table["source"] == "ours"]
        assert len(ours) and ours["trial_id"].notna().all() and ours["pc_mean"].notna().all(), number
        # both arms of every row, each its own trial: as written last epoch, as published the test-fold epoch
        arms = ours.groupby("arm")
        assert set(arms.groups) == {"as written", "as published"} and arms.size().nunique() == 1, (number, arms.size())
        assert ours.groupby("arm")["select"].agg(set).to_dict() == {"as written": {"last"}, "as published": {"test_oracle"}}, number
        assert ours["trial_id"].nunique() == len(ours), number
        # each row's PC is the mean over its trial's (fold, seed) runs in folds.parquet; its arm is its trial's published_code
        folds = read_table(root / name, "folds")
        for _, row in ours.iterrows():
            runs = folds.loc[folds["trial_id"] == row["trial_id"], ["fold", "seed", "status", "pc", "param.published_code"]]
            assert row["pc_mean"] == pytest.approx(runs["pc"].mean()), (number, row["method"], row["trial_id"], row["pc_mean"], runs)
            assert set(runs["param.published_code"]) == {row["arm"] == "as published"}, (number, row["method"], row["arm"])
    # Table 5's rows: ResNet18 is test_byobnet's, SEResNeXt50 test_resnet's, each with its loss
    table5 = _csv(paper / "table5.csv")
    params = read_table(root / "table5_backbones", "folds").groupby("trial_id")[["param.model.backbone", "param.loss.name"]].first()
    for method, cell in {"ResNet18": ("test_byobnet", "mse"), "ResNet18 + ComboLoss": ("test_byobnet", "combo"),
                         "SEResNeXt50": ("test_resnet", "mse"), "SEResNeXt50 + ComboLoss": ("test_resnet", "combo")}.items():
        trial = table5.loc[(table5["source"] == "ours") & (table5["method"] == method) & (table5["arm"] == "as written"), "trial_id"].item()
        assert tuple(params.loc[trial]) == cell, (method, trial, tuple(params.loc[trial]))
    # Figure 2: 6 + 6 faces of Table 3's run, every one drawn from the drawn SCUT-FBP5500 faces
    figure = _csv(paper / "figure2.csv")
    assert list(figure["kind"]) == ["best"] * 6 + ["worst"] * 6 and figure["drawn"].all(), figure[["kind", "image", "path", "drawn"]]
    assert figure["path"].map(lambda p: Path(p).parent.parent == rehearsal.faces_root("scut-fbp5500")).all(), (list(figure["path"]), rehearsal.faces_root("scut-fbp5500"))
    with Image.open(paper / "figure2.png") as png:
        assert png.format == "PNG" and png.width > png.height > 200, (png.format, png.size)
    errors = (figure["y_pred"] - figure["y_true"]).abs()
    assert np.allclose(errors, figure["error"]) and errors[:6].max() <= errors[6:].min(), figure[["kind", "y_true", "y_pred", "error"]]
    # beyond the paper: ComboLoss against L1 in every (backbone, protocol, arm) cell, each its own pair of trials
    beyond = _csv(paper / "beyond_backbones.csv")
    cells = {(b, p, a) for b in ("seresnext50_32x4d", "convnext_tiny", "vit_base_patch16_224", "vit_base_patch16_clip_224.openai")
             for p in ("60-40", "5fold") for a in ("as written", "as published")}
    assert set(zip(beyond["model.backbone"], beyond["data.protocol"], beyond["arm"])) == cells and len(beyond) == 16
    assert beyond["combo_trial"].notna().all() and beyond["l1_trial"].notna().all() and beyond["d_pc"].notna().all()
    assert beyond.groupby("data.protocol")["k"].max().to_dict() == {"5fold": 5, "60-40": 1}
    for name in ABLATIONS:
        ablation = _csv(paper / f"{name}.csv")
        assert len(ablation) == EXPECTED[name][1] and (paper / f"{name}.png").is_file(), (name, ablation[["trial_id", "status"]])

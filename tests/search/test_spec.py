"""`fbp-search validate`: every bad study is exit code 2, the YAML path and value, no traceback."""

from pathlib import Path

import pytest
import yaml

from fbp.data.synthetic import SMALL
from search.cli import main
from tests.conftest import review_scores, write_hotornot

SHIPPED = Path(__file__).parents[2] / "studies"
STUDIES = sorted(SHIPPED.glob("**/*.yaml"))

GOOD = {
    "name": "t",
    "data": {"dataset": "synthetic", "options": SMALL, "folds": [1, 2]},
    "model": {"backbone": "test_resnet", "pretrained": False},
    "search": {
        "sampler": "tpe",
        "num_trials": 3,
        "space": {"loss.alpha": {"float": [0.0, 4.0]}, "train.schedule.name": {"choice": ["step", "cosine"]}},
        "baseline": [{"loss.alpha": 2.0}],
    },
}


def _with(path: str, value):
    raw = yaml.safe_load(yaml.safe_dump(GOOD))
    node = raw
    keys = path.split("/")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return raw


DELETE = object()


@pytest.mark.parametrize("study", STUDIES, ids=[str(p.relative_to(SHIPPED).with_suffix("")) for p in STUDIES])
def test_every_shipped_study_validates(study, capsys):
    assert main(["validate", str(study), "--offline"]) == 0
    out = capsys.readouterr().out
    if "search" in yaml.safe_load(study.read_text()):
        assert "search space of" in out
    else:  # one configuration (studies/paper.yaml, Tables 1-3 of studies/paper/)
        assert "batch_size: 64" in out and f"fbp-search train {study}" in out


def test_validate_prints_the_resolved_study_and_space(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "float [0.0, 4.0]" in out and "choice ['step', 'cosine']" in out
    assert "lr: 0.01" in out  # a default filled in


def test_validate_prints_what_published_code_resolves_to(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    # objective on test: with a val objective the test-fold epoch choice is refused (below)
    path.write_text(yaml.safe_dump({**GOOD, "published_code": True, "loss": {"ce_reduction": "mean"}, "objective": {"metric": "pc", "on": "test"}}))
    assert main(["validate", str(path), "--offline"]) == 0
    out = capsys.readouterr().out
    for line in ("published_code: true", "ce_input: probs", "ce_reduction: mean", "huber_variant: upstream", "rule: round_half_even", "select: test_oracle"):
        assert line in out, line


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("loss/alphaa", 1.0, "loss.alphaa: unknown key, got 1.0"),
        ("train/epochs", "many", "train.epochs: Input should be a valid integer"),
        ("loss/alpha", -1, "loss.alpha: Input should be greater than or equal to 0, got -1"),
        ("search/space/loss.alpah", {"float": [0, 1]}, "search.space.loss.alpah: no such path in the trial config"),
        ("model/backbone", "resnet_nope", "model.backbone: unknown timm backbone 'resnet_nope'"),
        ("search/sampler", "bayes", "search.sampler: Input should be 'tpe', 'random', 'grid', 'gp', 'cmaes' or 'nsga2', got 'bayes'"),
        ("search/num_trials", 0, "search.num_trials: Input should be greater than or equal to 1, got 0"),
        ("search/space/loss.alpha", {"float": [-1.0, 4.0]}, "search.space.loss.alpha: -1.0 is not a valid loss.alpha"),
        ("search/space/model.backbone", {"choice": ["resnet18", "nonet"]}, "search.space.model.backbone: unknown timm backbone 'nonet'"),
        ("search/space/train.lr", {"float": [0.0, 0.1], "log": True}, "search.space.train.lr: log needs a float or int range with low > 0"),
        ("search/space/train.schedule.step_size", {"int": [10, 50], "when": {"train.shedule.name": "step"}}, "condition on 'train.shedule.name', which is no path"),
        ("search/baseline", [{"loss.beta": 1.0}], "search.baseline[0].loss.beta: not a searched path"),
        ("search/sampler", "grid", "grid needs a space of choices or stepped ranges; continuous: ['loss.alpha']"),
        ("objective", {"metric": "pc", "mode": "min"}, "mode 'min' would optimize it the wrong way"),
        ("objective", {"metric": "accuracy"}, "objective.0.metric: unknown metric 'accuracy'; valid: mae, rmse, pc, got 'accuracy'"),
        ("scheduler/name", "hyperband", "scheduler.name: Input should be 'asha' or 'none', got 'hyperband'"),
        ("data/dataset", "celeba", "data.dataset: unknown dataset 'celeba'"),
        ("loss/name", "huber", "loss.name: unknown loss 'huber'"),
        ("resources/gpu", -0.5, "resources.gpu: Input should be greater than or equal to 0, got -0.5"),
        ("name", "has space", "name: String should match pattern"),
        ("name", DELETE, "name: Field required"),
        # the test folds choosing what a val objective reads
        ("eval/select", "test_oracle", "eval.select: test_oracle picks each fold's epoch on its test PC, but objective.on: val chooses between trials without the test folds"),
        ("published_code", True, "eval.select: test_oracle (published_code: true sets it where eval.select is not given) picks each fold's epoch on its test PC"),
        ("search/space/eval.select", {"choice": ["last", "test_oracle"]}, "search.space.eval.select: the choice test_oracle picks epochs on the test folds"),
        ("search/space/published_code", {"choice": [False, True]}, "search.space.published_code: its arm true sets eval.select: test_oracle"),
        # one split per study: its progress, ASHA, the models it keeps and resume count its folds
        ("search/space/data.protocol", {"choice": ["5fold", "60-40"]}, "search.space.data.protocol: a study runs one dataset split"),
    ],
)
def test_bad_studies_exit_2_naming_the_key_and_value(tmp_path, capsys, path, value, message):
    study = tmp_path / "bad.yaml"
    study.write_text(yaml.safe_dump(_with(path, value)))
    assert main(["validate", str(study)]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert message in err and "Traceback" not in err
    assert str(study) in err


BASELINE_SPACE = {
    "loss.alpha": {"float": [0, 4]},
    "loss.beta": {"float": [0, 4], "step": 0.5},
    "train.lr": {"float": [0.001, 0.1], "log": True},
    "train.epochs": {"int": [2, 10], "step": 2},
    "train.batch_size": {"int": [8, 64], "log": True},
    "train.schedule.name": {"choice": ["step", "cosine"]},
    "model.pretrained": {"choice": [False, "w.safetensors"]},
}


@pytest.mark.parametrize("point, message", [
    ({"loss.alpha": 9.0}, "search.baseline[1].loss.alpha: 9.0 is outside the range float [0.0, 4.0]"),
    ({"loss.alpha": -0.5}, "search.baseline[1].loss.alpha: -0.5 is not a valid loss.alpha (loss.alpha: Input should be greater than or equal to 0, got -0.5)"),  # the field refuses it first
    ({"loss.beta": 1.2}, "search.baseline[1].loss.beta: 1.2 is not on the grid of the range float [0.0, 4.0] step 0.5"),
    ({"train.lr": 0.5}, "search.baseline[1].train.lr: 0.5 is outside the range float [0.001, 0.1] log"),
    ({"train.lr": 0.0005}, "search.baseline[1].train.lr: 0.0005 is outside the range float [0.001, 0.1] log"),
    ({"train.epochs": 12}, "search.baseline[1].train.epochs: 12 is outside the range int [2, 10] step 2"),
    ({"train.epochs": 5}, "search.baseline[1].train.epochs: 5 is not on the grid of the range int [2, 10] step 2"),
    ({"train.batch_size": 128}, "search.baseline[1].train.batch_size: 128 is outside the range int [8, 64] log"),
    ({"train.schedule.name": "onecycle"}, "search.baseline[1].train.schedule.name: 'onecycle' is not one of the choices ['step', 'cosine']"),
    ({"model.pretrained": True}, "search.baseline[1].model.pretrained: True is not one of the choices [False, 'w.safetensors']"),
])
def test_a_baseline_outside_the_space_exits_2_naming_the_value_and_range(tmp_path, capsys, point, message):
    raw = _with("search/space", BASELINE_SPACE)
    raw["search"]["baseline"] = [{"loss.alpha": 2.0}, point]
    study = tmp_path / "bad.yaml"
    study.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(study), "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {study}: {message}", err


def test_a_baseline_inside_the_space_passes(tmp_path):
    raw = _with("search/space", {p: d for p, d in BASELINE_SPACE.items() if p != "model.pretrained"})  # validate looks for the file
    raw["search"]["baseline"] = [{"loss.alpha": 0, "loss.beta": 3.5, "train.lr": 0.1, "train.epochs": 10, "train.batch_size": 8, "train.schedule.name": "cosine"},
                                 {"loss.alpha": 4, "loss.beta": 0.0, "train.lr": 0.001, "train.epochs": 2.0, "train.batch_size": 64}]
    study = tmp_path / "good.yaml"
    study.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(study), "--offline"]) == 0


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_study_file_says_it_is_empty(tmp_path, capsys, text):
    study = tmp_path / "empty.yaml"
    study.write_text(text)
    assert main(["validate", str(study)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {study}: the file is empty (nothing but blank lines or comments); expected a mapping of sections (name:, data:, model:, ...)"


def test_broken_yaml_gives_line_and_column(tmp_path, capsys):
    study = tmp_path / "broken.yaml"
    study.write_text("name: t\nsearch:\n  space: {loss.alpha: {float: [0, 1]}\nobjective: {}\n")
    assert main(["validate", str(study)]) == 2
    assert f"{study}:4:1: invalid YAML" in capsys.readouterr().err.replace("\n", "")


def test_every_path_is_made_absolute_against_the_directory_given(tmp_path):
    from search.spec import validate_spec, with_absolute_paths

    raw = _with("data/root", "data/SCUT")
    raw["model"]["pretrained"] = "~/weights/a.safetensors"
    raw["search"]["space"]["model.pretrained"] = {"choice": [False, "w/b.safetensors", "/abs/c.pt", "s3://bucket/d.safetensors"]}
    raw["search"]["baseline"] = [{"loss.alpha": 2.0, "model.pretrained": "w/b.safetensors"}]
    spec = with_absolute_paths(validate_spec(raw, "t.yaml"), tmp_path)
    assert spec.data.root == f"{tmp_path}/data/SCUT"
    assert spec.model.pretrained == f"{Path.home()}/weights/a.safetensors"
    assert spec.search.space["model.pretrained"].choice == [False, f"{tmp_path}/w/b.safetensors", "/abs/c.pt", "s3://bucket/d.safetensors"]
    assert spec.search.baseline[0] == {"loss.alpha": 2.0, "model.pretrained": f"{tmp_path}/w/b.safetensors"}
    assert spec.search.space["loss.alpha"] == validate_spec(raw, "t.yaml").search.space["loss.alpha"]  # not a path: untouched
    assert with_absolute_paths(spec, tmp_path / "elsewhere") == spec  # absolute already: a second pass changes nothing


def test_a_study_without_a_space_is_one_trial_and_more_is_refused():
    from search.spec import validate_spec

    raw = _with("search", DELETE)
    assert validate_spec(raw, "t.yaml").search.num_trials == 1
    raw["search"] = {"num_trials": 4}
    assert refusal(raw) == "t.yaml: search.num_trials: 4 trials, but search.space is empty: every trial would train the same configuration; give a space, or num_trials: 1"


def refusal(raw) -> str:
    from fbp.errors import InputError
    from search.spec import validate_spec

    with pytest.raises(InputError) as e:
        validate_spec(raw, "t.yaml")
    return str(e.value)


@pytest.mark.parametrize("text, on, holdout", [
    ("objective: {metric: pc, on: test}", "test", False),  # YAML reads a bare `on` key as true: still the split
    ("objective: {metric: pc, on: val}", "val", True),
    ("objective: {metric: pc}", "val", True),  # a study with a space chooses on validation parts by default
])
def test_the_objective_reads_the_split_it_names(text, on, holdout):
    from search.spec import validate_spec

    raw = {**yaml.safe_load(yaml.safe_dump(GOOD)), **yaml.safe_load(text)}
    spec = validate_spec(raw, "t.yaml")
    assert spec.objectives[0].on == on and spec.eval.holdout is holdout
    assert spec.objectives[0].key == ("val_pc" if on == "val" else "pc")


def test_a_val_objective_with_holdout_switched_off_is_refused():
    raw = {**yaml.safe_load(yaml.safe_dump(GOOD)), "objective": {"metric": "pc", "on": "val"}, "eval": {"holdout": False}}
    assert "eval.holdout: false, but objective.on: val reads the validation parts" in refusal(raw)


# --- the discretization, checked on each fold's training split before anything runs ---------


def _hotornot_study(tmp_path, loss=None, space=None):
    root = tmp_path / "hotornot"
    write_hotornot(root, review_scores())  # the review's z-scores, 4 times: 16 per training split
    study = {
        "name": "h",
        "data": {"dataset": "hotornot", "root": str(root), "protocol": "5split", "image_size": 32},
        "model": {"backbone": "test_resnet", "pretrained": False},
        "search": {"num_trials": 2, "space": space or {"loss.alpha": {"float": [0.0, 4.0]}}},
    }
    if loss:
        study["loss"] = loss
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_validate_prints_hotornots_own_discretization_resolved(tmp_path, capsys):
    study = _hotornot_study(tmp_path)
    assert main(["validate", str(study)]) == 0
    printed = yaml.safe_load(capsys.readouterr().out.split("search space of")[0].rsplit("\n", 2)[0])
    assert printed["loss"]["discretization"]["rule"] == "intervals" and printed["loss"]["discretization"]["edges"] == [-1.0, 1.0]


def test_validate_refuses_the_paper_rule_on_hotornots_z_scores(tmp_path, capsys):
    study = _hotornot_study(tmp_path, loss={"discretization": {"rule": "paper"}})
    assert main(["validate", str(study)]) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert f"{study}: loss.discretization: rule 'paper' (edges [1.5, 2.5, 3.5, 4.5]) on dataset hotornot, fold 1: " in err
    assert "leaves classes 1, 2, 3, 4 empty and puts 100% in class 0" in err and "counts per class [16, 0, 0, 0, 0]" in err
    assert "Traceback" not in err


def test_validate_checks_every_rule_the_space_can_give(tmp_path, capsys):
    study = _hotornot_study(tmp_path, space={"loss.discretization.rule": {"choice": ["auto", "round_half_even"]}})
    assert main(["validate", str(study)]) == 2
    assert "rule 'round_half_even' (edges [1.5, 2.5, 3.5, 4.5]) on dataset hotornot, fold 1" in capsys.readouterr().err.replace("\n", "")
    study = _hotornot_study(tmp_path, space={"loss.discretization.rule": {"choice": ["auto", "intervals"]}})
    assert main(["validate", str(study)]) == 0  # auto and the (resolved) intervals both fit


# --- the two arms: published_code searched -------------------------------------------------------


def test_a_searched_published_code_trains_each_arm_as_the_config_written_so():
    """studies/paper/table4_losses.yaml searches published_code x loss.name: its "as published" L1
    cell is the config a user would write with published_code: true and loss.name: l1 (the
    published code's classes, weights, cross-entropy, augmentation, Adam and test-fold epoch);
    its "as written" cells are the paper's."""
    from fbp.config import read_yaml, validate_config
    from search.spec import STUDY_ONLY, load_spec

    path = SHIPPED / "paper" / "table4_losses.yaml"
    study = load_spec(path)
    written = {k: v for k, v in read_yaml(path).items() if k not in STUDY_ONLY}
    # the study spells out the paper's optimizer and selection; the arm counts the paper's values as unset
    written["train"] = {k: v for k, v in written["train"].items() if k not in ("optimizer", "lr", "weight_decay")}
    assert written.pop("eval") == {"select": "last"}
    for loss in ("l1", "combo"):
        for arm in (False, True):
            cell = study.trial_config({"published_code": arm, "loss.name": loss})
            assert cell == validate_config({**written, "published_code": arm, "loss": {**written["loss"], "name": loss}}), (loss, arm)
    published_l1 = study.trial_config({"published_code": True, "loss.name": "l1"})
    t, loss = published_l1.train, published_l1.loss
    assert (t.optimizer, t.lr, t.weight_decay, t.augment.brightness, t.augment.fill) == ("adam", 0.001, 0.0001, 0.0, "black")
    assert (loss.ce_reduction, loss.discretization.rule, loss.class_weights, published_l1.eval.select) == (
        "weighted_mean", "round_half_even", [1.88, 1.0, 1.91, 99.38, 99.38], "test_oracle")
    written_l1 = study.trial_config({"published_code": False, "loss.name": "l1"})
    assert (written_l1.train.optimizer, written_l1.loss.ce_reduction, written_l1.loss.discretization.rule, written_l1.eval.select) == ("sgd", "mean", "paper", "last")


def test_a_searched_published_code_keeps_what_the_study_sets_apart_from_the_paper(tmp_path):
    """A value the study sets that is not the paper's stays in the as published arm (the
    published code's value fills only where the study holds the paper's)."""
    from search.spec import load_spec

    raw = _with("search/space", {"published_code": {"choice": [False, True]}})
    raw["search"]["baseline"] = []
    raw.update(objective={"metric": "pc", "on": "test"}, eval={"select": "inner_val"}, train={"augment": {"fill": "reflection", "brightness": 0.3}})
    study = tmp_path / "arms.yaml"
    study.write_text(yaml.safe_dump(raw))
    cell = load_spec(study).trial_config({"published_code": True})
    a = cell.train.augment
    assert (cell.eval.select, a.fill, a.brightness, a.contrast, cell.loss.ce_input) == ("inner_val", "black", 0.3, 0.0, "probs")

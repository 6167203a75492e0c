"""Bad input to `fbp-search run`: exit code 2, one line with the key or file:line, no traceback,
and no results directory created or changed."""

from pathlib import Path

import pytest

from search.cli import main

QUICKSTART = Path(__file__).parents[2] / "studies" / "quickstart.yaml"


def _damaged_root(root: Path, scut5500_copy: Path, what: str) -> Path:
    labels = scut5500_copy / "train_test_files" / "All_labels.txt"
    text = labels.read_text()
    labels.unlink()
    if what == "line":
        labels.write_text(text.replace("AM1384.jpg 2.466667", "AM1384.jpg", 1))
    elif what == "traversal":
        labels.write_text(text.replace("CF437.jpg", "../../etc/passwd", 1))
    else:
        labels.write_text(text)
        (scut5500_copy / "Images" / "AF1.jpg").unlink()
    return scut5500_copy


CASES = [
    (["loss.alpha=-1"], "loss.alpha: Input should be greater than or equal to 0, got -1"),
    (["loss.alphaa=1"], "loss.alphaa: unknown key"),
    (["train.epochs=ten"], "train.epochs: Input should be a valid integer"),
    (["train.lr=0"], "train.lr: Input should be greater than 0, got 0"),
    (["model.backbone=nonet"], "model.backbone: unknown timm backbone 'nonet'"),
    (["data.dataset=celeba"], "data.dataset: unknown dataset 'celeba'"),
    (["loss.name=huber"], "loss.name: unknown loss 'huber'"),
    (["search.sampler=bayes"], "search.sampler: Input should be 'tpe', 'random', 'grid', 'gp', 'cmaes' or 'nsga2'"),
    (["scheduler.name=pbt"], "scheduler.name: Input should be 'asha' or 'none'"),
    (["search.space={}"], "search.num_trials: 8 trials, but search.space is empty"),
    (["search.num_trials=0"], "search.num_trials: Input should be greater than or equal to 1, got 0"),
    (["search.baseline=[{loss.delta: 1}]"], "search.baseline[0].loss.delta: not a searched path"),
    (["resources.cpu=-1"], "resources.cpu: Input should be greater than 0, got -1"),
    (["loss.discretization.rule=bins"], "loss.discretization.rule: unknown discretization rule 'bins'"),
    (["eval.select=best"], "eval.select: Input should be 'last', 'inner_val' or 'test_oracle'"),
    (["objective={metric: pc, mode: min}"], "would optimize it the wrong way"),
    (["data.dataset=scut-fbp5500", "data.root=nowhere/SCUT-FBP5500"], "nowhere/SCUT-FBP5500 does not exist"),
    (["data.protocol=10fold"], "unknown protocol '10fold' for dataset 'synthetic'"),
    (["data.folds=[1, 7]"], "data.folds: fold 7 does not exist; protocol '5fold' has folds 1..5"),
    (["loss.alpha"], "--set 'loss.alpha': expected path=value"),
    (["search.space={loss.delta: {float: [0, 1]}}"], "search.space.loss.delta: no such path in the trial config"),
    (["search.space={loss.alpha: {float: [0, 4], when: {loss.nothing: x}}}"], "search.space.loss.alpha.when: condition on 'loss.nothing', which is no path"),
    # more than the local Ray (this machine) has, on any machine
    pytest.param(["resources.gpu=64"], "resources.gpu: 64.0 per trial, but the cluster has", marks=pytest.mark.slow),  # starts a local Ray
    (["--storage", "nope://bucket/x"], "--storage nope://bucket/x: pyarrow cannot open it"),
    (["--study-text", "name: x\ndata: {dataset: synthetic\nmodel: [\n"], "broken.yaml:3:6: invalid YAML"),
]


def _argv(tmp_path: Path, case: list[str]) -> list[str]:
    """`path=value` items become --set; `--study-text TEXT` replaces the study file."""
    study, extra, items = QUICKSTART, [], iter(case)
    for item in items:
        if item == "--study-text":
            study = tmp_path / "broken.yaml"
            study.write_text(next(items))
        elif item.startswith("--"):
            extra += [item, next(items)]
        else:
            extra += ["--set", item]
    return ["run", str(study), "--results", str(tmp_path / "results"), *extra]


@pytest.fixture
def no_ray_left():
    """A case that reaches the cluster check starts a local Ray in this process: stop it."""
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _case_id(i: int, case) -> str:
    argv = case.values[0] if hasattr(case, "values") else case[0]  # a pytest.param holds its values
    return argv[-1].split("=")[0][:30] + str(i)


@pytest.mark.parametrize("case, message", CASES, ids=[_case_id(i, c) for i, c in enumerate(CASES)])
def test_bad_study_values(tmp_path, capsys, no_ray_left, case, message):
    assert main(_argv(tmp_path, case)) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "what, message",
    [("line", "All_labels.txt:2: expected '<image> <score>'"), ("traversal", "must be a plain file name inside the dataset root"),
     ("image", "1 of 5500 listed images are missing")],
)
def test_bad_datasets(tmp_path, capsys, scut5500_copy, what, message):
    root = _damaged_root(tmp_path, scut5500_copy, what)
    results = tmp_path / "results"
    argv = ["run", str(QUICKSTART), "--results", str(results), "--set", "data.dataset=scut-fbp5500", "--set", f"data.root={root}", "--set", "data.options={}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.replace("\n", "")
    assert message in err and "Traceback" not in err
    assert not results.exists()


def test_an_existing_results_directory_is_not_changed(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    (results / "study.yaml").write_text("name: other\nspec_hash: '0000'\n")
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert main(["run", str(QUICKSTART), "--results", str(results), "--set", "loss.alpha=-1"]) == 2
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before

"""What a user does, as they do it: `fbp-search` as a separate process, started from the
project's directory with relative paths, output to a pipe (no terminal), offline.

The trials run in Ray workers whose working directory is not the user's: a relative path that
only the driver can resolve fails every trial there.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from search.results import read_table

pytestmark = pytest.mark.slow  # trains for long or starts Ray: not in the fast tier (pytest -m "not slow")

REPO = Path(__file__).parents[2]

# the shipped paper-protocol study, shrunk to this CPU: one fold, one epoch, a tiny model
SHRINK = {
    "model.backbone": "test_resnet", "model.pretrained": "false", "train.epochs": "1", "train.device": "cpu",
    "train.compile": "off", "data.image_size": "32", "data.folds": "[1]", "search.num_trials": "1",
    "resources.gpu": "0", "resources.cpu": "1",
}


def fbp_search(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """The command as a user runs it: its own process, stdout and stderr to pipes."""
    environment = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", **env}
    environment.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "search.cli", *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=900)


def sets(**changes: str) -> list[str]:
    return [a for path, value in {**SHRINK, **changes}.items() for a in ("--set", f"{path}={value}")]


@pytest.fixture
def project(tmp_path, scut5500_root) -> Path:
    """A user's project: the shipped studies, SCUT-FBP5500 at the README's relative path
    (the real label files with stand-in images)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "SCUT-FBP5500_v2").symlink_to(scut5500_root, target_is_directory=True)
    (tmp_path / "studies").symlink_to(REPO / "studies", target_is_directory=True)
    return tmp_path


def test_the_shipped_study_runs_with_the_dataset_at_its_relative_path(project):
    run = fbp_search("run", "studies/loss_weights.yaml", *sets(), cwd=project)
    assert run.returncode == 0, run.stdout + run.stderr
    folds = read_table(project / "results" / "loss_weights", "folds")
    assert len(folds) == 1 and folds["status"].tolist() == ["COMPLETE"], folds[["status", "error"]]
    study = yaml.safe_load((project / "results" / "loss_weights" / "study.yaml").read_text())
    assert study["data"]["root"] == str(project / "data" / "SCUT-FBP5500_v2")  # recorded resolved

    # no terminal: whole lines, the last one naming the best trial, its objective and params
    last = run.stdout.strip().splitlines()[-1]
    trial_id = folds["trial_id"].iloc[0]
    assert last.startswith("finished, 1 trial: 1 complete, 0 pruned, 0 failed; best " + trial_id)
    # chosen on the validation part, its test figure beside
    assert f"pc {folds['val_pc'].iloc[0]:.4f} on validation (test {folds['pc'].iloc[0]:.4f}) with loss.alpha=2, loss.beta=1, loss.gamma=1" in last
    assert last.endswith("Next: fbp-search report results/loss_weights") and len(last) > 80
    assert "Traceback" not in run.stdout + run.stderr


def test_a_study_in_which_every_trial_fails_exits_1_with_one_line_per_error(project):
    run = fbp_search("run", "studies/quickstart.yaml", "--smoke", "--set", "train.lr=1e30", cwd=project)
    assert run.returncode == 1, run.stdout + run.stderr
    out = run.stdout + run.stderr
    assert "Traceback" not in out
    results = project / "results" / "quickstart-smoke"
    folds = read_table(results, "folds")
    assert (folds["status"] == "FAIL").all() and folds["trial_id"].nunique() == 2
    summary = [line for line in run.stdout.splitlines() if line.startswith("failed: ")]
    assert len(summary) == 1 and summary[0].startswith("failed: 2 trials with TrainingError: fold 1, epoch 1: loss term")
    first = summary[0].split("first: ")[1].split(";")[0]
    assert first in set(folds["trial_id"])
    log = results / "logs" / f"{first}.log"
    assert f"traceback in results/quickstart-smoke/logs/{first}.log" in summary[0]
    assert 'fbp/kfold.py", line' in log.read_text() and "TrainingError" in log.read_text()  # the frames, not just the line
    assert run.stdout.strip().splitlines()[-1] == "no trial completed (2 trials: 0 complete, 0 pruned, 2 failed); see the errors above and results/quickstart-smoke/logs"

    # the report writes what it can and says that nothing completed
    report = fbp_search("report", "results/quickstart-smoke", cwd=project)
    assert report.returncode == 0 and "Traceback" not in report.stdout + report.stderr
    assert "Nothing completed" in report.stdout
    assert "Dataset synthetic, protocol 5fold, 2 folds per trial, eval.select last; objective: max pc." in report.stdout.splitlines()  # whole
    errors = (results / "report" / "errors.csv").read_text()
    assert "TrainingError: fold 1, epoch 1: loss term" in errors and first in errors


def test_results_path_that_is_a_file_is_one_line_and_exit_2(project):
    (project / "taken").write_text("a file\n")
    run = fbp_search("run", "studies/quickstart.yaml", "--smoke", "--results", "taken", cwd=project)
    assert run.returncode == 2
    assert run.stderr.strip() == "error: --results taken: is a file, not a directory; choose a directory"
    assert (project / "taken").read_text() == "a file\n"


def test_cuda_for_trials_that_get_no_gpu_is_refused_before_anything_runs(project):
    run = fbp_search("run", "studies/quickstart.yaml", "--smoke", "--set", "train.device=cuda", cwd=project)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "train.device: 'cuda', but resources.gpu is 0" in run.stderr
    assert not (project / "results").exists()


def test_validate_runs_the_checks_run_would(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # no data/ here
    study = str(REPO / "studies" / "loss_weights.yaml")
    missing = fbp_search("validate", study, cwd=elsewhere)
    assert missing.returncode == 2 and f"data.root {elsewhere}/data/SCUT-FBP5500_v2 does not exist" in missing.stderr
    assert fbp_search("validate", study, "--offline", cwd=elsewhere).returncode == 0
    ok = fbp_search("validate", "studies/loss_weights.yaml", "--set", "model.pretrained=false", cwd=project)
    assert ok.returncode == 0, ok.stderr
    assert f"root: {project}/data/SCUT-FBP5500_v2" in ok.stdout


def test_pretrained_true_offline_stops_the_run_before_anything_is_written(project):
    run = fbp_search("run", "studies/quickstart.yaml", "--smoke", "--set", "model.pretrained=true", cwd=project)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "model.pretrained: true, but timm's weights for 'test_resnet'" in run.stderr
    assert not (project / "results").exists()


def test_a_backbone_that_cannot_take_the_image_size_stops_the_run(project):
    # a ViT is built for the input size, but its 16 px patches must tile it
    run = fbp_search("run", "studies/quickstart.yaml", "--smoke", "--set", "model.backbone=test_vit", "--set", "data.image_size=40", cwd=project)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "data.image_size: 40 does not fit model.backbone 'test_vit' (AssertionError: Input height (40) should be divisible by patch size (16).)" in " ".join(run.stderr.split())
    assert not (project / "results").exists()

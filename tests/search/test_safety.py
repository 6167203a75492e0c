"""Nothing the user hands over runs code: study YAML is loaded safely, state dicts with
weights_only, and the report opens no pickle."""

import pickle
from pathlib import Path

import pytest
import torch

from fbp.config import validate_config
from fbp.errors import InputError
from fbp.models import build_model
from search.cli import main


class Payload:
    """Unpickling this would create the file its path names."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_yaml_tag_that_would_run_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "ran"
    study = tmp_path / "evil.yaml"
    study.write_text(f"name: evil\ndata: !!python/object/apply:pathlib.Path.touch [[{str(marker)!r}]]\n")
    assert main(["run", str(study), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert f"{study}:2:" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "results").exists()


def test_a_state_dict_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    weights = tmp_path / "weights.pt"
    torch.save({"backbone.conv1.weight": Payload(marker)}, weights)
    config = validate_config({"model": {"backbone": "test_resnet", "pretrained": str(weights)}})
    with pytest.raises(InputError, match=rf"model.pretrained: cannot read {weights} as a state dict \(UnpicklingError") as caught:
        build_model(config.model, 5)
    assert "\n" not in str(caught.value)
    assert not marker.exists()


def test_the_report_opens_no_pickle(tmp_path, monkeypatch):
    from search.report import build_report, write_report
    from tests.search.report.make_results import make_results, standard_trials

    root = make_results(tmp_path / "toy", standard_trials(), baseline={"loss.name": "combo", "loss.alpha": 2.0, "train.lr": 0.01})

    def refuse(*args, **kwargs):
        raise AssertionError("the report opened a pickle")

    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(torch, "load", refuse)
    build_report(root, draws=200)  # writes the report's cache; the next build reads it
    write_report(build_report(root, draws=200), root / "report", draws=200)
    assert (root / "report" / "leaderboard.csv").is_file()

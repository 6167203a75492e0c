"""Every shipped study smoke-runs end to end (tiny data and model, 2 folds, 2 trials)."""

from pathlib import Path

import pytest

from search.cli import main
from search.results import read_table

STUDIES = sorted((Path(__file__).parents[2] / "studies").glob("*.yaml"))


@pytest.mark.parametrize("study", STUDIES, ids=[p.stem for p in STUDIES])
def test_shipped_study_smoke_runs(local_ray, tmp_path, study, capsys):
    results = tmp_path / study.stem
    assert main(["run", str(study), "--smoke", "--results", str(results)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("finished, 2 trials: ") and " 0 failed; best " in last
    folds = read_table(results, "folds")
    assert folds["trial_id"].nunique() == 2
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

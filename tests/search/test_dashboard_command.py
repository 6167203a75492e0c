"""`fbp-search dashboard`: optuna-dashboard on a study's journal, read-only, over HTTP on 127.0.0.1."""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from search.cli import main
from search.results import TUNE_TRIAL_ID, ResultsDir
from search.spec import validate_spec
from search.tuner import searcher

pytest.importorskip("optuna_dashboard")  # the dashboard extra; the dev extra brings it

ROOT = Path(__file__).parents[2]
STUDY = {
    "name": "dash", "data": {"dataset": "synthetic", "protocol": "5fold", "folds": [1, 2]}, "model": {"backbone": "test_resnet", "pretrained": False},
    "search": {"sampler": "random", "num_trials": 2, "seed": 0, "space": {"loss.alpha": {"float": [0.0, 4.0]}}, "baseline": []},
    "objective": {"metric": "pc", "on": "test"},
}


def _journal(results: Path) -> None:
    """The journal a study of two trials leaves, written by the study's own searcher as a driver
    writes it: t1 finishes both folds (0.5, 0.7), t2 raises."""
    results.mkdir(exist_ok=True)
    spec = validate_spec(STUDY, "dash.yaml")
    study = searcher(spec, ResultsDir(results), 2)
    study.suggest("t1")
    study.suggest("t2")
    study.on_trial_result("t1", {"fold": 1, "fold_pc": 0.5, "pc": 0.5, "folds_done": 1})
    study.on_trial_complete("t1", {"fold": 2, "fold_pc": 0.7, "pc": 0.6, "folds_done": 2})
    study.on_trial_complete("t2", error=True)


def _get(url: str):
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read())


def test_the_dashboard_serves_the_studys_trials_with_their_tune_ids_logs_and_models_and_refuses_writes(tmp_path):
    results = tmp_path / "dash"
    _journal(results)
    journal = (results / "optuna.journal").read_bytes()
    server = subprocess.Popen([sys.executable, "-m", "search.cli", "dashboard", str(results), "--port", "0"], cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/dashboard/", line)
        assert found, (line, server.stderr.read() if server.poll() is not None else "")
        base = f"http://127.0.0.1:{found.group(1)}"

        (summary,) = _get(f"{base}/api/studies")["study_summaries"]
        assert summary["study_name"] == "dash"
        detail = _get(f"{base}/api/studies/{summary['study_id']}")
        trials = {t["number"]: t for t in detail["trials"]}
        assert [trials[n]["state"] for n in (0, 1)] == ["Complete", "Fail"]
        assert trials[0]["values"] == [pytest.approx(0.6)]  # the folds' mean, as the searcher told it
        assert [v["value"] for v in trials[0]["intermediate_values"]] == [0.5, 0.7]  # each fold's own, at step = fold
        for number, tune_id in ((0, "t1"), (1, "t2")):
            attrs = {a["key"]: a["value"] for a in trials[number]["user_attrs"]}
            assert attrs[TUNE_TRIAL_ID] == tune_id
            assert attrs["log"] == str(ResultsDir(results).log(tune_id)) and attrs["models"] == str(ResultsDir(results).model_dir(tune_id))

        # read-only: a trial told from the browser would disagree with the study's record
        tell = urllib.request.Request(f"{base}/api/trials/{trials[1]['trial_id']}/tell", data=b'{"state": "Complete", "values": [1.0]}', method="POST",
                                      headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(tell)
        assert refused.value.code == 405
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/studies/{summary['study_id']}", method="DELETE"))
        assert refused.value.code == 405
        assert (results / "optuna.journal").read_bytes() == journal

        # served on loopback, it answers this machine's names only: a page rebinding its domain to 127.0.0.1 reads nothing
        assert _get(f"http://localhost:{found.group(1)}/api/studies")["study_summaries"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{base}/api/studies", headers={"Host": "attacker.example"}))
        assert refused.value.code == 403
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C
        code = server.wait()
    assert code == 130


def test_results_that_hold_no_readable_journal_are_refused_in_one_line(tmp_path, capsys):
    from tests.search.report.make_results import make_results, standard_trials

    (tmp_path / "file").write_text("x")
    untrained = tmp_path / "claimed"
    untrained.mkdir()
    (untrained / "study.yaml").write_text("name: claimed\n")
    damaged = make_results(tmp_path / "damaged", standard_trials())
    with open(damaged / "optuna.journal", "ab") as f:
        f.write(b'{"op_code": 4, "trial_id"')  # a line cut short
    cases = {
        tmp_path / "missing": "results directory not found",
        tmp_path / "file": "not a directory",
        tmp_path: "no optuna.journal (not a results directory of fbp-search run",
        untrained: "no optuna.journal (a study that has not started",
        damaged: "is damaged (line",
    }
    for results, said in cases.items():
        assert main(["dashboard", str(results), "--port", "0"]) == 2
        err = capsys.readouterr().err
        assert said in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "optuna.journal").exists()  # nothing created where none was


def test_without_optuna_dashboard_the_command_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    _journal(tmp_path)
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)  # what Python's import sees when the package is not installed
    assert main(["dashboard", str(tmp_path)]) == 2
    assert "pip install optuna-dashboard" in capsys.readouterr().err


def test_a_port_in_use_is_refused_in_one_line(tmp_path, capsys):
    import socket

    _journal(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["dashboard", str(tmp_path), "--port", str(taken.getsockname()[1])]) == 2
    assert "cannot listen there" in capsys.readouterr().err


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_port_that_is_none_is_refused_as_the_command_line_refuses(tmp_path, capsys, port):
    from search.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["dashboard", str(tmp_path), "--port", port])
    assert stopped.value.code == 2
    assert f"argument --port: {port!r} is not a port (0 to 65535)" in capsys.readouterr().err

"""search.cluster: what `ray.init` is asked for; `--ray-dashboard` reaches it from run and resume."""

import logging
from pathlib import Path

import pytest

from fbp.errors import InputError
from search.cli import build_parser, main
from search.cluster import check_dashboard, dashboard_line, init_options

QUICKSTART = Path(__file__).parents[2] / "studies" / "quickstart.yaml"


def test_a_local_ray_starts_without_its_dashboard_unless_asked_and_then_only_on_loopback():
    assert init_options(None) == {"address": "local", "include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    assert init_options("auto") == {**init_options(None), "address": "auto"}
    assert init_options(None, dashboard=True) == {**init_options(None), "include_dashboard": True, "dashboard_host": "127.0.0.1"}


def test_the_dashboard_line_says_how_to_get_past_rays_token(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # what ray.init leaves set when it turned token authentication on
    assert dashboard_line("http://127.0.0.1:8265") == "Ray dashboard: http://127.0.0.1:8265 (it asks for Ray's token: `ray get-auth-token` prints it)"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert dashboard_line("http://127.0.0.1:8265") == "Ray dashboard: http://127.0.0.1:8265"


def test_the_dashboard_flag_is_refused_for_a_cluster_joined_by_address():
    with pytest.raises(InputError, match=r"--ray-dashboard: .* --address ray://head:10001 has its own"):
        init_options("ray://head:10001", dashboard=True)


@pytest.mark.parametrize("argv", [["run", "study.yaml", "--ray-dashboard"], ["resume", "results/study", "--ray-dashboard"]])
def test_run_and_resume_take_the_flag(argv):
    assert build_parser().parse_args(argv).ray_dashboard is True
    assert build_parser().parse_args(argv[:2]).ray_dashboard is False


def test_without_the_full_ray_the_dashboard_is_refused_with_the_pip_line():
    try:
        import ray.dashboard.optional_deps  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("ray[default] is installed here: its dashboard can run")
    with pytest.raises(InputError, match=r'pip install "ray\[default\]"'):
        check_dashboard()


def test_run_hands_the_flag_to_ray_and_a_refusal_writes_nothing(tmp_path, capsys, monkeypatch):
    """The whole path of the flag, stopped where Ray would start: with --address it is refused
    (exit 2, one line) after the study's checks, before anything is written."""
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    assert main(["run", str(QUICKSTART), "--smoke", "--address", "auto", "--ray-dashboard", "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "--ray-dashboard:" in err and len(err.strip().splitlines()) == 1, err
    assert not results.exists()

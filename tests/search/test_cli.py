"""The command line's start-up: a command imports what it needs, not torch and Ray for --help."""

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "ray", "optuna", "timm", "pandas", "pyarrow")


def imported_by(code: str) -> list[str]:
    """The heavy modules a fresh interpreter has loaded after running `code`."""
    probe = f"import sys\n{code}\nprint('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return next(line for line in run.stdout.splitlines() if line.startswith("loaded:")).split()[1:]


HELP = ("run", "train", "export", "predict", "report", "dashboard", "data", "weights", "knobs")


@pytest.mark.parametrize("argv", [["--help"], *([command, "--help"] for command in HELP)])
def test_help_imports_no_heavy_module(argv):
    code = f"from search.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert imported_by(code) == []


def test_report_imports_neither_torch_nor_ray(tmp_path):
    from tests.search.report.make_results import make_results, standard_trials

    results = make_results(tmp_path / "toy", standard_trials())
    code = f"from search.cli import main\nassert main(['report', {str(results)!r}]) == 0"
    loaded = imported_by(code)
    assert "torch" not in loaded and "ray" not in loaded and "timm" not in loaded, loaded


def test_a_results_directory_study_loads_through_the_spec_without_torch(tmp_path):
    """study.yaml is read through StudySpec itself (one schema), trusted: no registry, no torch."""
    import yaml

    from search.results import ResultsDir, spec_hash
    from search.spec import resolved, validate_spec

    raw = yaml.safe_load((Path(__file__).parents[2] / "studies" / "quickstart.yaml").read_text())
    study = resolved(validate_spec(raw, "quickstart.yaml"))
    study["spec_hash"] = spec_hash(study)
    ResultsDir(tmp_path).claim(study)
    code = f"from search.results import ResultsDir\nspec, digest = ResultsDir({str(tmp_path)!r}).load_spec()\nassert spec.name == 'quickstart' and digest == {study['spec_hash']!r}"
    loaded = imported_by(code + "\nimport search.report")
    assert not {"torch", "timm", "ray"} & set(loaded), loaded

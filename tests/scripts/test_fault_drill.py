"""The fault drill's kill right after a prune, run as a user runs it: each run must end ok (no
marked fold trained again, the pruned trial PRUNED in journal and Parquet, resume exit 0).
Where the kill lands against Tune's state snapshots decides which case a run hits; in the
drill's own runs the restored state held the pruned trial every time, so two runs catch a
race that hits half the runs with probability 3/4, and the other faults' tests catch the rest."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "fault_drill.py"

pytestmark = pytest.mark.slow  # kills and resumes real studies on a local Ray


def test_a_kill_right_after_a_prune_leaves_the_trial_pruned_and_resume_finishes(tmp_path):
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    run = subprocess.run([sys.executable, str(SCRIPT), "--faults", "prune-kill", "--repeat", "2"], capture_output=True, text=True, timeout=900,
                         cwd=SCRIPT.parents[1], env=env)
    lines = [line for line in run.stdout.splitlines() if "after a prune" in line]
    assert len(lines) == 2, run.stdout + run.stderr
    assert all(line.startswith("ok ") for line in lines) and "resume exit 0" in lines[0] and "resume exit 0" in lines[1], "\n".join(lines)
    assert run.returncode == 0

"""`scripts/fault_drill.py --help` says what the drill does, whole: its description was the
docstring's first line, cut mid-sentence ("... recover it the")."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "fault_drill.py"


def test_help_gives_the_whole_description():
    run = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120, cwd=SCRIPT.parents[1])
    assert run.returncode == 0, run.stderr
    words = " ".join(run.stdout.split())
    assert "recover it the documented way, and print one line per fault with what survived." in words
    assert "duplicates rows in the results' part files beyond one per key" in words  # the counts it ends with

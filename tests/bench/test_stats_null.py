"""bench/stats_null.py runs and prints a row per protocol x test; the rates are for reading (a
few studies say nothing about them)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_stats_null_prints_a_row_per_protocol_and_test():
    done = subprocess.run([sys.executable, "bench/stats_null.py", "--studies", "20", "--draws", "100", "--batch", "10"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = re.findall(r"^(5-fold x 3 seeds|60/40 x 3 seeds) +(.+?) +([01]\.\d{3}) +([01]\.\d{3})  (yes|NO) +(printed.*|CSV only|not used|old pairing)$", done.stdout, re.M)
    tests = {(p, t.strip()) for p, t, *_ in rows}
    assert len(rows) == len(tests) == 10, done.stdout
    for protocol in ("5-fold x 3 seeds", "60/40 x 3 seeds"):
        for test in ("(fold, seed) t, old", "image bootstrap CI", "cluster bootstrap CI"):
            assert (protocol, test) in tests, done.stdout
    assert {("5-fold x 3 seeds", "fold-paired t"), ("5-fold x 3 seeds", "fold-paired Wilcoxon")} <= tests

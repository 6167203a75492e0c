"""The benchmarks run on the CPU and print what they promise. No timing is asserted: the
numbers are for reading; these tests keep the harness working for the GPU runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains for long or starts Ray: not in the fast tier (pytest -m "not slow")

ROOT = Path(__file__).parents[2]
NUMBER = r"[0-9]+(?:\.[0-9]+)?"


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_throughput_prints_both_pipelines_and_their_ratio(tmp_path):
    out = _run("bench/throughput.py", "--mode", "cpu", "--data", str(tmp_path / "faces"))
    assert re.search(rf"batch +32: upstream-style +{NUMBER} images/s", out), out
    line = re.search(rf"fbp compile=off +({NUMBER}) images/s \(training steps\), +({NUMBER}) end to end.*ratio +({NUMBER})x steps.*TFLOP/s", out)
    assert line and all(float(v) > 0 for v in line.groups()), out


def test_packing_prints_one_line_per_count(tmp_path):
    out = _run("bench/packing.py", "--mode", "cpu", "--trials", "1,2", "--data", str(tmp_path / "faces"))
    totals = re.findall(rf"^(\d) per device: +({NUMBER}) images/s in total", out, re.M)
    assert [k for k, _ in totals] == ["1", "2"] and all(float(v) > 0 for _, v in totals), out


def test_precision_prints_both_and_the_paired_difference():
    out = _run("bench/precision.py", "--mode", "cpu")
    assert re.search(rf"^fp32: PC -?{NUMBER} ± {NUMBER}", out, re.M) and re.search(rf"^bf16: PC -?{NUMBER} ± {NUMBER}", out, re.M), out
    assert "bf16 - fp32, paired: PC" in out


def test_predict_speed_prints_decode_forward_predict_and_the_ratios():
    out = _run("bench/predict_speed.py", "--n", "24", "--large", "2", "--image-size", "64", "--batch-size", "8")
    assert re.search(rf"decode alone, 350 -> 64 px: full +{NUMBER} images/s, draft +{NUMBER} images/s", out), out
    assert re.search(rf"decode alone, 2000 -> 64 px: full +{NUMBER} images/s, draft +{NUMBER} images/s \(draft {NUMBER}x faster\)", out), out
    assert re.search(rf"^forward alone: +{NUMBER} images/s", out, re.M), out
    assert re.search(rf"^sequential \(before\): +{NUMBER} images/s, {NUMBER}x max\(decode, forward\)", out, re.M), out
    assert re.search(rf"^predict end to end: +{NUMBER} images/s, {NUMBER}x max\(decode, forward\)", out, re.M), out


def test_evaluation_prints_each_timing_and_the_ratio_to_a_bare_forward(tmp_path):
    out = _run("bench/evaluation.py", "--mode", "cpu", "--repeats", "2", "--data", str(tmp_path / "faces"))
    for label in ("bare forward", "evaluation", "per-epoch views"):
        assert re.search(rf"^{label} +{NUMBER} s +{NUMBER} images/s +{NUMBER}x bare forward", out, re.M), out
    assert re.search(rf"evaluation / bare forward: {NUMBER} \(bar: <= 1.25\); per-epoch views / evaluation: {NUMBER}", out), out


def test_gpu_check_in_cpu_mode_runs_every_step_into_at_most_8_files(tmp_path):
    """The GPU harness's CPU mode: the same steps as on a GPU, each exit 0, at most 8 files."""
    out_dir = tmp_path / "out"
    done = subprocess.run(["bash", "bench/gpu_check.sh"], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "MODE": "cpu", "OUT": str(out_dir), "DEADLINE": "600"})
    assert done.returncode == 0, done.stderr[-2000:]
    steps = (out_dir / "steps.txt").read_text()
    for step in ("data", "throughput", "evaluation", "train", "predict", "packing", "precision"):
        assert re.search(rf"^== {step}: exit 0 after \d+ s", steps, re.M), steps
    assert len(list(out_dir.iterdir())) <= 8

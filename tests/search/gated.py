"""A study whose ASHA prunes a known trial, every time: the weak trial's first fold is reported
only once the strong trial's first fold is in Parquet, so ASHA has the strong value at its first
rung when the weak one arrives (the first to arrive at a rung is never stopped). The strong
trial's second fold is then held until the driver is killed: the study cannot end, and Tune
cannot take its closing state snapshot, before the kill.

Folds are simulated (bench.scale.simulated_kfold: a known PC per config, no torch), so a driver
runs in seconds. Run as a driver (the test kills it, so it is a process of its own):

    python -m tests.search.gated run STUDY.yaml RESULTS
    python -m tests.search.gated resume RESULTS

GATE names the folder whose `*-fold1.parquet` releases the weak trial (RESULTS/folds.parquet);
without it (on resume) nothing is held. TRACE, a file each trained fold appends its trial's alpha and its number to. The workers read
both from the environment they inherit from the driver.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

RUN_FOLDS = "tests.search.gated:gated_kfold"
GATE = "FBP_TEST_GATE"
TRACE = "FBP_TEST_TRACE"
WEAK_ALPHA = 0.0  # bench.scale.surface: alpha 0 is 0.05 PC below alpha 2 (noise sd 0.01)
STRONG_ALPHA = 2.0


def study(name: str = "gated") -> dict:
    """Two trials (the strong baseline, then the weak one) x 3 folds, both at once, ASHA on folds."""
    from fbp.data.synthetic import SMALL

    return {
        "name": name,
        "data": {"dataset": "synthetic", "options": dict(SMALL), "folds": [1, 2, 3]},
        "model": {"backbone": "test_resnet", "pretrained": False},
        "train": {"epochs": 2, "device": "cpu"},
        "search": {"sampler": "random", "num_trials": 2, "seed": 0, "space": {"loss.alpha": {"float": [0.0, 4.0]}},
                   "baseline": [{"loss.alpha": STRONG_ALPHA}, {"loss.alpha": WEAK_ALPHA}]},
        "scheduler": {"name": "asha", "grace_folds": 1, "reduction_factor": 2},
        "resources": {"cpu": 1, "gpu": 0, "max_concurrent": 2},
    }


def _wait_for_a_first_fold(folder: Path) -> None:
    while not any(folder.glob("*-fold1.parquet")):
        time.sleep(0.05)


def gated_kfold(config, on_fold=None, skip=frozenset(), on_progress=None, keep_models=False):
    """bench.scale.simulated_kfold, the weak trial's first fold held back until the gate opens."""
    from bench.scale import simulated_kfold

    gate, trace = os.environ.get(GATE), os.environ.get(TRACE)

    def report(result) -> None:
        if trace:
            with open(trace, "a") as f:
                f.write(f"{config.loss.alpha} {result.fold}\n")
        if gate and result.fold == 1 and config.loss.alpha == WEAK_ALPHA:
            _wait_for_a_first_fold(Path(gate))
        while gate and result.fold > 1 and config.loss.alpha == STRONG_ALPHA:
            time.sleep(1)  # until the driver and its Ray are killed
        if on_fold is not None:
            on_fold(result)

    return simulated_kfold(config, on_fold=report, skip=skip, on_progress=on_progress, keep_models=keep_models)


def main(argv: list[str]) -> int:
    from rich.console import Console

    from search.runner import resume_study, run_study

    quiet = Console(quiet=True)
    if argv[0] == "run":
        from search.spec import load_spec

        run_study(load_spec(Path(argv[1])), argv[1], Path(argv[2]), console=quiet, run_folds=RUN_FOLDS)
    else:
        resume_study(Path(argv[1]), console=quiet, run_folds=RUN_FOLDS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The Ray Tune trainable: one trial = `fbp.train.run_kfold` on the base config + params.

After each fold it reports the running means over its completed folds (ASHA's rungs are folds)
with the fold's rows for the Parquet tables, and a checkpoint that lists the folds done, so a
trial restarted by Ray (a node died) continues at its next fold instead of starting over.
The driver, not the worker, writes the Parquet files: results need no shared file system.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from ray import tune

from fbp.train import FoldResult, run_kfold
from search.results import fold_frames
from search.spec import StudySpec

STATE = "folds_done.json"


def _done_folds() -> list[dict]:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return []
    with checkpoint.as_directory() as folder:
        return json.loads((Path(folder) / STATE).read_text())


def running_means(done: list[dict]) -> dict[str, float]:
    """Mean of each metric over the completed folds (NaN PCs count as NaN, not as zero)."""
    return {m: float(np.mean([d[m] for d in done])) for m in ("pc", "mae", "rmse")}


def train_trial(params: dict, spec_json: dict, meta: dict) -> None:
    spec = StudySpec.model_validate(spec_json)
    config = spec.trial_config(params)
    trial_id = tune.get_context().get_trial_id()
    done = _done_folds()

    def on_fold(result: FoldResult) -> None:
        done.append({"fold": result.fold, "pc": result.pc, "mae": result.mae, "rmse": result.rmse})
        trial = {**meta, "trial_id": trial_id, "seed": config.train.seed, **{f"param.{k}": v for k, v in params.items()}}
        frames = {name: frame.to_dict(orient="list") for name, frame in fold_frames(result, trial).items()}
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / STATE).write_text(json.dumps(done))
            tune.report(
                {**running_means(done), "folds_done": len(done), "fold": result.fold, "fbp_rows": frames},
                checkpoint=tune.Checkpoint.from_directory(folder),
            )

    run_kfold(config, on_fold=on_fold, skip={d["fold"] for d in done})

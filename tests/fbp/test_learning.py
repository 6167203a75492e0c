"""The acceptance test of the trainer: on synthetic faces, on 2 CPU cores, a small timm model
learns the score from the drawn traits (test PC >= 0.7 averaged over the folds)."""

import numpy as np
import pytest

from fbp.config import validate_config
from fbp.kfold import run_kfold

pytestmark = pytest.mark.slow  # trains for long or starts Ray: not in the fast tier (pytest -m "not slow")

LEARNS = {
    "data": {"dataset": "synthetic", "options": {"n": 2000, "size": 96, "seed": 0}, "folds": [1, 2], "image_size": 64, "resize": 73},
    "model": {"backbone": "test_resnet", "pretrained": False},
    "train": {
        "epochs": 15, "batch_size": 32, "optimizer": "adamw", "lr": 0.003, "weight_decay": 0.0001,
        "schedule": {"name": "onecycle"}, "augment": {"rotation": 10}, "device": "cpu", "eval_every": 5,
    },
    "eval": {"view": "center_crop"},  # as studies/quickstart.yaml: crops of the 73 px face; at 64 px the 8/7 zoom is worth ~0.03 PC
    # as studies/quickstart.yaml: eq. 6 weighs this split's 3-face outer class 276; divided by N
    # (eq. 3, the default) its spikes drown the other terms (PC 0.57 against 0.73 over folds 1-2)
    "loss": {"ce_reduction": "weighted_mean"},
}


def test_a_small_model_learns_the_synthetic_faces():
    results = run_kfold(validate_config(LEARNS))
    pcs = [r.pc for r in results]
    assert len(pcs) == 2
    assert np.mean(pcs) >= 0.7, f"test PC per fold {pcs}"
    # and it learned from the images, not from the score distribution: MAE well below the
    # spread of the scores (std ~0.6 on this set)
    assert np.mean([r.mae for r in results]) < 0.4

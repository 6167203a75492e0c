"""What a k-fold run hands back: a `FoldResult` per fold run and `TrainProgress` as it goes.

Plain dataclasses without torch, so that code which only carries, stores or simulates results
(the driver of a study, the report, a benchmark's simulated trials) need not import it.
`fbp.kfold` makes them; `fbp.kfold` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class FoldResult:
    fold: int  # 1-based, as the split files number them
    mae: float  # the test fold's, at the selected epoch
    rmse: float
    pc: float
    n_train: int
    n_test: int
    epochs_run: int
    selected_epoch: int  # 1-based epoch whose weights gave the metrics
    select: str  # eval.select; "test_oracle" means the test fold chose the epoch
    train_seconds: float  # wall time of the fold, evaluation included
    images_per_second: float  # training images per second of training steps
    device: str
    started_at: float = 0.0  # unix time the fold began
    finished_at: float = 0.0
    seed: int = 0  # train.seed of this run (train.repeats runs a fold with seed, seed + 1, ...)
    val_mae: float = float("nan")  # the held-out validation part's, at the selected epoch (eval.holdout)
    val_rmse: float = float("nan")
    val_pc: float = float("nan")
    curves: list[dict] = field(default_factory=list)  # one row per epoch
    predictions: dict[str, list] = field(default_factory=dict)  # image, subset, y_true, y_pred, y_reg, y_exp
    model: SelectedModel | None = None  # the selected epoch's weights, when run with keep_models


@dataclass
class SelectedModel:
    """What a fold's selected model is, for keeping it and predicting with it later
    (`fbp.export` writes it): the weights `eval.select` chose, on the CPU, and what the
    weights alone do not say."""

    state: dict[str, torch.Tensor]  # FBPNet.state_dict() at the selected epoch, CPU copies
    class_values: tuple[float, ...]  # v_k of the expectation head, fitted on this fold's training split
    mean: tuple[float, ...]  # the input normalization the model was trained with (FBPNet.mean, .std)
    std: tuple[float, ...]


@dataclass(frozen=True)
class TrainProgress:
    """Where a `run_kfold` (or `fit_fold`) call stands, for a progress display or a log line."""

    event: str  # "prepare" (before decoding the images), "ready" (images decoded), "step" (mid-epoch), "epoch" (an epoch ended)
    fold: int  # 1-based fold number; 0 for prepare/ready
    fold_position: int  # 1..folds_total: which of this call's folds it is; 0 for prepare/ready
    folds_total: int  # folds this run_kfold call trains (skip excluded)
    epoch: int  # 1-based; 0 for prepare/ready
    epochs: int
    step: int  # steps done in this epoch (a fold's first event is step 0 of epoch 1)
    steps: int  # steps per epoch
    loss: float | None  # the epoch's mean training loss: "epoch" events only
    images_per_second: float | None  # training throughput of this fold so far (steps only, evaluation excluded)
    seconds: float  # since run_kfold began
    seconds_left: float | None  # estimate for the rest of this run_kfold call, None until one epoch has ended
    message: str = ""  # prepare/ready: e.g. "decoding 5500 images at 256 px"
    test: dict | None = None  # test metrics (mae, rmse, pc) when this epoch was evaluated, "epoch" events only

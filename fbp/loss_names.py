"""The names of the losses and of the terms they log, readable without torch.

`fbp.config` checks `loss.name` against `LOSS_NAMES`, and `fbp.losses` registers one loss under
each (a test holds the two equal), so the config needs neither torch nor an import of
`fbp.losses`, which imports `fbp.config` for `LossConfig`: no circle. The per-epoch rows name
each logged term `train_<term>` (`train_name`); the driver's size estimate and the scale
benchmark write the same columns without importing torch.
"""

from __future__ import annotations

LOSS_NAMES = ("combo", "l1", "mse", "smooth_l1", "smooth_huber")
"""Every loss `loss.name` may name: ComboLoss and the paper's Table 4 regression baselines."""

TOTAL = "loss"
"""The term that is the weighted sum of the others: what the optimizer steps on."""

REG, EXP, CE = "l1_reg", "l1_exp", "ce"
COMBO_TERMS = (REG, EXP, CE)
"""ComboLoss's terms: alpha L_reg, beta L_exp, gamma L_cls (a regression baseline logs one term,
named as the loss: `l1`, `mse` ...)."""

TRAIN = "train_"
"""The prefix of a loss term in the per-epoch rows, beside `test_<metric>` (`fbp.metrics`)."""


def train_name(term: str) -> str:
    """The per-epoch column of a loss term: `l1_reg` -> `train_l1_reg`."""
    return f"{TRAIN}{term}"

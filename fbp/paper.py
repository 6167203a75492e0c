"""Published figures of the ComboLoss paper, as data, for the report to show beside ours.

Xu & Xiang, "ComboLoss for Facial Attractiveness Analysis with Squeeze-and-Excitation
Networks", arXiv:2010.10721 (2020). The numbers below are the ones the authors publish with
their code (README of github.com/lucasxlu/ComboLoss at commit 006c2f4), which carries the
paper's results tables. The headline SCUT-FBP5500 5-fold figure (PC 0.9199) agrees with the
paper's abstract (+0.57% over the previous best, R3CNN's 0.9142).

What is deliberately left out, because it could not be checked against the paper:
- the paper's own table numbers (rows are grouped by dataset and protocol instead);
- rows that appear twice with different figures in the README (a second run of ComboLoss
  alpha=2, beta=1 at PC 0.9066, and the two alpha=1, beta=2 rows);
- figures of earlier README versions, which differ (e.g. 5-fold PC 0.9177).

Every published figure comes from the upstream code, which picks each fold's epoch on its test
fold (what `eval.select: test_oracle` reproduces), so compare them with our test_oracle rows.
A row's `config` holds the dotted TrialConfig paths it corresponds to, so that the report can
put it beside our row with the same value of a knob.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SOURCE = "Xu & Xiang 2020 (arXiv:2010.10721), figures as published in github.com/lucasxlu/ComboLoss README @006c2f4"
EPOCH_SELECTION = "test_oracle"
"""How the published figures chose the epoch: on the test fold (upstream code)."""

SERESNEXT50 = "seresnext50_32x4d"


@dataclass(frozen=True)
class PublishedRow:
    table: str
    """Which published comparison the row belongs to."""
    dataset: str
    """`fbp.data` dataset name."""
    protocol: str
    """The dataset's protocol name in `fbp.data`."""
    method: str
    mae: float | None
    rmse: float | None
    pc: float
    config: dict[str, Any] = field(default_factory=dict)
    """Dotted TrialConfig paths this row corresponds to (empty for other authors' methods)."""
    source: str = SOURCE


def _combo(alpha: float, beta: float, gamma: float, backbone: str = SERESNEXT50, **extra: Any) -> dict[str, Any]:
    return {"model.backbone": backbone, "loss.name": "combo", "loss.alpha": alpha, "loss.beta": beta, "loss.gamma": gamma, **extra}


_SOTA = "SCUT-FBP5500 5-fold: comparison with prior methods"
_LOSSES = "SCUT-FBP5500 60/40: loss functions and ComboLoss weights"
_ABLATION = "SCUT-FBP5500 60/40: weighted cross-entropy ablation"

ROWS: tuple[PublishedRow, ...] = (
    # SCUT-FBP5500, the official 5-fold cross-validation (mean of the five folds).
    PublishedRow(_SOTA, "scut-fbp5500", "5fold", "AlexNet (Liang et al. 2018)", 0.2651, 0.3481, 0.8634),
    PublishedRow(_SOTA, "scut-fbp5500", "5fold", "ResNet-18 (Liang et al. 2018)", 0.2419, 0.3166, 0.8900),
    PublishedRow(_SOTA, "scut-fbp5500", "5fold", "ResNeXt-50 (Liang et al. 2018)", 0.2291, 0.3017, 0.8997),
    PublishedRow(_SOTA, "scut-fbp5500", "5fold", "HMTNet (ICIP 2019)", 0.2380, 0.3141, 0.8912),
    PublishedRow(_SOTA, "scut-fbp5500", "5fold", "AaNet (IJCAI 2019)", 0.2236, 0.2954, 0.9055),
    PublishedRow(_SOTA, "scut-fbp5500", "5fold", "R2-ResNeXt (ICPR 2018)", 0.2416, 0.3046, 0.8957),
    PublishedRow(_SOTA, "scut-fbp5500", "5fold", "R3CNN (IEEE TAC 2019)", 0.2120, 0.2800, 0.9142),
    PublishedRow(_SOTA, "scut-fbp5500", "5fold", "ComboLoss, SEResNeXt50", 0.2050, 0.2704, 0.9199, _combo(2.0, 1.0, 1.0)),
    # SCUT-FBP5500, the official 60% / 40% split.
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "SEResNeXt50, L1", 0.2212, 0.2941, 0.9012, {"model.backbone": SERESNEXT50, "loss.name": "l1"}),
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "SEResNeXt50, MSE", 0.2189, 0.2907, 0.9041, {"model.backbone": SERESNEXT50, "loss.name": "mse"}),
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "SEResNeXt50, SmoothL1", 0.2204, 0.2901, 0.9050, {"model.backbone": SERESNEXT50, "loss.name": "smooth_l1"}),
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "ComboLoss a=2 b=1 g=1, SEResNeXt50", 0.2126, 0.2813, 0.9117, _combo(2.0, 1.0, 1.0)),
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "ComboLoss a=1 b=1 g=1, SEResNeXt50", 0.2135, 0.2818, 0.9099, _combo(1.0, 1.0, 1.0)),
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "ComboLoss a=3 b=1 g=1, SEResNeXt50", 0.2190, 0.2894, 0.9053, _combo(3.0, 1.0, 1.0)),
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "ComboLoss a=1 b=3 g=1, SEResNeXt50", 0.2171, 0.2862, 0.9071, _combo(1.0, 3.0, 1.0)),
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "ComboLoss a=1 b=1 g=1, ResNet-18", 0.2215, 0.2936, 0.9021, _combo(1.0, 1.0, 1.0, "resnet18")),
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "ComboLoss a=1 b=2 g=1, ResNet-18", 0.2202, 0.2907, 0.9041, _combo(1.0, 2.0, 1.0, "resnet18")),
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "ComboLoss a=1 b=3 g=1, ResNet-18", 0.2252, 0.2991, 0.8980, _combo(1.0, 3.0, 1.0, "resnet18")),
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "ComboLoss a=2 b=1 g=1, ResNet-18", 0.2557, 0.3362, 0.8780, _combo(2.0, 1.0, 1.0, "resnet18")),
    PublishedRow(_LOSSES, "scut-fbp5500", "60-40", "ComboLoss a=3 b=1 g=1, ResNet-18", 0.2513, 0.3364, 0.8788, _combo(3.0, 1.0, 1.0, "resnet18")),
    PublishedRow(_ABLATION, "scut-fbp5500", "60-40", "ComboLoss without class-weighted cross-entropy", 0.2115, 0.2814, 0.9099),
    # SCUT-FBP (500 images) and HotOrNot: mean of five folds / the five official splits.
    PublishedRow("SCUT-FBP 5-fold", "scut-fbp", "5fold", "ComboLoss, SEResNeXt50", 0.2441, 0.3122, 0.9090, _combo(2.0, 1.0, 1.0)),
    PublishedRow("HotOrNot 5 splits", "hotornot", "5split", "ComboLoss, SEResNeXt50", 0.8213, 1.0412, 0.5029, _combo(2.0, 1.0, 1.0)),
)


def published(dataset: str, protocol: str) -> list[PublishedRow]:
    """The published rows measured on this dataset under this protocol (maybe none)."""
    return [r for r in ROWS if r.dataset == dataset and r.protocol == protocol]

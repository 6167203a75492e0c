"""A stand-in for `fbp.paper.TABLES` while this branch predates it (another branch rewrites
fbp/paper.py with this API): the paper's Tables 1-5 as printed (shared/paper/comboloss-paper.md),
rows in the paper's order, with our configuration on the rows we reproduce.

`installed()` puts it in place only where fbp.paper has no TABLES: once the real one is there,
the tests run against it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

SERESNEXT50 = "seresnext50_32x4d"
COMBO = {"model.backbone": SERESNEXT50, "loss.name": "combo", "loss.alpha": 2.0, "loss.beta": 1.0, "loss.gamma": 1.0}


@dataclass(frozen=True)
class PublishedRow:
    method: str
    mae: float | None
    rmse: float | None
    pc: float
    config: dict[str, Any] = field(default_factory=dict)
    reference: str = ""


@dataclass(frozen=True)
class PaperTable:
    number: int
    caption: str
    dataset: str
    protocol: str
    metrics: tuple[str, ...]
    rows: tuple[PublishedRow, ...]


def _pc(method: str, pc: float, reference: str = "", config: dict | None = None) -> PublishedRow:
    return PublishedRow(method, None, None, pc, config or {}, reference)


TABLES: dict[int, PaperTable] = {
    1: PaperTable(1, "Performance comparison on SCUT-FBP.", "scut-fbp", "5fold", ("pc",), (
        _pc("Combined Features+Gaussian Regression", 0.6482, "[4]"), _pc("CNN-based", 0.8187, "[4]"), _pc("Liu et al.", 0.6938, "[20]"),
        _pc("Xu et al.", 0.8570, "[5]"), _pc("KFME", 0.7988, "[21]"), _pc("RegionScatNet", 0.83, "[14]"), _pc("PI-CNN", 0.87, "[11]"),
        _pc("CRNet", 0.8723, "[6]"), _pc("HMTNet + Ridge Regression", 0.8977, "[7]"), _pc("ComboLoss (Ours)", 0.9090, config=COMBO),
    )),
    2: PaperTable(2, "Performance comparison on HotOrNot Dataset.", "hotornot", "5split", ("pc",), (
        _pc("Eigenface", 0.180, "[3]"), _pc("Two Layer Model", 0.438, "[3]"), _pc("Multiscale Model", 0.458, "[3]"), _pc("S. Wang et al.", 0.437, "[22]"),
        _pc("Xu et al.", 0.468, "[5]"), _pc("CRNet", 0.482, "[6]"), _pc("ComboLoss (Ours)", 0.503, config=COMBO),
    )),
    3: PaperTable(3, "Performance comparison on SCUT-FBP5500.", "scut-fbp5500", "5fold", ("mae", "rmse", "pc"), (
        PublishedRow("ResNeXt-50", 0.2291, 0.3017, 0.8997, reference="[16]"), PublishedRow("ResNet-18", 0.2419, 0.3166, 0.8900, reference="[17]"),
        PublishedRow("AlexNet", 0.2651, 0.3481, 0.8634, reference="[12]"), PublishedRow("HMTNet", 0.2380, 0.3141, 0.8912, reference="[7]"),
        PublishedRow("AaNet", 0.2236, 0.2954, 0.9055, reference="[8]"), PublishedRow("R^2 ResNeXt", 0.2416, 0.3046, 0.8957, reference="[23]"),
        PublishedRow("R^3 CNN", 0.2120, 0.2800, 0.9142, reference="[13]"), PublishedRow("ComboLoss (Ours)", 0.2050, 0.2704, 0.9199, COMBO),
    )),
    4: PaperTable(4, "Evaluation on different loss functions.", "scut-fbp5500", "60-40", ("mae", "rmse", "pc"), (
        PublishedRow("L1 Loss", 0.2191, 0.2918, 0.9030, {"model.backbone": SERESNEXT50, "loss.name": "l1"}),
        PublishedRow("MSE Loss", 0.2195, 0.2947, 0.9008, {"model.backbone": SERESNEXT50, "loss.name": "mse"}),
        PublishedRow("Smooth L1 Loss", 0.2194, 0.2869, 0.9064, {"model.backbone": SERESNEXT50, "loss.name": "smooth_l1"}),
        PublishedRow("Smooth Huber Loss", 0.2196, 0.2903, 0.9052, {"model.backbone": SERESNEXT50, "loss.name": "smooth_huber"}, "[7]"),
        PublishedRow("ComboLoss (Ours)", 0.2126, 0.2813, 0.9117, COMBO),
    )),
    5: PaperTable(5, "Evaluation on different backbone architecture.", "scut-fbp5500", "60-40", ("mae", "rmse", "pc"), (
        PublishedRow("ResNet18", 0.2313, 0.3054, 0.8946, {"model.backbone": "resnet18", "loss.name": "mse"}),
        PublishedRow("ResNet18 + ComboLoss", 0.2202, 0.2907, 0.9041, {**COMBO, "model.backbone": "resnet18"}),
        PublishedRow("SEResNeXt50", 0.2195, 0.2947, 0.9008, {"model.backbone": SERESNEXT50, "loss.name": "mse"}),
        PublishedRow("SEResNeXt50 + ComboLoss", 0.2126, 0.2813, 0.9117, COMBO),
    )),
}


@contextlib.contextmanager
def installed():
    """fbp.paper.TABLES, the stand-in where the module has none yet; yields the tables in use."""
    from fbp import paper

    if getattr(paper, "TABLES", None):
        yield paper.TABLES
        return
    paper.TABLES = TABLES
    try:
        yield TABLES
    finally:
        del paper.TABLES


def install() -> None:
    """For a subprocess: the stand-in in place for the rest of the interpreter's life, if needed."""
    from fbp import paper

    if not getattr(paper, "TABLES", None):
        paper.TABLES = TABLES

"""Published figures of the ComboLoss paper, as data, for the report and the paper document.

Xu & Xiang, "ComboLoss for Facial Attractiveness Analysis with Squeeze-and-Excitation
Networks", arXiv:2010.10721 (2020). Where each figure comes from:

- `TABLES`: every row of the paper's Tables 1-5, in the paper's order and exactly as printed
  (the text as printed is kept, so 0.83 stays 0.83 and HotOrNot's 0.503 keeps three decimals),
  other authors' methods included with the reference number the paper prints and that
  reference's short name (`REFERENCES`). Tables 1 and 2 print PC only. Tables 1-3 are each
  dataset's comparison protocol (SCUT-FBP and SCUT-FBP5500 5-fold, HotOrNot's 5 splits);
  Tables 4 and 5 are ablations on SCUT-FBP5500's 60%/40% split (section 3.4).
- `README_ROWS`: figures the authors publish only in the README of their code
  (github.com/lucasxlu/ComboLoss at commit 006c2f4), never mixed into a paper table: the
  ComboLoss alpha/beta grid on the 60/40 split, ComboLoss without class-weighted
  cross-entropy, and SCUT-FBP / HotOrNot rows that add MAE and RMSE to the paper's PC.

Where paper and README disagree, the paper wins and the README row is left out: the README's
SEResNeXt50 L1 / MSE / SmoothL1 rows (PC 0.9012 / 0.9041 / 0.9050, against Table 4's
0.9030 / 0.9008 / 0.9064) and its ResNet-18 alpha=2 beta=1 row (PC 0.8780, against Table 5's
0.9041 for ResNet18 + ComboLoss with the paper's alpha=2, beta=1, gamma=1). README rows that
repeat a paper row (same configuration, same figures) are the paper row; the README's ResNet-18
alpha=1, beta=2 row, whose figures Table 5 prints for alpha=2, beta=1, stays as the README's.
The README's figures are kept as this module had them (four decimals). Also left out: rows the
README lists twice with different figures (a second ComboLoss alpha=2, beta=1 run at PC 0.9066,
the two alpha=1, beta=2 SEResNeXt50 rows) and earlier README versions (e.g. 5-fold PC 0.9177).

Every figure of the ComboLoss authors, paper and README alike, was obtained with the upstream
code, which chooses each fold's epoch on that fold's test part (what `eval.select:
test_oracle` reproduces, `EPOCH_SELECTION`); the report says so beside them. Compare them with
our test_oracle rows. A row's `config` holds the dotted TrialConfig paths of our configuration
that corresponds to it, so that the report can put it beside our row with the same value of a
knob; other authors' rows have none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fbp.metrics import NAMES

PAPER = "Xu & Xiang 2020 (arXiv:2010.10721)"
README = "github.com/lucasxlu/ComboLoss README @006c2f4"
SOURCE = f"{PAPER}, Tables 1-5; rows marked README: {README}"
"""Where the published figures come from, in one line (the report's footnote)."""
EPOCH_SELECTION = "test_oracle"
"""How the published figures chose the epoch: on the test fold (upstream code)."""

SERESNEXT50 = "seresnext50_32x4d"
RESNET18 = "resnet18"

REFERENCES: dict[str, str] = {
    "[3]": "Gray et al. 2010 (HotOrNot, ECCV)",
    "[4]": "Xie et al. 2015 (SCUT-FBP, SMC)",
    "[5]": "Xu et al. 2018 (rich deep features, arXiv:1803.07253)",
    "[6]": "Xu et al. 2018 (CRNet, PCM)",
    "[7]": "Xu et al. 2019 (HMTNet, ICIP)",
    "[8]": "Lin et al. 2019 (AaNet, IJCAI)",
    "[11]": "Xu et al. 2017 (PI-CNN, ICASSP)",
    "[12]": "Krizhevsky et al. 2012 (AlexNet, NIPS)",
    "[13]": "Lin et al. 2019 (R3CNN, IEEE TAC)",
    "[14]": "Liu et al. 2017 (label distribution learning, ICME)",
    "[16]": "Xie et al. 2017 (ResNeXt, CVPR)",
    "[17]": "He et al. 2016 (ResNet, CVPR)",
    "[20]": "Liu et al. 2017 (2.5D landmarks, Neurocomputing)",
    "[21]": "Deias 2017 (manifold semi-supervised learning)",
    "[22]": "Wang et al. 2014 (attractiveness-aware encoders, ACM MM)",
    "[23]": "Lin et al. 2018 (R2-ResNeXt, ICPR)",
}
"""The paper's reference list, short names of the entries its tables cite, by number as printed."""

TABLE_NUMBERS = (1, 2, 3, 4, 5)

METRICS = NAMES
"""The metrics a row may print, by their `fbp.metrics` names, in the tables' column order."""


@dataclass(frozen=True)
class PublishedRow:
    """One published row: a method's figures as printed, where they are printed, and our
    configuration that corresponds."""

    source: Literal["paper", "readme"]
    """`paper`: a row of one of the paper's tables; `readme`: only in the upstream README."""
    table: int | None
    """The paper table (1-5) the row belongs to; None for a README row."""
    caption: str
    """The paper table's caption as printed; for a README row, what the README lists."""
    dataset: str
    """`fbp.data` dataset name."""
    protocol: str
    """The dataset's protocol name in `fbp.data`."""
    method: str
    """The method as printed (without its reference number)."""
    ref: str
    """The reference number as printed beside the method (`[16]`), or "" for none."""
    printed: dict[str, str]
    """Metric name (`mae`, `rmse`, `pc`) -> the figure as printed (`"0.83"`); only those printed."""
    config: dict[str, Any] = field(default_factory=dict)
    """Dotted TrialConfig paths this row corresponds to (empty for other authors' methods)."""

    def __post_init__(self) -> None:
        if (self.source == "paper") != (self.table in TABLE_NUMBERS) or self.source not in ("paper", "readme"):
            raise ValueError(f"a paper row needs a table in {TABLE_NUMBERS}, a readme row none, but got (source={self.source!r}, table={self.table!r})")
        if self.ref and self.ref not in REFERENCES:
            raise ValueError(f"reference {self.ref!r} of {self.method!r} is not in REFERENCES; known: {', '.join(REFERENCES)}")
        unknown = set(self.printed) - set(METRICS)
        if unknown or "pc" not in self.printed:
            raise ValueError(f"printed metrics must include pc and be among {METRICS}, but got {sorted(self.printed)} for {self.method!r}")
        for metric, text in self.printed.items():
            try:
                float(text)
            except ValueError:
                raise ValueError(f"{metric} of {self.method!r} must be a number as printed, but got {text!r}") from None

    def value(self, metric: str) -> float | None:
        """The figure of `metric` as a number, None where the row prints none."""
        text = self.printed.get(metric)
        return None if text is None else float(text)

    @property
    def mae(self) -> float | None:
        return self.value("mae")

    @property
    def rmse(self) -> float | None:
        return self.value("rmse")

    @property
    def pc(self) -> float:
        return float(self.printed["pc"])

    @property
    def ref_name(self) -> str:
        """The cited work's short name from the paper's reference list ("" for none)."""
        return REFERENCES.get(self.ref, "")

    @property
    def name(self) -> str:
        """The method with its reference number, as the table's line prints it."""
        return f"{self.method} {self.ref}" if self.ref else self.method

    @property
    def where(self) -> str:
        """`Table 3` or `README`."""
        return f"Table {self.table}" if self.source == "paper" else "README"

    @property
    def citation(self) -> str:
        """Where the figures are published and whom the row cites, in one line."""
        where = f"{PAPER}, Table {self.table}" if self.source == "paper" else README
        return f"{where}; {self.ref} {self.ref_name}" if self.ref else where


@dataclass(frozen=True)
class PaperTable:
    """One of the paper's results tables, rows in the paper's order."""

    number: int
    caption: str
    """As printed after "Table N." """
    dataset: str
    protocol: str
    metrics: tuple[str, ...]
    """The metric columns printed, by `fbp.metrics` names."""
    rows: tuple[PublishedRow, ...]


def _combo(backbone: str = SERESNEXT50, **extra: Any) -> dict[str, Any]:
    """ComboLoss with the paper's weights (section 2.1: alpha=2, beta=1, gamma=1)."""
    return {"model.backbone": backbone, "loss.name": "combo", "loss.alpha": 2.0, "loss.beta": 1.0, "loss.gamma": 1.0, **extra}


def _regression(loss: str, backbone: str = SERESNEXT50) -> dict[str, Any]:
    return {"model.backbone": backbone, "loss.name": loss}


def _table(number: int, caption: str, dataset: str, protocol: str, metrics: tuple[str, ...], *rows: tuple) -> PaperTable:
    """A table from its rows written as printed: (method, ref, figures in `metrics` order[, config])."""
    built = []
    for method, ref, figures, *config in rows:
        values = figures.split()
        if len(values) != len(metrics):
            raise ValueError(f"Table {number}, {method!r}: {len(values)} figures for the metrics {metrics}")
        built.append(PublishedRow("paper", number, caption, dataset, protocol, method, ref, dict(zip(metrics, values)), *config))
    return PaperTable(number, caption, dataset, protocol, metrics, tuple(built))


_PC = ("pc",)
_ALL = METRICS

TABLES: dict[int, PaperTable] = {t.number: t for t in (
    # SCUT-FBP has no official split: our 5fold is a seeded stratified one, not the authors'.
    _table(
        1, "Performance comparison on SCUT-FBP.", "scut-fbp", "5fold", _PC,
        ("Combined Features+Gaussian Regression", "[4]", "0.6482"),
        ("CNN-based", "[4]", "0.8187"),
        ("Liu et al.", "[20]", "0.6938"),
        ("Xu et al.", "[5]", "0.8570"),
        ("KFME", "[21]", "0.7988"),
        ("RegionScatNet", "[14]", "0.83"),
        ("PI-CNN", "[11]", "0.87"),
        ("CRNet", "[6]", "0.8723"),
        ("HMTNet + Ridge Regression", "[7]", "0.8977"),
        ("ComboLoss (Ours)", "", "0.9090", _combo()),
    ),
    _table(
        2, "Performance comparison on HotOrNot Dataset.", "hotornot", "5split", _PC,
        ("Eigenface", "[3]", "0.180"),
        ("Two Layer Model", "[3]", "0.438"),
        ("Multiscale Model", "[3]", "0.458"),
        ("S. Wang et al.", "[22]", "0.437"),
        ("Xu et al.", "[5]", "0.468"),
        ("CRNet", "[6]", "0.482"),
        ("ComboLoss (Ours)", "", "0.503", _combo()),
    ),
    # The ResNeXt-50, ResNet-18 and AlexNet rows cite the architectures; their figures are the
    # SCUT-FBP5500 paper's baselines (Liang et al. 2018, the paper's [10]).
    _table(
        3, "Performance comparison on SCUT-FBP5500.", "scut-fbp5500", "5fold", _ALL,
        ("ResNeXt-50", "[16]", "0.2291 0.3017 0.8997"),
        ("ResNet-18", "[17]", "0.2419 0.3166 0.8900"),
        ("AlexNet", "[12]", "0.2651 0.3481 0.8634"),
        ("HMTNet", "[7]", "0.2380 0.3141 0.8912"),
        ("AaNet", "[8]", "0.2236 0.2954 0.9055"),
        ("R^2 ResNeXt", "[23]", "0.2416 0.3046 0.8957"),
        ("R^3 CNN", "[13]", "0.2120 0.2800 0.9142"),
        ("ComboLoss (Ours)", "", "0.2050 0.2704 0.9199", _combo()),
    ),
    # Tables 4 and 5: the authors' own runs, SEResNeXt50 unless the row says ResNet18 (3.4.2).
    # Method names as the paper's text renders them (L_1: L with subscript 1).
    _table(
        4, "Evaluation on different loss functions.", "scut-fbp5500", "60-40", _ALL,
        ("L_1 Loss", "", "0.2191 0.2918 0.9030", _regression("l1")),
        ("MSE Loss", "", "0.2195 0.2947 0.9008", _regression("mse")),
        ("Smooth L_1 Loss", "", "0.2194 0.2869 0.9064", _regression("smooth_l1")),
        ("Smooth Huber Loss", "[7]", "0.2196 0.2903 0.9052", _regression("smooth_huber")),
        ("ComboLoss (Ours)", "", "0.2126 0.2813 0.9117", _combo()),
    ),
    # ResNet18 + ComboLoss prints the figures the README gives to alpha=1, beta=2 (its alpha=2,
    # beta=1 ResNet-18 run has PC 0.8780); the paper states alpha=2, beta=1, gamma=1 for all.
    _table(
        5, "Evaluation on different backbone architecture.", "scut-fbp5500", "60-40", _ALL,
        ("ResNet18", "", "0.2313 0.3054 0.8946", _regression("mse", RESNET18)),
        ("ResNet18 + ComboLoss", "", "0.2202 0.2907 0.9041", _combo(RESNET18)),
        ("SEResNeXt50", "", "0.2195 0.2947 0.9008", _regression("mse")),
        ("SEResNeXt50 + ComboLoss", "", "0.2126 0.2813 0.9117", _combo()),
    ),
)}
"""The paper's Tables 1-5 by number."""


def _readme(caption: str, dataset: str, protocol: str, method: str, figures: str, config: dict[str, Any]) -> PublishedRow:
    return PublishedRow("readme", None, caption, dataset, protocol, method, "", dict(zip(METRICS, figures.split())), config)


def _weights(alpha: float, beta: float, gamma: float = 1.0, backbone: str = SERESNEXT50) -> dict[str, Any]:
    return _combo(backbone, **{"loss.alpha": alpha, "loss.beta": beta, "loss.gamma": gamma})


_GRID = "README: ComboLoss weights alpha/beta/gamma and backbone, SCUT-FBP5500 60/40 split"
_ABLATION = "README: ComboLoss without class-weighted cross-entropy, SCUT-FBP5500 60/40 split"
_OTHERS = "README: ComboLoss on SCUT-FBP and HotOrNot with MAE and RMSE (the paper prints PC only)"

README_ROWS: tuple[PublishedRow, ...] = (
    _readme(_GRID, "scut-fbp5500", "60-40", "ComboLoss a=1 b=1 g=1, SEResNeXt50", "0.2135 0.2818 0.9099", _weights(1.0, 1.0)),
    _readme(_GRID, "scut-fbp5500", "60-40", "ComboLoss a=3 b=1 g=1, SEResNeXt50", "0.2190 0.2894 0.9053", _weights(3.0, 1.0)),
    _readme(_GRID, "scut-fbp5500", "60-40", "ComboLoss a=1 b=3 g=1, SEResNeXt50", "0.2171 0.2862 0.9071", _weights(1.0, 3.0)),
    _readme(_GRID, "scut-fbp5500", "60-40", "ComboLoss a=1 b=1 g=1, ResNet-18", "0.2215 0.2936 0.9021", _weights(1.0, 1.0, backbone=RESNET18)),
    # the figures of Table 5's ResNet18 + ComboLoss, which the paper gives alpha=2, beta=1
    _readme(_GRID, "scut-fbp5500", "60-40", "ComboLoss a=1 b=2 g=1, ResNet-18", "0.2202 0.2907 0.9041", _weights(1.0, 2.0, backbone=RESNET18)),
    _readme(_GRID, "scut-fbp5500", "60-40", "ComboLoss a=1 b=3 g=1, ResNet-18", "0.2252 0.2991 0.8980", _weights(1.0, 3.0, backbone=RESNET18)),
    _readme(_GRID, "scut-fbp5500", "60-40", "ComboLoss a=3 b=1 g=1, ResNet-18", "0.2513 0.3364 0.8788", _weights(3.0, 1.0, backbone=RESNET18)),
    _readme(_ABLATION, "scut-fbp5500", "60-40", "ComboLoss without class-weighted cross-entropy", "0.2115 0.2814 0.9099", _combo(**{"loss.ce_weighted": False})),
    # Table 1 prints this PC (0.9090) and Table 2 this PC rounded (0.503)
    _readme(_OTHERS, "scut-fbp", "5fold", "ComboLoss, SEResNeXt50", "0.2441 0.3122 0.9090", _combo()),
    _readme(_OTHERS, "hotornot", "5split", "ComboLoss, SEResNeXt50", "0.8213 1.0412 0.5029", _combo()),
)
"""Rows only the upstream README publishes (none contradicts a paper table)."""

README_FOLDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("scut-fbp", "5fold"): ("0.2689 0.3340 0.9144", "0.2456 0.3050 0.9063", "0.2436 0.3095 0.9082", "0.2282 0.2992 0.9238", "0.2171 0.2889 0.9051"),
    ("hotornot", "5split"): ("0.8207 1.0379 0.5168", "0.8273 1.0552 0.5004", "0.8223 1.0399 0.5148", "0.8108 1.0241 0.5080", "0.8256 1.0487 0.4747"),
    ("scut-fbp5500", "5fold"): ("0.2119 0.2751 0.9157", "0.2084 0.2751 0.9164", "0.1998 0.2711 0.9215", "0.2050 0.2693 0.9208", "0.1999 0.2615 0.9250"),
}
"""The README's per-fold rows (MAE RMSE PC, folds 1-5) of the three cross-validated datasets;
its AVG row of each is `readme_average`'s printed figure."""


@dataclass(frozen=True)
class AverageCheck:
    """A README AVG row against the mean of the README's own fold rows."""

    dataset: str
    protocol: str
    printed: dict[str, float]
    """The AVG row as printed (SCUT-FBP5500's is Table 3's ComboLoss row, the same figures)."""
    mean: dict[str, float]
    """The mean of the five fold rows, unrounded."""

    @property
    def agrees(self) -> bool:
        """Every printed figure is the mean of the folds rounded to the printed 4 decimals."""
        return all(abs(self.printed[m] - self.mean[m]) <= 0.00005 + 1e-12 for m in METRICS)


def readme_averages() -> list[AverageCheck]:
    """Each README AVG row checked against its fold rows (README_FOLDS)."""
    checks = []
    for (dataset, protocol), folds in README_FOLDS.items():
        values = [dict(zip(METRICS, map(float, row.split()))) for row in folds]
        mean = {m: sum(v[m] for v in values) / len(values) for m in METRICS}
        row = next(r for r in (*README_ROWS, *published(dataset, protocol)) if r.dataset == dataset and r.protocol == protocol and r.config and r.mae is not None)
        checks.append(AverageCheck(dataset, protocol, {m: row.value(m) for m in METRICS}, mean))
    return checks


@dataclass(frozen=True)
class LaterResult:
    """A result on SCUT-FBP5500 published since (or beside) the paper, for context only."""

    method: str
    year: int | None
    pc: str
    """As the source prints it."""
    split: str
    """The split as its source states it, or that it is not verified here."""


UNVERIFIED = "split not verified here (the figure as reported; protocols differ between papers)"
LATER_RESULTS: tuple[LaterResult, ...] = (
    LaterResult("R3CNN (the paper's comparison, Table 3)", 2019, "0.9142", "5-fold cross-validation, as Table 3 prints it"),
    LaterResult("AaNet (the paper's comparison, Table 3)", 2019, "0.9055", "5-fold cross-validation, as Table 3 prints it"),
    LaterResult("Mamba-CNN", 2025, "0.9187", UNVERIFIED),
    LaterResult("Diff-FBP (diffusion-pretrained encoder)", 2025, "0.932", UNVERIFIED),
    LaterResult("an ensemble of four CNNs", 2023, "0.9469", UNVERIFIED),
    LaterResult("a tuned ViT", None, "0.9534", UNVERIFIED),
)
"""PC on SCUT-FBP5500 reported since the paper; a reproducer reads ComboLoss's figures beside them."""

TABLE5_RESNET18_NOTE = ("Table 5's ResNet18 + ComboLoss figures (0.2202 / 0.2907 / 0.9041) are those the README gives its ResNet-18 run with alpha=1, "
                        "beta=2, gamma=1; the README's alpha=2, beta=1, gamma=1 ResNet-18 run, the configuration the paper states for every ComboLoss row, "
                        "scored 0.2557 / 0.3362 / 0.8780. Both configurations are shipped (studies/paper/table5_backbones.yaml runs alpha=2, beta=1; "
                        "studies/paper/readme_alpha_beta.yaml's grid holds both): the paper printed the alpha=1, beta=2 run.")

ROWS: tuple[PublishedRow, ...] = (*(r for t in TABLES.values() for r in t.rows), *README_ROWS)
"""Every published row: the paper's tables in order, then the README's."""


def published(dataset: str, protocol: str, source: Literal["paper", "readme"] = "paper") -> list[PublishedRow]:
    """The rows of `source` (the paper's tables, in table order, or the README's) measured on
    this dataset under this protocol (maybe none)."""
    if source not in ("paper", "readme"):
        raise ValueError(f"source must be 'paper' or 'readme', but got {source!r}")
    return [r for r in ROWS if r.source == source and r.dataset == dataset and r.protocol == protocol]

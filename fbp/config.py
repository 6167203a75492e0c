"""`TrialConfig`: everything one trial needs, one schema, validated at load.

Every field is reachable by a dotted path (`loss.alpha`, `train.schedule.name`), which is how
studies search over it and how `--set path=value` overrides it. Defaults are the ComboLoss
paper's (section 3.2; each field's docstring quotes the sentence it follows): SEResNeXt50 from
ImageNet weights, SGD lr 0.01 momentum 0.9 weight decay 1e-3, batch 64, 200 epochs, LR / 10
every 50 epochs, 224x224 random crops with colour jitter and rotation (no flip), alpha=2,
beta=1, gamma=1, and the dataset's own discretization (ceil(s - 1/2) on SCUT-FBP and
SCUT-FBP5500, three intervals on HotOrNot). Where the paper is silent the default is what the
published code (github.com/lucasxlu/ComboLoss) does, and the docstring says so.
Errors name the dotted path and the value: `loss.alpha: must be >= 0, got -1`.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, ValidationInfo, field_validator, model_validator

from fbp.errors import InputError
from fbp.loss_names import LOSS_NAMES


class Section(BaseModel):
    # use_attribute_docstrings: the string under each field is its `description`, which
    # `knobs()` (and `fbp-search knobs`) show
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


PATH = {"path": True}
"""`json_schema_extra` of a field that holds a file-system path: `resolve_paths` makes it
absolute. Mark every new path field with it."""


TRUSTED = {"trusted": True}
"""Validation context for a config this program wrote itself (a results directory's study.yaml):
its registered names were checked when it was written, so the registries, whose modules import
torch, are not imported again (`StudySpec.model_validate(raw, context=TRUSTED)`)."""


def _datasets() -> dict:
    from fbp.data import DATASETS

    return DATASETS


def _rules() -> dict:
    from fbp.discretize import RULES

    return {AUTO: None, **RULES}  # auto: not a rule but the dataset's own, resolved by TrialConfig


AUTO = "auto"
"""`loss.discretization.rule: auto`: the dataset's own discretization (`fbp.data.DISCRETIZATION`)."""


def _losses() -> dict:
    return dict.fromkeys(LOSS_NAMES)  # the names fbp.losses registers, without importing torch


REGISTRIES: dict[str, Callable[[], dict]] = {"dataset": _datasets, "loss": _losses, "discretization rule": _rules}
"""The registries some fields name an entry of, each imported when first asked (the datasets'
and rules' modules import torch)."""


def registry(what: str) -> dict:
    """`json_schema_extra` of a field whose value is a name in `REGISTRIES[what]`: validated
    against it (see `_registered`) and listed by `knobs()`."""
    return {"registry": what}


def _registered(model: type[BaseModel], name: str, info: ValidationInfo) -> str:
    """A name from the registry the field is marked with; an unknown one lists the valid ones."""
    if (info.context or {}).get("trusted"):
        return name
    what = model.model_fields[info.field_name].json_schema_extra["registry"]
    names = REGISTRIES[what]()
    if name not in names:
        raise ValueError(f"unknown {what} {name!r}; valid: {', '.join(names)}")
    return name


class DataConfig(Section):
    dataset: str = Field("scut-fbp5500", json_schema_extra=registry("dataset"))
    """Registered dataset name (`fbp.data.DATASETS`); `synthetic` is generated, the others are
    read from `root`."""
    root: str | None = Field(None, json_schema_extra=PATH)
    """Dataset root in its published layout; `synthetic` needs none. A relative path is
    resolved against the directory the command runs from."""
    protocol: str = "5fold"
    """Named split protocol of the dataset (`5fold`, `60-40`, `5split`)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The loader's own options, e.g. synthetic `{n: 2000, size: 96, seed: 0}`."""
    folds: list[int] | None = None
    """1-based folds to run; all of the protocol's when unset."""
    image_size: int = Field(224, ge=16, le=1024)
    """Side of the square image the network sees, px. Paper (section 3.2): "The images are
    resized and randomly cropped to 224x224 patches"."""
    resize: int | None = Field(None, ge=16, le=2048)
    """Side of the decoded, cached image the training crop is taken from (the paper's "resized"
    size, which it does not give); default image_size, as the published code runs: it resizes
    to 224 (data/data_loaders.py), so its RandomCrop(224) keeps the whole face, in training and
    at test alike. Larger: random crops at the cache's scale, the paper's "randomly cropped";
    the test view must then be eval.view center_crop, the face at the same scale."""

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str, info: ValidationInfo) -> str:
        return _registered(cls, v, info)

    @model_validator(mode="after")
    def _resize_holds_the_crop(self) -> DataConfig:
        if self.resize is not None and self.resize < self.image_size:
            raise ValueError(f"resize ({self.resize}) must be >= image_size ({self.image_size})")
        return self

    @property
    def cached_side(self) -> int:
        return self.resize or self.image_size


class ModelConfig(Section):
    backbone: str = "seresnext50_32x4d"
    """Any timm model name; used with num_classes=0 and global pooling. Paper: SEResNeXt50. The
    name is checked with the model (`fbp.models.check_model`) before anything trains, not here:
    that needs timm. Inputs are normalized with the mean and std of the backbone's own
    pretrained config in timm (ImageNet's for SEResNeXt50, CLIP's for a CLIP ViT, ...)."""
    pretrained: bool | str = Field(True, json_schema_extra=PATH)
    """true (the default; timm's weights: the local cache, else downloaded). Paper (section
    3.2): "The network is initialized with ImageNet pretrained weights". false: random
    initialisation (what the synthetic and CPU studies set). Or a path to a weights file
    (safetensors or a torch state dict) of an FBPNet or of the bare backbone, the way onto
    offline nodes; a relative path is resolved against the directory the command runs from."""
    drop_rate: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout probability before the two heads (0: none)."""


def _known_class_count(rule: Any, num_classes: Any, edges: Any) -> int | None:
    """K when the rule's settings fix it before fitting (fbp.discretize.class_count), else None."""
    from fbp.discretize import class_count  # numpy only: no torch

    return class_count(rule, num_classes, edges) if isinstance(rule, str) else None


class DiscretizationConfig(Section):
    rule: str = Field("auto", json_schema_extra=registry("discretization rule"))
    """Scores to classes (fbp.discretize): auto (the default: the dataset's own, from
    `fbp.data.DISCRETIZATION`, recorded resolved), paper (c = ceil(s - 1/2), 5 classes),
    round_half_even (the published code's rounding), uniform and quantile bins, or intervals.
    Paper (section 2.2): "in SCUT-FBP and SCUT-FBP5500 datasets, the rounded integer of
    ceil(s - 1/2) is regarded as classification label, in HotOrNot, the intervals are set to 3
    as in [CRNet]": auto is paper on those two and intervals with edges [-1, 1] on HotOrNot's
    z-scores (the published code's data/datasets.py, HotOrNotDataset). A rule that leaves a
    class of a training split empty, or puts more than 95% of it in one class, is refused."""
    num_classes: int | None = Field(None, ge=2, le=100)
    """K, for uniform and quantile; paper and round_half_even have 5."""
    edges: list[float] | None = None
    """Inner class edges, for intervals."""
    values: Literal["mean", "centre"] | list[float] = "mean"
    """The class values v_k of the expectation E = sum_k p_k v_k (and of the expectation
    prediction). mean / centre: the mean training score or the centre of each bin, for the
    binned rules (paper and round_half_even value their classes 1..5). Or an explicit list of K
    numbers, for any rule. The paper's eq. 4 weights class k by its number k; the published code
    does so with [1, 2, 3, 4, 5] on SCUT-FBP* and [1, 2, 3] for HotOrNot's three z-score
    intervals (models/losses.py:51-52 of lucasxlu/ComboLoss)."""

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, v: str, info: ValidationInfo) -> str:
        return _registered(cls, v, info)

    @field_validator("values")
    @classmethod
    def _one_value_per_class(cls, v, info: ValidationInfo):
        k = _known_class_count(info.data.get("rule"), info.data.get("num_classes"), info.data.get("edges"))
        if isinstance(v, list) and k is not None and len(v) != k:
            raise ValueError(f"{len(v)} class values, but rule {info.data['rule']!r} makes {k} classes")
        return v

    @property
    def known_num_classes(self) -> int | None:
        """K, when the rule and its settings fix it before fitting."""
        return _known_class_count(self.rule, self.num_classes, self.edges)


class LossConfig(Section):
    name: str = Field("combo", json_schema_extra=registry("loss"))
    """combo (the paper's ComboLoss) or a baseline on the regression head only: l1, mse,
    smooth_l1, smooth_huber (see fbp.losses)."""
    alpha: float = Field(2.0, ge=0)
    """combo: weight of L1(regression, score). Paper: 2."""
    beta: float = Field(1.0, ge=0)
    """combo: weight of L1(expectation over classes, score). Paper: 1."""
    gamma: float = Field(1.0, ge=0)
    """combo: weight of the class-weighted cross-entropy. Paper: 1."""
    ce_input: Literal["logits", "probs"] = "logits"
    """combo: `probs` feeds softmax outputs to the cross-entropy, as the published code does
    (main/run_fbp.py:416 passes F.softmax(...) to CombinedLoss, whose nn.CrossEntropyLoss
    applies a second softmax). Paper: eq. 3 takes -log of the softmax probability once, i.e.
    logits."""
    ce_weighted: bool = True
    """combo: weigh each sample's cross-entropy by its class weight (eq. 3 with eq. 6 weights,
    or class_weights). false: plain cross-entropy, the published README's ablation row "wo
    balanced Xent Loss" (PC 0.9099 against 0.9117 with). Paper and published code: true."""
    ce_reduction: Literal["mean", "weighted_mean"] = "mean"
    """combo: mean divides the summed weighted cross-entropy by N, the batch size, as the paper's
    eq. 3 writes (-1/N sum_i w_c c_i log p_i). weighted_mean divides by the batch's summed class
    weights: torch's nn.CrossEntropyLoss(weight=...), what the published code does
    (models/losses.py:69). With eq. 6 weights they differ by about 2.4x on SCUT-FBP5500."""
    smooth_l1_beta: float = Field(1.0, gt=0)
    """smooth_l1: |error| where the quadratic part ends, in score units."""
    huber_delta: float = Field(0.8, gt=0)
    """smooth_huber: log cosh below delta, |error| above; delta in score units."""
    huber_variant: Literal["paper", "upstream"] = "paper"
    """smooth_huber: above delta, paper takes each sample's |error| (the rule the published
    SmoothHuberLoss states); upstream takes F.l1_loss(input, target), the batch's mean |error|
    broadcast to every sample above delta, which is what that code computes
    (models/losses.py:101)."""
    discretization: DiscretizationConfig = DiscretizationConfig()
    """How scores become the classes of the classification head (combo's expectation and
    cross-entropy terms)."""
    class_weights: list[float] | None = None
    """combo: explicit class weights w_c, one per class, in place of the paper's eq. 6
    (w_c = max_m |m| / |c|, counted on each fold's training split: null, the default). The
    published code types its lists in (main/run_fbp.py:521-542): on SCUT-FBP5500 5-fold they are
    eq. 6 rounded to 2 decimals, but its 60/40 list [1.88, 1, 1.91, 99.38, 99.38] is a
    permutation of eq. 6 on that split, [99.38, 1.91, 1, 1.88, 99.38]."""

    @field_validator("name")
    @classmethod
    def _known_loss(cls, v: str, info: ValidationInfo) -> str:
        return _registered(cls, v, info)

    @field_validator("class_weights")
    @classmethod
    def _one_weight_per_class(cls, v, info: ValidationInfo):
        if v is None:
            return v
        if any(w < 0 for w in v) or not any(w > 0 for w in v):
            raise ValueError(f"class weights must be >= 0 with one > 0, got {v}")
        d = info.data.get("discretization")
        k = d.known_num_classes if d is not None else None
        if k is not None and len(v) != k:
            raise ValueError(f"{len(v)} class weights, but discretization rule {d.rule!r} makes {k} classes")
        return v

    @model_validator(mode="after")
    def _some_term(self) -> LossConfig:
        if self.name == "combo" and self.alpha == self.beta == self.gamma == 0:
            raise ValueError("combo needs at least one of alpha, beta, gamma > 0")
        return self


class ScheduleConfig(Section):
    name: Literal["step", "cosine", "onecycle", "constant"] = "step"
    """The LR factor at each optimizer step (fbp.schedules): step (step_gamma every step_size
    epochs), cosine (warmup, then down to min_lr_ratio), onecycle (up over pct_start, then
    down), constant. Paper: step, LR / 10 every 50 epochs."""
    step_size: int = Field(50, ge=1)
    """step: epochs between LR drops. Paper: 50."""
    step_gamma: float = Field(0.1, gt=0, le=1)
    """step: LR factor at each drop. Paper: 0.1."""
    warmup_epochs: float = Field(0.0, ge=0)
    """cosine: linear warmup from 0, in epochs (fractions allowed)."""
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    """cosine: final LR as a fraction of train.lr."""
    pct_start: float = Field(0.3, gt=0, lt=1)
    """onecycle: share of the steps spent rising."""


class AugmentConfig(Section):
    rotation: float = Field(30.0, ge=0, le=180)
    """Random rotation, +- degrees, uniform. Paper (section 3.2): "random rotation [is] applied
    for data augmentation", without an angle; 30 is the published code's RandomRotation(30)
    (data/data_loaders.py)."""
    hflip: bool = False
    """Mirror each training image left-right with probability 0.5. Off: the paper's augmentation
    (section 3.2) is "resized and randomly cropped to 224x224 patches, color jittering and
    random rotation", and the published code (data/data_loaders.py) flips in none of its
    training transforms."""
    brightness: float = Field(0.2, ge=0, le=1)
    """Colour jitter: pixels times a factor uniform in [1 - b, 1 + b] (torchvision's
    definition). Paper (section 3.2): "color jittering", without amounts; 0 turns it off."""
    contrast: float = Field(0.2, ge=0, le=1)
    """Colour jitter: distance from the image's mean grey times a factor uniform in [1 - c, 1 + c]; 0 off."""
    saturation: float = Field(0.2, ge=0, le=1)
    """Colour jitter: distance from each pixel's grey times a factor uniform in [1 - s, 1 + s]; 0 off."""
    hue: float = Field(0.0, ge=0, le=0.5)
    """Colour jitter: the hue turned by a shift uniform in [-h, h] of a full turn (torchvision's
    definition, in HSV); 0 off. The published code jitters hue by 0.1 on SCUT-FBP only."""
    scale: tuple[float, float] = (1.0, 1.0)
    """Random zoom range of the crop (1.0 = the plain random crop)."""
    fill: Literal["reflection", "black"] = "reflection"
    """What fills the corners a rotation brings in from outside the image: the image mirrored
    at its border, or black (torchvision's RandomRotation, what the published code does). The
    paper is silent; reflection leaves no dark wedges for the model to learn."""


class TrainConfig(Section):
    epochs: int = Field(200, ge=1)
    """Passes over the training split of each fold. Paper: 200."""
    batch_size: int = Field(64, ge=1)
    """Training images per optimizer step. Paper: 64."""
    lr: float = Field(0.01, gt=0)
    """Learning rate the schedule scales at each step. Paper: 0.01."""
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    """sgd (with momentum), adam (weight decay as an L2 term, torch's Adam: what the published
    code trained its regression-only baselines with) or adamw (decoupled). Paper: SGD."""
    momentum: float = Field(0.9, ge=0, lt=1)
    """sgd: momentum factor (adamw does not use it). Paper: 0.9."""
    weight_decay: float = Field(1e-3, ge=0)
    """Weight decay factor: an L2 term with sgd and adam, decoupled with adamw. Paper: 1e-3."""
    schedule: ScheduleConfig = ScheduleConfig()
    """The learning-rate schedule over the optimizer steps."""
    augment: AugmentConfig = AugmentConfig()
    """Random augmentation of the training images (fbp.augment); evaluation sees `eval.view`."""
    seed: int = 0
    """Seeds a fold's every random stream (weights, shuffle, augmentation, validation hold-out):
    fold k uses seed * 1000 + k - 1, so a fold run alone gives what it gives in the whole run."""
    repeats: int = Field(1, ge=1)
    """Train every fold this many times, with seeds seed, seed + 1, ...: the spread between
    seeds says whether a difference between two configurations is larger than the noise (the
    paper's differences between rows are 0.001 to 0.01 PC, one run each)."""
    device: str = "auto"
    """auto (CUDA when present), cpu, cuda, cuda:N."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on CUDA, fp32 on the CPU."""
    channels_last: bool = True
    """NHWC memory layout: faster convolutions on CUDA and, measured, ~30% on the CPU too."""
    compile: Literal["off", "default", "reduce-overhead"] = "off"
    """torch.compile the model, once per trial (every fold reuses the compiled graph):
    default, or reduce-overhead (CUDA graphs: the fixed-shape step replayed without launch
    overhead, what a batch of 64 on a large GPU needs). true means default. Compiled, an epoch
    trains on whole batches only (the partial last one is dropped, as with drop_last)."""
    eval_every: int = Field(1, ge=1)
    """Evaluate (curves, selection) every N epochs; the last epoch always."""
    deterministic: bool = False
    """Deterministic algorithms while a fold trains (torch.use_deterministic_algorithms, cuDNN's
    autotuner off, cuBLAS's fixed workspace): the same config and seed repeat bitwise on a GPU,
    slower, and an op with no deterministic kernel stops the fold with its name. The CPU repeats
    without it."""

    @field_validator("compile", mode="before")
    @classmethod
    def _compile_flag(cls, v):
        return {True: "default", False: "off"}.get(v, v) if isinstance(v, bool) else v


class EvalConfig(Section):
    select: Literal["last", "inner_val", "test_oracle"] = "last"
    """last: weights after the last epoch. inner_val: the epoch with the best PC on a held-out
    part of the training fold. test_oracle: the epoch with the best test PC (optimistic; what
    the published code does; flagged wherever it is used)."""
    holdout: bool = False
    """Hold out `val_fraction` of each training split (seeded, stratified by class) and report
    its metrics (val_mae, val_rmse, val_pc) beside the test fold's: what a search chooses on
    without looking at the test folds (a study's `objective.on: val` sets it). inner_val holds
    it out too."""
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    """Share of each training split held out for validation (holdout, inner_val), stratified by class."""
    predict: Literal["reg", "exp", "fused"] = "reg"
    """The prediction: regression head, expectation over classes, or a weighted mean."""
    fused_weight: float = Field(0.5, ge=0, le=1)
    """fused: weight of the regression head (1 - it for the expectation)."""
    batch_size: int = Field(256, ge=1)
    """Images per forward pass when evaluating; a memory and speed knob."""
    view: Literal["resize", "center_crop"] = "resize"
    """What the network sees of a test image. resize (the default): the whole cached face
    resized to data.image_size, what the published code does (data/data_loaders.py: the test
    transforms are Resize(224), and for SCUT-FBP5500 Resize(224) then CenterCrop(224), which
    on its square 350 px faces keeps the whole face). center_crop: the central data.image_size
    px of the data.resize px cached image, the usual ImageNet evaluation. The paper is silent.
    Both show the face at the scale training sees it when data.resize is data.image_size;
    with a larger data.resize only center_crop does (resize would shrink the test faces by
    image_size / resize), and resize is refused."""


PUBLISHED_LOSS: dict[str, Any] = {"ce_input": "probs", "ce_weighted": True, "ce_reduction": "weighted_mean", "huber_variant": "upstream"}
"""What `published_code: true` sets in `loss` (where the config leaves it unset). Line numbers
of lucasxlu/ComboLoss here and in the docstrings: models/losses.py @a3fed65, main/run_fbp.py
@4fc4832, data/datasets.py @ff1e725, data/data_loaders.py @192208e."""

PUBLISHED_RULE: dict[str, dict[str, Any]] = {"hotornot": {"rule": "intervals", "edges": [-1.0, 1.0]}}
"""The published code's discretization by dataset (data/datasets.py of lucasxlu/ComboLoss:
round(score) - 1 on SCUT-FBP and SCUT-FBP5500, lines 32 and 121; three intervals on HotOrNot,
lines 76-81);
any other dataset: `PUBLISHED_RULE_ELSE`."""
PUBLISHED_RULE_ELSE = {"rule": "round_half_even"}

PUBLISHED_CLASS_WEIGHTS: dict[tuple[str, str], tuple[str, list[float]]] = {
    ("scut-fbp5500", "60-40"): ("round_half_even", [1.88, 1.0, 1.91, 99.38, 99.38]),
}
"""(dataset, protocol) -> (the rule it was counted with, the published list), where the published
list is one list for the whole protocol and is not what eq. 6 gives on its split (main/run_fbp.py:529
of lucasxlu/ComboLoss: a permutation of eq. 6's [99.38, 1.91, 1, 1.88, 99.38]). Its SCUT-FBP5500
5-fold lists (lines 534-542) are eq. 6 on each fold to 2 decimals, which eq. 6 reproduces; its
SCUT-FBP list (line 521) is eq. 6 on its own random 80% split, not one of our folds; its HotOrNot
list (line 525) is one list for all five splits, which could not be checked here (no HotOrNot
labels in the repository): for those three eq. 6 on the fold's training split stands."""


PUBLISHED_AUGMENT: dict[str, dict[str, Any]] = {
    "scut-fbp": {"brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.1, "fill": "black"},
}
"""The published code's training augmentation by dataset (data/data_loaders.py @a3fed65, the
version its results were committed with): RandomRotation(30), whose fill is black, everywhere;
ColorJitter(0.1, 0.1, 0.1, 0.1) on SCUT-FBP (line 28) and none elsewhere: HotOrNot and
SCUT-FBP5500's five folds call ColorJitter() with no arguments, which changes nothing (lines 56
and 117), and the 60/40 split has it commented out (line 85). Any other dataset:
`PUBLISHED_AUGMENT_ELSE`."""
PUBLISHED_AUGMENT_ELSE = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0, "fill": "black"}

PUBLISHED_REGRESSORS = ("l1", "mse", "smooth_l1", "smooth_huber")
PUBLISHED_REGRESSOR_TRAIN: dict[str, Any] = {"optimizer": "adam", "lr": 0.001, "weight_decay": 0.0001}
"""How the published code trained a regression-only baseline (`PUBLISHED_REGRESSORS`, its
model_type 'regressor'): optim.Adam(lr=0.001, weight_decay=1e-4) with the same StepLR(50, 0.1),
main/run_fbp.py:554 @4fc4832, in every commit from 3277ebc (2019-12-29) to 4fc4832 (2020-02-06),
the span of its "update experimental results" commits; ComboLoss ('combinator') kept SGD lr 0.01,
momentum 0.9, weight decay 1e-3 throughout. The repository went back to SGD for regressors on
2020-02-07 (55c1d57), after the results."""


def _as_dict(section: Any) -> dict | None:
    """A raw section as a dict of what its writer set; None for what is no section (left to
    the schema to refuse)."""
    if section is None:
        return {}
    if isinstance(section, BaseModel):
        return section.model_dump(exclude_unset=True)
    return dict(section) if isinstance(section, dict) else None


def _fill_published_code(raw: dict) -> dict:
    """`raw` with the published code's value of every quirk the config leaves unset (see
    TrialConfig.published_code)."""
    raw = dict(raw)
    data, loss, evaluation, train = (_as_dict(raw.get(k)) for k in ("data", "loss", "eval", "train"))
    disc = _as_dict(loss.get("discretization")) if loss is not None else None
    augment = _as_dict(train.get("augment")) if train is not None else None
    if data is None or loss is None or disc is None or evaluation is None or augment is None:
        return raw
    dataset = data.get("dataset", DataConfig.model_fields["dataset"].default)
    protocol = data.get("protocol", DataConfig.model_fields["protocol"].default)
    for key, value in PUBLISHED_LOSS.items():
        loss.setdefault(key, value)
    published_rule = PUBLISHED_RULE.get(dataset, PUBLISHED_RULE_ELSE)
    if disc.get("rule", AUTO) == AUTO:  # auto (the default) is unset here: the published rule
        disc["rule"] = published_rule["rule"]
    if disc["rule"] == published_rule["rule"]:
        for key, value in published_rule.items():
            disc.setdefault(key, value)
    k = _known_class_count(disc.get("rule"), disc.get("num_classes"), disc.get("edges"))
    if k is not None:
        disc.setdefault("values", [float(v) for v in range(1, k + 1)])  # eq. 4's class numbers
    counted_with, weights = PUBLISHED_CLASS_WEIGHTS.get((dataset, protocol), (None, None))
    if weights is not None and disc.get("rule") == counted_with:
        loss.setdefault("class_weights", list(weights))
    evaluation.setdefault("select", "test_oracle")
    for key, value in PUBLISHED_AUGMENT.get(dataset, PUBLISHED_AUGMENT_ELSE).items():
        augment.setdefault(key, value)
    if loss.get("name", LossConfig.model_fields["name"].default) in PUBLISHED_REGRESSORS:
        for key, value in PUBLISHED_REGRESSOR_TRAIN.items():
            train.setdefault(key, value)
    loss["discretization"], train["augment"] = disc, augment
    raw["loss"], raw["eval"], raw["train"] = loss, evaluation, train
    return raw


_PUBLISHED_ALL = (
    *(f"loss.{k}" for k in PUBLISHED_LOSS), "loss.discretization.rule", "loss.discretization.edges", "loss.discretization.values",
    "loss.class_weights", "eval.select", *(f"train.augment.{k}" for k in PUBLISHED_AUGMENT_ELSE), *(f"train.{k}" for k in PUBLISHED_REGRESSOR_TRAIN),
)
PUBLISHED_DEPENDS: dict[str, tuple[str, ...]] = {
    "published_code": _PUBLISHED_ALL,
    "loss.name": tuple(f"train.{k}" for k in PUBLISHED_REGRESSOR_TRAIN),
    "data.dataset": tuple(f"train.augment.{k}" for k in PUBLISHED_AUGMENT_ELSE),
    "data.protocol": ("loss.class_weights",),
}
"""A searched path -> the paths whose published value depends on it."""


def published_refill(raw: dict, searched: list[str] | tuple[str, ...]) -> dict:
    """A resolved config (every key set, as study.yaml holds a study's base) with a trial's
    searched values set, made ready for `published_code: true` to resolve as it would for a
    config written so: each key whose published value depends on a searched path
    (PUBLISHED_DEPENDS) is taken out where it holds the paper's value (its default; the
    dataset's own discretization rule counts as auto), and validation fills it. A value the
    study sets apart from the paper's stays. A no-op where published_code is off."""
    if not raw.get("published_code"):
        return raw
    raw = _deep_copy(raw)
    paths = {p for key in searched for p in PUBLISHED_DEPENDS.get(key, ())}
    disc = (raw.get("loss") or {}).get("discretization") or {}
    if "loss.discretization.rule" in paths and isinstance(disc, dict):
        from fbp.data import DISCRETIZATION

        own = DISCRETIZATION.get((raw.get("data") or {}).get("dataset", DataConfig.model_fields["dataset"].default), {})
        if own and disc.get("rule") == own["rule"] and disc.get("edges") == own.get("edges"):
            disc.pop("rule"), disc.pop("edges", None)
    for path in sorted(paths - {"loss.discretization.rule", "loss.discretization.edges"}):
        section, _, key = path.rpartition(".")
        node: Any = raw
        for part in section.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        default = field_at(path).get_default(call_default_factory=True)
        if isinstance(node, dict) and key in node and node[key] == default and isinstance(node[key], bool) == isinstance(default, bool):
            del node[key]
    return raw


def _published_code(raw: Any) -> Any:
    """`published_code: true`: the published code's value of every quirk left unset."""
    if not isinstance(raw, dict):
        return raw
    try:
        on = TypeAdapter(bool).validate_python(raw.get("published_code", False))
    except ValidationError:
        return raw  # the field refuses it, with its path
    return _fill_published_code(raw) if on else raw


def _dataset_discretization(raw: Any) -> Any:
    """`loss.discretization.rule: auto` (the default) becomes the dataset's own rule and
    edges, so that the config, study.yaml and `validate` hold the rule a trial trains with."""
    if not isinstance(raw, dict):
        return raw
    data, loss = raw.get("data") or {}, raw.get("loss") or {}
    dataset = data.dataset if isinstance(data, BaseModel) else data.get("dataset", DataConfig.model_fields["dataset"].default) if isinstance(data, dict) else None
    if isinstance(loss, BaseModel):
        loss = loss.model_dump()
    if not isinstance(loss, dict) or not isinstance(dataset, str):
        return raw  # the fields' own validation says what is wrong
    disc = loss.get("discretization") or {}
    disc = disc.model_dump() if isinstance(disc, BaseModel) else disc
    if not isinstance(disc, dict) or disc.get("rule", AUTO) != AUTO:
        return raw
    from fbp.data import DISCRETIZATION, describe_discretization

    own = DISCRETIZATION.get(dataset)
    edges = disc.get("edges")
    if own is None or not (edges is None or isinstance(edges, list | tuple)):
        return raw  # an unknown dataset or bad edges: the fields' own validation names them
    if edges is not None and list(edges) != own.get("edges"):
        raise ValueError(
            f"loss.discretization: rule auto is {dataset}'s own ({describe_discretization(dataset)}), which takes no edges {edges}; "
            "set loss.discretization.rule (e.g. intervals) to give edges"
        )
    return {**raw, "loss": {**loss, "discretization": {**disc, "rule": own["rule"], "edges": own.get("edges")}}}


class TrialConfig(Section):
    data: DataConfig = DataConfig()
    """The dataset, its split protocol and the image sizes."""
    model: ModelConfig = ModelConfig()
    """The backbone, its initial weights and the heads' dropout."""
    loss: LossConfig = LossConfig()
    """The training loss, its weights and the score classes."""
    train: TrainConfig = TrainConfig()
    """Optimizer, schedule, augmentation, seed and device of the training loop."""
    eval: EvalConfig = EvalConfig()
    """Which epoch's weights give the reported metrics, and how a prediction is formed."""
    published_code: bool = False
    """true: the published code's behaviour (github.com/lucasxlu/ComboLoss) instead of the
    paper's, in one line. It fills each of these the config leaves unset (each stays
    overridable; the resolved config, printed by validate and kept in study.yaml, shows the
    values): loss.ce_input probs, loss.ce_weighted true, loss.ce_reduction weighted_mean,
    loss.huber_variant upstream, loss.discretization.rule round_half_even (intervals at
    [-1, 1] on hotornot) with values 1..K, loss.class_weights the published list on
    scut-fbp5500 60-40 (eq. 6 elsewhere), eval.select test_oracle (data/data_loaders.py:104
    and 136 hand the test loader out as 'val'; main/run_fbp.py:444 keeps the epoch of best 'val'
    PC); train.augment: colour jitter 0.1 with hue 0.1 on scut-fbp and none elsewhere, the
    rotation's corners black (PUBLISHED_AUGMENT); and for a regression-only loss (l1, mse,
    smooth_l1, smooth_huber) train.optimizer adam, lr 1e-3, weight_decay 1e-4, the optimizer
    it trained them with (PUBLISHED_REGRESSOR_TRAIN). Not its backbone weights or schedule:
    those keys keep theirs. A study may search it (published_code: {choice: [false, true]}, the
    "as written" and "as published" arms): a trial that turns it on gets the published value
    wherever the study holds the paper's (`published_refill`)."""

    @model_validator(mode="before")
    @classmethod
    def _resolve(cls, raw: Any) -> Any:
        """The config's shorthands made explicit, in this order: `published_code: true` fills
        the quirks left unset, then `rule: auto` becomes the dataset's own rule."""
        return _dataset_discretization(_published_code(raw))

    @model_validator(mode="after")
    def _one_face_scale(self) -> TrialConfig:
        """Training crops data.image_size px out of the cached data.resize px image, so it sees
        the face at the cache's scale; eval.view resize squeezes the whole cached image into
        image_size px. With a larger cache the model would be tested on faces smaller than any
        it was trained on (8/7 smaller at 224 of 256)."""
        side, size = self.data.cached_side, self.data.image_size
        if self.eval.view == "resize" and side != size:
            raise ValueError(f"eval.view: resize shows the test faces at {size}/{side} of the scale training crops them at (data.resize {side}, data.image_size {size}); "
                             f"use eval.view: center_crop, or data.resize: {size}")
        return self

    @model_validator(mode="after")
    def _heads_need_classes(self) -> TrialConfig:
        if self.eval.predict != "reg" and self.loss.name != "combo":
            raise ValueError(f"eval.predict={self.eval.predict!r} needs the classification head, which loss.name={self.loss.name!r} does not train")
        return self


# --- knobs: every field as documentation ------------------------------------------------------


@dataclass(frozen=True)
class Knob:
    """One field of TrialConfig, as `fbp-search knobs` shows it."""

    path: str  # dotted, e.g. "loss.alpha"
    type: str  # readable: "float", "int | None", "section" for a nested section
    default: Any  # the field's default (None for a section: its fields have theirs)
    allowed: str  # choices, registered names or bounds, e.g. ">= 0"; "" when any value of the type
    doc: str  # the field's docstring on one line


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(dict.fromkeys(type(a).__name__ for a in args))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _allowed(field) -> str:
    """Literal choices, the names of the field's registry, or its numeric bounds."""
    choices = next((get_args(a) for a in (field.annotation, *get_args(field.annotation)) if get_origin(a) is Literal), None)
    if choices:
        return ", ".join(map(str, choices))
    what = (field.json_schema_extra or {}).get("registry")
    if what:
        return ", ".join(REGISTRIES[what]())
    return ", ".join(f"{sign} {getattr(m, key)}" for m in field.metadata for key, sign in _BOUNDS if hasattr(m, key))


def _is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def knobs(model: type[BaseModel] | None = None, prefix: str = "") -> list[Knob]:
    """Every field of TrialConfig (or `model`), sections included, in declaration order, read
    from the schema itself: a new field appears here with its docstring. Imports the registries
    (and so torch) to list registered names."""
    rows = []
    for name, field in (model or TrialConfig).model_fields.items():
        path, doc = prefix + name, " ".join((field.description or "").split())
        if _is_section(field.annotation):
            rows.append(Knob(path, "section", None, "", doc))
            rows.extend(knobs(field.annotation, path + "."))
        else:
            rows.append(Knob(path, _type_name(field.annotation), field.get_default(call_default_factory=True), _allowed(field), doc))
    return rows


# --- paths -----------------------------------------------------------------------------------


def is_path_field(field) -> bool:
    return bool(field is not None and field.json_schema_extra and field.json_schema_extra.get("path"))


def field_at(dotted: str, model: type[BaseModel] | None = None):
    """The pydantic field at a dotted path of TrialConfig (`loss.alpha`), or None if there is
    none. Keys under `data.options` (the loader's free-form options) have no field."""
    node = model or TrialConfig
    keys = dotted.split(".")
    for i, key in enumerate(keys):
        field = node.model_fields.get(key)
        if field is None:
            return None
        if i == len(keys) - 1:
            return field
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        node = annotation
    return None


def absolute_path(value: str, base: Path) -> str:
    """`value` against `base`, with `~` expanded; a URI (`s3://...`) is left as it is."""
    if "://" in value:
        return value
    return os.path.normpath(Path(base) / os.path.expanduser(value))


def resolve_paths(config: BaseModel, base: Path) -> BaseModel:
    """The config with every path field (marked `PATH`) absolute against `base`.

    The driver calls it once, with the directory the command was run from: trials run in
    other working directories, on other nodes, and must receive the paths the user meant.
    A string in a field that also takes booleans (`model.pretrained`) is a path."""
    updates = {}
    for name, field in type(config).model_fields.items():
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            resolved = resolve_paths(value, base)
            if resolved is not value:
                updates[name] = resolved
        elif is_path_field(field) and isinstance(value, str):
            absolute = absolute_path(value, base)
            if absolute != value:
                updates[name] = absolute
    return config.model_copy(update=updates) if updates else config


# --- loading, overrides and error messages --------------------------------------------------


def format_validation_error(error: ValidationError, prefix: str = "") -> str:
    """`loss.alpha: Input should be greater than or equal to 0, got -1` for each problem."""
    lines = []
    for e in error.errors():
        path = ".".join(str(p) for p in e["loc"] if p != "__root__")
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown key"
        where = prefix + path if path else prefix.rstrip(".") or "config"
        value = f", got {e['input']!r}" if e["type"] not in ("missing",) and not isinstance(e["input"], dict) else ""
        lines.append(f"{where}: {message}{value}")
    return "; ".join(lines)


def validate_config(raw: dict, source: str = "config") -> TrialConfig:
    try:
        return TrialConfig.model_validate(raw)
    except ValidationError as e:
        raise InputError(f"{source}: {format_validation_error(e)}") from None


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping, safely loaded; syntax errors give the file, line and column. An empty
    file (or one of comments only) is refused as such: read as no keys, it failed later on the
    first required one (`name: Field required`), which hid what was wrong."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InputError(f"{where}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    if raw is None:
        raise InputError(f"{path}: the file is empty (nothing but blank lines or comments); expected a mapping of sections (name:, data:, model:, ...)")
    if not isinstance(raw, dict):
        raise InputError(f"{path}: expected a mapping of sections at the top, got {type(raw).__name__}")
    return raw


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """`--set loss.alpha=1.5 train.schedule.name=cosine`: values are parsed as YAML."""
    out = _deep_copy(raw)
    for item in overrides:
        path, sep, text = item.partition("=")
        if not sep or not path:
            raise InputError(f"--set {item!r}: expected path=value, e.g. loss.alpha=1.5")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise InputError(f"--set {item!r}: the value is not valid YAML") from None
        set_path(out, path.strip(), value)
    return out


def set_path(raw: dict, dotted: str, value: Any) -> None:
    node = raw
    keys = dotted.split(".")
    for i, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise InputError(f"{'.'.join(keys[: i + 1])} is a value, not a section; cannot set {dotted}")
        node = child
    node[keys[-1]] = value


def _deep_copy(raw: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in raw.items()}


def load_config(path: str | Path, overrides: list[str] = ()) -> TrialConfig:
    return validate_config(apply_overrides(read_yaml(path), list(overrides)), source=str(path))

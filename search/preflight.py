"""Whatever would make every trial fail, found once on the driver before Ray starts.

A study of 40 trials on a cluster should not start 40 workers to learn, 40 times, that the
dataset is elsewhere or that the weights cannot be downloaded. `run`, `resume`, `train` and
`validate` call these checks first; each raises `InputError` with one line, and nothing has
been written yet.

    data      the dataset's labels and images at data.root; the folds a trial trains; each
              discretization a trial can train with, fitted on each such fold's training split
              (an empty class, or more than 95% in one class, is refused)
    model     each backbone the study can build takes each image size it can be fed, and its
              pretrained weights are on disk or downloadable
    device    train.device asks for CUDA only where trials get a GPU

(Whether the results directory can hold the study is `search.results.ResultsDir.check`.)
"""

from __future__ import annotations

import itertools
from pathlib import Path

from fbp.config import TrialConfig
from fbp.data import LAYOUTS, load_dataset
from fbp.errors import InputError
from search.spec import StudySpec

Checked = StudySpec | TrialConfig  # a study, or the one configuration `fbp-search train` trains


def check_data(spec: Checked, source: str) -> list[int]:
    """Read the dataset's labels before anything runs; returns the numbers of the folds a trial trains."""
    d = spec.data
    try:
        dataset = load_dataset(d.dataset, d.root, **d.options)
    except InputError as e:
        if d.dataset != "synthetic" and d.root and not Path(d.root).exists():
            raise InputError(
                f"{source}: data.root {d.root} does not exist. Put {d.dataset} there ({LAYOUTS[d.dataset]}), "
                f"or pass --set data.root=PATH; or try the synthetic quickstart: fbp-search run studies/quickstart.yaml"
            ) from None
        raise InputError(f"{source}: {e}") from None
    every = list(range(1, len(dataset.folds(d.protocol)) + 1))  # an unknown protocol stops here
    outside = [k for k in d.folds or [] if k not in every]
    if outside:
        raise InputError(f"{source}: data.folds: fold {outside[0]} does not exist; protocol {d.protocol!r} has folds 1..{len(every)}")
    trained = list(d.folds) if d.folds else every
    check_discretization(spec, dataset, trained, source)
    return trained


RULE, CLASSES = "loss.discretization.rule", "loss.discretization.num_classes"


def _discretizations(spec: Checked) -> list[TrialConfig]:
    """A trial config for each discretization a trial can train with: each rule the space can
    give, with each num_classes it gives under that rule (a `when` on the rule is honoured)."""
    if not isinstance(spec, StudySpec):
        return [spec]
    space = spec.search.space
    configs = []
    for rule in _values(spec, RULE, spec.loss.discretization.rule):
        params = {RULE: rule} if RULE in space else {}
        dim = space.get(CLASSES)
        when = (dim.when or {}).get(RULE, [rule]) if dim is not None else None
        if dim is not None and rule in (when if isinstance(when, list) else [when]):
            configs.extend(spec.trial_config({**params, CLASSES: k}) for k in _values(spec, CLASSES, None))
        else:
            configs.append(spec.trial_config(params))
    return configs


def check_discretization(spec: Checked, dataset, folds: list[int], source: str) -> None:
    """Each discretization a trial can train with, fitted on the training split of each fold it
    trains, as `fbp.kfold.fold_discretization` fits it: one that fails or is degenerate there
    (a class empty, or more than 95% in one) would fail every such trial."""
    from fbp.kfold import fold_discretization

    every = dataset.folds(spec.data.protocol)
    for config in _discretizations(spec):
        for k in folds:
            try:
                fold_discretization(config, dataset, every[k - 1])
            except InputError as e:
                raise InputError(f"{source}: {e}") from None


def _values(spec: Checked, path: str, fixed):
    """Every value a trial of the study can give `path`: its choices, a range's bounds, or the base value."""
    dim = spec.search.space.get(path) if isinstance(spec, StudySpec) else None
    if dim is None:
        return [fixed]
    if dim.choice is not None:
        return list(dict.fromkeys(dim.choice))
    return list(dict.fromkeys(dim.float_ or dim.int_))


def check_model(spec: Checked, source: str, offline: bool = False) -> None:
    """Each backbone the study can build, with each of its pretrained settings, at each image
    size it can be fed. `offline`: do not ask whether timm's weights can be had."""
    from fbp.models import check_backbone_name
    from fbp.models import check_model as check_one

    backbones = _values(spec, "model.backbone", spec.model.backbone)
    searched = isinstance(spec, StudySpec) and "model.backbone" in spec.search.space
    for backbone in backbones:  # names first: the key says where an unknown one was written
        try:
            check_backbone_name(backbone)
        except InputError as e:
            raise InputError(f"{source}: {'search.space.' if searched else ''}model.backbone: {e}") from None
    weights = _values(spec, "model.pretrained", spec.model.pretrained)
    sizes = [int(s) for s in _values(spec, "data.image_size", spec.data.image_size)]
    for backbone, pretrained in itertools.product(backbones, weights):
        if offline and pretrained is True:
            pretrained = False  # whether timm's weights can be had is a question for the network
        model = spec.model.model_copy(update={"backbone": backbone, "pretrained": pretrained})
        try:
            check_one(model, sizes)
        except InputError as e:
            raise InputError(f"{source}: {e}") from None


def check_device(spec: Checked, source: str) -> None:
    """CUDA asked for where there is none. A study's trials (Ray) see a GPU only when they
    reserve one (resources.gpu); a configuration trained here needs one on this machine."""
    device = spec.train.device
    if not device.startswith("cuda"):
        return
    if isinstance(spec, StudySpec):
        if spec.resources.gpu == 0:
            raise InputError(f"{source}: train.device: {device!r}, but resources.gpu is 0, so no trial gets a GPU; set resources.gpu (e.g. 1, or 0.5 to share one) or train.device: auto")
        return
    import torch

    if not torch.cuda.is_available():
        raise InputError(f"{source}: train.device: {device!r}, but this machine has no CUDA device; use train.device: cpu or auto")


def preflight(spec: Checked, source: str, offline: bool = False) -> list[int] | None:
    """All of the above, cheapest first; returns the fold numbers a trial trains (None when
    `offline` skips the data). The results directory is `ResultsDir.check`'s."""
    check_device(spec, source)
    folds = None if offline else check_data(spec, source)
    check_model(spec, source, offline=offline)
    return folds

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
    space     the file system of the results directory has room for what the study will write
              (`study_bytes`): refused with "needs ~X MB, Y MB free on <mount>"

(Whether the results directory is this study's to write is `search.results.ResultsDir.check`.)
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

from fbp.config import TrialConfig
from fbp.data import LAYOUTS, load_dataset
from fbp.errors import InputError
from fbp.loss_names import COMBO_TERMS, TOTAL, train_name
from fbp.metrics import TEST_CURVES, VAL_NAMES
from search.spec import StudySpec

Checked = StudySpec | TrialConfig  # a study, or the one configuration `fbp-search train` trains


def check_data(spec: Checked, source: str) -> list[int]:
    """Read the dataset's labels before anything runs; returns the numbers of the folds a trial trains."""
    return _check_data(spec, source)[0]


def _check_data(spec: Checked, source: str) -> tuple[list[int], list[int]]:
    """(the folds a trial trains, the number of test images of each)."""
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
    folds = dataset.folds(d.protocol)
    return trained, [len(folds[k - 1].test) for k in trained]


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


# --- room on the disk ----------------------------------------------------------------------------

TUNE_BYTES_PER_TRIAL = 20_000
"""Ray Tune's experiment state and a trial's checkpoint bookkeeping, per trial (docs/scaling.md
measured 17 KB a trial at 10,000 trials)."""
LOG_BYTES_PER_EPOCH = 200
"""A trial's log: one line per epoch (loss, images/s, test metrics)."""


def study_bytes(spec: StudySpec, test_sizes: list[int]) -> dict[str, int]:
    """What a study writes into its results directory, by kind, in bytes (an estimate: a few
    percent either way).

    tables  per fold of each trial: its folds, epochs and predictions parts (n_test rows), as
            `search.results.part_bytes` encodes them (Parquet's per-file overhead dominates the
            small parts, so rows of typical values are encoded rather than guessed); the folds
            table twice, as compaction writes its copy before removing the parts
    tune    Tune's state and checkpoint bookkeeping per trial, and the trials' logs
    models  the fold models of the trials kept (search.keep: the best `search.keep_models`, the
            baseline's, and those running at once, each fold and seed), sized as the largest
            backbone of the space is (fbp.models.weights_bytes)
    """
    from fbp.models import weights_bytes

    trials, repeats, epochs = spec.search.num_trials, spec.train.repeats, spec.train.epochs
    folds = fold_part_bytes(spec, test_sizes)
    tables = trials * (sum(folds["epochs"] + folds["predictions"] for _ in test_sizes) + 2 * len(test_sizes) * folds["folds"])
    tune = trials * (TUNE_BYTES_PER_TRIAL + LOG_BYTES_PER_EPOCH * epochs * repeats * len(test_sizes))
    kept = min(trials, spec.search.keep_models + len(spec.search.baseline) + max(1, spec.resources.max_concurrent))
    model = max(weights_bytes(b) for b in _values(spec, "model.backbone", spec.model.backbone))
    return {"tables": tables, "tune": tune, "models": kept * len(test_sizes) * repeats * model}


def fold_part_bytes(spec: StudySpec, test_sizes: list[int]) -> dict[str, int]:
    """The bytes of one fold's part in each table (its seeds' rows), for the largest test fold:
    rows of typical values encoded as the study's writer encodes them."""
    import numpy as np
    import pandas as pd

    from search.results import FOLD_COLUMNS, PREDICTION_COLUMNS, part_bytes

    n, runs, epochs = max(test_sizes), spec.train.repeats, spec.train.epochs
    rng = np.random.default_rng(0)

    def column(kind, rows: int, name: str):
        if kind == "string":
            return [f"{name}-{i:06d}.jpg" for i in range(rows)] if name == "image" else ["x" * 12] * rows
        return rng.random(rows) if "double" in kind else np.arange(rows)

    folds = pd.DataFrame({c: column(str(t), runs, c) for c, t in FOLD_COLUMNS.items()} | {f"param.{p}": rng.random(runs) for p in spec.search.space})
    predictions = pd.DataFrame({c: column(str(t), n * runs, c) for c, t in PREDICTION_COLUMNS.items()})
    curve = ["lr", *map(train_name, (TOTAL, *COMBO_TERMS)), *TEST_CURVES, *VAL_NAMES]
    epoch_rows = pd.DataFrame({"trial_id": ["x" * 12] * (epochs * runs), "fold": 1, "seed": 0, "epoch": np.arange(epochs * runs)} | {c: rng.random(epochs * runs) for c in curve})
    return {"folds": len(part_bytes("folds", folds)), "epochs": len(part_bytes("epochs", epoch_rows)), "predictions": len(part_bytes("predictions", predictions))}


def used_bytes(folder: Path) -> int:
    """Bytes of the files under `folder` (what a resumed study has written already)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def check_space(spec: StudySpec, results: Path, test_sizes: list[int], source: str) -> None:
    """Refuse a study whose results would not fit on their file system: what it writes
    (`study_bytes`), less what a resumed study has written already, against the bytes free.

    Exit code 2 (bad input), like every other check here: nothing has run or been written yet,
    and the user fixes it by what they choose (another --results, fewer trials or kept models,
    space freed), not by running the same command again; a disk that fills anyway, mid-run, is
    exit code 1 (search.results.DiskFull)."""
    from search.results import free_bytes, mount_of

    parts = study_bytes(spec, test_sizes)
    need = max(0, sum(parts.values()) - (used_bytes(results) if results.is_dir() else 0))
    free = free_bytes(results)
    if need > free:
        split = ", ".join(f"{kind} {b / 1e6:.1f}" for kind, b in parts.items())
        raise InputError(f"{source}: results {results}: the study needs ~{need / 1e6:.1f} MB ({split} MB), {free / 1e6:.1f} MB free on {mount_of(results)}; "
                         "free space there, choose another --results, or lower search.num_trials or search.keep_models")


def preflight(spec: Checked, source: str, offline: bool = False, results: Path | None = None) -> list[int] | None:
    """All of the above, cheapest first; returns the fold numbers a trial trains (None when
    `offline` skips the data). `results`: the study's results directory, whose file system must
    have room for it (a study only). Whose results directory it is is `ResultsDir.check`'s."""
    check_device(spec, source)
    folds, test_sizes = (None, None) if offline else _check_data(spec, source)
    check_model(spec, source, offline=offline)
    if results is not None and test_sizes and isinstance(spec, StudySpec):
        check_space(spec, Path(results), test_sizes, source)
    return folds

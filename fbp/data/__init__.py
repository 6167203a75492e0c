"""FBP datasets by name, each read from its published layout.

    dataset = load_dataset("scut-fbp5500", "data/SCUT-FBP5500_v2")
    for fold in dataset.folds("5fold"): ...

`synthetic` generates drawn faces in the SCUT-FBP5500 layout on first use (into `root`, or the
cache directory when no root is given) and reads them with the SCUT-FBP5500 loader.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from fbp.data import hotornot, scut_fbp, scut_fbp5500
from fbp.data.base import Dataset, Fold, Record, check_images_exist
from fbp.data.synthetic import load_synthetic
from fbp.errors import InputError

__all__ = ["DATASETS", "DISCRETIZATION", "Dataset", "Fold", "Record", "describe_discretization", "load_dataset"]

DATASETS: dict[str, Callable[..., Dataset]] = {
    "scut-fbp5500": scut_fbp5500.load,
    "scut-fbp": scut_fbp.load,
    "hotornot": hotornot.load,
    "synthetic": load_synthetic,
}

LAYOUTS = {
    "scut-fbp5500": "ROOT/Images/*.jpg and ROOT/train_test_files/ of the SCUT-FBP5500 v2 release",
    "scut-fbp": "ROOT/SCUT-FBP-<n>.jpg and ROOT/SCUT-FBP.xlsx",
    "hotornot": "the images and eccv2010_split1..5.csv in ROOT",
    "synthetic": "nothing: generated on first use",
}

DISCRETIZATION: dict[str, dict] = {
    # paper, section 2.2: "in SCUT-FBP and SCUT-FBP5500 datasets, the rounded integer of
    # ceil(s - 1/2) is regarded as classification label"
    "scut-fbp5500": {"rule": "paper"},
    "scut-fbp": {"rule": "paper"},
    # "in HotOrNot, the intervals are set to 3 as in [CRNet]": on its z-scores, s < -1,
    # -1 <= s < 1, s >= 1, the published code's classes (data/datasets.py, HotOrNotDataset)
    "hotornot": {"rule": "intervals", "edges": [-1.0, 1.0]},
    # the faces are rated 1..5 as SCUT-FBP5500's are
    "synthetic": {"rule": "paper"},
}
"""Each dataset's own discretization (`loss.discretization.rule: auto`, the default): the
`rule` of `fbp.discretize.RULES` and its `edges`, if any."""


def describe_discretization(dataset: str) -> str:
    """The dataset's own discretization in words: `intervals with edges [-1.0, 1.0]`, `paper`."""
    own = DISCRETIZATION[dataset]
    return own["rule"] + (f" with edges {own['edges']}" if own.get("edges") is not None else "")


def load_dataset(name: str, root: str | Path | None = None, check_images: bool = True, **options) -> Dataset:
    """Read dataset `name` from `root`; `options` are the loader's own (e.g. synthetic's n)."""
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    loader = DATASETS[name]
    accepted = [p for p in inspect.signature(loader).parameters if p != "root"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise InputError(f"dataset {name!r} takes no option {unknown[0]!r}; its options: {', '.join(accepted) or 'none'}")
    if root is None and inspect.signature(loader).parameters["root"].default is inspect.Parameter.empty:
        raise InputError(f"dataset {name!r} needs a root directory (data.root)")
    if root is not None:
        options["root"] = Path(root)
    dataset = loader(**options)
    if check_images:
        check_images_exist(dataset)
    return dataset

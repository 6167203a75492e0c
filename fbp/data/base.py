"""What every dataset is: records (image, score, subset) and named protocols of folds."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fbp.errors import InputError


@dataclass(frozen=True)
class Record:
    image: str  # file name inside the dataset's image directory
    score: float
    subset: str  # AF, AM, CF, CM on SCUT-FBP5500; "all" where a dataset has none


@dataclass(frozen=True)
class Fold:
    index: int  # 0-based
    train: tuple[str, ...]  # image names
    test: tuple[str, ...]


@dataclass
class Dataset:
    name: str
    root: Path
    image_dir: Path
    records: dict[str, Record]  # by image name, in label-file order
    protocols: dict[str, Callable[[], list[Fold]]]  # read on demand: a missing split only
    # matters to whoever asks for that protocol
    label_files: list[Path] = field(default_factory=list)  # what the cache key hashes
    score_range: tuple[float, float] | None = None  # the rating scale, where it has one

    def folds(self, protocol: str) -> list[Fold]:
        if protocol not in self.protocols:
            raise InputError(
                f"unknown protocol {protocol!r} for dataset {self.name!r}; valid: {', '.join(self.protocols)}"
            )
        folds = self.protocols[protocol]()
        check_folds(self, protocol, folds)
        return folds

    @property
    def images(self) -> list[str]:
        return list(self.records)

    def image_path(self, image: str) -> Path:
        return self.image_dir / image

    def scores(self, images) -> np.ndarray:
        return np.array([self.records[i].score for i in images], dtype=np.float64)

    def subsets(self, images) -> list[str]:
        return [self.records[i].subset for i in images]


# --- shared checks for label files --------------------------------------------------------


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise InputError(f"{what} not found: {path}")
    return path


def check_image_name(name: str, where: str) -> str:
    """Label files name images inside the root: no separators, no '..', nothing absolute."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith(".."):
        raise InputError(f"{where}: image name {name!r} must be a plain file name inside the dataset root")
    return name


def parse_score(text: str, where: str, score_range: tuple[float, float] | None) -> float:
    try:
        score = float(text)
    except ValueError:
        raise InputError(f"{where}: score {text!r} is not a number") from None
    if not math.isfinite(score):
        raise InputError(f"{where}: score {text!r} is not finite")
    if score_range is not None and not score_range[0] <= score <= score_range[1]:
        raise InputError(f"{where}: score {score} is outside the rating scale {score_range[0]:g}..{score_range[1]:g}")
    return score


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines; tolerates CRLF and trailing blanks."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def check_images_exist(dataset: Dataset) -> None:
    missing = [name for name in dataset.records if not dataset.image_path(name).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise InputError(f"{len(missing)} of {len(dataset.records)} listed images are missing in {dataset.image_dir}: {shown}")


def check_folds(dataset: Dataset, protocol: str, folds: list[Fold]) -> None:
    """Every image a fold names has a record, and no image is both trained and tested on."""
    for fold in folds:
        unknown = [i for i in fold.train + fold.test if i not in dataset.records]
        if unknown:
            raise InputError(
                f"{dataset.name} protocol {protocol!r} fold {fold.index + 1} names {len(unknown)} images without a label: {', '.join(unknown[:5])}"
            )
        leak = set(fold.train) & set(fold.test)
        if leak:
            raise InputError(
                f"{dataset.name} protocol {protocol!r} fold {fold.index + 1}: {len(leak)} images are in both train and test, e.g. {sorted(leak)[0]}"
            )

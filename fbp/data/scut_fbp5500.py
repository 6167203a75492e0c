"""SCUT-FBP5500 (Liang et al. 2018) in its published layout.

    ROOT/Images/AF1.jpg ...                                    350x350 JPEG, 5500 faces
    ROOT/train_test_files/All_labels.txt                       "AF1.jpg 2.883333" per line
    ROOT/train_test_files/split_of_60%training and 40%testing/{train,test}.txt
    ROOT/train_test_files/5_folders_cross_validations_files/cross_validation_K/{train_K,test_K}.txt

Protocols: `5fold` (the five official folds, 4400/1100) and `60-40` (one split, 3300/2200).
The subset (AF, AM, CF, CM: Asian/Caucasian female/male) comes from the file name. The first
release named them fty, mty, ftw, mtw and its 60/40 folder `split_of_60%training_40%testing`;
both spellings are read. CRLF line ends and trailing blanks are tolerated.
"""

from __future__ import annotations

import re
from pathlib import Path

from fbp.data.base import (
    Dataset,
    Fold,
    Record,
    check_image_name,
    parse_score,
    read_lines,
    require_dir,
)
from fbp.errors import InputError

SCALE = (1.0, 5.0)
SUBSETS = {"AF": "AF", "AM": "AM", "CF": "CF", "CM": "CM", "fty": "AF", "mty": "AM", "ftw": "CF", "mtw": "CM"}
SPLIT_60_40 = ("split_of_60%training and 40%testing", "split_of_60%training_40%testing")
FIVE_FOLD = "5_folders_cross_validations_files"
_NAME = re.compile(r"^([A-Za-z]+)\d+\.[A-Za-z]+$")


def read_label_file(path: Path) -> list[Record]:
    """Records of one `<image> <score>` file; errors name the file and line."""
    records = []
    for n, line in read_lines(path):
        where = f"{path}:{n}"
        fields = line.split()
        if len(fields) != 2:
            raise InputError(f"{where}: expected '<image> <score>', got {line!r}")
        name = check_image_name(fields[0], where)
        match = _NAME.match(name)
        if not match or match.group(1) not in SUBSETS:
            raise InputError(f"{where}: image name {name!r} does not start with a subset ({', '.join(SUBSETS)})")
        records.append(Record(name, parse_score(fields[1], where, SCALE), SUBSETS[match.group(1)]))
    if not records:
        raise InputError(f"{path}: no labels in the file")
    return records


def _split_file(path: Path, tried: list[Path] | None = None) -> list[Record]:
    if not path.is_file():
        layouts = ", ".join(str(p) for p in (tried or [path]))
        raise InputError(f"split file missing: {path} (layouts tried: {layouts})")
    return read_label_file(path)


def _check_same_scores(split: list[Record], labels: dict[str, Record], path: Path) -> None:
    for r in split:
        known = labels.get(r.image)
        if known is not None and abs(known.score - r.score) > 1e-6:
            raise InputError(f"{path}: {r.image} has score {r.score} but All_labels.txt says {known.score}")


def load(root: Path) -> Dataset:
    root = require_dir(Path(root), "dataset root")
    tt = require_dir(root / "train_test_files", "SCUT-FBP5500 label folder (ROOT/train_test_files)")
    all_labels = tt / "All_labels.txt"
    if not all_labels.is_file():
        raise InputError(f"label file missing: {all_labels}")
    records: dict[str, Record] = {}
    for r in read_label_file(all_labels):
        if r.image in records:
            raise InputError(f"{all_labels}: {r.image} is listed twice")
        records[r.image] = r

    def split(train: Path, test: Path, index: int, tried=None) -> Fold:
        parts = []
        for path in (train, test):
            rows = _split_file(path, tried and [t / path.name for t in tried])
            _check_same_scores(rows, records, path)
            parts.append(tuple(r.image for r in rows))
        return Fold(index, *parts)

    def five_fold() -> list[Fold]:
        base = tt / FIVE_FOLD
        return [
            split(base / f"cross_validation_{k}" / f"train_{k}.txt", base / f"cross_validation_{k}" / f"test_{k}.txt", k - 1)
            for k in range(1, 6)
        ]

    def sixty_forty() -> list[Fold]:
        tried = [tt / name for name in SPLIT_60_40]
        folder = next((d for d in tried if d.is_dir()), tried[0])
        return [split(folder / "train.txt", folder / "test.txt", 0, tried)]

    label_files = [all_labels, *sorted(tt.rglob("*.txt"))]
    return Dataset(
        name="scut-fbp5500",
        root=root,
        image_dir=root / "Images",
        records=records,
        protocols={"5fold": five_fold, "60-40": sixty_forty},
        label_files=sorted(set(label_files)),
        score_range=SCALE,
    )

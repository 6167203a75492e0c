"""HotOrNot (Gray et al. 2010): 2056 faces with z-scored ratings, five official splits.

    ROOT/<images>                       listed as *.bmp; the released files may be *.jpg
    ROOT/eccv2010_split1.csv .. eccv2010_split5.csv   no header: filename,score,set

`set` is `train` or `test`. Protocol `5split`: fold K trains on split K's train rows and tests
on its test rows. A listed name that does not exist resolves to the file with the same stem
and an image extension that does (`a.bmp` -> `a.jpg`). Scores are roughly z-scores, so there
is no range check beyond finiteness.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from fbp.data.base import Dataset, Fold, Record, check_image_name, parse_score, require_dir
from fbp.errors import InputError

SPLITS = [f"eccv2010_split{k}.csv" for k in range(1, 6)]
IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".png")


def _resolve(root: Path, name: str) -> str:
    """The existing file a listed name stands for; the listed name if none does."""
    if (root / name).is_file():
        return name
    stem = Path(name).stem
    for suffix in IMAGE_SUFFIXES:
        if (root / (stem + suffix)).is_file():
            return stem + suffix
    return name


def _read_split(path: Path, root: Path) -> list[tuple[Record, str]]:
    if not path.is_file():
        raise InputError(f"split file missing: {path} (HotOrNot layout: ROOT/eccv2010_split1..5.csv)")
    rows = []
    text = path.read_text(encoding="utf-8-sig")
    for n, fields in enumerate(csv.reader(io.StringIO(text)), start=1):
        fields = [f.strip() for f in fields]
        if not any(fields):
            continue
        where = f"{path}:{n}"
        if len(fields) != 3 or fields[2] not in ("train", "test"):
            raise InputError(f"{where}: expected 'filename,score,train|test', got {','.join(fields)!r}")
        name = _resolve(root, check_image_name(fields[0], where))
        rows.append((Record(name, parse_score(fields[1], where, None), "all"), fields[2]))
    if not rows:
        raise InputError(f"{path}: no rows in the file")
    return rows


def load(root: Path) -> Dataset:
    root = require_dir(Path(root), "dataset root")
    splits = [_read_split(root / name, root) for name in SPLITS]
    records: dict[str, Record] = {}
    for path, rows in zip(SPLITS, splits):
        for record, _ in rows:
            known = records.setdefault(record.image, record)
            if abs(known.score - record.score) > 1e-6:
                raise InputError(f"{root / path}: {record.image} has score {record.score}, another split says {known.score}")
    folds = [
        Fold(k, tuple(r.image for r, s in rows if s == "train"), tuple(r.image for r, s in rows if s == "test"))
        for k, rows in enumerate(splits)
    ]
    return Dataset(
        name="hotornot",
        root=root,
        image_dir=root,
        records=records,
        protocols={"5split": lambda: folds},
        label_files=[root / name for name in SPLITS],
        score_range=None,
    )

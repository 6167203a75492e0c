"""SCUT-FBP (Xie et al. 2015): 500 faces of women rated 1..5 by 70 raters.

    ROOT/SCUT-FBP-1.jpg ... SCUT-FBP-500.jpg
    ROOT/SCUT-FBP.xlsx      Sheet1: Image (1..500), Attractiveness label, Standard Deviation

There is no official split. Protocol `5fold` is a seeded split stratified by score: the images
are sorted by score (ties by number), cut into consecutive blocks of five, and within each
block a seeded permutation sends one image to each fold (a short last block fills folds at
random). Every fold so spans the whole score range. `split_seed` (default 0) fixes the draw;
the same seed always gives the same folds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fbp.data.base import Dataset, Fold, Record, parse_score, require_dir
from fbp.errors import InputError

SCALE = (1.0, 5.0)
WORKBOOK = "SCUT-FBP.xlsx"
COLUMNS = ("Image", "Attractiveness label")


def _workbook(root: Path) -> Path:
    path = root / WORKBOOK
    if path.is_file():
        return path
    others = sorted(root.glob("*.xlsx"))
    if len(others) == 1:
        return others[0]
    raise InputError(f"label workbook missing: {path} (found {len(others)} other .xlsx files in {root})")


def read_workbook(path: Path) -> list[Record]:
    import openpyxl  # only this dataset needs it

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises several types for a damaged file
        raise InputError(f"{path}: cannot read the workbook ({type(e).__name__}: {e})") from None
    sheet = book.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = [str(c).strip() if c is not None else "" for c in next(rows, ())]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path}: sheet {sheet.title!r} lacks the columns {missing}; has {header}")
    i_image, i_score = header.index(COLUMNS[0]), header.index(COLUMNS[1])
    records = []
    for n, row in enumerate(rows, start=2):
        if all(c is None for c in row):
            continue
        where = f"{path}:{sheet.title}!row {n}"
        try:
            number = int(row[i_image])
        except (TypeError, ValueError):
            raise InputError(f"{where}: Image {row[i_image]!r} is not an image number") from None
        records.append(Record(f"SCUT-FBP-{number}.jpg", parse_score(str(row[i_score]), where, SCALE), "all"))
    book.close()
    if not records:
        raise InputError(f"{path}: no labels in the workbook")
    return records


def stratified_folds(images: list[str], scores: np.ndarray, k: int, seed: int) -> list[Fold]:
    order = sorted(range(len(images)), key=lambda i: (scores[i], images[i]))
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(images), dtype=np.int64)
    for start in range(0, len(order), k):
        block = order[start : start + k]
        fold_of[block] = rng.permutation(k)[: len(block)]
    return [
        Fold(f, tuple(images[i] for i in range(len(images)) if fold_of[i] != f), tuple(images[i] for i in range(len(images)) if fold_of[i] == f))
        for f in range(k)
    ]


def load(root: Path, split_seed: int = 0) -> Dataset:
    root = require_dir(Path(root), "dataset root")
    workbook = _workbook(root)
    records: dict[str, Record] = {}
    for r in read_workbook(workbook):
        if r.image in records:
            raise InputError(f"{workbook}: image {r.image} is listed twice")
        records[r.image] = r
    images = list(records)
    scores = np.array([records[i].score for i in images])
    return Dataset(
        name="scut-fbp",
        root=root,
        image_dir=root,
        records=records,
        protocols={"5fold": lambda: stratified_folds(images, scores, 5, split_seed)},
        label_files=[workbook],
        score_range=SCALE,
    )

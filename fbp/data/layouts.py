"""Each published dataset's files, written for drawn faces (`fbp.data.faces.generate`).

A layout is the inverse of its loader, and takes every file and folder name from it, so that
the real loaders read the stand-ins exactly as they read the releases:

    scut-fbp5500  Images/AF1.jpg ..; train_test_files/All_labels.txt ("AF1.jpg 2.883333"), the
                  60/40 split (3300/2200 of 5500) and five folds whose test parts partition the
                  faces (4400/1100), all stratified by subset (fbp.data.scut_fbp5500)
    scut-fbp      SCUT-FBP-1.jpg .. SCUT-FBP-<n>.jpg (Asian women, as the release's 500) and
                  SCUT-FBP.xlsx: Sheet1 with columns Image (1..n), Attractiveness label (the
                  raters' mean, unrounded), Standard Deviation (of the raters' ratings); empty
                  Sheet2 and Sheet3, as the release's workbook has (fbp.data.scut_fbp). No split
                  file: there is none; the loader draws its five folds
    hotornot      hotornot-0001.jpg ..; eccv2010_split1.csv .. eccv2010_split5.csv, no header,
                  rows `filename,score,set` listing every face under a .bmp name (the release's
                  images may be .jpg, which the loader resolves), set `train` or `test`; the
                  five test parts partition the faces (fbp.data.hotornot). The score is a
                  z-score: the raters' mean standardised over all faces, z = (s - mean) / std,
                  as the release's scores roughly are

Every layout writes its label values in the faces' order; `write` returns them with what the
manifest should add. Nothing here draws or rates: `fbp.data.faces` does.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fbp.data import hotornot, scut_fbp, scut_fbp5500

SUBSETS = ("AF", "AM", "CF", "CM")  # Asian/Caucasian female/male, as in SCUT-FBP5500


@dataclass(frozen=True)
class Faces:
    """The generated faces, in drawing order."""

    names: list[str]  # file names on disk
    subsets: list[str]
    scores: np.ndarray  # (N,) the raters' mean, 1..5, unrounded
    spread: np.ndarray  # (N,) std of each face's ratings (ddof 1)


@dataclass(frozen=True)
class Layout:
    name: str
    share: tuple[int, int, int, int]
    """Faces per subset (AF, AM, CF, CM), in proportion: the subset sets the nuisance of the
    drawing (skin, hair, face shape), never the score."""
    n: int
    """The release's number of faces: the default."""
    raters: int
    """The release's raters per face: the default."""
    image_dir: str
    """Where the images go, relative to the root ("" for the root)."""
    image_name: Callable[[int, str, int], str]
    """(i, subset, k) -> file name: the i-th face drawn (1-based), face k of its subset."""
    write: Callable[[Path, Faces, np.random.Generator], tuple[np.ndarray, dict]]
    """Writes the label files into the root; returns the label values and the manifest's extras.
    The generator draws the splits."""


def largest_remainder(total: int, weights) -> list[int]:
    """Integers proportional to `weights` that sum to `total` (ties go to the earlier entry)."""
    quotas = [total * w / sum(weights) for w in weights]
    counts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


# --- SCUT-FBP5500 -----------------------------------------------------------------------------


def _splits_5500(rng: np.random.Generator, subsets: list[str]) -> dict[str, list[int]]:
    """Shuffled label order, a 60/40 split and five folds, all stratified by subset.

    Returns index lists: "all", "train", "test", "fold1".."fold5" (test indices of fold K).
    """
    order = [int(i) for i in rng.permutation(len(subsets))]
    groups = [[i for i in order if subsets[i] == s] for s in SUBSETS]
    n_train = largest_remainder(round(0.6 * len(subsets)), [len(g) for g in groups])
    train = {i for g, m in zip(groups, n_train) for i in g[:m]}
    dealt = [i for g in groups for i in g]  # dealing subset by subset keeps each fold stratified
    fold_of = {i: j % 5 for j, i in enumerate(dealt)}
    result = {
        "all": order,
        "train": [i for i in order if i in train],
        "test": [i for i in order if i not in train],
    }
    for f in range(5):
        result[f"fold{f + 1}"] = [i for i in order if fold_of[i] == f]
    return result


def _write_label_file(path: Path, rows: list[int], names: list[str], scores: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{names[i]} {scores[i]:.6f}\n" for i in rows).encode())


def _write_scut_fbp5500(root: Path, faces: Faces, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    scores = np.round(faces.scores, 6)  # the files hold 6 decimals, as the release's
    split = _splits_5500(rng, faces.subsets)
    tt = root / "train_test_files"
    _write_label_file(tt / "All_labels.txt", split["all"], faces.names, scores)
    sixty_forty = tt / scut_fbp5500.SPLIT_60_40[0]
    _write_label_file(sixty_forty / "train.txt", split["train"], faces.names, scores)
    _write_label_file(sixty_forty / "test.txt", split["test"], faces.names, scores)
    for k in range(1, 6):
        test = split[f"fold{k}"]
        held_out = set(test)
        train = [i for i in split["all"] if i not in held_out]
        folder = tt / scut_fbp5500.FIVE_FOLD / f"cross_validation_{k}"
        _write_label_file(folder / f"train_{k}.txt", train, faces.names, scores)
        _write_label_file(folder / f"test_{k}.txt", test, faces.names, scores)
    return scores, {}


# --- SCUT-FBP ---------------------------------------------------------------------------------

_WORKBOOK_TIME = datetime.datetime(2000, 1, 1)
"""The workbook's creation and modification time, and its zip entries': fixed, so that the
same faces give the same bytes (openpyxl stamps the time of saving)."""


def _save_workbook(book, path: Path) -> None:
    from openpyxl.xml.functions import tostring

    book.properties.created = _WORKBOOK_TIME
    buffer = io.BytesIO()
    book.save(buffer)
    book.properties.modified = _WORKBOOK_TIME  # save() set it to now
    stamp = (_WORKBOOK_TIME.year, _WORKBOOK_TIME.month, _WORKBOOK_TIME.day, 0, 0, 0)
    with zipfile.ZipFile(buffer) as saved, zipfile.ZipFile(path, "w") as out:
        for entry in saved.infolist():
            data = saved.read(entry.filename)
            if entry.filename == "docProps/core.xml":
                data = tostring(book.properties.to_tree())
            out.writestr(zipfile.ZipInfo(entry.filename, date_time=stamp), data, compress_type=zipfile.ZIP_DEFLATED)


def _write_scut_fbp(root: Path, faces: Faces, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    import openpyxl  # only this layout needs it

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    sheet.append([*scut_fbp.COLUMNS, "Standard Deviation"])
    for i, (score, spread) in enumerate(zip(faces.scores, faces.spread), start=1):
        sheet.append([i, float(score), float(spread)])
    for title in ("Sheet2", "Sheet3"):
        book.create_sheet(title)
    _save_workbook(book, root / scut_fbp.WORKBOOK)
    return faces.scores, {}


def _scut_fbp_name(i: int, subset: str, k: int) -> str:
    return f"SCUT-FBP-{i}.jpg"


# --- HotOrNot ---------------------------------------------------------------------------------


def _hotornot_name(i: int, subset: str, k: int) -> str:
    return f"hotornot-{i:04d}.jpg"


def _write_hotornot(root: Path, faces: Faces, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    mean, std = float(faces.scores.mean()), float(faces.scores.std())
    if not std > 0:
        raise ValueError("every face has the same score: no z-scores")
    z = np.round((faces.scores - mean) / std, 6)
    fold_of = np.empty(len(z), dtype=np.int64)
    fold_of[rng.permutation(len(z))] = np.arange(len(z)) % 5  # five test parts that partition the faces
    listed = [Path(name).stem + ".bmp" for name in faces.names]
    for k, path in enumerate(hotornot.SPLITS):
        text = io.StringIO()
        rows = csv.writer(text, lineterminator="\n")
        for name, score, fold in zip(listed, z, fold_of):
            rows.writerow([name, f"{score:.6f}", "test" if fold == k else "train"])
        (root / path).write_bytes(text.getvalue().encode())
    standardised = {"formula": "z = (score - mean) / std over all faces (population std)", "mean": round(mean, 6), "std": round(std, 6)}
    return z, {"z_scores": standardised}


def _scut_fbp5500_name(i: int, subset: str, k: int) -> str:
    return f"{subset}{k}.jpg"


LAYOUTS: dict[str, Layout] = {
    "scut-fbp5500": Layout("scut-fbp5500", (2000, 2000, 750, 750), 5500, 60, "Images", _scut_fbp5500_name, _write_scut_fbp5500),
    "scut-fbp": Layout("scut-fbp", (1, 0, 0, 0), 500, 70, "", _scut_fbp_name, _write_scut_fbp),
    # HotOrNot's faces are women of many origins: the nuisance of both female subsets
    "hotornot": Layout("hotornot", (1, 0, 1, 0), 2056, 60, "", _hotornot_name, _write_hotornot),
}
"""Layouts by the `fbp.data` name of the dataset they stand in for."""

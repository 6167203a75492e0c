"""The dress rehearsal: every study of the paper, end to end on the CPU, in minutes.

    fbp-search run studies/paper/ --rehearsal     # results/paper-rehearsal/, then its paper/

With neither the datasets nor a GPU, each study runs as it is written (its space, grid,
baseline points, protocol, objective and scheduler, so `fbp-search paper` lays out the same
rows) on drawn faces in its dataset's own layout, read by that dataset's own loader, with a
small model for a few epochs. What changes, and why (`rehearse`):

    data.root             drawn faces (`fbp.data.faces`, its difficulty untouched) in the
                          layout of the study's dataset (`fbp.data.layouts`): SCUT-FBP5500's
                          five folds and 60/40 split, SCUT-FBP's workbook, HotOrNot's z-scores
                          and five splits; FACES faces each, generated once into the cache
                          directory (`faces_root`). A `synthetic` study gets the same faces
    data.image_size 48    the drawn traits stay a few pixels wide (they are made to be seen at
                          64 px) at a quarter of the 224 px input's cost; data.resize: its default
    model.backbone        a small timm model in place of each of the paper's (STAND_INS), also
                          in the space's choices and the baseline points; the record at the
                          results root (RECORD) tells `fbp-search paper` which row each stands for
    model.pretrained      false: no weights to download; random initialisation
    train.epochs 2        enough for every epoch-wise path (curves, selection, the schedule's
                          drop) to run; the models barely learn, which is not the point
    train.schedule        step_size scaled with the epochs (the paper's 50 of 200: a quarter),
                          so the step schedule still drops once within the run
    train.repeats <= 2    two seeds still give the seed-to-seed spread and paired tests over
                          (fold, seed); one where the study has one
    train.batch_size 16   more optimizer steps per epoch on the few faces (the batch norm's
                          running statistics settle: fewer steps give wild test predictions)
    train.device cpu, train.compile off, eval.batch_size 64: the CPU, no compile time
    search.num_trials     a sampler proposes at most PROPOSED trials beyond the baseline
                          points (the joint search: the paper's point and 3 more); a grid and
                          a list of baseline points run whole: their cells are the rows
    resources             1 CPU and no GPU per trial, 2 at once: the 2-core CI machine

A rehearsal's results go to their own root (default results/<folder>-rehearsal), marked by
RECORD; `check_root` keeps real results and a rehearsal's out of each other's roots.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from fbp.config import set_path
from fbp.errors import InputError
from fbp.files import write_atomic
from search.spec import SearchSpec

FACES = {"n": 300, "size": 64, "seed": 41}
"""The drawn faces of every dataset (each with its release's number of raters). Seed 41: the
smallest whose 300 faces fill every class of every training split a paper study fits a
discretization on, as `fbp.kfold.fold_discretization` requires: the paper's five classes on
SCUT-FBP's five folds, and uniform and quantile with 3-10 classes besides on SCUT-FBP5500's five
folds and 60/40 split (every smaller seed leaves one of them empty in some training split: the
few faces rated >= 4.5 or < 1.5 decide it). HotOrNot's three intervals fill with any seed."""

OVERRIDES: dict[str, Any] = {
    "data.image_size": 48, "data.resize": None,
    "model.pretrained": False,
    "train.epochs": 2, "train.batch_size": 16, "train.device": "cpu", "train.compile": "off",
    "eval.batch_size": 64,
    "resources.cpu": 1, "resources.gpu": 0, "resources.max_concurrent": 2,
}
"""Dotted paths set in every study, before the user's --set (the module docstring says why)."""

STAND_INS: dict[str, dict[str, str]] = {
    "model.backbone": {
        "seresnext50_32x4d": "test_resnet",  # a ResNet for the SE-ResNeXt: the paper's own
        "resnet18": "test_byobnet",  # timm's small bring-your-own-blocks ResNet
        "resnet50": "test_efficientnet",
        "convnext_tiny": "test_convnext",
        "vit_base_patch16_224": "test_vit",  # a ViT, built for the rehearsal's 48 px input
        "vit_base_patch16_clip_224.openai": "test_vit2",
    },
}
"""{dotted path: {the study's value: its small stand-in}}, one stand-in per value, so each row
of the paper still has its own trials."""

MAX_REPEATS = 2
PROPOSED = 3
"""Trials a sampler may propose beyond a study's baseline points."""
RECORD = "rehearsal.yaml"
"""At the results root of a rehearsal: what it changed. `fbp-search paper` reads its stand-ins."""
DESCRIPTION = "REHEARSAL on drawn faces with a small model (search.rehearsal): the figures check the pipeline, not the paper. "


def faces_root(dataset: str) -> Path:
    """The drawn faces in `dataset`'s layout, generated on first use; a race with another
    process generating the same set is won by either."""
    from fbp.data.cache import cache_dir
    from fbp.data.faces import GENERATOR_VERSION, generate, layout_params

    params = layout_params(dataset, **FACES)
    root = cache_dir() / "rehearsal" / f"{dataset}-n{params.n}-s{params.size}-seed{params.seed}-r{params.raters}-v{GENERATOR_VERSION}"
    if not (root / "manifest.json").is_file():
        try:
            generate(root, params, layout=dataset)
        except FileExistsError:
            if not (root / "manifest.json").is_file():  # not a racing twin: something else is there
                raise InputError(f"rehearsal faces {root} exist and hold no generated set; remove the folder") from None
    return root


def _data(dataset: str) -> dict[str, Any]:
    """The data paths that point a study of `dataset` at the drawn faces."""
    from fbp.data.layouts import LAYOUTS

    if dataset in LAYOUTS:
        return {"data.root": str(faces_root(dataset))}
    if dataset == "synthetic":  # already drawn: the rehearsal's number of them, in the cache
        return {"data.root": None, "data.options": dict(FACES)}
    return {}  # not a dataset: the study's validation names it


def _get(raw: dict, path: str, default: Any = None) -> Any:
    node: Any = raw
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def _stand_in(value: Any, path: str, where: str) -> Any:
    own = STAND_INS[path]
    if value in own or value in own.values():
        return own.get(value, value)
    raise InputError(f"{where}: the rehearsal has no small stand-in for {path} {value!r}; it has one for {', '.join(own)}")


def _replace_values(raw: dict, source: str) -> None:
    """Every value of a STAND_INS path, wherever the study names it: the base config (or the
    field's default), the space's choices, the baseline points, the `when` conditions."""
    from fbp.config import field_at

    search = raw.get("search") or {}
    space = search.get("space") or {}
    for path in STAND_INS:
        value = _get(raw, path, field_at(path).default)
        set_path(raw, path, _stand_in(value, path, f"{source}: {path}"))
        if path in space and isinstance(space[path], dict) and isinstance(space[path].get("choice"), list):
            space[path]["choice"] = [_stand_in(v, path, f"{source}: search.space.{path}") for v in space[path]["choice"]]
        for i, point in enumerate(search.get("baseline") or []):
            if isinstance(point, dict) and path in point:
                point[path] = _stand_in(point[path], path, f"{source}: search.baseline[{i}].{path}")
        for other, dim in space.items():
            when = dim.get("when") if isinstance(dim, dict) else None
            if isinstance(when, dict) and path in when:
                where = f"{source}: search.space.{other}.when"
                wanted = when[path]
                when[path] = [_stand_in(v, path, where) for v in wanted] if isinstance(wanted, list) else _stand_in(wanted, path, where)


def rehearse(raw: dict, source: str) -> dict:
    """The rehearsal version of a raw study (a YAML mapping, before the user's --set): see the
    module docstring for every change. Generates the study's faces if they are not there yet."""
    from fbp.config import field_at

    out = copy.deepcopy(raw)
    for path, value in {**OVERRIDES, **_data(_get(raw, "data.dataset", field_at("data.dataset").default))}.items():
        set_path(out, path, value)
    _replace_values(out, source)

    epochs = _get(raw, "train.epochs", field_at("train.epochs").default)
    step_size = _get(raw, "train.schedule.step_size", field_at("train.schedule.step_size").default)
    if isinstance(epochs, int) and isinstance(step_size, int) and epochs > 0:
        set_path(out, "train.schedule.step_size", max(1, round(step_size * OVERRIDES["train.epochs"] / epochs)))
    repeats = _get(raw, "train.repeats", 1)
    if isinstance(repeats, int):
        set_path(out, "train.repeats", min(repeats, MAX_REPEATS))

    search = out.get("search")
    own = SearchSpec.model_fields  # the defaults a study file may leave out
    if isinstance(search, dict) and search.get("space") and search.get("sampler", own["sampler"].default) != "grid":
        trials, baseline = search.get("num_trials", own["num_trials"].default), len(search.get("baseline") or [])
        if isinstance(trials, int):
            search["num_trials"] = max(baseline, min(trials, baseline + PROPOSED))
    out["description"] = DESCRIPTION + str(raw.get("description", ""))
    return out


# --- the results root -------------------------------------------------------------------------


def write_record(root: Path) -> None:
    """Mark `root` as a rehearsal's, with what it changed (written once per run, the same each time)."""
    root.mkdir(parents=True, exist_ok=True)
    record = {
        "what": DESCRIPTION.strip(),
        "faces": {**FACES, "datasets": "each study's own layout (fbp.data.layouts), generated into the cache directory"},
        "overrides": OVERRIDES,
        "max_repeats": MAX_REPEATS,
        "proposed": PROPOSED,
        "stand_ins": STAND_INS,
    }
    write_atomic(root / RECORD, yaml.safe_dump(record, sort_keys=False))


def read_record(root: Path) -> dict | None:
    """The record of the rehearsal whose results are under `root`; None when `root` is not a rehearsal's."""
    path = Path(root) / RECORD
    if not path.is_file():
        return None
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise InputError(f"{path}: cannot read the rehearsal's record ({type(e).__name__}: {e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("stand_ins", {}), dict):
        raise InputError(f"{path}: not a rehearsal's record (a mapping with stand_ins), got {type(record).__name__}")
    return record


def originals(record: dict | None) -> dict[str, dict[str, str]]:
    """{dotted path: {stand-in: the value it stands in for}} of a record (none without one)."""
    return {path: {small: value for value, small in own.items()} for path, own in ((record or {}).get("stand_ins") or {}).items()}


def check_root(root: Path, rehearsal: bool, flag: str = "--results") -> None:
    """A rehearsal writes only into a root of its own, a real run never into one: their results
    would mix in `fbp-search paper`, which maps the stand-ins back for every study of the root."""
    root = Path(root)
    if not root.is_dir():
        return
    if not rehearsal and (root / RECORD).is_file():
        raise InputError(f"{flag}: {root} holds a rehearsal's results ({RECORD}); real results go elsewhere, e.g. results/")
    if rehearsal and not (root / RECORD).is_file() and any((d / "study.yaml").is_file() for d in root.iterdir() if d.is_dir()):
        raise InputError(f"{flag}: {root} holds results that are not a rehearsal's; a rehearsal writes into a root of its own (default results/<folder>-rehearsal)")

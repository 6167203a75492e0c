"""The formats of a kept model: one fold's selected model as one file, and a model folder that
scores new faces on its own (`fbp.predict.load_model` reads it). No Ray, no Optuna.

A fold model, `fold<k>.safetensors` (`fold<k>-seed<s>.safetensors` with train.repeats): the
weights of the epoch `eval.select` chose and, in the file's safetensors metadata (key "fbp",
JSON), what the weights alone do not say: fold, seed, selected epoch, class values, input
normalization, the fold's metrics. One file, written atomically: present means complete.

A model folder (`fbp-search export`):

    model.json            the manifest: FORMAT and FORMAT_VERSION, the members, the
                          preprocessing, how a score is formed, the metrics, where it came from
    config.yaml           the trial's resolved config
    fold<k>.safetensors   the members, copied as they were kept (or all.safetensors: --refit)
    README.md             the model card

A reader refuses a folder of another FORMAT_VERSION rather than guess: the manifest alone says
how to turn an image into the input the weights expect.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from safetensors import SafetensorError, safe_open

from fbp.errors import InputError
from fbp.files import atomic_path, write_atomic
from fbp.metrics import NAMES, REPORTED, val_name

if TYPE_CHECKING:  # torch is imported by whoever trains, not by a reader of the formats
    from fbp.config import TrialConfig
    from fbp.kfold import FoldResult

FORMAT = "fbp-model"
FORMAT_VERSION = 1
"""Bump when a reader of the previous version would misread a folder of the new one."""
MANIFEST = "model.json"
CONFIG = "config.yaml"
CARD = "README.md"
FOLD_KIND = "fbp-fold-model"
METADATA_KEY = "fbp"
REFIT_MEMBER = "all"  # the one member of a --refit export


def member_name(fold: int, seed: int, repeats: int) -> str:
    """A fold model's name (its file is name + .safetensors): fold<k>, or fold<k>-seed<s> when
    train.repeats trains a fold with several seeds."""
    return f"fold{fold}" if repeats == 1 else f"fold{fold}-seed{seed}"


def _finite(value: float) -> float | None:
    """JSON has no NaN: a metric that is not there (no holdout, a constant prediction) is null."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def save_fold_model(folder: Path, result: FoldResult, config: TrialConfig, name: str) -> str:
    """Write a fold's selected model (`result.model`, see `fbp.kfold.SelectedModel`) as
    folder/<name>.safetensors, atomically; returns the file name."""
    from fbp.models import save_weights

    if result.model is None:
        raise ValueError(f"fold {result.fold}: trained without keep_models, no model to save")
    m = result.model
    info = {
        "kind": FOLD_KIND, "version": FORMAT_VERSION, "fold": result.fold, "seed": result.seed,
        "selected_epoch": result.selected_epoch, "epochs_run": result.epochs_run, "select": result.select,
        "backbone": config.model.backbone, "class_values": list(m.class_values), "mean": list(m.mean), "std": list(m.std),
        "n_train": result.n_train, "n_test": result.n_test,
        "metrics": {k: _finite(getattr(result, k)) for k in REPORTED},
    }
    file = f"{name}.safetensors"
    save_weights(m.state, Path(folder) / file, metadata={METADATA_KEY: json.dumps(info)})
    return file


def save_fold_runs(folder: Path, runs: list[FoldResult], config: TrialConfig) -> list[str]:
    """A finished fold's selected models (one per train.repeats seed) and the trial's
    config.yaml into `folder`; returns the names of the files written. Runs that carry no
    model (a fold runner that keeps none, such as bench/scale.py's simulated one) write
    nothing."""
    if any(r.model is None for r in runs):
        return []
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    repeats = config.train.repeats
    files = [save_fold_model(folder, r, config, member_name(r.fold, r.seed, repeats)) for r in runs]
    write_config(folder, config)
    return [*files, CONFIG]


def fold_model_info(path: Path) -> dict:
    """A fold model's metadata, read from the safetensors header alone: safetensors' own reader
    with numpy as its framework (no torch, no tensor read)."""
    try:
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata()
        info = json.loads(metadata[METADATA_KEY])  # no metadata (None) or no "fbp" key: not ours
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a fold model of fbp-search ({type(e).__name__}: {e})") from None
    if info.get("kind") != FOLD_KIND:
        raise InputError(f"{path}: not a fold model of fbp-search (kind {info.get('kind')!r})")
    return info


def write_config(folder: Path, config: TrialConfig) -> None:
    """The trial's resolved config as folder/config.yaml, atomically."""
    write_atomic(Path(folder) / CONFIG, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


# --- the model folder ---------------------------------------------------------------------


def _spread(values: list[float | None]) -> dict[str, float | None]:
    """Mean and sample std over the members (std null for one member); null values skipped."""
    present = [v for v in values if v is not None]
    if not present:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(present) / len(present)
    std = math.sqrt(sum((v - mean) ** 2 for v in present) / (len(present) - 1)) if len(present) > 1 else None
    return {"mean": mean, "std": std, "n": len(present)}


def build_manifest(config: TrialConfig, members: list[dict], origin: dict[str, Any], refit: dict | None = None) -> dict:
    """The manifest of a model folder. `members`: each member's `fold_model_info` with its
    "file"; `origin`: study, spec_hash, trial_id, params, objective (where the trial came from);
    `refit`: for a --refit export, the k-fold members' metrics the configuration reached (its
    estimate) and the fit of the refit model on its own training images."""
    from fbp.data.cache import RESIZE

    first = members[0]
    cv = refit["kfold_members"] if refit else members
    metrics = {k: _spread([m["metrics"].get(k) for m in cv]) for k in REPORTED}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "origin": origin,
        "members": [{k: m[k] for k in ("file", "fold", "seed", "selected_epoch", "select", "class_values", "n_train", "n_test", "metrics")} for m in members],
        "preprocessing": {
            "channels": "RGB",
            "decode": RESIZE,  # as the training images were cached: fbp.predict decodes with the same (fbp.data.cache.DECODES)
            "decode_side": config.data.cached_side,
            "image_size": config.data.image_size,
            "view": config.eval.view,
            "mean": first["mean"],
            "std": first["std"],
        },
        "prediction": {
            "backbone": config.model.backbone,
            "drop_rate": config.model.drop_rate,
            "predict": config.eval.predict,
            "fused_weight": config.eval.fused_weight,
            "expectation_head": config.loss.name == "combo",  # without it y_exp is meaningless (NaN)
            "precision": config.train.precision,
            "ensemble": "mean of the members' scores",
        },
        "data": {"dataset": config.data.dataset, "protocol": config.data.protocol, "folds": sorted({m["fold"] for m in cv})},
        "metrics": metrics,
        "refit": refit and {k: v for k, v in refit.items() if k != "kfold_members"},
    }


def write_model_folder(out: Path, manifest: dict, config: TrialConfig, member_files: dict[str, Path]) -> None:
    """The model folder at `out` (new, or an empty directory), whole or not at all: it is
    written beside `out` under a temporary name and renamed into place. `member_files`: the
    file name each member has in the folder -> where it is now (copied)."""
    out = Path(out)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        raise InputError(f"--out {out}: exists and is not an empty directory; choose a new one")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:  # an empty `out` is replaced; anything else was refused above
        tmp.mkdir()
        for name, source in member_files.items():
            shutil.copyfile(source, tmp / name)
        write_config(tmp, config)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (tmp / CARD).write_text(model_card(manifest), encoding="utf-8")


def read_manifest(folder: Path) -> dict:
    """A model folder's manifest, checked: an exported model of this format version whose
    member files are all there. Anything else is an InputError naming the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: {'not a directory' if folder.exists() else 'does not exist'}; give the folder fbp-search export wrote")
    path = folder / MANIFEST
    if not path.is_file():
        raise InputError(f"{folder}: not an exported model (no {MANIFEST}); make one with fbp-search export RESULTS --out {folder}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: cannot read it ({type(e).__name__}: {e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{path}: not an exported model of fbp-search (format {manifest.get('format') if isinstance(manifest, dict) else None!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(f"{path}: format_version {version!r}, but this fbp-search reads version {FORMAT_VERSION}; "
                         "export the model again with this version, or predict with the version that exported it")
    missing = [m["file"] for m in manifest["members"] if not (folder / m["file"]).is_file()]
    if missing:
        raise InputError(f"{folder}: {MANIFEST} lists {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not there; export it again")
    return manifest


# --- the model card -----------------------------------------------------------------------


def _figure(spread: dict) -> str:
    if spread["mean"] is None:
        return "-"
    return f"{spread['mean']:.4f} ± {spread['std']:.4f}" if spread["std"] is not None else f"{spread['mean']:.4f}"


def _shown(value: Any) -> str:
    """A parameter as a reader wants it: floats to 6 significant digits (an Optuna draw is
    2.7364823749237015, a float32 mean 0.48500001430511475), lists item by item."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


CARD_METRICS = {"mae": "mae", "rmse": "rmse", "pc": "pearsonr"}
"""A manifest metric -> its metric type in the card's model index (the `evaluate` names)."""


def card_metadata(manifest: dict) -> dict:
    """The model card's YAML front matter, as the Hugging Face Hub and `huggingface_hub.ModelCard`
    read it: what library loads it, tags to find it by, the dataset, and the k-fold test figures
    in the model index (the mean over the test folds; a metric with no value is left out).

    library_name is `pytorch`, not `timm`: the weights are a timm backbone inside fbp's own
    network with two heads, which timm alone does not load (`fbp.predict.load_model` does).
    The task type `image-regression` is descriptive: the Hub lists no pipeline for it. No
    license: the study does not say one, and the dataset's own terms bind the weights."""
    o, q, d, metrics = manifest["origin"], manifest["prediction"], manifest["data"], manifest["metrics"]
    k = len(d["folds"])
    values = [{"type": kind, "name": f"{name.upper()} (mean of {k} test folds)", "value": metrics[name]["mean"]}
              for name, kind in CARD_METRICS.items() if metrics[name]["mean"] is not None]
    meta: dict[str, Any] = {
        "library_name": "pytorch",
        "tags": ["facial-beauty-prediction", "fbp-search", "timm", q["backbone"], "safetensors"],
        "datasets": [d["dataset"]],
        "metrics": list(CARD_METRICS.values()),
    }
    if values:
        meta["model-index"] = [{
            "name": f"{o['study']}-{o['trial_id']}",
            "results": [{
                "task": {"type": "image-regression", "name": "Facial beauty prediction"},
                "dataset": {"type": d["dataset"], "name": d["dataset"], "config": d["protocol"], "split": "test"},
                "metrics": values,
            }],
        }]
    return meta


def model_card(manifest: dict) -> str:
    """README.md of a model folder: its front matter (`card_metadata`), then what it was trained
    on, how it was chosen, what it reached, what it is for and what it is not."""
    o, p, q, d = manifest["origin"], manifest["preprocessing"], manifest["prediction"], manifest["data"]
    members, metrics, refit = manifest["members"], manifest["metrics"], manifest["refit"]
    select = members[0]["select"]
    k = len(d["folds"])
    chosen_on = o.get("objective", {}).get("on")
    lines = [
        "---",
        yaml.safe_dump(card_metadata(manifest), sort_keys=False).rstrip("\n"),
        "---",
        "",
        f"# {o['study']}: trial {o['trial_id']}",
        "",
        f"A facial beauty predictor exported by fbp-search (format {manifest['format']} v{manifest['format_version']}, "
        f"study spec_hash {o['spec_hash']}): backbone `{q['backbone']}` with a regression and a classification head (ComboLoss).",
        "",
        "## Data and protocol",
        "",
        f"- Dataset `{d['dataset']}`, protocol `{d['protocol']}`, folds {', '.join(map(str, d['folds']))}.",
    ]
    if refit:
        lines.append(f"- One model trained on all {refit['n_train']} labelled images for {refit['epochs']} epochs (weights of the last epoch): "
                     "nothing was held out, so it has no held-out figure of its own; the figures below are the same configuration's "
                     f"{k}-fold figures, the estimate of what it reaches.")
    else:
        lines.append(f"- {len(members)} fold models, an ensemble: each trained on the other folds' images and tested on its own fold; "
                     "a new face's score is the mean of their scores.")
        lines.append(f"- Each fold's weights are from the epoch `eval.select: {select}` chose" + {
            "last": " (the last epoch).", "inner_val": " (best PC on a part held out of its training fold).",
            "test_oracle": " (best PC on its test fold: optimistic, the test fold chose).",
        }.get(select, "."))
    params = ", ".join(f"{k}={_shown(v)}" for k, v in (o.get("params") or {}).items()) or "the study's base configuration"
    if o.get("trials_complete", 1) <= 1 and not o.get("params"):
        lines.append("- One configuration, no search: nothing was chosen between trials.")
    else:
        lines.append(f"- Chosen among the study's {o.get('trials_complete', '')} complete trials by its objective ({o.get('objective', {}).get('metric', 'pc')} on "
                     f"{'validation parts held out of the training folds' if chosen_on == 'val' else 'the test folds (optimistic)'}): {params}.")
    lines += ["", "## Metrics", "", f"Mean ± sample std over the {k} test folds (each fold model on its own test fold):", "",
              "| | MAE | RMSE | PC |", "|---|---|---|---|",
              "| test folds | " + " | ".join(_figure(metrics[m]) for m in NAMES) + " |"]
    if metrics[val_name("pc")]["mean"] is not None:
        lines.append("| validation parts | " + " | ".join(_figure(metrics[val_name(m)]) for m in NAMES) + " |")
    if refit:
        fit = refit["fit"]
        lines.append("| refit model on its own training images (no estimate) | " + " | ".join(f"{fit[m]:.4f}" if fit.get(m) is not None else "-" for m in NAMES) + " |")
    lines += [
        "", "## Input and output", "",
        f"- Input: an RGB image, turned upright by its EXIF orientation, decoded and resized to {p['decode_side']} x {p['decode_side']} px "
        f"(PIL bilinear, antialiased; decoding {p['decode']}), then "
        + (f"resized to {p['image_size']} px" if p["view"] == "resize" else f"its central {p['image_size']} x {p['image_size']} px")
        + f", normalized with mean {_shown(p['mean'])} and std {_shown(p['std'])}.",
        f"- Output: the score on the training labels' scale, from the {q['predict']} prediction"
        + (f" ({_shown(q['fused_weight'])} x regression + {_shown(1 - q['fused_weight'])} x expectation)" if q["predict"] == "fused" else "")
        + "; the expectation head's score and each member's score beside it.",
        "", "## Intended use and limits", "",
        "- Input a face crop like the training set's: one frontal face, cropped and framed as the dataset's images are. "
        "This is not a face detector: a photo with a small face, several faces or no face still gets a score, and it means nothing.",
        "- The score predicts the mean rating of the dataset's raters; it carries their population's and the dataset's biases "
        "(ages, ethnicities, photographic conditions) and says nothing about a person.",
        "- For research and benchmarking; not for decisions about people.",
    ]
    if d["dataset"] == "synthetic":
        lines.append("- Trained on synthetic faces (`fbp-search data synth`): a test fixture, not a model of human faces.")
    lines += ["", "## Use", "", "```bash", "fbp-search predict THIS_FOLDER faces/ --out scores.csv", "```", "", "```python",
              "from fbp.predict import load_model", "model = load_model('THIS_FOLDER')", "scores = model.predict(['face.jpg'])", "```", ""]
    return "\n".join(lines)

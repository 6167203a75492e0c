"""Scores for new faces from an exported model folder (`fbp.export`), in three lines:

    from fbp.predict import load_model
    model = load_model("models/quickstart")
    scores = model.predict(["a.jpg", "b.jpg"])      # paths, PIL images or (H, W, 3) uint8 arrays

`model.predict_frame(images)` gives the details: a row per image with the ensemble's score, the
spread of its members' scores, the expectation head's score and each member's own score.

A face is seen exactly as evaluation saw the test folds: turned upright by its EXIF orientation,
decoded and resized as the decoded image cache holds the training images (one function,
`fbp.data.cache.decode_image`, with the decoding the manifest names), cut to the network's
view by `fbp.augment.eval_view`, normalized with the manifest's mean and std, and scored by
`fbp.kfold.head_outputs`. bf16 and channels_last follow the trial's config on CUDA, as its
evaluation did, and are off on the CPU. Decoding runs in a thread pool a batch or two ahead of
the forward pass, so a run takes about as long as the slower of the two (bench/predict_speed.py).
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import ExifTags, Image

from fbp.augment import eval_view
from fbp.data.cache import DECODES, decode_image, resize_image
from fbp.errors import InputError
from fbp.export import read_manifest
from fbp.kfold import autocast_for, head_outputs, predicted_score
from fbp.models import FBPNet

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
"""What a folder given to `fbp-search predict` is searched for (other files there are not faces)."""

FIXED_COLUMNS = ("image", "score", "spread", "score_exp", "warning")
"""The columns of `predict_frame` before one column per member (named as its file, e.g. fold1):
score, the mean of the members' scores; spread, their standard deviation; score_exp, the mean of
their expectation heads' scores (NaN when the loss trained no classification head); warning,
why the score means little (`tiny_image`), else empty."""

MIN_SIDE = 16
"""Pixels: an image whose shorter side is below this, or below a quarter of the model's image
size, is scored with a warning. Resized up to the model's input, a 1x1 image is one flat colour:
it still gets a score, which says nothing about a face."""

ImageLike = str | Path | Image.Image | np.ndarray


@dataclass
class Member:
    name: str  # its file's stem: fold1, fold1-seed0, all
    net: FBPNet
    values: torch.Tensor  # (K,) class values of its expectation head, on the device


class Model:
    """An exported model, loaded: its members on one device and the manifest's preprocessing."""

    def __init__(self, folder: Path, manifest: dict, members: list[Member], device: torch.device):
        self.folder, self.manifest, self.members, self.device = folder, manifest, members, device
        p, q = manifest["preprocessing"], manifest["prediction"]
        self.decode, self.decode_side, self.image_size, self.view = p["decode"], int(p["decode_side"]), int(p["image_size"]), p["view"]
        self.mean, self.std = tuple(p["mean"]), tuple(p["std"])
        self.predict_mode, self.fused_weight, self.has_exp = q["predict"], float(q["fused_weight"]), bool(q["expectation_head"])
        # decided once, as evaluation decided them: bf16 per train.precision and channels_last only on CUDA
        self.autocast = autocast_for(q["precision"], device)
        self.channels_last = device.type == "cuda"

    def __repr__(self) -> str:
        o = self.manifest["origin"]
        return f"Model({o['study']} trial {o['trial_id']}: {len(self.members)} members {', '.join(self.names)} on {self.device})"

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def columns(self) -> list[str]:
        return [*FIXED_COLUMNS, *self.names]

    # --- images in

    def pixels(self, image: ImageLike) -> np.ndarray:
        """One image as the model's input before its view: (decode_side, decode_side, 3) uint8.
        A path is decoded; a PIL image or an (H, W, 3) uint8 array is resized. Bad input is an
        InputError naming it."""
        if isinstance(image, (str, Path)):
            path = Path(image)
            if not path.is_file():
                raise InputError(f"{path}: {'is not a file' if path.exists() else 'no such file'}")
            return decode_image(path, self.decode_side, self.decode)
        if isinstance(image, Image.Image):
            return resize_image(image, self.decode_side)
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
                raise InputError(f"an array image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
            return resize_image(Image.fromarray(image), self.decode_side)
        raise InputError(f"cannot score a {type(image).__name__}: give a path, a PIL image or an (H, W, 3) uint8 array")

    # --- scores out

    @torch.no_grad()
    def score_pixels(self, pixels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each member's (regression, expectation) scores of a batch of `pixels` (B, S, S, 3)."""
        x = eval_view(torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device), self.image_size, self.view, self.mean, self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = {}
        for m in self.members:
            reg, exp = head_outputs(m.net, x, m.values, self.autocast)
            out[m.name] = (reg.cpu().numpy().astype(np.float64), exp.cpu().numpy().astype(np.float64))
        return out

    def predict_frame(self, images: Iterable[ImageLike], batch_size: int = 64, errors: list[tuple[str, str]] | None = None,
                      on_batch: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """A row per image (`columns`), in the order given. A bad image raises an InputError
        naming it, unless `errors` is a list: then (image, message) is appended and the other
        images are scored. A tiny image is scored, its `warning` saying why the score means
        little (`tiny_image`). `on_batch(done, total)` after each batch."""
        images = list(images)
        rows: list[dict] = []
        workers = max(1, min(8, os.cpu_count() or 1))
        # PIL releases the GIL while decoding: the pool decodes the next two batches while this
        # thread runs the forward pass of the current one (on a GPU, decoding and the forward
        # pass then take the time of the slower one, not of both)
        with ThreadPoolExecutor(workers) as pool, closing(_in_order(pool, self._try_pixels, images, 2 * batch_size)) as decoded:
            for start in range(0, len(images), batch_size):
                chunk = images[start : start + batch_size]
                good_labels, good_pixels, good_warnings = [], [], []
                for i, (pixels, error, warning) in enumerate(islice(decoded, len(chunk))):
                    label = _label(chunk[i], start + i)
                    if error is None:
                        good_labels.append(label)
                        good_pixels.append(pixels)
                        good_warnings.append(warning)
                    elif errors is None:
                        raise InputError(error)
                    else:
                        errors.append((label, error))
                if good_pixels:
                    rows += self._rows(good_labels, good_warnings, self.score_pixels(np.stack(good_pixels)))
                if on_batch is not None:
                    on_batch(start + len(chunk), len(images))
        return pd.DataFrame(rows, columns=self.columns)

    def predict(self, images: Iterable[ImageLike], batch_size: int = 64) -> np.ndarray:
        """The ensemble's score of each image, in the order given (a bad image: InputError; a
        tiny one: a UserWarning naming it, as the scores alone cannot say so)."""
        frame = self.predict_frame(images, batch_size)
        for label, warning in zip(frame["image"], frame["warning"]):
            if warning:
                warnings.warn(f"{label}: {warning}", UserWarning, stacklevel=2)
        return frame["score"].to_numpy()

    def _try_pixels(self, image: ImageLike) -> tuple[np.ndarray | None, str | None, str]:
        """(pixels, None, warning) or (None, error, "")."""
        try:
            pixels = self.pixels(image)
        except InputError as e:
            return None, str(e), ""
        return pixels, None, tiny_image(_size(image), self.image_size) or ""

    def _rows(self, labels: list[str], notes: list[str], outputs: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[dict]:
        scores = np.stack([predicted_score(self.predict_mode, self.fused_weight, reg, exp) for reg, exp in outputs.values()])  # (M, B)
        exps = np.stack([exp for _, exp in outputs.values()]).mean(0) if self.has_exp else np.full(len(labels), np.nan)
        mean, spread = scores.mean(0), scores.std(0)
        return [
            {"image": label, "score": float(mean[i]), "spread": float(spread[i]), "score_exp": float(exps[i]), "warning": notes[i],
             **{name: float(scores[j, i]) for j, name in enumerate(outputs)}}
            for i, label in enumerate(labels)
        ]


def _in_order(pool: Executor, fn: Callable, items: Iterable, ahead: int) -> Iterator:
    """fn(item) for each item, in order, computed by `pool` up to `ahead` items beyond the one
    handed out: the pool works on the next items while the caller uses this one, and no more
    than `ahead` results wait in memory (a folder of 100,000 faces is not decoded at once).
    Closed early, it cancels what has not started."""
    rest = iter(items)
    pending = deque(pool.submit(fn, item) for item in islice(rest, max(1, ahead)))
    try:
        while pending:
            result = pending.popleft().result()
            pending.extend(pool.submit(fn, item) for item in islice(rest, 1))
            yield result
    finally:
        for future in pending:
            future.cancel()


def tiny_image(size: tuple[int, int] | None, image_size: int) -> str | None:
    """Why an image of `size` (width, height) is too small for a model that sees `image_size`
    px faces to score it meaningfully, or None."""
    if size is None:
        return None
    least = max(MIN_SIDE, image_size // 4)
    if min(size) >= least:
        return None
    return f"tiny image, {size[0]}x{size[1]} px: the model sees {image_size} px faces and a side under {least} px leaves no face to see; its score means little"


def _size(image: ImageLike) -> tuple[int, int] | None:
    """(width, height) of an image as given, before any resizing, as shown upright (an EXIF
    orientation of 5 to 8 turns it a quarter); None if it cannot be read (the decoding already
    said what is wrong)."""
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as im:  # the header only: the pixels were decoded already
                return _upright_size(im)
        except (OSError, ValueError):
            return None
    if isinstance(image, Image.Image):
        return _upright_size(image)
    return (image.shape[1], image.shape[0]) if isinstance(image, np.ndarray) and image.ndim >= 2 else None


def _upright_size(im: Image.Image) -> tuple[int, int]:
    width, height = im.size
    return (height, width) if im.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8) else (width, height)


def _label(image: ImageLike, index: int) -> str:
    """What the frame's `image` column says of an image: its path, else where it came from."""
    if isinstance(image, (str, Path)):
        return str(image)
    if isinstance(image, Image.Image) and getattr(image, "filename", ""):
        return str(image.filename)
    return f"<{type(image).__name__} {index}>"


def load_model(folder: str | Path, device: str = "auto", members: Sequence[str] | None = None) -> Model:
    """An exported model folder, loaded onto `device` (auto: CUDA when there is one). `members`:
    only these (e.g. ["fold2"]: fold 2's model alone), by default all of them. A folder that is
    not an exported model, or one of another format version, is an InputError."""
    from safetensors.torch import load_file

    from fbp.config import ModelConfig
    from fbp.models import build_model

    folder = Path(folder)
    manifest = read_manifest(folder)
    listed = {Path(m["file"]).stem: m for m in manifest["members"]}
    chosen = list(members) if members is not None else list(listed)
    unknown = [name for name in chosen if name not in listed]
    if unknown or not chosen:
        raise InputError(f"{folder}: no member {unknown[0] if unknown else '(none asked for)'}; its members: {', '.join(listed)}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} asked for, but no CUDA device is available; use cpu or auto")
    try:
        target = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    except RuntimeError:
        target = None
    if target is None or target.type not in ("cpu", "cuda"):  # torch names more (mps, meta, ...) than predict runs on
        raise InputError(f"device {device!r}: not a device predict runs on; use auto, cpu, cuda or cuda:N")
    if target.type == "cuda" and target.index is not None and target.index >= torch.cuda.device_count():
        raise InputError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA devices (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    q = manifest["prediction"]
    if manifest["preprocessing"].get("decode") not in DECODES:
        raise InputError(f"{folder / 'model.json'}: preprocessing.decode {manifest['preprocessing'].get('decode')!r} is not a decoding this fbp-search knows "
                         f"({', '.join(DECODES)}); predict with the version that exported it")
    loaded = []
    for name in chosen:
        info = listed[name]
        path = folder / info["file"]
        # random initialisation, then the kept weights: predicting never needs the hub
        net = build_model(ModelConfig(backbone=q["backbone"], pretrained=False, drop_rate=q["drop_rate"]), len(info["class_values"]), manifest["preprocessing"]["image_size"])
        try:
            net.load_state_dict(load_file(str(path)))
        except Exception as e:  # safetensors and torch raise several types for a file that does not fit
            raise InputError(f"{path}: does not fit backbone {q['backbone']!r} ({type(e).__name__}: {str(e).strip().splitlines()[0]})") from None
        net.mean, net.std = tuple(manifest["preprocessing"]["mean"]), tuple(manifest["preprocessing"]["std"])
        net = net.to(target).eval()
        if target.type == "cuda":
            net = net.to(memory_format=torch.channels_last)
        loaded.append(Member(name, net, torch.tensor(info["class_values"], dtype=torch.float32, device=target)))
    return Model(folder, manifest, loaded, target)

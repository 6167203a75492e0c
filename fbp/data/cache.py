"""Decoded images, once per dataset and size, memory-mapped by every trial and fold.

Decoding and resizing 350x350 JPEGs each epoch is what bounds the upstream input pipeline
(~950 images/s with 15 loader workers on a 16-core machine). Here every image of a dataset is
decoded once, resized to `side` x `side`, and stored as one uint8 array (N, side, side, 3)
in `.npy` format that processes open with `mmap_mode="r"`. The key hashes the dataset name,
its root, the bytes of its label files, the name, size and mtime of every image, the side and
the resize method, so any change gives a new entry. Entries are written to a temporary file
and renamed into place: a killed process leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from fbp.data.base import Dataset
from fbp.errors import InputError

RESIZE = "pil-bilinear-antialias-v1"  # part of the key: change it when decoding changes


def cache_dir() -> Path:
    """`$FBP_CACHE_DIR`, else `~/.cache/fbp-search`."""
    return Path(os.environ.get("FBP_CACHE_DIR") or Path.home() / ".cache" / "fbp-search")


def cache_key(dataset: Dataset, side: int) -> str:
    h = hashlib.sha256()
    h.update(f"{dataset.name}\0{dataset.root.resolve()}\0{side}\0{RESIZE}\0".encode())
    for path in dataset.label_files:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    for name in dataset.images:
        st = dataset.image_path(name).stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:24]


def decode_image(path: Path, side: int) -> np.ndarray:
    """One image as the cache holds it: RGB, resized to `side` x `side` (PIL bilinear, whose
    downscaling is antialiased), (side, side, 3) uint8. `fbp.predict` decodes new faces with
    it, so that a model sees them as it saw its training and test images."""
    try:
        with Image.open(path) as im:
            return resize_image(im, side)
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot decode the image ({e})") from None


def resize_image(im: Image.Image, side: int) -> np.ndarray:
    """An opened PIL image as `decode_image` makes it (`RESIZE`)."""
    im = im.convert("RGB")
    if im.size != (side, side):
        im = im.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(im, dtype=np.uint8)


def decoded_images(dataset: Dataset, side: int, workers: int | None = None) -> np.ndarray:
    """All images of `dataset`, in `dataset.images` order, as a read-only (N, side, side, 3)
    uint8 memory map; decoded on the first call, reused afterwards."""
    path = cache_dir() / "decoded" / f"{dataset.name}-{side}px-{cache_key(dataset, side)}.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(dataset.images), side, side, 3))
            paths = [dataset.image_path(name) for name in dataset.images]
            # PIL releases the GIL while decoding and resizing, so threads scale here.
            with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
                for i, image in enumerate(pool.map(lambda p: decode_image(p, side), paths)):
                    out[i] = image
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")

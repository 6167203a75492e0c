"""Decoded images, once per dataset and size, memory-mapped by every trial and fold.

Decoding and resizing 350x350 JPEGs each epoch is what bounds the upstream input pipeline
(~950 images/s with 15 loader workers on a 16-core machine). Here every image of a dataset is
decoded once, resized to `side` x `side`, and stored as one uint8 array (N, side, side, 3)
in `.npy` format that processes open with `mmap_mode="r"`. The key hashes the dataset name,
its root, the bytes of its label files, the name, size and mtime of every image, the side and
the decoding (`RESIZE`), so any change gives a new entry. Entries are written to a temporary
file and renamed into place: a killed process leaves no half-written entry.

`decode_image` is the one decoding of an image file: the cache and `fbp.predict` both call it,
so a model scores a new face from the pixels it was trained and evaluated on.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fbp.data.base import Dataset
from fbp.errors import InputError
from fbp.files import atomic_path

DECODES: dict[str, bool] = {
    # name: whether a JPEG is decoded in draft mode (libjpeg's DCT scaling by 1/2, 1/4 or 1/8 to
    # the smallest size that still holds side x side px; 6-11x faster on a 2000 px photo: bench/predict_speed.py)
    "pil-bilinear-antialias-v1": False,  # model folders exported before v2 (as v2, it turns an image upright)
    "pil-exif-draft-bilinear-v2": True,
}
"""The decodings an exported model may name (its manifest's preprocessing.decode); an image
without an EXIF orientation and smaller than twice the side decodes alike in all of them."""

RESIZE = "pil-exif-draft-bilinear-v2"
"""How the cache decodes now: part of its key and of an exported model's manifest. Give a new
name (and a DECODES entry) to any change that changes a pixel."""


def cache_dir() -> Path:
    """`$FBP_CACHE_DIR`, else `~/.cache/fbp-search`."""
    return Path(os.environ.get("FBP_CACHE_DIR") or Path.home() / ".cache" / "fbp-search")


def cache_key(dataset: Dataset, side: int) -> str:
    """What a cache entry's pixels depend on, hashed: a new decoding (RESIZE) or any changed
    file makes a new entry rather than reusing a stale one."""
    h = hashlib.sha256()
    h.update(f"{dataset.name}\0{dataset.root.resolve()}\0{side}\0{RESIZE}\0".encode())
    for path in dataset.label_files:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    for name in dataset.images:
        st = dataset.image_path(name).stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()[:24]


def decode_image(path: Path, side: int, decode: str = RESIZE) -> np.ndarray:
    """One image as the cache holds it: upright (its EXIF orientation applied, so a phone photo
    is not seen sideways), RGB, resized to `side` x `side` (PIL bilinear, whose downscaling is
    antialiased), (side, side, 3) uint8. A JPEG at least twice the side is decoded in draft
    mode when `decode` says so: libjpeg's DCT scaling, not the bilinear filter, makes the first
    halvings, which changes pixels by about one grey level on average (hence a new RESIZE name).
    `fbp.predict` decodes new faces with it, with the `decode` its model was trained with."""
    with open_image(path) as im:
        if DECODES[decode]:
            im.draft("RGB", (side, side))  # a no-op on other formats and on a JPEG under 2 x side
        return cannot_decode(path, resize_image, im, side)


@contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """PIL's lazy open of `path`, where a file that is no image is an InputError naming it."""
    im = cannot_decode(path, Image.open, path)
    try:
        yield im
    finally:
        im.close()


def cannot_decode(path: Path, fn: Callable, *args):
    """`fn(*args)`, where anything a decoder raises is an InputError naming `path`: a damaged
    file raises more than OSError and ValueError in PIL (SyntaxError for a broken PNG chunk,
    DecompressionBombError past its pixel limit, struct.error, EOFError, ...), and one bad file
    among thousands must be a line, not the end of the run."""
    try:
        return fn(*args)
    except InputError as e:  # an image the decoding refuses (to_rgb): named here
        raise InputError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - what a decoder raises for a damaged file is open-ended
        why = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise InputError(f"{path}: cannot decode the image ({why if isinstance(e, (OSError, ValueError)) else f'{type(e).__name__}: {why}'})") from None


SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB, 8 bits a channel. PIL's convert clips a 16-bit grey image where it should scale
    it (a 16-bit PNG face became all white): 16-bit grey is scaled by 255/65535, as is 32-bit
    integer grey holding 16-bit values (how older PIL opens such PNGs). Float grey (mode F)
    has no range to scale from: refused, as integer grey outside 0..65535 is. Only these modes
    change; an 8-bit image converts as before (so the decoding's name stays)."""
    if im.mode in SIXTEEN_BIT or im.mode == "I":
        grey = np.asarray(im).astype(np.float64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise InputError(f"{im.mode} image with values {grey.min():g}..{grey.max():g}: not 16-bit grey; save it with 8 or 16 bits a channel")
        return Image.fromarray(np.rint(grey * (255 / 65535)).astype(np.uint8), "L").convert("RGB")
    if im.mode == "F":
        raise InputError("a 32-bit float image (mode F) has no range to scale from: save it with 8 or 16 bits a channel")
    return im.convert("RGB")


def resize_image(im: Image.Image, side: int) -> np.ndarray:
    """An opened PIL image as `decode_image` makes it, the draft mode aside (a loaded image is
    resized from its full pixels). The caller's image is left as it was."""
    im = ImageOps.exif_transpose(im)  # a copy, upright; the orientation is in the EXIF of JPEGs, PNGs, TIFFs and WebPs
    im = to_rgb(im)
    if im.size != (side, side):
        im = im.resize((side, side), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(im, dtype=np.uint8)


def decoded_images(dataset: Dataset, side: int, workers: int | None = None) -> np.ndarray:
    """All images of `dataset`, in `dataset.images` order, as a read-only (N, side, side, 3)
    uint8 memory map; decoded on the first call, reused afterwards."""
    path = cache_dir() / "decoded" / f"{dataset.name}-{side}px-{cache_key(dataset, side)}.npy"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(dataset.images), side, side, 3))
            paths = [dataset.image_path(name) for name in dataset.images]
            # PIL releases the GIL while decoding and resizing, so threads scale here.
            with ThreadPoolExecutor(workers or os.cpu_count() or 1) as pool:
                for i, image in enumerate(pool.map(lambda p: decode_image(p, side), paths)):
                    out[i] = image
            out.flush()
            del out
    return np.load(path, mmap_mode="r")

"""Faces in arbitrary photos, cut out the way the training set frames them, and scored.

A model from `fbp.export` was trained on face crops (SCUT-FBP5500: 350 x 350, one frontal face
roughly centred, the head filling the frame). A holiday photo is not such a crop: scored whole,
its score says nothing about the face. `predict_faces(model, photos)` finds each frontal face
with OpenCV's Haar cascade, cuts a square around it framed like the dataset's images
(`frame_box`), and scores the crops with `Model.predict_frame`: one row per face, with its box
in the photo's pixels, and one row with an empty score for a photo where no face was found.

    from fbp.detect import predict_faces
    from fbp.predict import load_model
    frame = predict_faces(load_model("models/quickstart"), ["party.jpg"])

OpenCV is an optional extra (`pip install "fbp-search[faces]"`), imported only here and only
when a face is looked for. Its wheel carries the cascade files, so nothing is downloaded at run
time. Only the 4.x wheels do: OpenCV 5 dropped `CascadeClassifier` and its data files.

What it does not do: it does not rotate a tilted face upright (the crop is centred and scaled,
not rolled), and the frontal cascade misses faces in profile; a missed face is a "no face" row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from fbp.data.cache import cannot_decode, open_image, to_rgb
from fbp.errors import InputError

if TYPE_CHECKING:
    from fbp.predict import Model

CASCADE = "haarcascade_frontalface_alt2.xml"
"""The cascade file in `cv2.data.haarcascades`. Of the frontal cascades OpenCV ships, alt2 found
the face in skimage's astronaut photo (whole, mirrored, twice side by side, at 200 and 2048 px)
and nothing in skimage's other sample photos (coins, moon, retina, coffee, ...), where
`frontalface_default` found "faces" in the coins and the moon."""

MIN_NEIGHBORS = 6
"""Overlapping detections a face needs (OpenCV's minNeighbors): fewer lets texture through."""

MIN_FACE_FRACTION = 1 / 25
"""A face's box side is at least this fraction of the photo's shorter side (and at least 24 px,
the cascade's window): smaller boxes are mostly texture, and a face that small is too few
pixels to score anyway (`fbp.predict.tiny_image`)."""

DETECT_SIDE = 1024
"""Pixels: a photo whose longer side exceeds this is searched on a copy scaled down to it (the
boxes scaled back), so a 12-megapixel photo takes as long as a small one."""

MARGIN = 1.8
"""The crop's side in detector box sides. The cascade's box spans a face's width, cheek to
cheek, and forehead to mouth. SCUT-FBP5500's images, and the synthetic stand-in that imitates
them (`fbp.data.faces`: the face half the frame wide, the eyes just above the centre), show the
face about half the frame wide with the head, hair included, filling the frame: 1.8 box sides
put the astronaut's face at 54 % of the width, her hair at the top edge and her chin 87 % of
the way down."""

LIFT = 0.1
"""How far the crop's centre sits above the box's, in box sides: the box centres on the nose,
while the dataset's frames centre a little higher, on the eyes, to take in the hair."""

NO_FACE = "no face found"
"""The `warning` of a photo's row when the detector found no face there (its score is empty)."""

BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h")
"""The face's box in the photo's pixels (after its EXIF orientation): left, top, width, height.
`predict_faces` puts them after `image`; empty for a photo with no face."""

Box = tuple[int, int, int, int]  # x, y, w, h in pixels


@dataclass(frozen=True)
class Face:
    box: Box  # the detector's box in the photo's pixels
    crop: Image.Image  # the square the model scores (`crop_face`)


@lru_cache(maxsize=1)
def cascade():
    """OpenCV's frontal face detector, loaded once. Without OpenCV: an InputError that says
    how to install it (the user can fix that)."""
    try:
        import cv2
    except ImportError:
        raise InputError('face detection needs OpenCV, which is not installed: pip install "fbp-search[faces]"') from None
    path = Path(cv2.data.haarcascades) / CASCADE
    detector = cv2.CascadeClassifier(str(path))
    if detector.empty():  # an OpenCV build without its data files
        raise InputError(f"{path}: OpenCV's face cascade is missing; install opencv-python-headless 4.x: pip install \"fbp-search[faces]\"")
    return detector


def open_photo(photo: str | Path | Image.Image | np.ndarray) -> Image.Image:
    """A photo as RGB, upright: a path is decoded and turned by its EXIF orientation (a phone's
    portrait photo is stored sideways), so the boxes are in the pixels a viewer shows. A bad
    file is an InputError naming it."""
    if isinstance(photo, np.ndarray):
        if photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] not in (3, 4):
            raise InputError(f"an array photo must be (H, W, 3) uint8 RGB, got {photo.shape} {photo.dtype}")
        return Image.fromarray(photo).convert("RGB")
    if isinstance(photo, Image.Image):
        return to_rgb(ImageOps.exif_transpose(photo))
    path = Path(photo)
    if not path.is_file():
        raise InputError(f"{path}: {'is not a file' if path.exists() else 'no such file'}")
    with open_image(path) as im:
        return cannot_decode(path, lambda: to_rgb(ImageOps.exif_transpose(im)))


def detect_faces(photo: Image.Image) -> list[Box]:
    """The boxes of the frontal faces in an RGB photo, left to right (then top to bottom)."""
    import cv2

    grey = np.asarray(photo.convert("L"))
    scale = min(1.0, DETECT_SIDE / max(grey.shape))
    if scale < 1.0:
        grey = cv2.resize(grey, (round(grey.shape[1] * scale), round(grey.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)  # a dim or washed-out photo gets the contrast the cascade was trained on
    least = max(24, round(min(grey.shape) * MIN_FACE_FRACTION))
    found = cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=MIN_NEIGHBORS, minSize=(least, least))
    boxes = [tuple(round(int(v) / scale) for v in box) for box in found]
    return sorted(boxes, key=lambda b: (b[0], b[1]))


def frame_box(box: Box) -> tuple[int, int, int]:
    """(left, top, side) of the square crop around a detector box (`MARGIN`, `LIFT`); it may
    reach past the photo's edges."""
    x, y, w, h = box
    side = round(MARGIN * max(w, h))
    cx, cy = x + w / 2, y + h / 2 - LIFT * h
    return round(cx - side / 2), round(cy - side / 2), side


def crop_face(photo: Image.Image, box: Box) -> Image.Image:
    """The square around `box` (`frame_box`) as the model should see the face. Where it reaches
    past the photo, its edge pixels are repeated outward: the padding keeps the edge's colours
    (streaks where hair meets the edge), where black bars would add a hard edge that no
    training crop has."""
    left, top, side = frame_box(box)
    pixels = np.asarray(photo)  # (H, W, 3)
    h, w = pixels.shape[:2]
    inside = pixels[max(top, 0) : min(top + side, h), max(left, 0) : min(left + side, w)]
    pad = ((max(-top, 0), max(top + side - h, 0)), (max(-left, 0), max(left + side - w, 0)), (0, 0))
    return Image.fromarray(np.pad(inside, pad, mode="edge"))


def find_faces(photo: Image.Image) -> list[Face]:
    """Each face in an RGB photo with its crop, left to right."""
    return [Face(box, crop_face(photo, box)) for box in detect_faces(photo)]


def predict_faces(model: Model, photos: Iterable[str | Path | Image.Image | np.ndarray], batch_size: int = 64, errors: list[tuple[str, str]] | None = None,
                  on_batch: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """A row per face in each photo, in the photos' order and left to right within one:
    `image` is the photo's label and `#k` (k from 1), then `BOX_COLUMNS`, then `model.columns`
    after `image` (the crop's score, as `Model.predict_frame` gives it). A photo with no face is
    one row, its label alone, empty box and score, warning `NO_FACE`. A photo that cannot be
    read raises an InputError naming it, unless `errors` is a list: then (photo, message) is
    appended and the other photos are scored. Faces are scored as about `batch_size` of them are
    found, so only their crops are held (a crop of a large photo is megabytes);
    `on_batch(done, total)` counts photos."""
    cascade()  # no OpenCV: say so before the first photo is decoded
    photos = list(photos)
    frames, labels, faces = [], [], []  # one entry of labels and faces per row; a None face is a photo without one
    for i, photo in enumerate(photos):
        label = str(photo) if isinstance(photo, (str, Path)) else f"<photo {i}>"
        try:
            found = find_faces(open_photo(photo))
        except InputError as e:
            if errors is None:
                raise
            errors.append((label, str(e)))
            found = None
        if found is not None:
            labels += [f"{label}#{k}" for k in range(1, len(found) + 1)] or [label]
            faces += found or [None]
        if sum(face is not None for face in faces) >= batch_size or i == len(photos) - 1:
            frames.append(_scored(model, labels, faces, batch_size))
            labels, faces = [], []
            if on_batch is not None:
                on_batch(i + 1, len(photos))
    return pd.concat(frames, ignore_index=True) if frames else _scored(model, [], [], batch_size)


def _scored(model: Model, labels: list[str], faces: list[Face | None], batch_size: int) -> pd.DataFrame:
    """The rows of `faces` (predict_faces' columns), each face's crop scored."""
    scored = model.predict_frame([face.crop for face in faces if face is not None], batch_size).drop(columns="image")
    rows = iter(scored.to_dict("records"))
    empty = {column: np.nan for column in scored.columns} | {"warning": NO_FACE}
    frame = pd.DataFrame([next(rows) if face is not None else empty for face in faces], columns=scored.columns)
    for j, column in enumerate(BOX_COLUMNS):
        frame.insert(j, column, pd.array([face.box[j] if face is not None else None for face in faces], dtype="Int64"))
    frame.insert(0, "image", labels)
    return frame

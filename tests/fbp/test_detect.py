"""fbp.detect: the faces of a real photo found, framed as the training faces are, and scored."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fbp.detect import BOX_COLUMNS, NO_FACE, crop_face, detect_faces, frame_box, open_photo, predict_faces
from fbp.errors import InputError
from fbp.predict import FIXED_COLUMNS, load_model

skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("cv2")

# skimage's astronaut photo (512 x 512), read off the image by eye: the centres of her eyes and
# her mouth, and her chin's lowest point
EYES = ((202, 101), (247, 101))
MOUTH = (222, 145)
CHIN_Y = 165


def _contains(box, point, dx=0):
    x, y, w, h = box
    return x <= point[0] + dx < x + w and y <= point[1] < y + h


def _is_her_face(box, dx=0):
    """The box holds both eyes and the mouth, and is about a face's size (not her whole head
    and shoulders, nor one eye)."""
    return all(_contains(box, p, dx) for p in (*EYES, MOUTH)) and 60 <= box[2] <= 130


def _independent_crop(photo, box):
    """The square a face is scored in, written out from the documented rule (1.8 box sides,
    centred 0.1 box above the box's centre) and cut with PIL's own crop: valid where the square
    lies inside the photo."""
    x, y, w, h = box
    side = round(1.8 * w)
    left, top = round(x + w / 2 - side / 2), round(y + h / 2 - 0.1 * h - side / 2)
    assert left >= 0 and top >= 0 and left + side <= photo.width and top + side <= photo.height
    return photo.crop((left, top, left + side, top + side))


@pytest.fixture(scope="module")
def astronaut():
    return Image.fromarray(skimage_data.astronaut())


def test_the_astronaut_has_one_face_and_its_box_is_on_it(astronaut):
    boxes = detect_faces(astronaut)
    assert len(boxes) == 1 and _is_her_face(boxes[0]), boxes


def test_her_crop_frames_the_face_as_the_training_faces_are(astronaut):
    (box,) = detect_faces(astronaut)
    left, top, side = frame_box(box)
    # the face about half the frame wide, the eyes near the middle, the chin in the lower part, all inside
    assert 0.45 <= (275 - 184) / side <= 0.65  # her cheek to cheek, read off the image: x 184..275
    assert 0.35 <= (EYES[0][1] - top) / side <= 0.6
    assert 0.75 <= (CHIN_Y - top) / side <= 0.95


def test_two_of_her_side_by_side_are_two_faces_left_then_right(astronaut):
    two = Image.fromarray(np.concatenate([np.asarray(astronaut)] * 2, axis=1))  # 1024 x 512
    boxes = detect_faces(two)
    assert len(boxes) == 2, boxes
    assert _is_her_face(boxes[0]) and _is_her_face(boxes[1], dx=512)


def test_a_photo_without_a_face_has_none():
    assert detect_faces(Image.fromarray(skimage_data.coffee())) == []
    gradient = np.broadcast_to(np.linspace(0, 255, 300, dtype=np.uint8)[None, :, None], (200, 300, 3))
    assert detect_faces(Image.fromarray(np.ascontiguousarray(gradient))) == []


def test_frame_box_on_hand_computed_numbers():
    # side 1.8 * 100 = 180; centre (50 + 50, 50 + 50 - 0.1 * 100) = (100, 90): left 100 - 90, top 90 - 90
    assert frame_box((50, 50, 100, 100)) == (10, 0, 180)
    # centre (50, 50 - 10): left 50 - 90, top 40 - 90
    assert frame_box((0, 0, 100, 100)) == (-40, -50, 180)


def test_a_crop_past_the_photos_edge_repeats_the_edge_pixels():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (150, 120, 3), dtype=np.uint8)  # H 150, W 120
    crop = np.asarray(crop_face(Image.fromarray(pixels), (0, 0, 100, 100)))  # the square: x -40..140, y -50..130
    assert crop.shape == (180, 180, 3)
    assert (crop[50:, 40:160] == pixels[:130, :]).all()  # the photo itself
    assert (crop[:50, 40:160] == pixels[0]).all()  # above it: its top row
    assert (crop[50:, :40] == pixels[:130, :1]).all()  # left of it: its left column
    assert (crop[50:, 160:] == pixels[:130, -1:]).all()  # right of it: its right column
    assert (crop[:50, :40] == pixels[0, 0]).all()  # the corner: the corner pixel


def test_a_photo_is_turned_upright_by_its_exif_orientation(astronaut, tmp_path):
    # stored sideways, as a phone stores a portrait photo, with the tag that says turn it 90 degrees clockwise
    path = tmp_path / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    astronaut.transpose(Image.Transpose.ROTATE_90).save(path, quality=95, exif=exif)
    photo = open_photo(path)
    boxes = detect_faces(photo)
    assert photo.size == (512, 512) and len(boxes) == 1 and _is_her_face(boxes[0]), boxes


def test_a_file_that_is_no_photo_is_an_input_error_naming_it(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(InputError, match=r"notes\.jpg: cannot decode the image"):
        open_photo(text)
    with pytest.raises(InputError, match=r"gone\.jpg: no such file"):
        open_photo(tmp_path / "gone.jpg")


def test_predict_faces_a_row_per_face_each_scored_as_its_crop_alone(exported, astronaut, tmp_path):
    model = load_model(exported.folder, device="cpu")
    one, two, none, bad = tmp_path / "one.png", tmp_path / "two.png", tmp_path / "none.png", tmp_path / "bad.png"
    astronaut.save(one)
    Image.fromarray(np.concatenate([np.asarray(astronaut)] * 2, axis=1)).save(two)
    Image.fromarray(skimage_data.coffee()).save(none)
    bad.write_text("not a photo")
    errors, progress = [], []
    frame = predict_faces(model, [one, bad, two, none], batch_size=2, errors=errors, on_batch=lambda done, total: progress.append((done, total)))
    assert progress == [(3, 4), (4, 4)]  # photos; the first 3 faces scored once 2 or more were found, before the last photo was read
    assert list(frame.columns) == ["image", *BOX_COLUMNS, *FIXED_COLUMNS[1:], "fold1", "fold2"]
    assert list(frame["image"]) == [f"{one}#1", f"{two}#1", f"{two}#2", str(none)]
    assert [label for label, _ in errors] == [str(bad)]
    boxes = [tuple(int(v) for v in row) for row in frame.loc[:2, list(BOX_COLUMNS)].to_numpy()]
    assert _is_her_face(boxes[0]) and _is_her_face(boxes[1]) and _is_her_face(boxes[2], dx=512)
    photos = [astronaut, Image.open(two).convert("RGB"), Image.open(two).convert("RGB")]
    alone = model.predict([_independent_crop(photo, box) for photo, box in zip(photos, boxes)])
    assert np.abs(frame["score"].to_numpy()[:3] - alone).max() < 1e-6
    # the photo without a face: one row, its box and scores empty, the reason in `warning`
    last = frame.iloc[3]
    assert last["warning"] == NO_FACE and pd.isna(last["score"]) and pd.isna(last["fold1"]) and all(pd.isna(last[c]) for c in BOX_COLUMNS)
    assert (frame["warning"].iloc[:3] == "").all()

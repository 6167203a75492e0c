import numpy as np
from PIL import Image

from fbp.data import load_dataset
from fbp.data.cache import cache_dir, decoded_images
from tests.conftest import write_stand_in_images


def _dataset(root, n=12):
    names = [f"AF{i}.jpg" for i in range(1, n + 1)]
    (root / "train_test_files").mkdir(parents=True)
    (root / "train_test_files/All_labels.txt").write_text("".join(f"{name} {1 + i * 0.3:.2f}\n" for i, name in enumerate(names)))
    write_stand_in_images(root / "Images", names, side=20)
    return load_dataset("scut-fbp5500", root)


def test_decoded_once_and_equal_to_a_fresh_decode(tmp_path):
    dataset = _dataset(tmp_path / "d")
    images = decoded_images(dataset, 16)
    assert images.shape == (12, 16, 16, 3) and images.dtype == np.uint8
    for i, name in enumerate(dataset.images):
        with Image.open(dataset.image_path(name)) as im:
            expected = np.asarray(im.convert("RGB").resize((16, 16), Image.Resampling.BILINEAR))
        assert np.array_equal(images[i], expected)
    entries = sorted((cache_dir() / "decoded").iterdir())
    again = decoded_images(dataset, 16)
    assert isinstance(again, np.memmap) and not again.flags.writeable
    assert again.filename == images.filename
    assert sorted((cache_dir() / "decoded").iterdir()) == entries  # reused, nothing new
    assert not [p for p in entries if ".tmp" in p.name]


def test_a_changed_label_file_or_image_or_size_makes_a_new_entry(tmp_path):
    dataset = _dataset(tmp_path / "d")
    first = decoded_images(dataset, 16).filename
    assert decoded_images(dataset, 16).filename == first
    assert decoded_images(dataset, 18).filename != first
    labels = tmp_path / "d/train_test_files/All_labels.txt"
    labels.write_text(labels.read_text().replace("AF1.jpg 1.00", "AF1.jpg 1.01"))
    relabelled = load_dataset("scut-fbp5500", tmp_path / "d")
    second = decoded_images(relabelled, 16).filename
    assert second != first
    Image.new("RGB", (20, 20), (200, 10, 10)).save(relabelled.image_path("AF3.jpg"))
    changed = decoded_images(relabelled, 16)
    assert changed.filename != second
    assert np.abs(changed[2, 0, 0].astype(int) - (200, 10, 10)).max() <= 4  # JPEG rounding


ORIENTATION = 0x0112  # the EXIF tag


def _red_over_blue(side: int) -> Image.Image:
    """Upright: the top half red, the bottom half blue (any rotation or flip shows)."""
    pixels = np.zeros((side, side, 3), np.uint8)
    pixels[: side // 2] = (220, 20, 20)
    pixels[side // 2 :] = (20, 20, 220)
    return Image.fromarray(pixels)


def _stored_turned(upright: Image.Image, orientation: int) -> tuple[Image.Image, Image.Exif]:
    """The image as a camera held sideways stores it, and the EXIF that says how to turn it
    upright: 6, turn it 90 degrees clockwise; 8, 90 degrees anticlockwise."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]  # ROTATE_90 turns anticlockwise
    return upright.transpose(turn), exif


def test_an_image_with_an_exif_orientation_is_cached_upright(tmp_path):
    dataset = _dataset(tmp_path / "d", n=3)
    for name, orientation in (("AF1.jpg", 6), ("AF2.jpg", 8)):
        stored, exif = _stored_turned(_red_over_blue(32), orientation)
        stored.save(dataset.image_path(name), quality=95, exif=exif)
        assert np.asarray(stored)[0, 0, 2] > 200 or np.asarray(stored)[0, -1, 2] > 200  # stored sideways: blue reaches the top row
    _red_over_blue(32).save(dataset.image_path("AF3.jpg"), quality=95)  # no EXIF: as it is
    images = decoded_images(dataset, 16).astype(int)
    for image in images:
        assert np.abs(image[:7] - (220, 20, 20)).max() <= 12, image[:, :, 0]  # JPEG rounding; rows 7-8 blend the halves
        assert np.abs(image[9:] - (20, 20, 220)).max() <= 12, image[:, :, 2]


def _v1_entry(dataset, side: int):
    """Where the cache before EXIF orientation and draft decoding kept `dataset` at `side`: its
    key recomputed as that version hashed it, with its decoding's name."""
    import hashlib

    h = hashlib.sha256()
    h.update(f"{dataset.name}\0{dataset.root.resolve()}\0{side}\0pil-bilinear-antialias-v1\0".encode())
    for path in dataset.label_files:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    for name in dataset.images:
        st = dataset.image_path(name).stat()
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return cache_dir() / "decoded" / f"{dataset.name}-{side}px-{h.hexdigest()[:24]}.npy"


def test_an_entry_of_the_previous_decoding_is_not_reused(tmp_path):
    """A sideways photo cached by the decoding without EXIF orientation would stay sideways if
    its entry were found again: the decoding's name is part of the key."""
    dataset = _dataset(tmp_path / "d", n=4)
    stale = _v1_entry(dataset, 16)
    stale.parent.mkdir(parents=True, exist_ok=True)
    np.save(stale, np.zeros((4, 16, 16, 3), np.uint8))  # stands for the old pixels
    images = decoded_images(dataset, 16)
    assert images.filename != str(stale)
    assert np.abs(images[..., 2].astype(int) - 128).max() <= 4  # write_stand_in_images' blue channel, not the stale zeros


def test_a_jpeg_twice_the_side_is_decoded_in_draft_mode_close_to_the_full_decode(tmp_path):
    """Draft mode lets libjpeg halve a large JPEG while decoding it (here 160 px for a 37 px
    side: a quarter, 40 px, then bilinear to 37): within a grey level or two of decoding it
    whole, not equal to it, which is why the decoding has a new name. The previous decoding
    stays available, exactly as it was, for the model folders that name it."""
    from fbp.data.cache import RESIZE, decode_image

    path = tmp_path / "face.jpg"
    rng = np.random.default_rng(0)
    smooth = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).resize((160, 160), Image.Resampling.BICUBIC)
    smooth.save(path, quality=95)
    with Image.open(path) as im:
        whole = np.asarray(im.convert("RGB").resize((37, 37), Image.Resampling.BILINEAR)).astype(int)
    assert np.array_equal(decode_image(path, 37, "pil-bilinear-antialias-v1"), whole)
    draft = decode_image(path, 37, RESIZE).astype(int)
    assert draft.shape == (37, 37, 3) and not np.array_equal(draft, whole)
    assert np.abs(draft - whole).mean() < 2.0, np.abs(draft - whole).mean()


def test_a_16_bit_grey_image_decodes_as_its_8_bit_twin(tmp_path):
    """PIL's convert clips 16-bit grey (a 16-bit face came out all white): it is scaled."""
    from fbp.data.cache import decode_image

    grey = np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")  # 255 * 257 = 65535
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    for side in (40, 20):
        assert np.array_equal(decode_image(tmp_path / "g16.png", side), decode_image(tmp_path / "g8.png", side))


def test_an_image_no_decoder_takes_is_an_error_naming_it(tmp_path, monkeypatch):
    """Whatever PIL raises for a file (a broken PNG chunk: SyntaxError; past its pixel limit:
    DecompressionBombError; float grey with no range), one InputError naming the file."""
    import pytest

    from fbp.data.cache import decode_image
    from fbp.errors import InputError
    from tests.conftest import write_broken_png

    broken = write_broken_png(tmp_path / "broken.png")
    with pytest.raises(InputError, match=r"broken\.png: cannot decode the image \(SyntaxError: broken PNG file"):
        decode_image(broken, 32)
    Image.fromarray(np.ones((8, 8), np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(InputError, match=r"float\.tif: a 32-bit float image \(mode F\) has no range"):
        decode_image(tmp_path / "float.tif", 32)
    Image.new("RGB", (20, 20)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 400 pixels: past twice the limit, PIL's bomb error
    with pytest.raises(InputError, match=r"big\.png: cannot decode the image \(DecompressionBombError: "):
        decode_image(tmp_path / "big.png", 32)

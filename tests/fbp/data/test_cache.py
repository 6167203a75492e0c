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

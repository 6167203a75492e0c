import torch

from fbp.augment import MEAN, STD, eval_view, normalize, train_view
from fbp.config import AugmentConfig


def _images(b=4, s=20):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8, generator=g)


def test_eval_view_is_a_normalized_centre_crop():
    images = _images(s=20)
    x = eval_view(images, 16)
    assert x.shape == (4, 3, 16, 16)
    expected = (images[:, 2:18, 2:18].permute(0, 3, 1, 2).float() / 255 - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    assert torch.allclose(x, expected, atol=1e-6)


def test_train_view_without_randomness_is_the_identity():
    images = _images(s=16)
    still = AugmentConfig(rotation=0, hflip=False, brightness=0, contrast=0, saturation=0)
    x = train_view(images, 16, still, torch.Generator().manual_seed(1))
    assert torch.allclose(x, normalize(images.permute(0, 3, 1, 2).float() / 255), atol=1e-5)


def test_train_view_is_seeded_and_random():
    images = _images(s=24)
    config = AugmentConfig()
    a = train_view(images, 16, config, torch.Generator().manual_seed(3))
    b = train_view(images, 16, config, torch.Generator().manual_seed(3))
    c = train_view(images, 16, config, torch.Generator().manual_seed(4))
    assert a.shape == (4, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)


def test_flip_mirrors_the_image():
    images = _images(b=64, s=8)
    flip_only = AugmentConfig(rotation=0, hflip=True, brightness=0, contrast=0, saturation=0)
    x = train_view(images, 8, flip_only, torch.Generator().manual_seed(0))
    plain = normalize(images.permute(0, 3, 1, 2).float() / 255)
    same = [torch.allclose(x[i], plain[i], atol=1e-5) for i in range(64)]
    mirrored = [torch.allclose(x[i], plain[i].flip(2), atol=1e-5) for i in range(64)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 16 < sum(mirrored) < 48  # about half


def test_brightness_jitter_scales_pixels():
    images = torch.full((256, 8, 8, 3), 100, dtype=torch.uint8)
    only_brightness = AugmentConfig(rotation=0, hflip=False, brightness=0.2, contrast=0, saturation=0)
    x = train_view(images, 8, only_brightness, torch.Generator().manual_seed(0))
    raw = x[:, 0, 0, 0] * STD[0] + MEAN[0]  # back to [0, 1]
    factor = raw / (100 / 255)
    assert factor.min() >= 0.8 - 1e-5 and factor.max() <= 1.2 + 1e-5 and factor.std() > 0.05

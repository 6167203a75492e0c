import pytest
import torch
import torch.nn.functional as F

from fbp.augment import eval_view, normalize, train_view
from fbp.config import AugmentConfig, EvalConfig

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # one backbone's statistics, for the tests
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # another's (timm's test models, Inception)


def _images(b=4, s=20):
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (b, s, s, 3), dtype=torch.uint8, generator=g)


def _plain(images, stats=IMAGENET):
    """(B, S, S, 3) uint8 -> (B, 3, S, S) normalized, no augmentation."""
    return normalize(images.permute(0, 3, 1, 2).float() / 255, *stats)


def test_normalize_uses_the_statistics_it_is_given():
    x = torch.full((1, 3, 2, 2), 0.5)
    assert torch.allclose(normalize(x, *HALF), torch.zeros_like(x))
    by_hand = torch.tensor([(0.5 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.5 - 0.406) / 0.225]).view(1, 3, 1, 1).expand(1, 3, 2, 2)
    assert torch.allclose(normalize(x, *IMAGENET), by_hand)


# --- evaluation: the whole face resized (published code) or the centre crop -------------------


def test_eval_view_default_is_the_published_codes_whole_face_resized():
    assert EvalConfig().view == "resize"
    images = _images(s=20)
    x = eval_view(images, 16, "resize", *IMAGENET)
    whole = images.permute(0, 3, 1, 2).float() / 255  # (B, 3, 20, 20): nothing cut away
    expected = normalize(F.interpolate(whole, size=(16, 16), mode="bilinear", align_corners=False, antialias=True), *IMAGENET)
    assert x.shape == (4, 3, 16, 16) and torch.allclose(x, expected, atol=1e-6)
    # at the cached size itself the view is the image, pixel for pixel
    assert torch.allclose(eval_view(images, 20, "resize", *IMAGENET), _plain(images), atol=1e-6)


def test_resize_keeps_the_border_that_the_centre_crop_cuts():
    # a black face in a 2 px white frame, 20 px: the centre 16 px are all black, while the
    # whole image resized to 16 keeps white in its corner pixel
    images = torch.zeros(1, 20, 20, 3, dtype=torch.uint8)
    images[:, :2], images[:, -2:], images[:, :, :2], images[:, :, -2:] = 255, 255, 255, 255
    crop = eval_view(images, 16, "center_crop", *HALF)  # black: (0 - 0.5) / 0.5
    assert torch.equal(crop, torch.full((1, 3, 16, 16), -1.0))
    resized = eval_view(images, 16, "resize", *HALF)
    assert resized[0, :, 0, 0].min() > 0.5 and resized[0, :, 8, 8].max() == -1.0  # white corner, black centre


def test_eval_view_center_crop_is_the_central_square():
    images = _images(s=20)
    x = eval_view(images, 16, "center_crop", *IMAGENET)
    assert x.shape == (4, 3, 16, 16) and torch.allclose(x, _plain(images[:, 2:18, 2:18]), atol=1e-6)
    with pytest.raises(ValueError, match="unknown eval view 'crop'; valid: resize, center_crop"):
        eval_view(images, 16, "crop", *IMAGENET)


# --- training: random crop, rotation, colour jitter; no flip unless asked ---------------------


def test_train_view_without_randomness_is_the_identity():
    images = _images(s=16)
    still = AugmentConfig(rotation=0, hflip=False, brightness=0, contrast=0, saturation=0)
    x = train_view(images, 16, still, torch.Generator().manual_seed(1), *IMAGENET)
    assert torch.allclose(x, _plain(images), atol=1e-5)


def test_train_view_is_seeded_and_random():
    images = _images(s=24)
    config = AugmentConfig()
    a = train_view(images, 16, config, torch.Generator().manual_seed(3), *IMAGENET)
    b = train_view(images, 16, config, torch.Generator().manual_seed(3), *IMAGENET)
    c = train_view(images, 16, config, torch.Generator().manual_seed(4), *IMAGENET)
    assert a.shape == (4, 3, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)


def test_no_flip_by_default_over_many_draws():
    # paper 3.2: crops, colour jittering and rotation; the published code never flips
    assert AugmentConfig().hflip is False
    images = _images(b=256, s=8)
    geometry_only = AugmentConfig(rotation=0, brightness=0, contrast=0, saturation=0)  # hflip: its default
    for seed in range(4):  # 1024 draws
        x = train_view(images, 8, geometry_only, torch.Generator().manual_seed(seed), *IMAGENET)
        assert torch.allclose(x, _plain(images), atol=1e-5)


def test_flip_when_asked_mirrors_about_half():
    images = _images(b=64, s=8)
    flip_only = AugmentConfig(rotation=0, hflip=True, brightness=0, contrast=0, saturation=0)
    x = train_view(images, 8, flip_only, torch.Generator().manual_seed(0), *IMAGENET)
    plain = _plain(images)
    same = [torch.allclose(x[i], plain[i], atol=1e-5) for i in range(64)]
    mirrored = [torch.allclose(x[i], plain[i].flip(2), atol=1e-5) for i in range(64)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 16 < sum(mirrored) < 48  # about half


def test_brightness_jitter_scales_pixels():
    images = torch.full((256, 8, 8, 3), 100, dtype=torch.uint8)
    only_brightness = AugmentConfig(rotation=0, hflip=False, brightness=0.2, contrast=0, saturation=0)
    x = train_view(images, 8, only_brightness, torch.Generator().manual_seed(0), *IMAGENET)
    raw = x[:, 0, 0, 0] * IMAGENET[1][0] + IMAGENET[0][0]  # back to [0, 1]
    factor = raw / (100 / 255)
    assert factor.min() >= 0.8 - 1e-5 and factor.max() <= 1.2 + 1e-5 and factor.std() > 0.05


def _pixels(x, stats=IMAGENET):
    """A normalized (B, 3, H, W) view back to [0, 1] pixels."""
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in stats)
    return x * std + mean


@pytest.mark.parametrize("fill", ["black", "reflection"])
def test_a_rotation_fills_its_corners_black_only_when_asked(fill):
    """A white image rotated by 45 degrees: the corners come from outside it. black (torchvision's
    RandomRotation, the published code) darkens them; reflection mirrors the image there: white."""
    images = torch.full((64, 32, 32, 3), 255, dtype=torch.uint8)
    rotate = AugmentConfig(rotation=45, brightness=0, contrast=0, saturation=0, fill=fill)
    corners = _pixels(train_view(images, 32, rotate, torch.Generator().manual_seed(0), *IMAGENET))[:, :, :3, :3]
    if fill == "black":
        assert corners.amin(dim=(1, 2, 3)).median() < 0.05  # most draws turn far enough to bring black into a corner
    else:
        assert torch.allclose(corners, torch.ones_like(corners), atol=1e-5)


def test_hue_jitter_is_torchvisions_adjust_hue_per_image():
    """Each image's hue turned by its own draw in [-h, h]: torchvision's adjust_hue with that draw
    gives the same pixels (an independent implementation of the HSV round trip)."""
    from torchvision.transforms.v2 import functional as TF

    from fbp.augment import shift_hue

    g = torch.Generator().manual_seed(2)
    x = torch.rand(8, 3, 12, 12, generator=g)
    x[0] = 0.5  # grey: no hue to turn
    x[1, :, :4] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)  # pure red
    shift = torch.rand(8, generator=g) * 0.2 - 0.1
    expected = torch.stack([TF.adjust_hue(x[i], float(shift[i])) for i in range(8)])
    assert torch.allclose(shift_hue(x, shift), expected, atol=1e-5)
    assert torch.allclose(shift_hue(x, shift)[0], x[0])
    # in the training view: the draws stay within [-hue, hue] (a zero hue leaves the pixels)
    images = (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    still = AugmentConfig(rotation=0, brightness=0, contrast=0, saturation=0, hue=0.0)
    turned = AugmentConfig(rotation=0, brightness=0, contrast=0, saturation=0, hue=0.1)
    plain = train_view(images, 12, still, torch.Generator().manual_seed(0), *IMAGENET)
    assert torch.allclose(plain, _plain(images), atol=1e-5)
    assert not torch.allclose(train_view(images, 12, turned, torch.Generator().manual_seed(0), *IMAGENET)[1:], plain[1:], atol=1e-3)


def test_both_views_normalize_with_the_statistics_given():
    images = torch.full((2, 8, 8, 3), 255, dtype=torch.uint8)  # white: 1.0
    still = AugmentConfig(rotation=0, brightness=0, contrast=0, saturation=0)
    for stats, white in ((HALF, 1.0), (IMAGENET, (1 - 0.485) / 0.229)):
        assert eval_view(images, 8, "resize", *stats)[0, 0, 0, 0].item() == pytest.approx(white)
        assert train_view(images, 8, still, torch.Generator().manual_seed(0), *stats)[0, 0, 0, 0].item() == pytest.approx(white, abs=1e-5)


# --- one face scale: training and evaluation see a face at the same size ------------------------

PLAIN = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # no normalization: pixels stay in [0, 1]
SQUARE = 32  # px, the side of the white square drawn into the cached image


def _square_width(x: torch.Tensor) -> int:
    """Width, px, of the white square in a view (1, 3, H, W): bright pixels along its middle row."""
    row = x[0, 0, x.shape[2] // 2]
    return int((row > 0.5).sum())


def _views(data: dict, view: str) -> tuple[int, int]:
    """(train, eval) widths of the square under a config's sizes, augmentation off."""
    from fbp.config import validate_config

    config = validate_config({"data": {"dataset": "synthetic", **data}, "eval": {"view": view}})
    side, size = config.data.cached_side, config.data.image_size
    images = torch.zeros(1, side, side, 3, dtype=torch.uint8)
    top = (side - SQUARE) // 2
    images[:, top : top + SQUARE, top : top + SQUARE] = 255
    still = AugmentConfig(rotation=0, brightness=0, contrast=0, saturation=0)
    widths = set()
    for seed in range(5):  # the crop's random position must not change the scale either
        widths.add(_square_width(train_view(images, size, still, torch.Generator().manual_seed(seed), *PLAIN)))
    assert len(widths) == 1, widths
    return widths.pop(), _square_width(eval_view(images, size, view, *PLAIN))


@pytest.mark.parametrize("data, view", [
    ({"image_size": 64}, "resize"),  # the defaults: the cache at the input size, the published code's
    ({"image_size": 64}, "center_crop"),
    ({"image_size": 224}, "resize"),
    ({"image_size": 64, "resize": 73}, "center_crop"),  # random crops of a larger cache, tested on its centre
])
def test_a_face_has_one_size_in_training_and_in_evaluation(data, view):
    train, test = _views(data, view)
    assert abs(train - SQUARE) <= 1 and abs(test - train) <= 1, (train, test)


def test_a_cache_larger_than_the_input_with_the_resize_view_is_refused():
    from fbp.config import validate_config
    from fbp.errors import InputError

    with pytest.raises(InputError, match=r"eval.view: resize shows the test faces at 224/256 .* use eval.view: center_crop, or data.resize: 224"):
        validate_config({"data": {"dataset": "synthetic", "image_size": 224, "resize": 256}})

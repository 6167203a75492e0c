"""Batched augmentation of uint8 images held on the training device.

The upstream pipeline decodes JPEGs and runs torchvision transforms per sample in DataLoader
workers, which bounds it at ~950 images/s on a 16-core host. Here a whole batch, indexed from
the decoded cache already on the device, is augmented with one `affine_grid`/`grid_sample`
(random crop, rotation, flip and zoom folded into one 2x3 matrix per image) and a few
element-wise ops (colour jitter, normalization). The same code runs on CPU and GPU.

Both views end with the backbone's own input normalization, `(x - mean) / std` per channel
with the mean and std of its pretrained config in timm (`fbp.models.FBPNet.mean`, `.std`):
ImageNet's for SEResNeXt50, others for a CLIP or an Inception backbone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from fbp.config import AugmentConfig, EvalConfig

Stats = Sequence[float]  # one value per channel (R, G, B), for pixels in [0, 1]


def _to_float(images: Tensor) -> Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255)


def normalize(x: Tensor, mean: Stats, std: Stats) -> Tensor:
    """(x - mean) / std per channel: (B, 3, H, W) in [0, 1] -> the backbone's input."""
    mean_t = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


def eval_view(images: Tensor, size: int, view: str, mean: Stats, std: Stats) -> Tensor:
    """The test images as the network sees them, normalized: (B, S, S, 3) uint8 -> (B, 3, size, size).

    resize: the whole image resized to `size` (bilinear, antialiased as PIL's resize is), what
    the published code feeds; center_crop: the central `size` x `size` pixels."""
    if view == "resize":
        x = _to_float(images)
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return normalize(x, mean, std)
    if view == "center_crop":
        top = (images.shape[1] - size) // 2
        return normalize(_to_float(images[:, top : top + size, top : top + size]), mean, std)
    raise ValueError(f"unknown eval view {view!r}; valid: {', '.join(get_args(EvalConfig.model_fields['view'].annotation))}")


def _grayscale(x: Tensor) -> Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)  # (B, 1, H, W)


def train_view(images: Tensor, size: int, config: AugmentConfig, generator: torch.Generator, mean: Stats, std: Stats) -> Tensor:
    """Random crop + rotation + flip (when config.hflip) + zoom + colour jitter, normalized by
    `mean` and `std`: (B, S, S, 3) uint8 -> (B, 3, size, size) float. All randomness comes
    from `generator`, which lives on the images' device."""
    b, s = images.shape[0], images.shape[1]
    device = images.device

    def uniform(low: float, high: float) -> Tensor:
        return torch.rand(b, device=device, generator=generator) * (high - low) + low

    # 1) geometry: output pixel (normalized coords u) samples input at theta @ [u, 1].
    crop = size / s  # share of the input the crop spans
    zoom = uniform(*config.scale)
    half = crop / zoom
    angle = uniform(-config.rotation, config.rotation) * (math.pi / 180)
    # keep the rotated crop's centre inside the image; the corners may touch the border
    slack = (1 - half).clamp(min=0)
    tx, ty = uniform(-1, 1) * slack, uniform(-1, 1) * slack
    flip = torch.where(torch.rand(b, device=device, generator=generator) < 0.5, -1.0, 1.0) if config.hflip else torch.ones(b, device=device)
    cos, sin = torch.cos(angle) * half, torch.sin(angle) * half
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)  # (B, 2, 3)
    x = _to_float(images)
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode=PADDING[config.fill], align_corners=False)  # (B, 3, size, size)

    # 2) colour jitter, torchvision's definitions, in a fixed order
    view = (b, 1, 1, 1)
    if config.brightness:
        x = x * uniform(1 - config.brightness, 1 + config.brightness).view(view)
    if config.contrast:
        grey = _grayscale(x).mean(dim=(2, 3), keepdim=True)  # (B, 1, 1, 1): each image's mean grey
        x = (x - grey) * uniform(1 - config.contrast, 1 + config.contrast).view(view) + grey
    if config.saturation:
        gray = _grayscale(x)
        x = (x - gray) * uniform(1 - config.saturation, 1 + config.saturation).view(view) + gray
    if config.hue:
        x = shift_hue(x.clamp_(0, 1), uniform(-config.hue, config.hue))
    return normalize(x.clamp_(0, 1), mean, std)


PADDING = {"reflection": "reflection", "black": "zeros"}
"""train.augment.fill -> grid_sample's padding_mode; zeros in [0, 1] pixels is black."""


def shift_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Each image's hue turned by `shift` (B,) of a full turn, in HSV as torchvision's
    adjust_hue defines it; (B, 3, H, W) in [0, 1]. Grey pixels (no saturation) stay."""
    value, _ = x.max(dim=1)
    low, _ = x.min(dim=1)
    chroma = value - low
    saturation = torch.where(value > 0, chroma / value.clamp(min=1e-12), torch.zeros_like(value))
    r, g, b = x.unbind(1)
    safe = chroma.clamp(min=1e-12)
    # hue in sixths of a turn: from the channel that holds the maximum
    hue = torch.where(value == r, (g - b) / safe, torch.where(value == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    hue = torch.where(chroma > 0, hue, torch.zeros_like(hue))
    hue = torch.remainder(hue / 6 + shift.view(-1, 1, 1), 1.0)
    # back to RGB: each channel n at k = (n + 6 h) mod 6, value - chroma * clamp(min(k, 4 - k), 0, 1)
    chroma = value * saturation
    n = torch.tensor([5.0, 3.0, 1.0], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    k = torch.remainder(n + 6 * hue.unsqueeze(1), 6)
    return value.unsqueeze(1) - chroma.unsqueeze(1) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)

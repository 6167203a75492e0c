"""Procedurally drawn faces in the layout of a published dataset: the whole system runs with no
real data. `generate(out, params, layout=...)` writes SCUT-FBP5500's files (the default),
SCUT-FBP's workbook or HotOrNot's split files (`fbp.data.layouts`), which the real loaders read.

It stays a real vision task. Every image shows one cartoon face whose score follows *drawn*
facial traits, amid nuisance that a model must learn to ignore. Nothing cheap predicts the
score: the nuisance (pose, lighting, scale, background, skin tone, hair, brows) is drawn
independently of the traits, and the traits barely move an image's mean brightness or colour.

Traits (standard normals z clipped to +-2.2; lengths in image sides before the nuisance
scale; each one visible at 64 px, where an average eye is ~9 px wide):

    group       trait          drawn as                                   v     share of var(a)
    asymmetry   eye_asym       eye half-widths e (1 +- 0.18 z)            1.6   13 %
                eye_offset     eye heights -+ 0.03 z                      0.8    3 %
                mouth_tilt     mouth rotated 12 z degrees                 1.0    5 %
                nose_offset    nose shifted 0.035 z sideways              0.5    1 %
    proportion  aspect         face height/width 1.30 + 0.15 z            0.8    3 %
                eye_size       mean eye half-width e = 0.068 (1 + 0.2 z)  1.6   13 %
                eye_dist       eye centres at x = +-(0.13 + 0.018 z)      0.9    4 %
                mouth_width    mouth half-width 0.085 (1 + 0.3 z)         0.6    2 %
                nose_length    nose length 0.13 (1 + 0.22 z)              0.5    1 %
    skin        blemishes      0..12 spots (uniform count), radius r in          52 %
                               0.02..0.035, contrast c in 0.6..1 against the
                               skin (dark brown or red)

Latent attractiveness ("averageness, symmetry, clear skin"):

    A = sum_k v_k z_k^2 over the asymmetry traits      (0 for a symmetric face)
    P = sum_k v_k z_k^2 over the proportion traits     (0 for the average face)
    B = sum over spots of c (r / 0.0275)^2             (0 for clear skin)
    a = -(w_A A + w_P P + w_B B - mu) / sigma,   w_A = w_P = 1, w_B = 1.2

The weights put the latent variance where it is easiest to see at 64 px (the last column):
blemishes and the eyes carry four fifths of it, thin features like the nose the rest.
`mu` and `sigma` are population constants (`_LATENT_MEAN`, `_LATENT_STD`, measured once on
200,000 draws), not statistics of one generated set, so a face's latent never depends on `n`.
Over the population `a` has mean 0 and std 1; it is skewed left (the ideal face has +2.6).

Raters (SCUT-FBP5500 had 60 raters score every image 1..5): rater r has a bias
b_r ~ N(0, 0.35) and a noise sd s_r ~ U(0.4, 0.8), and image i an appeal u_i ~ N(0, 0.3)
that every rater sees but the drawing does not encode (it keeps the task's ceiling below 1,
as on real data, where 60 raters alone would average their noise away):

    rating_ri = clip(round(3 + 0.65 (a_i + u_i) + b_r + s_r eps_ri), 1, 5)     eps ~ N(0, 1)
    score_i   = mean_r rating_ri

Each layout has its release's number of raters by default (60 on SCUT-FBP5500, 70 on
SCUT-FBP); HotOrNot's label is the z-score of score_i over the generated faces, as its
release's scores are standardised ratings.

`noise_ceiling` in the manifest is Pearson(a, score): the best correlation a model that
recovers `a` exactly can reach (about 0.95).

Determinism: face k of subset s is drawn from `SeedSequence([seed, s, k])` (one child stream
for the traits, one for the nuisance) and rated with `default_rng([seed, s, k, 1])`, so the
same parameters give byte-identical files whatever the worker count, and `AF7` is the same
face for every `n` (and for every layout: SCUT-FBP-7, all of whose faces are AF, is AF7).
"""

from __future__ import annotations

import colorsys
import json
import math
import multiprocessing
import os
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from fbp.data.layouts import LAYOUTS, SUBSETS, Faces
from fbp.data.layouts import largest_remainder as _largest_remainder
from fbp.files import atomic_path

GENERATOR_VERSION = 1  # bump when drawing or rating changes, so caches invalidate

_SUBSET_SHARE = LAYOUTS["scut-fbp5500"].share  # SCUT-FBP5500 counts

# Random streams besides the per-image ones ([seed, subset, k] with subset 0..3).
_RATER_STREAM = (4, 0)
_SPLIT_STREAM = (5, 0)

_Z_CLIP = 2.2  # trait z-scores are clipped so extreme faces stay drawable
# Each trait's weight in A or P: the easier a trait is to see at 64 px, the more latent variance
# it carries (eye sizes: large areas; nose: a few pixels).
_ASYMMETRY = {"eye_asym": 1.6, "eye_offset": 0.8, "mouth_tilt": 1.0, "nose_offset": 0.5}
_PROPORTION = {"aspect": 0.8, "eye_size": 1.6, "eye_dist": 0.9, "mouth_width": 0.6, "nose_length": 0.5}
_W_A, _W_P, _W_B = 1.0, 1.0, 1.2
# mean and std of w_A A + w_P P + w_B B over 200,000 draws of `_sample_traits` (seed 12345);
# tests/fbp/data/test_faces.py checks them against a fresh draw.
_LATENT_MEAN = 13.773
_LATENT_STD = 5.2268

_MAX_BLEMISHES = 12
_BLEMISH_RADIUS = (0.02, 0.035)  # image sides
_BLEMISH_REF_AREA = 0.0275**2  # a spot of this radius and contrast 1 adds 1 to B
_BLEMISH_CONTRAST = (0.6, 1.0)

_RATING_MID = 3.0
_RATING_SLOPE = 0.65  # rating points per latent sd
_APPEAL_SD = 0.3  # latent sds
_RATER_BIAS_SD = 0.35  # rating points
_RATER_NOISE_SD = (0.4, 0.8)  # rating points

# Face geometry that is not a trait (image sides, face frame: origin at the face centre, y down).
_FACE_HALF_WIDTH = 0.25
_EYE_Y = -0.05
_FACE_CENTRE = (0.5, 0.46)


@dataclass(frozen=True)
class SynthParams:
    """What to generate; together with GENERATOR_VERSION it fixes every byte written."""

    n: int = 5500  # images, split over AF, AM, CF, CM by the layout's share (SCUT-FBP5500: 2000:2000:750:750)
    size: int = 128  # square image side, px
    seed: int = 0
    raters: int = 60  # simulated raters per image

    def __post_init__(self) -> None:
        for name, low in (("n", 20), ("size", 32), ("seed", 0), ("raters", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


# --- traits ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Blemish:
    x: float  # face frame, image sides
    y: float
    radius: float
    contrast: float  # 0 = skin, 1 = full spot colour
    red: bool  # red spot, else dark brown


@dataclass(frozen=True)
class _Traits:
    """The scientific traits: the only inputs of the latent. Defaults are the ideal face."""

    eye_asym: float = 0.0
    eye_offset: float = 0.0
    mouth_tilt: float = 0.0
    nose_offset: float = 0.0
    aspect: float = 0.0
    eye_size: float = 0.0
    eye_dist: float = 0.0
    mouth_width: float = 0.0
    nose_length: float = 0.0
    blemishes: tuple[_Blemish, ...] = ()


@dataclass(frozen=True)
class _Look:
    """Nuisance: drawn independently of the traits, no effect on the latent."""

    angle: float  # in-plane rotation, degrees
    shift: tuple[float, float]  # face translation, image sides
    scale: float  # face size factor
    gain: float  # global brightness factor
    slope: float  # brightness changes by this fraction from the left to the right edge
    background: tuple[int, int, int]
    bg_gradient: tuple[float, float]  # direction (radians), amplitude (fraction)
    bg_texture: tuple[float, ...]  # 5x5 low-frequency brightness field, fractions
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    long_hair: bool
    hair_length: float  # long hair reaches this many face half-heights below the centre
    hairline: float  # fraction of the face half-height above the centre
    brow: tuple[float, float, float, float]  # length, thickness, gap above the eye, tilt (deg)
    iris: tuple[int, int, int]
    lips: tuple[int, int, int]
    shirt: tuple[int, int, int]


@dataclass(frozen=True)
class _Face:
    traits: _Traits
    look: _Look


@dataclass(frozen=True)
class _Geometry:
    """Where the traits put the features (face frame, image sides)."""

    half_height: float
    eyes: tuple[tuple[float, float, float], tuple[float, float, float]]  # (x, y, half-width), left first
    nose: tuple[float, float, float]  # x, top y, tip y
    mouth: tuple[float, float, float]  # centre y, half-width, tilt (deg)


def _geometry(t: _Traits) -> _Geometry:
    half_height = _FACE_HALF_WIDTH * (1.30 + 0.15 * t.aspect)
    e = 0.068 * (1 + 0.2 * t.eye_size)
    dx = 0.13 + 0.018 * t.eye_dist
    dy = 0.03 * t.eye_offset
    eyes = (
        (-dx, _EYE_Y - dy, e * (1 + 0.18 * t.eye_asym)),
        (dx, _EYE_Y + dy, e * (1 - 0.18 * t.eye_asym)),
    )
    nose_x = 0.035 * t.nose_offset
    nose_tip = _EYE_Y + 0.13 * (1 + 0.22 * t.nose_length)
    mouth = (nose_tip + 0.065, 0.085 * (1 + 0.3 * t.mouth_width), 12.0 * t.mouth_tilt)
    return _Geometry(half_height, eyes, (nose_x, _EYE_Y + 0.02, nose_tip), mouth)


def _latent(traits: _Traits) -> float:
    """Standardized attractiveness a of one face (see the module docstring)."""
    asymmetry = sum(v * getattr(traits, name) ** 2 for name, v in _ASYMMETRY.items())
    proportion = sum(v * getattr(traits, name) ** 2 for name, v in _PROPORTION.items())
    blemish = sum(b.contrast * b.radius**2 / _BLEMISH_REF_AREA for b in traits.blemishes)
    raw = _W_A * asymmetry + _W_P * proportion + _W_B * blemish
    return -(raw - _LATENT_MEAN) / _LATENT_STD


def _blemish_allowed(x: float, y: float, r: float, g: _Geometry) -> bool:
    """On cheeks, chin or between the eyes: inside the face, clear of eyes, brows, nose, mouth
    and of the lowest hairline (0.12 above the centre), so every spot stays in sight."""
    if (x / (0.85 * _FACE_HALF_WIDTH)) ** 2 + (y / (0.85 * g.half_height)) ** 2 > 1:
        return False
    if y - r < _EYE_Y - 0.05:
        return False
    for ex, ey, ew in g.eyes:
        if ((x - ex) / (ew + 0.03 + r)) ** 2 + ((y - ey) / (0.5 * ew + 0.05 + r)) ** 2 < 1:
            return False
    nose_x, nose_top, nose_tip = g.nose
    if abs(x - nose_x) < 0.045 + r and nose_top - r < y < nose_tip + 0.03 + r:
        return False
    mouth_y, mouth_w, _ = g.mouth
    return ((x / (mouth_w + 0.025 + r)) ** 2 + ((y - mouth_y) / (0.05 + r)) ** 2) >= 1


def _sample_blemishes(rng: np.random.Generator, g: _Geometry) -> tuple[_Blemish, ...]:
    spots = []
    for _ in range(rng.integers(0, _MAX_BLEMISHES + 1)):
        radius = rng.uniform(*_BLEMISH_RADIUS)
        contrast = rng.uniform(*_BLEMISH_CONTRAST)
        red = bool(rng.random() < 0.5)
        for _ in range(200):  # the allowed area is a good part of the box: this never runs out
            x = rng.uniform(-_FACE_HALF_WIDTH, _FACE_HALF_WIDTH)
            y = rng.uniform(-g.half_height, g.half_height)
            if _blemish_allowed(x, y, radius, g):
                spots.append(_Blemish(x, y, radius, contrast, red))
                break
    return tuple(spots)


def _sample_traits(rng: np.random.Generator) -> _Traits:
    names = [*_ASYMMETRY, *_PROPORTION]
    z = np.clip(rng.standard_normal(len(names)), -_Z_CLIP, _Z_CLIP)
    traits = _Traits(**{name: float(v) for name, v in zip(names, z)})
    return replace(traits, blemishes=_sample_blemishes(rng, _geometry(traits)))


_HAIR = ((25, 20, 20), (60, 40, 30), (110, 75, 45), (200, 165, 100), (140, 60, 35), (150, 150, 150))
_HAIR_P = {"A": (0.55, 0.3, 0.1, 0.02, 0.02, 0.01), "C": (0.15, 0.25, 0.25, 0.2, 0.1, 0.05)}
_IRIS = ((60, 35, 20), (100, 65, 35), (70, 110, 160), (80, 120, 70))
_IRIS_P = {"A": (0.7, 0.3, 0.0, 0.0), "C": (0.25, 0.25, 0.3, 0.2)}


def _rgb(c) -> tuple[int, int, int]:
    return tuple(int(round(min(255.0, max(0.0, v)))) for v in c)


def _hsv(rng: np.random.Generator, sat: tuple, val: tuple) -> tuple[int, int, int]:
    """A colour of random hue with saturation and value drawn from the given ranges."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    return _rgb((255 * r, 255 * g, 255 * b))


def _sample_skin(rng: np.random.Generator, ethnicity: str) -> tuple[int, int, int]:
    """A*: darker, warmer and more yellow; C*: lighter and pinker; the ranges overlap."""
    dark, light = np.array([150.0, 105.0, 75.0]), np.array([250.0, 222.0, 205.0])
    if ethnicity == "A":
        tone, tint = rng.uniform(0.25, 0.75), np.array([2.0, 4.0, -14.0])
    else:
        tone, tint = rng.uniform(0.45, 1.0), np.array([4.0, -6.0, -2.0])
    return _rgb(dark + tone * (light - dark) + tint)


def _sample_look(rng: np.random.Generator, subset: str) -> _Look:
    ethnicity, female = subset[0], subset[1] == "F"
    skin = _sample_skin(rng, ethnicity)
    hair = np.array(_HAIR[rng.choice(len(_HAIR), p=_HAIR_P[ethnicity])]) * rng.uniform(0.85, 1.15)
    lip_target = np.array([185.0, 60.0, 75.0]) if female else np.array([160.0, 80.0, 80.0])
    lips = np.array(skin) + rng.uniform(0.55, 0.85) * (lip_target - np.array(skin))
    return _Look(
        angle=float(rng.uniform(-15, 15)),
        shift=(float(rng.uniform(-0.05, 0.05)), float(rng.uniform(-0.05, 0.05))),
        scale=float(rng.uniform(0.88, 1.12)),
        gain=float(rng.uniform(0.7, 1.3)),
        slope=float(rng.uniform(-0.4, 0.4)),
        background=_hsv(rng, (0.05, 0.45), (0.35, 0.9)),
        bg_gradient=(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 0.25))),
        bg_texture=tuple(float(v) for v in rng.normal(0, 0.06, 25)),
        skin=skin,
        hair=_rgb(hair),
        long_hair=bool(rng.random() < (0.85 if female else 0.12)),
        hair_length=float(rng.uniform(0.9, 1.6)),
        hairline=float(rng.uniform(0.5, 0.7)),
        brow=(
            float(rng.uniform(0.08, 0.12)),
            float(rng.uniform(0.012, 0.022) * (0.8 if female else 1.15)),
            float(rng.uniform(0.02, 0.035)),
            float(rng.uniform(-8, 12)),
        ),
        iris=_IRIS[rng.choice(len(_IRIS), p=_IRIS_P[ethnicity])],
        lips=_rgb(lips),
        shirt=_hsv(rng, (0.1, 0.7), (0.2, 0.9)),
    )


def _sample_face(seed: int, subset: str, k: int) -> _Face:
    """Face k (1-based) of `subset`; traits and nuisance come from separate child streams, so
    a change to how one is drawn never reshuffles the other."""
    trait_seq, look_seq = np.random.SeedSequence([seed, SUBSETS.index(subset), k]).spawn(2)
    traits = _sample_traits(np.random.default_rng(trait_seq))
    return _Face(traits, _sample_look(np.random.default_rng(look_seq), subset))


# --- drawing --------------------------------------------------------------------------------


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)  # (n, 2)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def _rotate(points: np.ndarray, centre: tuple[float, float], degrees: float) -> np.ndarray:
    """Rotate clockwise on screen (y points down) by `degrees` about `centre`."""
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (points - centre) @ rot.T + centre


def _shade(c, factor: float) -> tuple[int, int, int]:
    return _rgb(np.array(c, dtype=float) * factor)


def _mix(a, b, t: float) -> tuple[int, int, int]:
    a, b = np.array(a, dtype=float), np.array(b, dtype=float)
    return _rgb(a + t * (b - a))


def _background(look: _Look, side: int) -> Image.Image:
    """Plain colour times a linear gradient and a smooth random texture.

    Built on a coarse grid and upsampled bilinearly: the field is smooth, and this is ~20x
    cheaper than computing it per pixel.
    """
    grid = 16
    u = (np.arange(grid) + 0.5) / grid - 0.5
    direction, amplitude = look.bg_gradient
    ramp = amplitude * (math.cos(direction) * u[None, :] + math.sin(direction) * u[:, None])  # (g, g)
    small = Image.fromarray(np.array(look.bg_texture, dtype=np.float32).reshape(5, 5), mode="F")
    texture = np.asarray(small.resize((grid, grid), Image.BICUBIC))
    rgb = np.array(look.background, dtype=np.float32) * (1 + ramp + texture)[..., None]  # (g, g, 3)
    coarse = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), mode="RGB")
    return coarse.resize((side, side), Image.BILINEAR)


class _Canvas:
    """Draws face-frame polygons onto an image through the pose (scale, rotation, shift)."""

    def __init__(self, image: Image.Image, look: _Look):
        self.draw = ImageDraw.Draw(image)
        self.side = image.width
        a = math.radians(look.angle)
        self.matrix = look.scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        self.centre = np.array(_FACE_CENTRE) + np.array(look.shift)

    def polygon(self, points: np.ndarray, fill, outline=None, width: float = 0.0) -> None:
        """`points` (n, 2) in the face frame; `width` of the outline in image sides."""
        px = self.side * (points @ self.matrix.T + self.centre)
        xy = [tuple(p) for p in px.tolist()]
        if outline is None:
            self.draw.polygon(xy, fill=fill)
        else:
            self.draw.polygon(xy, fill=fill, outline=outline, width=max(1, round(width * self.side)))


def _draw_hair_back(c: _Canvas, look: _Look, h: float) -> None:
    w = _FACE_HALF_WIDTH
    c.polygon(_ellipse(0, -0.12 * h, 1.12 * w, h), look.hair)
    if look.long_hair:
        c.polygon(_ellipse(0, -0.03, 1.22 * w, 1.12 * h), look.hair)
        c.polygon(_rect(-1.22 * w, -0.03, 1.22 * w, look.hair_length * h), look.hair)


def _draw_hair_front(c: _Canvas, look: _Look, h: float) -> None:
    """The hair above the hairline, as the top cap of an ellipse around the face."""
    cy, rx, ry = -0.02, 1.12 * _FACE_HALF_WIDTH, 1.1 * h
    q = (-look.hairline * h - cy) / ry
    t = np.linspace(math.pi - math.asin(q), 2 * math.pi + math.asin(q), 40)
    c.polygon(np.stack([rx * np.cos(t), cy + ry * np.sin(t)], axis=1), look.hair)


def _draw_eye(c: _Canvas, look: _Look, x: float, y: float, e: float) -> None:
    ry = 0.5 * e
    c.polygon(_ellipse(x, y, e, ry), (248, 248, 245), outline=(45, 30, 30), width=0.006)
    iris = 0.85 * ry
    c.polygon(_ellipse(x, y, iris, iris, 24), look.iris)
    c.polygon(_ellipse(x, y, 0.45 * iris, 0.45 * iris, 16), (15, 10, 10))


def _draw_brow(c: _Canvas, look: _Look, x: float, y: float, e: float, mirror: float) -> None:
    length, thickness, gap, tilt = look.brow
    centre_y = y - 0.5 * e - gap - thickness / 2
    brow = _rect(x - length / 2, centre_y - thickness / 2, x + length / 2, centre_y + thickness / 2)
    c.polygon(_rotate(brow, (x, centre_y), mirror * tilt), _shade(look.hair, 0.8))


def _draw_nose(c: _Canvas, look: _Look, g: _Geometry) -> None:
    x, top, tip = g.nose
    c.polygon(_rect(x - 0.008, top, x + 0.008, tip), _shade(look.skin, 0.74))
    c.polygon(_ellipse(x, tip, 0.032, 0.017), _shade(look.skin, 0.8))
    for side in (-1, 1):
        c.polygon(_ellipse(x + side * 0.016, tip + 0.005, 0.008, 0.005, 12), _shade(look.skin, 0.45))


def _draw_mouth(c: _Canvas, look: _Look, g: _Geometry) -> None:
    y, w, tilt = g.mouth
    c.polygon(_rotate(_ellipse(0, y, w, 0.028), (0, y), tilt), look.lips)
    c.polygon(_rotate(_rect(-w, y - 0.006, w, y + 0.006), (0, y), tilt), (80, 25, 30))


def _draw_face(image: Image.Image, face: _Face) -> None:
    look, g = face.look, _geometry(face.traits)
    h, w = g.half_height, _FACE_HALF_WIDTH
    c = _Canvas(image, look)
    c.polygon(_ellipse(0, h + 0.34, 0.44, 0.22), look.shirt)  # shoulders
    _draw_hair_back(c, look, h)
    neck = _shade(look.skin, 0.72)  # darker than the face, so the chin line shows
    c.polygon(_rect(-0.09, 0.4 * h, 0.09, h + 0.2), neck)
    for side in (-1, 1):
        c.polygon(_ellipse(side * w, _EYE_Y + 0.04, 0.03, 0.055, 20), _shade(look.skin, 0.92))  # ears
    c.polygon(_ellipse(0, 0, w, h, 64), look.skin, outline=_shade(look.skin, 0.62), width=0.008)
    for b in face.traits.blemishes:
        spot = (150, 35, 40) if b.red else _shade(look.skin, 0.4)
        c.polygon(_ellipse(b.x, b.y, b.radius, b.radius, 16), _mix(look.skin, spot, b.contrast))
    for (x, y, e), mirror in zip(g.eyes, (1, -1)):
        _draw_eye(c, look, x, y, e)
        _draw_brow(c, look, x, y, e, mirror)
    _draw_nose(c, look, g)
    _draw_mouth(c, look, g)
    _draw_hair_front(c, look, h)


def _render(face: _Face, size: int) -> Image.Image:
    """The face as a size x size RGB image: drawn at 2x, box-downsampled (antialiasing), then lit."""
    image = _background(face.look, 2 * size)
    _draw_face(image, face)
    image = image.reduce(2)
    u = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    light = face.look.gain * (1 + face.look.slope * u)  # (size,): per column
    lit = np.asarray(image, dtype=np.float32) * light[None, :, None]
    return Image.fromarray(np.clip(lit + 0.5, 0, 255).astype(np.uint8), mode="RGB")


# --- the dataset ----------------------------------------------------------------------------


def _draw_and_save(task: tuple[int, int, str], seed: int, size: int, image_dir: str) -> float:
    """Worker: draw face k of subset s, write its JPEG under its layout's name, return its latent."""
    s, k, name = task
    face = _sample_face(seed, SUBSETS[s], k)
    _render(face, size).save(os.path.join(image_dir, name), "JPEG", quality=95)
    return _latent(face.traits)


def _rate(
    seed: int, tasks: list[tuple[int, int]], latent: np.ndarray, raters: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Mean rating of every image by the same `raters` simulated raters, and the ratings' std."""
    rng = np.random.default_rng([seed, *_RATER_STREAM])
    bias = rng.normal(0, _RATER_BIAS_SD, raters)  # (R,)
    noise_sd = rng.uniform(*_RATER_NOISE_SD, raters)  # (R,)
    scores, spread = np.empty(len(tasks)), np.zeros(len(tasks))
    for i, (s, k) in enumerate(tasks):
        image_rng = np.random.default_rng([seed, s, k, 1])
        appeal = image_rng.normal(0, _APPEAL_SD)
        eps = image_rng.standard_normal(raters)  # (R,)
        raw = _RATING_MID + _RATING_SLOPE * (latent[i] + appeal) + bias + noise_sd * eps
        ratings = np.clip(np.round(raw), 1, 5)  # (R,)
        scores[i] = ratings.mean()
        if raters > 1:
            spread[i] = ratings.std(ddof=1)
    model = {
        "formula": "rating_ri = clip(round(mid + slope * (a_i + u_i) + b_r + s_r * eps_ri), 1, 5); "
        "score_i = mean_r rating_ri; u_i ~ N(0, appeal_sd), eps_ri ~ N(0, 1)",
        "raters": raters,
        "mid": _RATING_MID,
        "slope": _RATING_SLOPE,
        "appeal_sd": _APPEAL_SD,
        "bias_sd": _RATER_BIAS_SD,
        "noise_sd_range": list(_RATER_NOISE_SD),
        "bias": [round(float(b), 6) for b in bias],
        "noise_sd": [round(float(s), 6) for s in noise_sd],
    }
    return scores, spread, model


def _trait_definitions() -> dict:
    return {
        "latent": "a = -(w_A*A + w_P*P + w_B*B - mu) / sigma",
        "A": "sum of v_k * z_k^2 over the asymmetry traits (v_k below)",
        "P": "sum of v_k * z_k^2 over the proportion traits: deviation from the average face",
        "asymmetry_traits": _ASYMMETRY,
        "proportion_traits": _PROPORTION,
        "B": f"sum over blemishes of contrast * (radius / {math.sqrt(_BLEMISH_REF_AREA):g})^2; "
        f"0..{_MAX_BLEMISHES} spots, radius {_BLEMISH_RADIUS}, contrast {_BLEMISH_CONTRAST}",
        "z": f"standard normal clipped to +-{_Z_CLIP}",
        "weights": {"w_A": _W_A, "w_P": _W_P, "w_B": _W_B},
        "mu": _LATENT_MEAN,
        "sigma": _LATENT_STD,
        "nuisance": "rotation +-15 deg, shift +-5%, scale 0.88..1.12, gain 0.7..1.3, left-right light slope "
        "+-40%, background colour/gradient/texture, skin tone (by subset), hair colour and style, brows, "
        "iris, lips, shirt",
    }


def _manifest(
    params: SynthParams, layout: str, counts: list[int], labels: np.ndarray, latent: np.ndarray, raters: dict, extra: dict
) -> dict:
    """What was generated; `scores` describes the label values as the files hold them."""
    return {
        "generator": "fbp.data.faces",
        "generator_version": GENERATOR_VERSION,
        # SCUT-FBP5500's manifest stays the bytes it was before there were layouts (same
        # params, same files): a manifest without `layout` is that layout's
        **({"layout": layout} if layout != "scut-fbp5500" else {}),
        "params": asdict(params),
        "seed": params.seed,
        "counts": {s: c for s, c in zip(SUBSETS, counts) if c},
        "traits": _trait_definitions(),
        "rater_model": raters,
        **extra,
        "scores": {name: round(float(f(labels)), 6) + 0.0 for name, f in (("min", np.min), ("max", np.max), ("mean", np.mean), ("std", np.std))},  # + 0.0: no -0.0
        "noise_ceiling": float(np.corrcoef(latent, labels)[0, 1]),
        "latent_file": "latent.csv",
    }


def _check_free(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"synthetic dataset output {out} already exists and is not empty; remove it or pick another path"
        )


def _draw_all(tasks: list[tuple[int, int, str]], params: SynthParams, image_dir: Path, workers: int) -> np.ndarray:
    job = partial(_draw_and_save, seed=params.seed, size=params.size, image_dir=str(image_dir))
    if workers <= 1:
        return np.array([job(t) for t in tasks])
    # fork where there is one (as torch's DataLoader does): workers run only numpy and PIL code,
    # start at once, and need no `if __name__ == "__main__"` guard in the caller's script, which
    # spawn needs (without it a spawn pool re-runs the script and hangs).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers) as pool:
        return np.array(pool.map(job, tasks, chunksize=max(1, len(tasks) // (8 * workers))))


def layout_params(layout: str, **changes) -> SynthParams:
    """The parameters of a layout's default set: the release's number of faces and of raters,
    with `changes` (n, size, seed, raters) applied."""
    own = LAYOUTS[layout]
    return SynthParams(**{"n": own.n, "raters": own.raters, **changes})


def generate(out: Path, params: SynthParams | None = None, workers: int | None = None, layout: str = "scut-fbp5500") -> dict:
    """Writes the dataset into `out` in `layout` (`fbp.data.layouts.LAYOUTS`: scut-fbp5500,
    scut-fbp, hotornot) and returns the manifest. `params` default to the layout's own
    (`layout_params`).

    Everything is built in a hidden sibling folder and renamed onto `out` at the end, so a
    killed process never leaves a half-written `out`. Raises FileExistsError if `out` exists
    and is not empty (also when another process finished first). `workers` processes draw
    the images (default: one per CPU; 1 draws in this process).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    own = LAYOUTS[layout]
    params = params or layout_params(layout)
    out = Path(out)
    _check_free(out)
    if workers is None:
        workers = os.cpu_count() or 1
    counts = _largest_remainder(params.n, own.share)
    tasks = [(s, k) for s, count in enumerate(counts) for k in range(1, count + 1)]
    names = [own.image_name(i, SUBSETS[s], k) for i, (s, k) in enumerate(tasks, start=1)]
    subsets = [SUBSETS[s] for s, _ in tasks]

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out, publish=_publish) as tmp:
        (tmp / own.image_dir).mkdir(parents=True)
        latent = _draw_all([(s, k, name) for (s, k), name in zip(tasks, names)], params, tmp / own.image_dir, workers)
        scores, spread, raters = _rate(params.seed, tasks, latent, params.raters)
        split_rng = np.random.default_rng([params.seed, *_SPLIT_STREAM])
        # the manifest's statistics describe exactly the values the label files hold
        labels, extra = own.write(tmp, Faces(names, subsets, scores, spread), split_rng)
        latent = np.round(latent, 6)
        rows = "".join(f"{name},{a:.6f}\n" for name, a in zip(names, latent))
        (tmp / "latent.csv").write_bytes(("image,latent\n" + rows).encode())
        manifest = _manifest(params, layout, counts, labels, latent, raters, extra)
        (tmp / "manifest.json").write_bytes((json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def _publish(tmp: Path, out: Path) -> None:
    _check_free(out)
    try:
        os.replace(tmp, out)  # atomic; replaces an empty directory, fails on a full one
    except OSError as e:
        if out.exists():
            message = f"synthetic dataset output {out} appeared meanwhile (another process?)"
            raise FileExistsError(message) from e
        raise

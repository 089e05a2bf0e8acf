"""Seeded, vectorized perturbations of uint8 image batches: the lecture's challenges.

Each perturbation maps images ``(n, H, W, C)`` uint8 to images of the same
shape and dtype, with one ``severity`` number (in the unit of
:data:`PERTURBATIONS`); severity 0 is the identity. The random choices (a
shift's direction, a box's place, the noise) are drawn from ``seed`` the same
way whatever the severity, so that a larger severity moves the same images
further: the distance a perturbation causes grows with its severity, which the
calibration by bisection (:mod:`imgclf.challenges.calibration`) relies on.

Geometric changes have edge padding (pixels brought in from outside the image
take the value of the nearest edge pixel) and treat all images at once:
``rotate`` and ``elastic`` resample through one bilinear gather, ``shift``
moves whole pixels by indexing and blends the two whole-pixel shifts around a
fractional one. Results are rounded to uint8 with a seeded dither (see
:func:`_dithered`), so that a distance grows smoothly with severity.
scikit-image and Pillow transform one image per call, so they are not used
here; scipy (which scikit-learn requires) smooths the elastic fields and labels
background regions.

The lecture's challenges and the perturbation standing for each: viewpoint
variation (``shift``, ``flip``, ``rotate``), illumination (``brightness``,
``contrast``, ``tint``), occlusion (``occlude``), deformation (``elastic``),
background clutter (``background``), sensor noise (``noise``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from imgclf._validation import check_choice, check_int

__all__ = [
    "PERTURBATIONS",
    "Perturbation",
    "check_images",
    "default_severities",
    "perturb",
]

# Images are perturbed in blocks of this many, each with its own random stream
# (seed, block number): memory stays bounded and results do not depend on batch size
# beyond the block.
BLOCK = 1024
DITHER = 1  # a third seed word: the rounding's stream, apart from the perturbation's draws

# background: how close to the border's colour a pixel must be (grey levels, any channel),
# and how much of the border must have that colour for the image to count as having one.
BACKGROUND_TOLERANCE = 24
BACKGROUND_MIN_BORDER = 0.5


@dataclass(frozen=True)
class Perturbation:
    """One perturbation: its function, severity unit and range, and default levels.

    ``levels`` are the three default severities for 32-pixel images; those in
    pixels (``in_pixels``) scale with the image side.
    """

    name: str
    function: Callable
    unit: str
    low: float
    high: float
    levels: tuple[float, ...]
    challenge: str
    in_pixels: bool = False

    def describe(self, severity: float) -> str:
        """``severity`` in words, e.g. ``"shift 2 px"``, ``"brightness +30%"``."""
        if self.unit == "%":
            return f"{self.name} {severity * 100:+.0f}%"
        if self.unit == "share":
            return f"{self.name} {severity:.0%}"
        return f"{self.name} {severity:g} {self.unit}".rstrip()


# --- the gather every geometric perturbation uses -------------------------------------------


def _warp(images: np.ndarray, src_y: np.ndarray, src_x: np.ndarray) -> np.ndarray:
    """Bilinear resampling: output pixel (i, j) of image n reads ``images[n]`` at
    ``(src_y[n, i, j], src_x[n, i, j])``; coordinates outside are clamped (edge padding).

    ``src_y``, ``src_x``: float ``(n, H, W)``. Returns float32 ``(n, H, W, C)``.
    """
    n, height, width, channels = images.shape
    # one plane per channel: gathering single bytes from a 1-D array is ~2.5x faster
    # than gathering 3-byte pixels
    planes = np.moveaxis(images, -1, 0).reshape(channels, -1)
    y0, wy = _corner(src_y, height)
    x0, wx = _corner(src_x, width)
    first = (np.arange(n, dtype=np.intp) * (height * width))[:, None, None]
    base = (first + y0 * width + x0).ravel()
    wy, wx = wy.ravel(), wx.ravel()
    # _corner keeps the lower index below the last row/column, so +1 stays in the image
    down, right = (width if height > 1 else 0), (1 if width > 1 else 0)
    out = np.zeros((channels, base.size), np.float32)
    for step_y, y_weight in ((0, 1 - wy), (down, wy)):
        for step_x, x_weight in ((0, 1 - wx), (right, wx)):
            weight = y_weight * x_weight
            if (step_y or step_x) and not weight.any():  # on whole pixels: one corner is enough
                continue
            index = base + (step_y + step_x)
            for channel in range(channels):
                out[channel] += weight * np.take(planes[channel], index)
    return np.moveaxis(out.reshape(channels, n, height, width), 0, -1)


def _corner(coordinate: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The lower whole-pixel index (clamped into the image) and the weight of the upper one."""
    clamped = np.clip(coordinate, 0, size - 1).astype(np.float32)
    lower = np.minimum(np.floor(clamped), size - 2 if size > 1 else 0)
    return lower.astype(np.intp), clamped - lower  # the weight stays float32


def _grid(n: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel's own coordinates, ``(n, H, W)`` each (float32)."""
    y, x = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32),
                       indexing="ij")  # fmt: skip
    return np.broadcast_to(y, (n, height, width)), np.broadcast_to(x, (n, height, width))


# --- the perturbations (float32 images in, float32 out; rng draws never depend on severity) --


def _shift(images, severity, rng):
    """Translate each image by ``severity`` pixels right, left, down or up (seeded per image).

    A fractional shift blends the two whole-pixel shifts around it (bilinear).
    """
    direction = rng.integers(4, size=len(images))
    whole = math.floor(severity)
    part = np.float32(severity - whole)
    out = _whole_shift(images, whole, direction).astype(np.float32)
    if part:
        out *= 1 - part
        out += part * _whole_shift(images, whole + 1, direction)
    return out


# direction -> (axis, sign): right, left, down, up
_DIRECTIONS = ((2, 1), (2, -1), (1, 1), (1, -1))


def _whole_shift(images: np.ndarray, pixels: int, direction: np.ndarray) -> np.ndarray:
    """Each image moved ``pixels`` along its ``direction`` (see _DIRECTIONS), edge padded."""
    out = np.empty_like(images)
    for d, (axis, sign) in enumerate(_DIRECTIONS):
        chosen = np.flatnonzero(direction == d)
        size = images.shape[axis]
        source = np.clip(np.arange(size) - sign * pixels, 0, size - 1)
        out[chosen] = np.take(images[chosen], source, axis=axis)
    return out


def _flip(images, severity, rng):
    """Mirror left-right a seeded share ``severity`` of the images (1: all of them)."""
    chosen = rng.random(len(images)) < severity
    out = images.astype(np.float32)
    out[chosen] = out[chosen, :, ::-1]
    return out


def _rotate(images, severity, rng):
    """Rotate each image by ``severity`` degrees about its centre, clockwise or not (seeded)."""
    n, height, width, _ = images.shape
    angle = np.deg2rad(severity) * rng.choice([-1.0, 1.0], size=n)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    y, x = _grid(n, height, width)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    # each output pixel reads the source pixel the rotation brings to it (inverse map)
    src_y = cy + cos * (y - cy) - sin * (x - cx)
    src_x = cx + sin * (y - cy) + cos * (x - cx)
    return _warp(images, src_y, src_x)


def _elastic(images, severity, rng):
    """Displace pixels along a smooth random field whose RMS length is ``severity`` pixels."""
    from scipy.ndimage import gaussian_filter

    n, height, width, _ = images.shape
    field = rng.standard_normal((2, n, height, width), dtype=np.float32)
    sigma = max(height, width) / 8  # smooth over an eighth of the image: bends, not noise
    # two standard deviations of kernel: 3x faster than scipy's default four, as smooth
    field = gaussian_filter(field, sigma=(0, 0, sigma, sigma), mode="reflect", truncate=2.0)
    rms = np.sqrt((field**2).sum(axis=0).mean(axis=(1, 2)))
    field *= severity / np.maximum(rms, 1e-12)[None, :, None, None]
    y, x = _grid(n, height, width)
    return _warp(images, y + field[0], x + field[1])


def _brightness(images, severity, rng):
    """Scale every intensity by ``1 + severity`` (-0.3: 30% darker)."""
    return images.astype(np.float32) * np.float32(1 + severity)


def _contrast(images, severity, rng):
    """Pull every intensity towards the image's mean by the share ``severity`` (1: flat)."""
    mean = images.mean(axis=(1, 2, 3), keepdims=True, dtype=np.float32)
    return mean + (images - mean) * np.float32(1 - severity)


def _tint(images, severity, rng):
    """Add a seeded colour per image whose channels' RMS is ``severity`` grey levels."""
    n, channels = len(images), images.shape[-1]
    colour = rng.standard_normal((n, channels), dtype=np.float32)
    colour *= math.sqrt(channels) / np.maximum(np.linalg.norm(colour, axis=1, keepdims=True), 1e-6)
    return images + np.float32(severity) * colour[:, None, None, :]


def _occlude(images, severity, rng):
    """Cover a black box of side ``severity`` pixels at a seeded place in each image.

    A fractional side covers its last row and column partly (pixels blend), so
    the distance it causes grows continuously with the side.
    """
    n, height, width, _ = images.shape
    where = rng.random((n, 2), dtype=np.float32)
    cover_y = _coverage(where[:, 0], severity, height)
    cover_x = _coverage(where[:, 1], severity, width)
    covered = cover_y[:, :, None, None] * cover_x[:, None, :, None]
    return images * (1 - covered)


def _coverage(where: np.ndarray, side: float, size: int) -> np.ndarray:
    """How much of each pixel ``0..size-1`` a box of ``side`` at ``where * (size - side)``
    covers along one axis, ``(n, size)`` in [0, 1]."""
    side = min(side, size)
    start = (where * (size - side))[:, None]
    pixel = np.arange(size, dtype=np.float32)[None, :]
    return np.clip(np.minimum(pixel + 1, start + side) - np.maximum(pixel, start), 0, 1)


def _noise(images, severity, rng):
    """Add seeded Gaussian noise of standard deviation ``severity`` grey levels."""
    return images + np.float32(severity) * rng.standard_normal(images.shape, dtype=np.float32)


def _background(images, severity, rng, masks=None):
    """Blend the background with clutter from another image of the batch by ``severity``.

    ``masks`` ``(n, H, W)`` bool (True: background) when known; otherwise it is
    estimated (:func:`estimated_background`), which is approximate.
    """
    n = len(images)
    offset = rng.integers(1, max(n, 2), size=n)
    clutter = images[(np.arange(n) + offset) % n].astype(np.float32)
    if n == 1:  # no other image: its own pixels turned half a turn are the clutter
        clutter = clutter[:, ::-1, ::-1]
    if masks is None:
        masks = estimated_background(images)
    weight = np.float32(severity) * masks[..., None].astype(np.float32)
    return images * (1 - weight) + clutter * weight


def estimated_background(images: np.ndarray) -> np.ndarray:
    """Where each image's background is, as far as a uniform border shows it.

    The background is the pixels connected to the border whose colour is within
    ``BACKGROUND_TOLERANCE`` grey levels (every channel) of the border's median
    colour, and only in images where such pixels make up at least half of the
    border. This is an approximation: an object touching the border in the
    background's colour counts as background, and a textured background (grass,
    a street) is not found, so those images get no background (they are left
    unchanged by ``background``).

    Returns bool ``(n, H, W)``.
    """
    from scipy.ndimage import label

    border = np.concatenate(
        [images[:, 0], images[:, -1], images[:, 1:-1, 0], images[:, 1:-1, -1]], axis=1
    )  # (n, border pixels, C)
    colour = np.median(border, axis=1)
    close = (np.abs(images - colour[:, None, None, :]) <= BACKGROUND_TOLERANCE).all(axis=-1)
    within_image = np.zeros((3, 3, 3), bool)
    within_image[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]  # 4-connected, never across images
    regions, _ = label(close, structure=within_image)
    edge = np.concatenate(
        [regions[:, 0], regions[:, -1], regions[:, :, 0], regions[:, :, -1]], axis=1
    )
    touching = np.zeros(regions.max() + 1, bool)
    touching[edge.ravel()] = True
    touching[0] = False
    mask = touching[regions]
    share = (np.abs(border - colour[:, None, :]) <= BACKGROUND_TOLERANCE).all(axis=-1).mean(axis=1)
    return mask & (share >= BACKGROUND_MIN_BORDER)[:, None, None]


PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("shift", _shift, "px", 0, math.inf, (1, 2, 4), "viewpoint", True),
        Perturbation("flip", _flip, "share", 0, 1, (0.25, 0.5, 1.0), "viewpoint"),
        Perturbation("rotate", _rotate, "degrees", 0, 180, (5, 15, 30), "viewpoint"),
        Perturbation(
            "brightness", _brightness, "%", -1, math.inf, (-0.3, 0.3, 0.6), "illumination"
        ),  # fmt: skip
        Perturbation(
            "contrast", _contrast, "share", -math.inf, 1, (0.25, 0.5, 0.75), "illumination"
        ),  # fmt: skip
        Perturbation("tint", _tint, "grey levels", 0, 255, (10, 30, 60), "illumination"),
        Perturbation("occlude", _occlude, "px", 0, math.inf, (8, 12, 16), "occlusion", True),
        Perturbation("noise", _noise, "grey levels", 0, 255, (8, 16, 32), "sensor noise"),
        Perturbation("elastic", _elastic, "px", 0, math.inf, (0.5, 1, 2), "deformation", True),
        Perturbation(
            "background", _background, "share", 0, 1, (0.33, 0.67, 1.0), "background clutter"
        ),  # fmt: skip
    )
}


def check_images(images, name: str = "images") -> np.ndarray:
    """``images`` as uint8 ``(n, H, W, C)``, else a ValueError saying what was given."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(
            f"{name} must be uint8 images (n, H, W, C); got {images.dtype} {images.shape}"
        )
    return images


def check_severity(name: str, severity) -> float:
    """``severity`` as a float within the perturbation's range, else a ValueError."""
    spec = PERTURBATIONS[check_choice("perturbation", name, PERTURBATIONS)]
    real = isinstance(severity, numbers.Real) and not isinstance(severity, bool)
    if not real or not spec.low <= severity <= spec.high:
        raise ValueError(
            f"severity of {name} must be a number in [{spec.low:g}, {spec.high:g}] "
            f"({spec.unit}); got {severity!r}"
        )
    return float(severity)


def default_severities(name: str, image_shape=(32, 32, 3)) -> tuple[float, ...]:
    """The three default severities of ``name`` for images of ``image_shape``.

    Severities in pixels scale with the image side (32 pixels: as listed).
    """
    spec = PERTURBATIONS[check_choice("perturbation", name, PERTURBATIONS)]
    if not spec.in_pixels:
        return spec.levels
    scale = max(image_shape[:2]) / 32
    return tuple(float(round(level * scale, 2)) for level in spec.levels)


def _checked_masks(masks, name: str, shape: tuple) -> np.ndarray | None:
    if masks is None:
        return None
    if name != "background":
        raise ValueError(f"masks apply to the background perturbation only; got {name!r}")
    masks = np.asarray(masks, dtype=bool)
    if masks.shape != shape[:3]:
        raise ValueError(f"masks must have shape {shape[:3]} (n, H, W); got {masks.shape}")
    return masks


def perturb(images, name: str, severity: float, *, seed: int = 0, masks=None) -> np.ndarray:
    """``images`` perturbed by ``name`` at ``severity``, seeded.

    Parameters
    ----------
    images : ndarray of uint8, shape (n, H, W, C)
    name : str
        A key of :data:`PERTURBATIONS`: ``shift`` (px), ``flip`` (share of
        images), ``rotate`` (degrees), ``brightness`` (relative: -0.3 is 30%
        darker), ``contrast`` (share removed), ``tint`` (grey levels),
        ``occlude`` (box side, px), ``noise`` (grey levels), ``elastic`` (px),
        ``background`` (share of clutter).
    severity : float
        0 is the identity.
    seed : int, default=0
        The random choices; the same for every severity.
    masks : ndarray of bool, shape (n, H, W), optional
        ``background`` only: where each image's background is (else estimated).

    Returns
    -------
    ndarray of uint8, shape (n, H, W, C)

    Examples
    --------
    >>> import numpy as np
    >>> images = np.arange(2 * 4 * 4 * 1, dtype=np.uint8).reshape(2, 4, 4, 1)
    >>> perturb(images, "shift", 1, seed=1)[0, :, :, 0]  # one pixel left, edge padded
    array([[ 1,  2,  3,  3],
           [ 5,  6,  7,  7],
           [ 9, 10, 11, 11],
           [13, 14, 15, 15]], dtype=uint8)
    >>> (perturb(images, "shift", 0) == images).all()
    np.True_
    """
    images = check_images(images)
    severity = check_severity(name, severity)
    seed = check_int("seed", seed, low=0)
    masks = _checked_masks(masks, name, images.shape)
    if severity == 0 or len(images) == 0:
        return images.copy()
    function = PERTURBATIONS[name].function
    out = np.empty_like(images)
    for block, start in enumerate(range(0, len(images), BLOCK)):
        part = slice(start, start + BLOCK)
        rng = np.random.default_rng([seed, block])
        extra = {} if masks is None else {"masks": masks[part]}
        moved = function(images[part], severity, rng, **extra)
        out[part] = _dithered(moved, np.random.default_rng([seed, block, DITHER]))
    return out


def _dithered(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``values`` rounded to uint8 as ``floor(value + u)``, ``u`` seeded uniform in [0, 1).

    A fraction f rounds up where u < f, so a tint of 0.4 grey levels moves 40%
    of the pixels by one rather than none: the distance a perturbation causes
    grows with its severity instead of in steps of whole grey levels (which
    would defeat the calibration). Whole numbers (a whole-pixel shift, a flip)
    are unchanged. One ``u`` per pixel position and channel serves every image
    of the block: drawing one per value took more time than most perturbations.
    """
    values += rng.random(values.shape[1:], dtype=np.float32)
    np.floor(values, out=values)
    return np.clip(values, 0, 255, out=values)

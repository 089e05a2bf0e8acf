"""Perturbed versions of one image at a chosen L2 distance, found by bisection on severity.

The lecture shows an image beside a boxed, a shifted and a tinted version that
all lie at the same L2 distance from it, although a person sees three very
different changes. :func:`calibrate` finds, for one perturbation, the severity
whose version lies at a target distance: the distance is a continuous function
of the severity (every perturbation here blends continuously, up to rounding to
uint8) that is 0 at severity 0, so bisection between 0 and a severity that goes
past the target finds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from imgclf._validation import check_choice, check_int, check_positive
from imgclf.challenges.perturbations import PERTURBATIONS, check_images, perturb

__all__ = ["Calibrated", "calibrate", "default_target", "l2_distances", "same_distance_versions"]

# Bisection stops when the distance is this close to the target (relative), or after
# MAX_STEPS halvings; rounding to uint8 can leave a step a little wider than this.
RTOL = 0.002
MAX_STEPS = 60

# The lecture's three versions: a box, a shift, a tint.
SAME_DISTANCE = ("occlude", "shift", "tint")


@dataclass
class Calibrated:
    """A perturbed version of one image and the L2 distance it lies from the original.

    Attributes
    ----------
    perturbation : str
    severity : float
        In the perturbation's unit (see :data:`PERTURBATIONS`).
    distance : float
        L2 distance from the original, on 0-255 intensities.
    image : ndarray of uint8, shape (H, W, C)
    """

    perturbation: str
    severity: float
    distance: float
    image: np.ndarray

    @property
    def label(self) -> str:
        """The version in words, e.g. ``"shift 1.7 px"``."""
        return PERTURBATIONS[self.perturbation].describe(round(self.severity, 2))


def l2_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """L2 distance between matching images of ``a`` and ``b`` ``(n, ...)``; float64 ``(n,)``.

    Differences are squared and summed in float32 blocks of 1,024 rows: exact for
    uint8 images up to 16.7 million (2^24) in a row's sum, within 1e-7 beyond.
    """
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    out = np.empty(len(a))
    for start in range(0, len(a), 1024):
        diff = a[start : start + 1024].astype(np.float32) - b[start : start + 1024]
        out[start : start + 1024] = np.einsum("ij,ij->i", diff, diff)
    return np.sqrt(out)


def _version(image: np.ndarray, name: str, severity: float, seed: int) -> tuple[float, np.ndarray]:
    moved = perturb(image[None], name, severity, seed=seed)
    return float(l2_distances(moved, image[None])[0]), moved[0]


def _upper_severity(name: str, image_shape: tuple) -> float:
    """A severity past every distance the perturbation can reach on an image this size."""
    spec = PERTURBATIONS[name]
    return spec.high if math.isfinite(spec.high) else float(max(image_shape[:2]))


def calibrate(image, name: str, target: float, *, seed: int = 0) -> Calibrated:
    """The version of ``image`` perturbed by ``name`` that lies ``target`` (L2) from it.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, C)
    name : str
        A perturbation whose severity can grow from 0 (``shift``, ``rotate``,
        ``tint``, ``occlude``, ``noise``, ``elastic``, ``brightness``...).
    target : float
        L2 distance on 0-255 intensities, > 0.
    seed : int, default=0
        The perturbation's random choices (a shift's direction, a box's place).

    Returns
    -------
    Calibrated
        Within 1% of ``target`` (bisection stops within 0.2% unless rounding
        to uint8 makes a wider step).

    Raises
    ------
    ValueError
        The perturbation cannot move this image that far (the message says how far it can).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.full((8, 8, 3), 100, np.uint8)
    >>> version = calibrate(image, "tint", 100.0)
    >>> round(version.distance / 100, 2), version.label
    (1.0, 'tint 7.19 grey levels')
    """
    image = check_images(np.asarray(image)[None], "image")[0]
    check_choice("perturbation", name, PERTURBATIONS)
    target = check_positive("target", target)
    seed = check_int("seed", seed, low=0)
    low, high = 0.0, _upper_severity(name, image.shape)
    reach, best = _version(image, name, high, seed)
    if reach < target:
        raise ValueError(
            f"{name} can move this image at most {reach:.1f} (L2, severity {high:g}); "
            f"target {target:.1f} is out of reach"
        )
    best = Calibrated(name, high, reach, best)
    for _ in range(MAX_STEPS):
        middle = (low + high) / 2
        distance, moved = _version(image, name, middle, seed)
        if abs(distance - target) < abs(best.distance - target):
            best = Calibrated(name, middle, distance, moved)
        if abs(distance - target) <= RTOL * target:
            break
        low, high = (middle, high) if distance < target else (low, middle)
    return best


def default_target(image, *, names=SAME_DISTANCE, seed: int = 0) -> float:
    """The distance a shift of 1/16 of the image side causes (2 px at 32x32), or less
    when one of ``names`` cannot reach that far on this image (90% of its reach)."""
    image = check_images(np.asarray(image)[None], "image")[0]
    target, _ = _version(image, "shift", max(image.shape[:2]) / 16, seed)
    reaches = [_version(image, n, _upper_severity(n, image.shape), seed)[0] for n in names]
    return min([target, *(0.9 * reach for reach in reaches)])


def same_distance_versions(
    image, target: float | None = None, *, names=SAME_DISTANCE, seed: int = 0
) -> list[Calibrated]:
    """Versions of ``image`` by each of ``names``, all at the L2 distance ``target``.

    ``target`` defaults to :func:`default_target`. Returns one :class:`Calibrated` per name.
    """
    if target is None:
        target = default_target(image, names=names, seed=seed)
    if target <= 0:
        raise ValueError(
            "this image is flat: no shift, box or tint moves it, so there is no distance to match"
        )
    return [calibrate(image, name, target, seed=seed) for name in names]

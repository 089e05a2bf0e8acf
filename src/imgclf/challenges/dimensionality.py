"""The curse of dimensionality, measured on the user's images.

As the images are down-sampled from their full size to 2x2 pixels, the ratio of
each test image's nearest to its farthest training image (L2) is measured, and
so is 1-NN accuracy; uniform random points of the same dimension are measured
beside them. In high dimension the nearest neighbour is hardly nearer than the
farthest (the ratio nears 1): distances concentrate, for random points most of
all, which is why "nearest" means little there.
"""

from __future__ import annotations

import numpy as np

from imgclf._validation import check_int
from imgclf.challenges.perturbations import check_images

__all__ = ["concentration", "coverage_points", "downsample", "halvings"]


def coverage_points(spacing: float = 0.25, dimensions=(1, 2, 3)) -> dict[int, int]:
    """Points a grid needs to cover the unit cube with ``spacing`` between them, per dimension.

    >>> coverage_points()
    {1: 4, 2: 16, 3: 64}
    """
    per_axis = round(1 / spacing)
    return {int(d): per_axis ** int(d) for d in dimensions}


def halvings(side: int, smallest: int = 2) -> list[int]:
    """``side``, then halved while it divides evenly, down to ``smallest``.

    >>> halvings(32)
    [32, 16, 8, 4, 2]
    """
    sides = [int(side)]
    while sides[-1] % 2 == 0 and sides[-1] // 2 >= smallest:
        sides.append(sides[-1] // 2)
    return sides


def downsample(images, side: int) -> np.ndarray:
    """Square ``images`` ``(n, S, S, C)`` averaged over blocks to ``(n, side, side, C)`` float32.

    ``side`` must divide ``S``: each output pixel is the mean of an S/side square.
    """
    images = check_images(images)
    n, height, width, channels = images.shape
    side = check_int("side", side, low=1, high=min(height, width))
    if height % side or width % side:
        raise ValueError(f"side must divide the image size {height}x{width}; got {side}")
    fy, fx = height // side, width // side
    blocks = images.reshape(n, side, fy, side, fx, channels)
    return blocks.mean(axis=(2, 4), dtype=np.float32)


def _ratio_and_nearest(queries: np.ndarray, base: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean ratio nearest / farthest L2 distance over ``queries``, and each one's nearest row."""
    squared = (
        (queries**2).sum(axis=1)[:, None] + (base**2).sum(axis=1)[None, :] - 2 * queries @ base.T
    )
    distance = np.sqrt(np.maximum(squared, 0))
    farthest = distance.max(axis=1)
    ratio = distance.min(axis=1) / np.maximum(farthest, 1e-12)
    return float(ratio.mean()), distance.argmin(axis=1)


def concentration(
    train, test, *, sides=None, n_train: int = 5000, n_test: int = 500, seed: int = 0
) -> list[dict]:
    """Distance concentration and 1-NN accuracy as the images shrink, beside random points.

    Parameters
    ----------
    train, test : Dataset
        Images uint8 ``(n, S, S, C)`` with labels; seeded stratified subsets of
        ``n_train`` and ``n_test`` images are used (all, if fewer).
    sides : list of int, optional
        Image sides to measure (each dividing ``S``); default :func:`halvings`.
    seed : int, default=0

    Returns
    -------
    list of dict
        One per side: ``side``, ``dimension`` (side x side x C), ``ratio`` (mean
        nearest / farthest L2 distance of the test images to the training
        images), ``ratio_uniform`` (the same for uniform random points of that
        dimension), ``accuracy`` (1-NN, L2) and ``chance`` (1 / classes).
    """
    n_train = check_int("n_train", n_train, low=1)
    n_test = check_int("n_test", n_test, low=1)
    seed = check_int("seed", seed, low=0)
    base = train if len(train) <= n_train else train.subset(n_train, seed=seed)
    queries = test if len(test) <= n_test else test.subset(n_test, seed=seed)
    sides = halvings(train.image_shape[0]) if sides is None else list(sides)
    rng = np.random.default_rng(seed)
    rows = []
    for side in sides:
        a = downsample(base.images, side).reshape(len(base), -1) / 255
        b = downsample(queries.images, side).reshape(len(queries), -1) / 255
        ratio, nearest = _ratio_and_nearest(b, a)
        dimension = a.shape[1]
        uniform = _ratio_and_nearest(
            rng.random((len(b), dimension), dtype=np.float32),
            rng.random((len(a), dimension), dtype=np.float32),
        )[0]
        rows.append({
            "side": int(side),
            "dimension": int(dimension),
            "ratio": ratio,
            "ratio_uniform": uniform,
            "accuracy": float(np.mean(base.labels[nearest] == queries.labels)),
            "chance": 1 / len(train.classes),
        })  # fmt: skip
    return rows

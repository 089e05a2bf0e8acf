"""Colour histogram: the share of pixels in each bin of hue (the H of HSV)."""

from __future__ import annotations

import numpy as np

from imgclf._validation import check_int
from imgclf.features._images import ImageFeatures, as_float, check_n_jobs

__all__ = ["ColorHistogram"]


class ColorHistogram(ImageFeatures):
    """Histogram of the hue (the H of HSV): the share of pixels in each hue bin.

    Hue is computed as ``skimage.color.rgb2hsv`` does, in [0, 1), from the
    pixel values scaled to [0, 1]; grey pixels (no saturation) have hue 0.
    The bins split [0, 1] evenly, as ``numpy.histogram(hue, bins, (0, 1))``,
    and each image's counts are divided by its number of pixels (CS231n's
    ``color_histogram_hsv``), so a row sums to 1.

    Parameters
    ----------
    bins : int, default=10
    image_shape : tuple of int, optional
        ``(H, W, 3)``; needed only for flattened rows.
    n_jobs : int, optional
        Threads (default: every core).

    Examples
    --------
    >>> import numpy as np
    >>> red_and_green = np.zeros((1, 1, 2, 3), np.uint8)
    >>> red_and_green[0, 0, 0, 0] = red_and_green[0, 0, 1, 1] = 255   # hue 0 and 1/3
    >>> ColorHistogram(bins=3).fit_transform(red_and_green)
    array([[0.5, 0.5, 0. ]], dtype=float32)
    """

    def __init__(self, bins=10, image_shape=None, n_jobs=None):
        self.bins = bins
        self.image_shape = image_shape
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        check_int("bins", self.bins, low=1)
        check_n_jobs(self.n_jobs)

    def _check_fits(self, shape: tuple) -> None:
        if shape[-1] != 3:
            raise ValueError(f"ColorHistogram needs RGB images (C=3); got C={shape[-1]}")

    def _features(self, images: np.ndarray) -> np.ndarray:
        n = len(images)
        edges = np.linspace(0, 1, self.bins + 1)
        index = np.searchsorted(edges, _hue(images), side="right") - 1
        np.minimum(index, self.bins - 1, out=index)  # numpy.histogram's last bin is closed
        index += np.arange(n)[:, None, None] * self.bins
        counts = np.bincount(index.ravel(), minlength=n * self.bins).reshape(n, self.bins)
        return (counts / (images.shape[1] * images.shape[2])).astype(np.float32)


def _hue(images: np.ndarray) -> np.ndarray:
    """Hue ``(n, H, W)`` in [0, 1), with the same operations as ``skimage.color.rgb2hsv``.

    The maximal channel picks the formula (ties go to the later channel, as in
    skimage); choosing the operands first, on the raw values, computes one
    formula per pixel instead of all three. For uint8 the result is identical.
    """
    red, green, blue = images[..., 0], images[..., 1], images[..., 2]
    high = np.maximum(np.maximum(red, green), blue)
    low = np.minimum(np.minimum(red, green), blue)
    blue_max = blue == high
    green_max = (green == high) & ~blue_max
    first = np.where(blue_max, red, np.where(green_max, blue, green))
    second = np.where(blue_max, green, np.where(green_max, red, blue))
    offset = np.where(blue_max, 4.0, np.where(green_max, 2.0, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        hue = as_float(first) - as_float(second)
        hue /= as_float(high) - as_float(low)
        hue += offset  # + 0.0 for red leaves skimage's value unchanged
        hue /= 6.0
        np.remainder(hue, 1.0, out=hue)
    hue[high == low] = 0.0  # grey: no hue
    return hue

"""Image features: raw pixels, mean image, standardization, HOG, colour histogram.

Every feature is a scikit-learn transformer, so it slots into a
:class:`~sklearn.pipeline.Pipeline` in front of any classifier. Inputs are
images ``(n, H, W, C)`` (uint8 0-255, or float 0-1), greyscale ``(n, H, W)``,
or their flattened rows ``(n, H*W*C)`` together with ``image_shape``.

======================  =======================================================
:class:`Pixels`         the pixels as rows, dtype kept (uint8 stays uint8)
:class:`MeanImage`      :class:`imgclf.linear.MeanImage` (subtract the mean image)
:class:`Standardize`    centre and divide by the std, per feature (learned)
:class:`HOG`            histograms of oriented gradients of the grey image
:class:`ColorHistogram` histogram of the hue (HSV), fraction of pixels per bin
:class:`FeatureSet`     named features side by side (``make_features``)
======================  =======================================================

HOG and the colour histogram are stateless (``fit`` only checks shapes) and
vectorized over blocks of images, spread over threads: NumPy releases the GIL
in its loops. Their outputs equal scikit-image's ``skimage.feature.hog`` and
``skimage.color.rgb2hsv`` + ``numpy.histogram`` run image by image, to
rounding (see ``tests/test_features.py``), and are several times faster (see
``benchmarks/bench_features_net.py``). A :class:`FeatureSet` with ``cache=True``
keeps the features of large inputs in the imgclf cache, keyed by a digest of
the pixels and the parameters (:mod:`imgclf.datasets.cache`).

Examples
--------
>>> import numpy as np
>>> images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
>>> make_features(["hog", "color"]).fit_transform(images).shape   # 3x3 blocks x 36 + 10
(5, 334)
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import validate_data

from imgclf._progress import progress
from imgclf._validation import check_choice, check_int, flat_images
from imgclf.datasets import cache
from imgclf.preprocessing import MeanImage

__all__ = [
    "BLOCK_NORMS",
    "FEATURES",
    "ColorHistogram",
    "FeatureSet",
    "HOG",
    "MeanImage",
    "Pixels",
    "Standardize",
    "make_features",
]

CHUNK = 1000  # images per vectorized block: amortizes Python, keeps temporaries in cache
CACHE_MIN_IMAGES = 1000  # smaller inputs are recomputed: a cache entry would cost more
GREY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])  # ITU-R BT.709 luma, as skimage's rgb2gray
EPS = 1e-5  # keeps block normalization finite on flat regions (skimage's value)
_KEPT_DTYPES = [np.float64, np.float32, np.uint8]


# --- shapes and conversions --------------------------------------------------------------


def _as_images(X, image_shape) -> np.ndarray:
    """``X`` as images ``(n, H, W, C)``; rows ``(n, d)`` are reshaped by ``image_shape``."""
    X = np.asarray(X)
    if X.dtype != np.uint8 and X.dtype.kind != "f":
        raise ValueError(f"images must be uint8 (0-255) or float (0-1); got dtype {X.dtype}")
    if X.ndim == 2:
        return X.reshape(len(X), *_image_shape(image_shape, X.shape[1]))
    if X.ndim not in (3, 4):
        raise ValueError(
            f"expected images (n, H, W, C), (n, H, W) or rows (n, d) with "
            f"image_shape; got an array of shape {X.shape}"
        )
    images = X[..., None] if X.ndim == 3 else X
    if image_shape is not None and _image_shape(image_shape, None) != images.shape[1:]:
        raise ValueError(f"image_shape={tuple(image_shape)} but the images are {images.shape[1:]}")
    return images


def _image_shape(image_shape, n_values: int | None) -> tuple[int, int, int]:
    """``image_shape`` as ``(H, W, C)``, checked against ``n_values`` per row if given."""
    if image_shape is None:
        raise ValueError(
            f"rows of {n_values} values need image_shape=(H, W, C) or (H, W) "
            f"to be read as images; got image_shape=None"
        )
    shape = tuple(int(s) for s in image_shape)
    shape = shape + (1,) if len(shape) == 2 else shape
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be (H, W, C) or (H, W); got {image_shape!r}")
    if n_values is not None and int(np.prod(shape)) != n_values:
        raise ValueError(
            f"image_shape={tuple(image_shape)} holds {int(np.prod(shape))} "
            f"values, but the rows have {n_values}"
        )
    return shape


def _as_float(images: np.ndarray) -> np.ndarray:
    """Intensities in [0, 1] as float64, computed as skimage's ``img_as_float``."""
    if images.dtype == np.uint8:
        return np.multiply(images, 1.0 / 255, dtype=np.float64)
    return images.astype(np.float64)


def _grey(images: np.ndarray) -> np.ndarray:
    """Grey levels ``(n, H, W)`` in [0, 1]: BT.709 luma of RGB, as ``skimage.color.rgb2gray``."""
    channels = images.shape[-1]
    if channels == 1:
        return _as_float(images[..., 0])
    if channels != 3:
        raise ValueError(f"HOG needs greyscale (C=1) or RGB (C=3) images; got C={channels}")
    return _as_float(images) @ GREY_WEIGHTS


def _check_n_jobs(n_jobs) -> None:
    if n_jobs is not None:
        check_int("n_jobs", n_jobs, low=1)


def _workers(n_jobs, n_chunks: int) -> int:
    if n_jobs is None:
        try:
            n_jobs = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            n_jobs = os.cpu_count() or 1
    return max(1, min(n_jobs, n_chunks))


def _in_chunks(fn, images: np.ndarray, n_jobs, description: str) -> np.ndarray:
    """``fn`` over blocks of ``CHUNK`` images, on threads, stacked in order."""
    if len(images) <= CHUNK:
        return fn(images)
    chunks = [images[start : start + CHUNK] for start in range(0, len(images), CHUNK)]
    workers = _workers(n_jobs, len(chunks))
    if workers == 1:
        return np.concatenate(list(progress(map(fn, chunks), len(chunks), description)))
    with ThreadPoolExecutor(workers) as pool:
        results = progress(pool.map(fn, chunks), len(chunks), description)
        return np.concatenate(list(results))


# --- transformers ------------------------------------------------------------------------


class Pixels(TransformerMixin, BaseEstimator):
    """Images as rows of their raw values, dtype kept: uint8 stays uint8.

    The plainest feature, and the smallest: uint8 rows are 4x smaller than
    float32 ones and are what imgclf's fastest k-NN kernels take. Stateless.

    Examples
    --------
    >>> import numpy as np
    >>> Pixels().fit_transform(np.zeros((2, 4, 4, 3), np.uint8)).shape
    (2, 48)
    """

    def fit(self, X, y=None):
        """Record the number of values per image; returns self."""
        validate_data(self, flat_images(X), dtype=_KEPT_DTYPES)
        return self

    def transform(self, X):
        """Rows ``(n, H*W*C)``, dtype of ``X`` (uint8, float32 or float64)."""
        return validate_data(self, flat_images(X), dtype=_KEPT_DTYPES, reset=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class Standardize(MeanImage):
    """Centre every feature on its training mean and divide by its training std.

    :class:`~imgclf.linear.MeanImage` with ``scale="std"`` under its own
    name, for feature matrices (HOG values and hue shares live on different
    scales; this puts them on one). A feature constant in training is only
    centred (divided by 1). Output float32 ``(n, n_features)``.

    Attributes
    ----------
    mean_ : ndarray of float32, shape (n_features,)
    scale_ : ndarray of float32, shape (n_features,)
        The training standard deviations (1 where it is 0).
    n_features_in_ : int
    """

    scale = "std"  # fixed: a class attribute, not a parameter

    def __init__(self):
        pass


class _ImageFeatures(TransformerMixin, BaseEstimator):
    """Base of the stateless image features: shape checks, blocks, threads."""

    def fit(self, X, y=None):
        """Check the parameters against the image shape of ``X``; returns self."""
        self._check_params()
        images = _as_images(X, self.image_shape)
        self._check_fits(images.shape[1:])
        self.n_features_in_ = int(np.prod(images.shape[1:]))
        return self

    def transform(self, X):
        """Features of every image, float32 ``(n, n_features_out)``."""
        images = self._images(X)
        return _in_chunks(self._features, images, self.n_jobs, f"{type(self).__name__} features")

    def _images(self, X) -> np.ndarray:
        """``X`` as images, checked against the parameters and the fitted shape."""
        self._check_params()
        images = _as_images(X, self.image_shape)
        n_values = int(np.prod(images.shape[1:]))
        if getattr(self, "n_features_in_", n_values) != n_values:
            raise ValueError(
                f"{type(self).__name__} was fitted on images of "
                f"{self.n_features_in_} values; got {n_values}"
            )
        self._check_fits(images.shape[1:])
        return images

    def _check_fits(self, shape: tuple) -> None:
        """Raise if images of ``shape`` cannot give these features (e.g. too small)."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys", None)


class HOG(_ImageFeatures):
    """Histograms of oriented gradients (Dalal & Triggs, 2005) of the grey image.

    1. Grey level: BT.709 luma of RGB in [0, 1] (``skimage.color.rgb2gray``).
    2. Gradients by central differences ``[-1, 0, 1]``, 0 on the border.
    3. Each square cell of ``pixels_per_cell`` pixels gets a histogram of its
       gradient orientations, unsigned (0-180 degrees) in ``orientations``
       equal bins, each pixel voting its gradient magnitude into its bin
       (hard binning, no interpolation), divided by the cell's area.
    4. Blocks of ``cells_per_block`` x ``cells_per_block`` cells, one at every
       cell position, are normalized by ``block_norm`` and concatenated.

    This is ``skimage.feature.hog(rgb2gray(image), orientations,
    (pixels_per_cell,) * 2, (cells_per_block,) * 2, block_norm)``, computed
    for a whole block of images at once in NumPy; the tests check equality
    to 1e-6 (scikit-image sums cells in float32). ``block_norm=None`` skips
    step 4 and returns the cell histograms themselves, like CS231n's
    ``hog_feature`` (which differs in details: one-sided differences, other
    grey weights, bins shifted by 90 degrees).

    Parameters
    ----------
    orientations : int, default=9
        Orientation bins over 0-180 degrees.
    pixels_per_cell : int, default=8
        Side of a square cell; pixels beyond the last whole cell are ignored.
    cells_per_block : int, default=2
        Side of a square block, in cells.
    block_norm : {"L2-Hys", "L2", "L1", "L1-sqrt", None}, default="L2-Hys"
        ``L2-Hys``: L2-normalize, clip at 0.2, L2-normalize again (Dalal &
        Triggs' choice); None: no normalization.
    image_shape : tuple of int, optional
        ``(H, W, C)`` or ``(H, W)``; needed only for flattened rows.
    n_jobs : int, optional
        Threads (default: every core).

    Notes
    -----
    Output length: ``B_r * B_c * cells_per_block**2 * orientations`` with
    ``B = H // pixels_per_cell - cells_per_block + 1`` blocks per side, or
    ``(H // cell) * (W // cell) * orientations`` without normalization. For
    32x32 images and the defaults: 3 x 3 blocks x 36 = 324.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((1, 16, 16, 1), np.uint8)
    >>> image[:, :, 8:] = 255                       # one vertical edge
    >>> cells = HOG(block_norm=None).fit_transform(image).reshape(2, 2, 9)
    >>> int(cells[0, 0].argmax()), int(cells[0, 1].argmax())   # bin of 0 degrees
    (0, 0)
    """

    def __init__(
        self,
        orientations=9,
        pixels_per_cell=8,
        cells_per_block=2,
        block_norm="L2-Hys",
        image_shape=None,
        n_jobs=None,
    ):
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.image_shape = image_shape
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        check_int("orientations", self.orientations, low=1)
        check_int("pixels_per_cell", self.pixels_per_cell, low=1)
        check_int("cells_per_block", self.cells_per_block, low=1)
        check_choice("block_norm", self.block_norm, BLOCK_NORMS)
        _check_n_jobs(self.n_jobs)

    def _check_fits(self, shape: tuple) -> None:
        cells = min(shape[0], shape[1]) // self.pixels_per_cell
        needed = 1 if self.block_norm is None else self.cells_per_block
        if cells < needed:
            side = needed * self.pixels_per_cell
            raise ValueError(
                f"images of {shape[0]}x{shape[1]} pixels are too small for "
                f"HOG(pixels_per_cell={self.pixels_per_cell}, cells_per_block="
                f"{self.cells_per_block}): need at least {side}x{side}"
            )

    def _features(self, images: np.ndarray) -> np.ndarray:
        cells = _cell_histograms(_grey(images), self.orientations, self.pixels_per_cell)
        if self.block_norm is not None:
            cells = _normalized_blocks(cells, self.cells_per_block, self.block_norm)
        return cells.reshape(len(images), -1).astype(np.float32)


def _gradients(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences along rows and columns of ``(n, H, W)``; 0 on the border."""
    g_row, g_col = np.zeros_like(grey), np.zeros_like(grey)
    np.subtract(grey[:, 2:], grey[:, :-2], out=g_row[:, 1:-1])
    np.subtract(grey[:, :, 2:], grey[:, :, :-2], out=g_col[:, :, 1:-1])
    return g_row, g_col


def _orientation_bins(g_row: np.ndarray, g_col: np.ndarray, orientations: int) -> np.ndarray:
    """Bin of every unsigned gradient orientation; ``orientations`` marks none.

    The angle and the bin edges are computed exactly as scikit-image does
    (degrees modulo 180; edges in float32), so pixels on an edge land in the
    same bin, and an angle past the last float32 edge in none, as there.
    """
    angle = np.arctan2(g_row, g_col)
    np.rad2deg(angle, out=angle)
    np.remainder(angle, 180, out=angle)
    width = np.float32(180.0 / orientations)
    upper = (width * np.arange(1, orientations + 1, dtype=np.float32)).astype(np.float64)
    return np.searchsorted(upper, angle, side="right")


def _cell_histograms(grey: np.ndarray, orientations: int, cell: int) -> np.ndarray:
    """Magnitude-weighted orientation histograms ``(n, H // cell, W // cell, orientations)``.

    One ``bincount`` over (image, cell, bin) indices does every histogram at
    once; pixels outside whole cells or bins go to a discarded extra slot.
    """
    n, height, width = grey.shape
    rows, cols = height // cell, width // cell
    g_row, g_col = _gradients(grey)
    magnitude = np.hypot(g_col, g_row)
    index = _orientation_bins(g_row, g_col, orientations)
    bins, slots = orientations + 1, rows * cols + 1
    r, c = np.arange(height) // cell, np.arange(width) // cell
    cell_of = np.where((r[:, None] < rows) & (c < cols), r[:, None] * cols + c, slots - 1)
    index += (np.arange(n)[:, None, None] * slots + cell_of) * bins
    sums = np.bincount(index.ravel(), weights=magnitude.ravel(), minlength=n * slots * bins)
    sums = sums.reshape(n, slots, bins)[:, :-1, :-1] / (cell * cell)
    return sums.reshape(n, rows, cols, orientations)


def _normalized_blocks(cells: np.ndarray, block: int, method: str) -> np.ndarray:
    """Every ``block`` x ``block`` window of cells, normalized: ``(n, B_r, B_c, b, b, o)``."""
    windows = sliding_window_view(cells, (block, block), axis=(1, 2))
    blocks = windows.transpose(0, 1, 2, 4, 5, 3)  # skimage's order: block row, col, bin
    axes = (3, 4, 5)
    if method.startswith("L1"):
        out = blocks / (np.abs(blocks).sum(axis=axes, keepdims=True) + EPS)
        return np.sqrt(out) if method == "L1-sqrt" else out
    out = _l2_normalized(blocks, axes)
    if method == "L2-Hys":
        out = _l2_normalized(np.minimum(out, 0.2), axes)
    return out


def _l2_normalized(blocks: np.ndarray, axes: tuple) -> np.ndarray:
    return blocks / np.sqrt((blocks * blocks).sum(axis=axes, keepdims=True) + EPS**2)


class ColorHistogram(_ImageFeatures):
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
        _check_n_jobs(self.n_jobs)

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
        hue = _as_float(first) - _as_float(second)
        hue /= _as_float(high) - _as_float(low)
        hue += offset  # + 0.0 for red leaves skimage's value unchanged
        hue /= 6.0
        np.remainder(hue, 1.0, out=hue)
    hue[high == low] = 0.0  # grey: no hue
    return hue


# --- several features side by side -------------------------------------------------------

FEATURES = {"pixels": Pixels, "hog": HOG, "color": ColorHistogram}


class FeatureSet(_ImageFeatures):
    """Named features of the same images, concatenated column-wise.

    Like scikit-learn's ``FeatureUnion`` of default-configured
    :class:`Pixels`, :class:`HOG` and :class:`ColorHistogram`, but its
    parameters are plain names, so a model file can store it as JSON. For
    other settings (finer HOG cells, more hue bins), put configured
    transformers in a ``FeatureUnion``.

    Parameters
    ----------
    names : sequence of {"pixels", "hog", "color"}, default=("hog", "color")
        Features in column order; each name at most once.
    image_shape : tuple of int, optional
        ``(H, W, C)``; needed only for flattened rows.
    n_jobs : int, optional
        Threads of each feature (default: every core).
    cache : bool, default=False
        Keep the features of inputs of at least 1,000 images in the imgclf
        cache (``$IMGCLF_CACHE``…), keyed by a SHA-256 of the pixels and the
        parameters: a second ``transform`` of the same images reads them back.

    Attributes
    ----------
    n_features_in_ : int
        Values per input image (set by ``fit``).

    Examples
    --------
    >>> import numpy as np
    >>> images = np.zeros((2, 16, 16, 3), np.uint8)
    >>> FeatureSet(["pixels", "color"]).fit_transform(images).shape   # 16*16*3 + 10
    (2, 778)
    """

    def __init__(self, names=("hog", "color"), image_shape=None, n_jobs=None, cache=False):
        self.names = names
        self.image_shape = image_shape
        self.n_jobs = n_jobs
        self.cache = cache

    def transform(self, X):
        """Features side by side, ``(n, sum of lengths)``: float32 (uint8 for pixels alone)."""
        images = self._images(X)
        parts = self._parts()
        if self.cache and len(images) >= CACHE_MIN_IMAGES:
            return _cached(self, images, parts)
        return _concatenate(parts, images)

    def _check_params(self) -> None:
        check_choice("cache", self.cache, (False, True))
        _checked_names(self.names)
        _check_n_jobs(self.n_jobs)

    def _check_fits(self, shape: tuple) -> None:
        for part in self._parts():
            if isinstance(part, _ImageFeatures):
                part._check_fits(shape)

    def _parts(self) -> list:
        options = {"image_shape": None, "n_jobs": self.n_jobs}
        return [
            Pixels() if name == "pixels" else FEATURES[name](**options)
            for name in _checked_names(self.names)
        ]


def _checked_names(names) -> list[str]:
    names = names.split(",") if isinstance(names, str) else list(names)
    if not names:
        raise ValueError(f"names must list at least one of {', '.join(map(repr, FEATURES))}")
    for name in names:
        check_choice("feature name", name, FEATURES)
    if len(set(names)) < len(names):
        raise ValueError(f"feature names must not repeat; got {names}")
    return names


def _concatenate(parts: list, images: np.ndarray) -> np.ndarray:
    blocks = [part.transform(images) for part in parts]
    return blocks[0] if len(blocks) == 1 else np.hstack(blocks).astype(np.float32, copy=False)


def _cached(features: FeatureSet, images: np.ndarray, parts: list) -> np.ndarray:
    """Features of ``images`` from the cache, else computed and stored there."""
    digest = _digest(features, images)
    path = cache.cache_dir() / "features" / f"{digest[:32]}.features"
    entry = cache.read_entry(path, digest)
    if entry is not None:
        return entry[1]["features"]
    result = _concatenate(parts, images)
    try:
        cache.write_entry(
            path, digest, {"names": _checked_names(features.names)}, {"features": result}
        )
    except OSError as exc:  # a read-only or full cache disk must not fail the transform
        warnings.warn(f"could not write the feature cache {path}: {exc}", stacklevel=3)
    return result


def _digest(features: FeatureSet, images: np.ndarray) -> str:
    """SHA-256 of what the features depend on: their names and every pixel."""
    key = {
        "names": _checked_names(features.names),
        "dtype": images.dtype.str,
        "shape": list(images.shape),
        "version": 1,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    digest.update(memoryview(np.ascontiguousarray(images)).cast("B"))
    return digest.hexdigest()


def make_features(names, *, image_shape=None, n_jobs=None, cache: bool = False) -> FeatureSet:
    """The features called ``names``, side by side, as one transformer.

    Parameters
    ----------
    names : sequence of str or str
        ``"pixels"``, ``"hog"``, ``"color"``, in column order; a string may
        list several separated by commas (``"hog,color"``).
    image_shape : tuple of int, optional
        ``(H, W, C)``, for inputs given as flattened rows.
    n_jobs : int, optional
        Threads (default: every core).
    cache : bool, default=False
        See :class:`FeatureSet`.

    Returns
    -------
    FeatureSet
        Its ``transform`` maps images ``(n, H, W, C)`` to float32 ``(n, d)``.

    Examples
    --------
    >>> make_features("hog,color")
    FeatureSet(names=['hog', 'color'])
    """
    names = _checked_names(names)
    return FeatureSet(names, image_shape=image_shape, n_jobs=n_jobs, cache=cache)

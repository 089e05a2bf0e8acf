"""What every image feature shares: input shapes, conversions, blocks on threads, a base class."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from imgclf._progress import progress
from imgclf._validation import check_int

__all__ = [
    "CHUNK",
    "ImageFeatures",
    "as_float",
    "as_images",
    "check_n_jobs",
    "in_chunks",
    "workers",
]

CHUNK = 1000  # images per vectorized block: amortizes Python, keeps temporaries in cache

# --- shapes and conversions --------------------------------------------------------------


def as_images(X, image_shape) -> np.ndarray:
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


def as_float(images: np.ndarray) -> np.ndarray:
    """Intensities in [0, 1] as float64, computed as skimage's ``img_as_float``."""
    if images.dtype == np.uint8:
        return np.multiply(images, 1.0 / 255, dtype=np.float64)
    return images.astype(np.float64)


def check_n_jobs(n_jobs) -> None:
    if n_jobs is not None:
        check_int("n_jobs", n_jobs, low=1)


def workers(n_jobs, n_chunks: int) -> int:
    if n_jobs is None:
        try:
            n_jobs = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            n_jobs = os.cpu_count() or 1
    return max(1, min(n_jobs, n_chunks))


def in_chunks(fn, images, n_jobs, description: str, chunk: int | None = None) -> np.ndarray:
    """``fn`` over blocks of ``chunk`` (default ``CHUNK``) images, on threads, stacked in order."""
    chunk = chunk or CHUNK
    if len(images) <= chunk:
        return fn(images)
    chunks = [images[start : start + chunk] for start in range(0, len(images), chunk)]
    n_workers = workers(n_jobs, len(chunks))
    if n_workers == 1:
        return np.concatenate(list(progress(map(fn, chunks), len(chunks), description)))
    with ThreadPoolExecutor(n_workers) as pool:
        results = progress(pool.map(fn, chunks), len(chunks), description)
        return np.concatenate(list(results))


class ImageFeatures(TransformerMixin, BaseEstimator):
    """Base of the image features: shape checks, blocks, threads (stateless unless overridden)."""

    def fit(self, X, y=None):
        """Check the parameters against the image shape of ``X``; returns self."""
        self._check_params()
        images = as_images(X, self.image_shape)
        self._check_fits(images.shape[1:])
        self.n_features_in_ = int(np.prod(images.shape[1:]))
        return self

    def transform(self, X):
        """Features of every image, float32 ``(n, n_features_out)``."""
        images = self._images(X)
        return in_chunks(self._features, images, self.n_jobs, f"{type(self).__name__} features")

    def _images(self, X) -> np.ndarray:
        """``X`` as images, checked against the parameters and the fitted shape."""
        self._check_params()
        images = as_images(X, self.image_shape)
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

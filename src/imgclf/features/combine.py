"""Several features of the same images side by side, by name: FeatureSet, make_features."""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np

from imgclf._validation import check_choice, check_int
from imgclf.datasets import cache
from imgclf.features._images import ImageFeatures, check_n_jobs
from imgclf.features.color import ColorHistogram
from imgclf.features.hog import HOG
from imgclf.features.kmeans import KMeansFeatures
from imgclf.features.pixels import Pixels

__all__ = ["CACHE_MIN_IMAGES", "FEATURES", "FeatureSet", "learned_patches", "make_features"]

CACHE_MIN_IMAGES = 1000  # smaller inputs are recomputed: a cache entry would cost more
FEATURES = {"pixels": Pixels, "hog": HOG, "color": ColorHistogram, "kmeans": KMeansFeatures}
_LEARNED = ("patch_mean_", "whitening_", "centroids_")  # a KMeansFeatures part's state
_CENTROIDS_LIMIT = 1 << 16


class FeatureSet(ImageFeatures):
    """Named features of the same images, concatenated column-wise.

    Like scikit-learn's ``FeatureUnion`` of default-configured
    :class:`Pixels`, :class:`HOG`, :class:`ColorHistogram` and
    :class:`KMeansFeatures`, but its parameters are plain names, so a model
    file can store it as JSON (and the k-means part's learned arrays beside
    it). For other settings (finer HOG cells, more hue bins), put configured
    transformers in a ``FeatureUnion``.

    Parameters
    ----------
    names : sequence of str, default=("hog", "color")
        Features in column order, each at most once: ``"pixels"``, ``"hog"``,
        ``"color"``, ``"kmeans"`` (1,600 centroids) or ``"kmeans:N"`` (N centroids).
    image_shape : tuple of int, optional
        ``(H, W, C)``; needed only for flattened rows.
    n_jobs : int, optional
        Threads of each feature (default: every core).
    cache : bool, default=False
        Keep the features of inputs of at least 1,000 images in the imgclf
        cache (``$IMGCLF_CACHE``…), keyed by a SHA-256 of the pixels, the
        parameters and any learned arrays: a second ``transform`` of the same
        images reads them back.

    Attributes
    ----------
    n_features_in_ : int
        Values per input image (set by ``fit``).
    patch_mean_, whitening_, centroids_ : ndarray of float32
        With a k-means part only: its learned state (see :class:`KMeansFeatures`).

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

    def fit(self, X, y=None):
        """Check the images; fit the k-means part, if any, on them (``y`` ignored); returns self.

        A lazy (on-disk) ``X`` is never read whole: its shape is checked on its first
        row, and the k-means part reads only the images its random patches come from
        (:class:`KMeansFeatures` takes a lazy array), so the fit is the in-memory one.
        """
        super().fit(X.read(0, 1) if getattr(X, "lazy", False) else X)
        for part in self._parts():
            if isinstance(part, KMeansFeatures):
                part.set_params(image_shape=self.image_shape).fit(X)
                for attr in _LEARNED:
                    setattr(self, attr, getattr(part, attr))
        return self

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
        check_n_jobs(self.n_jobs)

    def _check_fits(self, shape: tuple) -> None:
        for part in self._parts():
            if isinstance(part, ImageFeatures):  # Pixels fit any shape
                part._check_fits(shape)

    def _parts(self) -> list:
        options = {"image_shape": None, "n_jobs": self.n_jobs}
        parts = []
        for name in _checked_names(self.names):
            base, _, centroids = name.partition(":")
            if base == "pixels":
                parts.append(Pixels())
            elif base == "kmeans":
                parts.append(self._kmeans_part(int(centroids or 1600), options))
            else:
                parts.append(FEATURES[base](**options))
        return parts

    def _kmeans_part(self, n_centroids: int, options: dict) -> KMeansFeatures:
        """The k-means part, with the learned state of this set when it has one."""
        part = KMeansFeatures(n_centroids, **options)
        if all(hasattr(self, attr) for attr in _LEARNED):
            for attr in _LEARNED:
                setattr(part, attr, getattr(self, attr))
            part.n_features_in_ = getattr(self, "n_features_in_", None)
        return part

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = any(n.startswith("kmeans") for n in _checked_names(self.names))
        return tags


def _checked_names(names) -> list[str]:
    names = names.split(",") if isinstance(names, str) else list(names)
    if not names:
        raise ValueError(f"names must list at least one of {', '.join(map(repr, FEATURES))}")
    bases = []
    for name in names:
        if not isinstance(name, str):
            check_choice("feature name", name, FEATURES)
        base, colon, centroids = name.partition(":")
        check_choice("feature name", base if base == "kmeans" else name, FEATURES)
        if colon:
            _check_centroids(name, centroids)
        bases.append(base)
    if len(set(bases)) < len(bases):
        raise ValueError(f"feature names must not repeat; got {names}")
    return names


def _check_centroids(name: str, text: str) -> None:
    """``kmeans:N``: N a whole number of centroids."""
    if not text.isdigit():
        raise ValueError(
            f"feature name {name!r}: kmeans:N needs a number of centroids N; got {text!r}"
        )
    check_int(f"the centroids of {name!r}", int(text), low=1, high=_CENTROIDS_LIMIT)


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
    """SHA-256 of what the features depend on: names, learned arrays and every pixel."""
    key = {
        "names": _checked_names(features.names),
        "dtype": images.dtype.str,
        "shape": list(images.shape),
        "version": 1,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    for attr in _LEARNED:  # learned by fit: another fit, other features
        if hasattr(features, attr):
            digest.update(np.ascontiguousarray(getattr(features, attr)).tobytes())
    digest.update(memoryview(np.ascontiguousarray(images)).cast("B"))
    return digest.hexdigest()


def make_features(names, *, image_shape=None, n_jobs=None, cache: bool = False) -> FeatureSet:
    """The features called ``names``, side by side, as one transformer.

    Parameters
    ----------
    names : sequence of str or str
        ``"pixels"``, ``"hog"``, ``"color"``, ``"kmeans"`` or ``"kmeans:N"``, in
        column order; a string may list several separated by commas (``"hog,color"``).
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


def learned_patches(model) -> KMeansFeatures | None:
    """The fitted :class:`KMeansFeatures` in ``model``, or None when it has none.

    ``model`` may be a KMeansFeatures, a FeatureSet with a ``kmeans`` part, or a
    scikit-learn Pipeline holding either (e.g. a loaded model).
    """
    for step in [step for _, step in getattr(model, "steps", [])] or [model]:
        if isinstance(step, KMeansFeatures) and hasattr(step, "centroids_"):
            return step
        if isinstance(step, FeatureSet) and hasattr(step, "centroids_"):
            return next(p for p in step._parts() if isinstance(p, KMeansFeatures))
    return None

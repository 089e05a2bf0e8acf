"""Learned patch features: k-means on whitened image patches (Coates, Lee & Ng, 2011).

The single-layer pipeline of *An Analysis of Single-Layer Networks in
Unsupervised Feature Learning* (AISTATS 2011), which reaches 77.9% on
CIFAR-10 with 1,600 centroids and a linear SVM, without labels for the
features and without backpropagation:

1. ``fit`` draws ``n_patches`` random ``patch_size`` x ``patch_size`` patches
   from the training images, normalizes each one's contrast (minus its mean,
   over ``sqrt(var + 10)``), learns a ZCA whitening of them and clusters the
   whitened patches with k-means into ``n_centroids`` centroids.
2. ``transform`` takes every patch of an image (every ``stride`` pixels),
   normalizes and whitens it the same way, and encodes it against the
   centroids. Triangle: ``f_k = max(0, mean(z) - z_k)`` with ``z_k`` the
   distance to centroid k (about half the codes are 0); hard: 1 for the
   nearest centroid; soft (Coates & Ng, ICML 2011, *The Importance of
   Encoding Versus Training*): the dot products ``s_k`` with the centroids
   scaled to unit length, thresholded and split by sign,
   ``max(0, s_k - alpha)`` and ``max(0, -s_k - alpha)``. The codes are summed
   over the four quadrants of the image: ``4 * n_centroids`` features
   (``8 * n_centroids`` for soft).

Beyond the paper, each off by default: ``pooling="pyramid"`` (the whole image as
a fifth region), ``power`` (pooled codes to a power below 1), ``mirror`` (the
mirror image's codes added) and ``whiten_eps`` (a larger offset in the whitening,
for JPEG-compressed images). Together they took CIFAR-10's test accuracy with
1,600 centroids from 0.727 to 0.781 here.

Why scikit-learn's :class:`~sklearn.cluster.KMeans` (Lloyd, ``init="random"``):
on 100,000 whitened CIFAR-10 patches, 1,600 centroids, 5 iterations, it took
7.0 s against 5.9 s for ``MiniBatchKMeans``, 13.8 s for faiss's k-means and
17.3 s for imgclf's own :mod:`imgclf._kmeans` (2 shared cores, load 2.4-4);
with its default k-means++ start it had not finished after 90 s on 50,000
patches, so the start is random patches (the authors' code starts from random
normal vectors). ``MiniBatchKMeans`` is a little faster but only approximates
Lloyd's iterations.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from imgclf._progress import progress
from imgclf._validation import (
    check_choice,
    check_int,
    check_non_negative,
    check_positive,
    flat_images,
)
from imgclf.features import _patches
from imgclf.features._images import ImageFeatures, as_images, check_n_jobs, workers

__all__ = ["KMeansFeatures"]

_STATE = ("patch_mean_", "whitening_", "centroids_")
_DTYPES = [np.float64, np.float32, np.uint8]  # kept as given; integers become float64


class KMeansFeatures(ImageFeatures):
    """Patches encoded against k-means centroids of whitened patches, pooled by quadrant.

    A scikit-learn transformer: ``fit`` learns from unlabeled images only (``y``
    is ignored), ``transform`` maps images ``(n, H, W, C)`` (uint8 0-255 or float
    0-1) to float32 ``(n, 4 * n_centroids)``. The transform is one float32
    matrix product per block of images (BLAS, one thread per worker when the
    blocks run on ``n_jobs`` threads), blocks sized so that their distances
    fit in 16 MiB, then one fused pass that encodes and pools them.

    Parameters
    ----------
    n_centroids : int, default=1600
        Centroids (the paper: 1,600 gives 77.9% on CIFAR-10, 4,000 gives 79.6%).
    patch_size : int, default=6
        Side of a square patch, in pixels.
    stride : int, default=1
        Pixels between patches in ``transform``.
    whiten : bool, default=True
        ZCA-whiten the patches (the paper's largest single gain).
    whiten_eps : float, default=0.1
        Added to the eigenvalues of the patch covariance before whitening (the
        paper's 0.1, for pixel values 0-255): directions whose variance is well
        below it are damped rather than scaled up to unit variance. The shared
        CIFAR-10 is JPEG (quality 75, 4:2:0 chroma), which removes most of the
        fine detail in those directions; whitening then amplifies what is left,
        compression noise. With 1,600 centroids, pyramid pooling, ``power=0.5``
        and ``mirror=True``, 1.0 scored 0.788 on 5,000 held-out training images
        against 0.767 for 0.1 (see the README).
    encoder : {"triangle", "hard", "soft"}, default="triangle"
        See above; "soft" gives two codes per centroid and region.
    alpha : float, default=0.25
        Threshold of the soft encoder (ignored by the others), in units of a
        whitened patch's dot product with a unit-length centroid.
    pooling : {"quadrants", "sum", "pyramid"}, default="quadrants"
        Sum the codes over each quadrant of the image (the paper), over the
        whole image, or both (``"pyramid"``: the four quadrants, then the whole
        image; 5 regions).
    power : float, default=1.0
        Each pooled code ``f`` becomes ``f ** power``, in (0, 1]; 1 keeps the
        sums (the paper). Sums of codes are heavy-tailed: a few large values
        dominate the standardized features, and a power below 1 (0.5: the
        square root, "power normalization" of pooled codes) evens them out.
    mirror : bool, default=False
        Add the codes of the image mirrored left to right to its own (before
        ``power``): features that do not change when an image is mirrored. For
        a linear model on ``power=1`` features this is the average of the
        scores of the image and of its mirror image (test-time mirroring). Twice
        the transform's work. For natural images, whose classes a flip does not
        change; not for digits or text (scikit-learn's digits, 64 centroids:
        0.981 with the four settings beyond the paper, 0.994 without).
    n_patches : int, default=400000
        Random patches drawn by ``fit`` for whitening and k-means (at most as
        many as the images hold, drawn with replacement).
    seed : int, default=0
        Seeds the patches drawn and the k-means start.
    max_iter : int, default=10
        Lloyd iterations of k-means. The paper's 50 did no better on CIFAR-10
        (400 centroids, 10,000 training images, SVM scored on 5,000 others:
        0.657 against 0.664 with 10) and cost five times the time.
    image_shape : tuple of int, optional
        ``(H, W, C)``; needed only for flattened rows.
    n_jobs : int, optional
        Threads of ``transform`` (default: every core).

    Attributes
    ----------
    patch_mean_ : ndarray of float32, shape (d,)
        Mean of the normalized patches, ``d = patch_size**2 * C`` (zeros
        without whitening).
    whitening_ : ndarray of float32, shape (d, d)
        The ZCA matrix (the identity without whitening).
    centroids_ : ndarray of float32, shape (n_centroids, d)
        Centroids in the whitened space.
    n_iter_ : int
        k-means iterations run.
    n_features_in_ : int
        Values per input image.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.random.default_rng(0).integers(0, 256, (20, 12, 12, 3), dtype=np.uint8)
    >>> features = KMeansFeatures(n_centroids=8, n_patches=500).fit(images)
    >>> features.centroids_.shape, features.transform(images[:2]).shape
    ((8, 108), (2, 32))
    """

    def __init__(
        self,
        n_centroids=1600,
        patch_size=6,
        stride=1,
        whiten=True,
        whiten_eps=0.1,
        encoder="triangle",
        alpha=0.25,
        pooling="quadrants",
        power=1.0,
        mirror=False,
        n_patches=400_000,
        seed=0,
        max_iter=10,
        image_shape=None,
        n_jobs=None,
    ):
        self.n_centroids = n_centroids
        self.patch_size = patch_size
        self.stride = stride
        self.whiten = whiten
        self.whiten_eps = whiten_eps
        self.encoder = encoder
        self.alpha = alpha
        self.pooling = pooling
        self.power = power
        self.mirror = mirror
        self.n_patches = n_patches
        self.seed = seed
        self.max_iter = max_iter
        self.image_shape = image_shape
        self.n_jobs = n_jobs

    def fit(self, X, y=None):
        """Learn normalization, whitening and centroids from the images ``X``; returns self.

        Parameters
        ----------
        X : array (n, H, W, C) uint8 or float in [0, 1], or rows (n, H*W*C) with image_shape
        y : ignored
        """
        self._check_params()
        images = self._validated(X, reset=True)
        drawn = self._n_drawn(images.shape)
        if drawn < self.n_centroids:
            raise ValueError(
                f"n_patches must be >= n_centroids={self.n_centroids} (k-means needs a point "
                f"per centroid); got n_patches={self.n_patches}, {drawn} drawn from "
                f"{len(images)} images"
            )
        rng = np.random.default_rng(self.seed)
        patches = _patches.random_patches(images, self._n_drawn(images.shape), self.patch_size, rng)
        if images.dtype != np.uint8:
            patches *= 255  # the paper's constants are for pixel values 0-255
        patches = _patches.normalize(patches)
        d = patches.shape[1]
        self.patch_mean_, self.whitening_ = np.zeros(d, np.float32), np.eye(d, dtype=np.float32)
        if self.whiten:
            self.patch_mean_, self.whitening_ = _patches.zca(patches, self.whiten_eps)
            patches -= self.patch_mean_
            patches = patches @ self.whitening_
        self.centroids_, self.n_iter_ = _kmeans(patches, self.n_centroids, self.max_iter, self.seed)
        return self

    def transform(self, X):
        """Pooled codes, float32 ``(n, regions * codes * n_centroids)``.

        4 regions for quadrants, 5 for the pyramid, 1 for sum; 2 codes per centroid
        for soft, else 1.

        Parameters
        ----------
        X : array (n, H, W, C) uint8 or float in [0, 1], or rows (n, H*W*C) with image_shape
        """
        self._check_fitted()
        self._check_params()
        images = self._validated(X, reset=False)
        height, width = images.shape[1:3]
        rows = _patches.positions(height, self.patch_size, self.stride)
        block = _patches.images_per_block(
            rows * _patches.positions(width, self.patch_size, self.stride), self.n_centroids
        )
        width = _patches.pool_regions(self.pooling) * _patches.codes_per_centroid(self.encoder)
        out = np.empty((len(images), width * self.n_centroids), np.float32)

        def encode(start: int) -> None:
            out[start : start + block] = self._encode(images[start : start + block])

        _in_blocks(encode, range(0, len(images), block), self.n_jobs)
        return out

    def _encode(self, images: np.ndarray) -> np.ndarray:
        """Pooled codes of one block of images (plus its mirror images'), to the ``power``."""
        images = _pixel_scale(images)
        codes = self._pooled(images)
        if self.mirror:
            codes += self._pooled(images[:, :, ::-1])
        if self.power != 1:
            np.power(codes, np.float32(self.power), out=codes)  # codes are >= 0
        return codes

    def _pooled(self, images: np.ndarray) -> np.ndarray:
        """The encoder's codes of ``images`` (0-255) summed over the pooling regions."""
        mean, whitening, centroids = self._dictionary()
        return _patches.encode_block(
            images,
            self.patch_size,
            self.stride,
            mean,
            whitening,
            centroids,
            self.encoder,
            self.pooling,
            self.alpha,
        )

    def _n_drawn(self, shape: tuple) -> int:
        """``n_patches``, at most the number of patches the images hold (small sets)."""
        n, height, width = shape[:3]
        size = self.patch_size
        return min(self.n_patches, n * (height - size + 1) * (width - size + 1))

    def _validated(self, X, reset: bool) -> np.ndarray:
        """``X`` checked by scikit-learn's ``validate_data`` as rows, returned as images.

        Rows without ``image_shape`` are read as one-pixel-high grey strips
        ``(1, d, 1)``, so any table is a valid (if odd) input. A lazy (on-disk)
        ``X`` is checked by its shape and dtype, without reading it.
        """
        if getattr(X, "lazy", False):
            return self._lazy_images(X, reset)
        X = X if hasattr(X, "ndim") else np.asarray(X)
        if X.ndim in (3, 4):
            as_images(X, self.image_shape)  # its shape errors, in its words
        rows = validate_data(self, flat_images(X), dtype=_DTYPES, reset=reset)
        if X.ndim in (3, 4):
            shape = X.shape[1:] if X.ndim == 4 else (*X.shape[1:], 1)
        else:
            shape = (1, rows.shape[1], 1) if self.image_shape is None else None
        images = as_images(rows, shape or self.image_shape)
        self._check_fits(images.shape[1:])
        return images

    def _lazy_images(self, X, reset: bool) -> _LazyImages:
        """A lazy ``X`` as images read on demand, after the checks rows in memory get."""
        if X.dtype != np.uint8 and X.dtype.kind != "f":
            raise ValueError(f"images must be uint8 (0-255) or float (0-1); got dtype {X.dtype}")
        shape = tuple(X.shape[1:])
        if len(shape) == 1:  # flat rows: image_shape says how to read them (checked there)
            shape = as_images(np.empty((0, shape[0]), X.dtype), self.image_shape).shape[1:]
        elif len(shape) == 2:
            shape = (*shape, 1)
        if reset:
            self.n_features_in_ = int(np.prod(shape))
        elif int(np.prod(shape)) != self.n_features_in_:
            raise ValueError(
                f"X has {int(np.prod(shape))} features, but KMeansFeatures is expecting "
                f"{self.n_features_in_} features as input."
            )
        self._check_fits(shape)
        return _LazyImages(X, shape)

    def _dictionary(self) -> tuple:
        """``(mean, whitening, centroids)`` for the encoder; no whitening step when off.

        Soft codes are dot products with the centroids at unit length (a
        centroid's length would otherwise weigh its codes).
        """
        centroids = self.centroids_
        if self.encoder == "soft":
            norms = np.sqrt(np.einsum("ij,ij->i", centroids, centroids, dtype=np.float64))
            centroids = (centroids / np.maximum(norms, 1e-8)[:, None]).astype(np.float32)
        if not self.whiten:
            return None, None, centroids
        return self.patch_mean_, self.whitening_, centroids

    def _check_params(self) -> None:
        check_int("n_centroids", self.n_centroids, low=1)
        check_int("patch_size", self.patch_size, low=1)
        check_int("stride", self.stride, low=1)
        check_choice("whiten", self.whiten, (False, True))
        check_positive("whiten_eps", self.whiten_eps)
        check_choice("encoder", self.encoder, _patches.ENCODERS)
        check_non_negative("alpha", self.alpha)
        check_choice("pooling", self.pooling, _patches.POOLINGS)
        if not check_positive("power", self.power) <= 1:
            raise ValueError(f"power must be a number in (0, 1]; got {self.power!r}")
        check_choice("mirror", self.mirror, (False, True))
        check_int("n_patches", self.n_patches, low=1)
        check_int("seed", self.seed, low=0)
        check_int("max_iter", self.max_iter, low=1)
        check_n_jobs(self.n_jobs)

    def _check_fits(self, shape: tuple) -> None:
        if min(shape[0], shape[1]) < self.patch_size:
            raise ValueError(
                f"images of {shape[0]}x{shape[1]} pixels are smaller than "
                f"patch_size={self.patch_size}"
            )
        d = getattr(self, "centroids_", np.empty((0, 0))).shape[1]
        if d and d != self.patch_size**2 * shape[2]:
            raise ValueError(
                f"the centroids have {d} values, patches of {self.patch_size}x"
                f"{self.patch_size}x{shape[2]} pixels have {self.patch_size**2 * shape[2]}"
            )

    def _check_fitted(self) -> None:
        check_is_fitted(self, list(_STATE))
        k, d = np.shape(self.centroids_)
        if (
            k != self.n_centroids
            or np.shape(self.whitening_) != (d, d)
            or np.shape(self.patch_mean_) != (d,)
        ):
            raise ValueError(
                f"inconsistent state: centroids {np.shape(self.centroids_)}, whitening "
                f"{np.shape(self.whitening_)}, mean {np.shape(self.patch_mean_)} for "
                f"n_centroids={self.n_centroids}"
            )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = ["float32"]  # float32 whatever comes in
        return tags


class _LazyImages:
    """Rows of a lazy array as images ``(n, H, W, C)``, read only where indexed."""

    lazy = True

    def __init__(self, X, shape: tuple):
        self.X, self.shape, self.dtype = X, (len(X), *shape), X.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        return np.asarray(self.X[rows]).reshape(-1, *self.shape[1:])


def _in_blocks(encode, starts: range, n_jobs) -> None:
    """``encode(start)`` for every block, on ``n_jobs`` threads (default: every core)."""
    n_workers = workers(n_jobs, len(starts))
    if n_workers == 1:
        for _ in progress(map(encode, starts), len(starts), "k-means features"):
            pass
        return
    # one BLAS thread per worker: the workers are the parallelism, BLAS threads only contend
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(n_workers) as pool:
        for _ in progress(pool.map(encode, starts), len(starts), "k-means features"):
            pass


def _pixel_scale(images: np.ndarray) -> np.ndarray:
    """Pixel values as 0-255 (floats given as 0-1 are scaled): the paper's constants assume it."""
    if images.dtype == np.uint8:
        return images
    return np.multiply(images, 255, dtype=np.float32)


def _kmeans(patches: np.ndarray, n_centroids: int, max_iter: int, seed: int) -> tuple:
    """Lloyd's k-means from ``n_centroids`` random patches (scikit-learn).

    Returns the centroids, float32 ``(n_centroids, d)``, and the iterations run.
    """
    from sklearn.cluster import KMeans

    model = KMeans(
        n_centroids, init="random", n_init=1, max_iter=max_iter, tol=0.0, random_state=seed
    )
    model.fit(patches)
    return model.cluster_centers_.astype(np.float32), int(model.n_iter_)

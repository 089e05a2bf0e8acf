"""Image patches for learned features: sampling, contrast normalization, ZCA whitening,
and the encoding of every patch of a block of images against a dictionary of centroids.

The encoding is the heavy part of :class:`~imgclf.features.KMeansFeatures`: for
``n`` images with ``P`` patch positions and ``k`` centroids it is one
``(n * P, d) x (d, k)`` float32 matrix product (``d`` values per patch), done by
BLAS block by block, then one fused pass (numba) that turns dot products into
distances, applies the encoder and sums the codes into the pooling regions, with
the block still in cache. The plain NumPy version of the same computation is in
:func:`encode_reference`, which the tests and the benchmark compare against.
"""

from __future__ import annotations

import numba
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "CONTRAST_EPS",
    "ENCODERS",
    "POOLINGS",
    "WHITEN_EPS",
    "encode_block",
    "encode_reference",
    "images_per_block",
    "normalize",
    "patches_of",
    "pool_regions",
    "positions",
    "random_patches",
    "region_of",
    "zca",
]

# Coates, Lee & Ng (2011), on pixel values 0-255: the variance gets +10 before the
# square root (flat patches are not blown up into noise) and the eigenvalues of the
# patch covariance +0.1 before whitening (the smallest directions are mostly noise).
CONTRAST_EPS = 10.0
WHITEN_EPS = 0.1
ENCODERS = ("triangle", "hard", "soft")
POOLINGS = ("quadrants", "sum", "pyramid")
BLOCK_BYTES = 16 << 20  # distances of one block: 16 MiB keeps it in a core's share of cache


def positions(side: int, patch_size: int, stride: int) -> int:
    """Patch positions along one side of ``side`` pixels."""
    return (side - patch_size) // stride + 1


def patches_of(images: np.ndarray, patch_size: int, stride: int) -> np.ndarray:
    """Every patch of every image, float32 ``(n * rows * cols, patch_size**2 * C)``.

    Row order: image, then patch row, then patch column; values in one patch
    are in (row, column, channel) order, as ``image[r:r+s, c:c+s].ravel()``.
    """
    windows = sliding_window_view(images, (patch_size, patch_size), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # (n, rows, cols, C, s, s)
    return (
        windows.transpose(0, 1, 2, 4, 5, 3)
        .reshape(-1, patch_size * patch_size * images.shape[-1])
        .astype(np.float32)
    )


def random_patches(images, n_patches: int, patch_size: int, rng) -> np.ndarray:
    """``n_patches`` patches at uniformly drawn images and positions, float32 ``(n, d)``.

    ``images`` ``(n, H, W, C)`` may be lazy (on disk): only the drawn images are
    read, 8,192 patches' worth at a time, in increasing order (a store reads its
    chunks in order, each drawn image once per block).
    """
    n, height, width, channels = images.shape
    which = np.sort(rng.integers(0, n, n_patches))
    rows = rng.integers(0, height - patch_size + 1, n_patches)
    cols = rng.integers(0, width - patch_size + 1, n_patches)
    out = np.empty((n_patches, patch_size * patch_size * channels), np.float32)
    for start in range(0, n_patches, 8192):  # a block of source images at a time
        stop = min(start + 8192, n_patches)
        drawn, position = np.unique(which[start:stop], return_inverse=True)
        block = np.asarray(images[drawn])
        r, c = rows[start:stop], cols[start:stop]
        offsets = np.arange(patch_size)
        picked = block[
            position[:, None, None],
            (r[:, None] + offsets)[:, :, None],
            (c[:, None] + offsets)[:, None, :],
        ]
        out[start:stop] = picked.reshape(stop - start, -1)
    return out


def normalize(patches: np.ndarray) -> np.ndarray:
    """Contrast normalization in place: each patch minus its mean, over sqrt(var + 10).

    The variance is the unbiased one (``ddof=1``), as in the authors' code.
    """
    patches -= patches.mean(axis=1, keepdims=True)
    var = np.einsum("ij,ij->i", patches, patches) / max(patches.shape[1] - 1, 1)
    patches /= np.sqrt(var + CONTRAST_EPS)[:, None]
    return patches


def zca(patches: np.ndarray, eps: float = WHITEN_EPS) -> tuple[np.ndarray, np.ndarray]:
    """ZCA whitening of normalized patches: ``(mean (d,), matrix (d, d))``, float32.

    ``(x - mean) @ matrix`` has (nearly) identity covariance and stays as close
    to ``x`` as a whitening can (``V diag(1 / sqrt(eig + eps)) V^T``), so whitened
    patches and centroids still look like image patches. ``eps`` keeps the
    directions of small variance (eigenvalues below it) from being blown up.
    """
    mean = patches.mean(axis=0, dtype=np.float64)
    centred = patches - mean.astype(np.float32)
    cov = (centred.T @ centred).astype(np.float64) / max(len(patches) - 1, 1)
    eigenvalues, vectors = np.linalg.eigh(cov)
    matrix = (vectors / np.sqrt(np.maximum(eigenvalues, 0) + eps)) @ vectors.T
    return mean.astype(np.float32), matrix.astype(np.float32)


def images_per_block(n_positions: int, n_centroids: int) -> int:
    """Images whose distances fill at most ``BLOCK_BYTES`` (at least one)."""
    return max(1, BLOCK_BYTES // (4 * n_positions * n_centroids))


def pool_regions(pooling: str) -> int:
    """Regions the codes are summed over: 4 quadrants, 1 image, or both (5, the pyramid)."""
    return {"quadrants": 4, "sum": 1, "pyramid": 5}[pooling]


def region_of(rows: int, cols: int, pooling: str) -> np.ndarray:
    """The region each patch position is summed into, int64 ``(rows * cols,)``, row-major.

    The quadrant (0-3: top left, top right, bottom left, bottom right; the split
    after ``ceil(rows / 2)`` rows and ``ceil(cols / 2)`` columns, as the paper's
    ``round``), or 0 for ``"sum"``. The pyramid's fifth region, the whole
    image, is the quadrants' sum, added after the kernel.
    """
    if pooling == "sum":
        return np.zeros(rows * cols, np.int64)
    bottom = np.arange(rows) >= (rows + 1) // 2
    right = np.arange(cols) >= (cols + 1) // 2
    return (2 * bottom[:, None] + right[None, :]).ravel().astype(np.int64)


def codes_per_centroid(encoder: str) -> int:
    """Codes per centroid and region: 2 for ``"soft"`` (one per polarity), else 1."""
    return 2 if encoder == "soft" else 1


def encode_block(
    images, patch_size, stride, mean, whitening, centroids, encoder, pooling, alpha=0.25
):
    """Pooled codes of a block of images, float32 ``(n, regions * codes * k)``.

    Parameters
    ----------
    images : ndarray (n, H, W, C), pixel values 0-255
    mean, whitening : ndarray (d,), (d, d) float32, or None for no whitening
    centroids : ndarray (k, d) float32
        For ``"soft"``, of unit length (the codes are thresholded dot products).
    encoder : {"triangle", "hard", "soft"}
    pooling : {"quadrants", "sum", "pyramid"}
        Regions in the order of :func:`region_of`; the pyramid's whole image last.
    alpha : float
        The threshold of ``"soft"``: codes ``max(0, s - alpha)`` and ``max(0, -s - alpha)``
        of each dot product ``s`` (``codes = 2``, the polarity split); else ignored.
    """
    n, height, width, _ = images.shape
    rows, cols = positions(height, patch_size, stride), positions(width, patch_size, stride)
    region = region_of(rows, cols, pooling)
    patches = normalize(patches_of(images, patch_size, stride))
    if whitening is not None:
        patches -= mean
        patches = patches @ whitening
    scores = patches @ centroids.T  # the one large product: (n * rows * cols, k)
    width = codes_per_centroid(encoder) * len(centroids)
    out = np.zeros((n, pool_regions(pooling), width), np.float32)
    if encoder == "soft":
        _soft_pool(scores, np.float32(alpha), region, out)
    else:
        patch_norms = np.einsum("ij,ij->i", patches, patches)
        centroid_norms = np.einsum("ij,ij->i", centroids, centroids)
        _encode_pool(scores, patch_norms, centroid_norms, region, encoder == "hard", out)
    if pooling == "pyramid":
        out[:, 4] = out[:, :4].sum(axis=1)
    return out.reshape(n, -1)


@numba.njit(nogil=True, cache=True, fastmath=True)
def _encode_pool(scores, patch_norms, centroid_norms, region, hard, out):
    """Dot products -> distances -> codes, summed into ``out[image, region]`` in place.

    ``scores[i, j]`` is patch i . centroid j; it is overwritten by the distance
    ``z_j``. Triangle: ``max(0, mean(z) - z_j)``; hard: 1 at the nearest centroid
    (ties: lower index). Patch row ``i`` is image ``i // P``, position ``i % P``
    (``P = len(region)``), summed into ``region[i % P]``. All in float32, loops
    without branches, so that they vectorize (fastmath: the sum of the distances
    may be reassociated).
    """
    k, n_positions = scores.shape[1], len(region)
    two, zero = np.float32(2.0), np.float32(0.0)
    for i in range(scores.shape[0]):
        row, norm = scores[i], patch_norms[i]
        total = zero
        for j in range(k):
            z = np.sqrt(max(norm + centroid_norms[j] - two * row[j], zero))
            row[j] = z
            total += z
        pooled = out[i // n_positions, region[i % n_positions]]
        if hard:
            pooled[np.argmin(row)] += 1.0
            continue
        mean = total / np.float32(k)
        for j in range(k):
            pooled[j] += max(mean - row[j], zero)


@numba.njit(nogil=True, cache=True, fastmath=True)
def _soft_pool(scores, alpha, region, out):
    """Dot products -> both polarities' soft-threshold codes, summed into ``out`` in place.

    Coates & Ng (2011): ``max(0, s_j - alpha)`` in ``out[..., j]`` and
    ``max(0, -s_j - alpha)`` in ``out[..., k + j]``, so that a patch that
    matches a centroid with the opposite sign is told apart from one that does
    not match it at all. Regions as in :func:`_encode_pool`.
    """
    k, n_positions = scores.shape[1], len(region)
    zero = np.float32(0.0)
    for i in range(scores.shape[0]):
        row, pooled = scores[i], out[i // n_positions, region[i % n_positions]]
        for j in range(k):
            pooled[j] += max(row[j] - alpha, zero)
            pooled[k + j] += max(-row[j] - alpha, zero)


def encode_reference(
    images, patch_size, stride, mean, whitening, centroids, encoder, pooling, alpha=0.25
):
    """The same codes in plain float64 NumPy, one image and one patch matrix at a time.

    Slow and simple, for tests and the benchmark's ratio: no fused kernel, no
    float32, distances from the expansion ``|x|^2 + |c|^2 - 2 x.c``.
    """
    centroids = centroids.astype(np.float64)
    codes = []
    for image in images:
        windows = sliding_window_view(
            image.astype(np.float64), (patch_size, patch_size, image.shape[-1])
        )
        grid = windows[::stride, ::stride, 0]  # (rows, cols, s, s, C)
        rows, cols = grid.shape[:2]
        x = grid.reshape(rows * cols, -1)
        x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, ddof=1, keepdims=True) + CONTRAST_EPS)
        if whitening is not None:
            x = (x - mean) @ whitening.astype(np.float64)
        sq = (x**2).sum(1)[:, None] + (centroids**2).sum(1)[None] - 2 * x @ centroids.T
        z = np.sqrt(np.maximum(sq, 0))
        if encoder == "soft":
            s = x @ centroids.T
            f = np.concatenate([np.maximum(s - alpha, 0), np.maximum(-s - alpha, 0)], axis=1)
        elif encoder == "hard":
            f = np.zeros_like(z)
            f[np.arange(len(z)), z.argmin(1)] = 1
        else:
            f = np.maximum(z.mean(1, keepdims=True) - z, 0)
        f = f.reshape(rows, cols, -1)
        hr, hc = (rows + 1) // 2, (cols + 1) // 2
        quads = [f[:hr, :hc], f[:hr, hc:], f[hr:, :hc], f[hr:, hc:]]
        regions = {"sum": [f], "quadrants": quads, "pyramid": [*quads, f]}[pooling]
        codes.append(np.concatenate([r.sum((0, 1)) for r in regions]))
    return np.array(codes)

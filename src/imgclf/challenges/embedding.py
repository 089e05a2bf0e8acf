"""Two-dimensional maps of images (t-SNE), in pixel space or in a feature space.

Pixel neighbours share colour and background more than class; a map of the
test images drawn as thumbnails shows it, and a map of their HOG + colour
features beside it shows what features change.
"""

from __future__ import annotations

import numpy as np

from imgclf._validation import check_int

__all__ = ["tsne"]

# Principal components kept before t-SNE: the usual step, it removes pixel noise and
# makes t-SNE's neighbour search ~60x cheaper on 3,072 pixels.
PCA_COMPONENTS = 50

# Below this many rows t-SNE runs on one thread: starting OpenMP threads for each of its
# 1,000 iterations costs more than they bring (45 rows: 7.0 s on 2 busy cores, 0.7 s on one).
ONE_THREAD_BELOW = 1000


def tsne(X, *, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2D t-SNE coordinates of the rows of ``X`` ``(n, d)``: ``(n, 2)`` float, in [0, 1].

    The rows are standardized per column, projected on their first 50
    principal components, then embedded by scikit-learn's ``TSNE`` (PCA
    initialisation, seeded).
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    X = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    seed = check_int("seed", seed, low=0)
    if len(X) < 5:
        raise ValueError(f"t-SNE needs at least 5 images; got {len(X)}")
    X = (X - X.mean(axis=0)) / np.maximum(X.std(axis=0), 1e-6)
    components = min(PCA_COMPONENTS, *X.shape)
    X = PCA(components, random_state=seed).fit_transform(X)
    from threadpoolctl import threadpool_limits

    perplexity = min(perplexity, (len(X) - 1) / 3)
    with threadpool_limits(1 if len(X) < ONE_THREAD_BELOW else None):
        xy = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(X)
    xy -= xy.min(axis=0)
    return xy / np.maximum(xy.max(axis=0), 1e-12)

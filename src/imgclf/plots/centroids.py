"""The patch dictionary of k-means features: centroids as small colour tiles."""

from __future__ import annotations

import math
import os

import numpy as np

from imgclf.plots._figure import new_figure, save
from imgclf.plots.nn import _rescaled  # first_layer's per-tile 0-255 scaling

__all__ = ["centroids"]

_GAP = 1  # pixels of white between tiles


def centroids(
    features,
    path: str | os.PathLike | None = None,
    max_centroids: int = 400,
    whitened: bool = False,
):
    """The learned patch centroids as small colour tiles (Coates, Lee & Ng 2011, figure 3).

    The centroids live in the whitened space; each is mapped back through the
    inverse whitening (``c @ inverse(W) + mean``) to a contrast-normalized patch,
    then rescaled to 0-255 on its own, so what shows is its pattern: edges at
    every orientation and colour blobs on a well-trained dictionary, and noise
    on a poorly trained one. ``whitened=True`` shows the centroids as learned.

    Parameters
    ----------
    features : fitted KMeansFeatures, FeatureSet with a ``kmeans`` part, or a Pipeline holding one
    path : path, optional
        Write a PNG there.
    max_centroids : int, default=400
        Draw at most this many (the first ones), in a square-ish grid.
    whitened : bool, default=False

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``features`` holds no fitted k-means patch features.
    """
    from imgclf.features import learned_patches

    kmeans = learned_patches(features)
    if kmeans is None:
        raise ValueError(
            f"centroids needs fitted k-means patch features (KMeansFeatures, or FeatureSet "
            f"with kmeans); got {type(features).__name__}"
        )
    shown = np.asarray(kmeans.centroids_[:max_centroids], np.float64)
    if not whitened:
        shown = shown @ np.linalg.pinv(kmeans.whitening_.astype(np.float64)) + kmeans.patch_mean_
    size = kmeans.patch_size
    tiles = _rescaled(shown.reshape(len(shown), size, size, -1))
    figure = new_figure(7, 7.4)
    ax = figure.subplots()
    ax.imshow(_mosaic(tiles), interpolation="nearest")
    ax.set_axis_off()
    space = "as learned (whitened)" if whitened else "de-whitened"
    ax.set_title(
        f"{len(tiles)} of {len(kmeans.centroids_)} k-means centroids of {size}x{size} patches, "
        f"{space}, each rescaled to 0-255",
        fontsize=10,
    )
    return save(figure, path)


def _mosaic(tiles: np.ndarray) -> np.ndarray:
    """Tiles ``(n, s, s, C)`` in one image, rows of ``ceil(sqrt(n))``, white gaps; RGB uint8."""
    if tiles.shape[-1] == 1:
        tiles = np.repeat(tiles, 3, axis=-1)
    n, size = len(tiles), tiles.shape[1]
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    step = size + _GAP
    out = np.full((rows * step + _GAP, columns * step + _GAP, 3), 255, np.uint8)
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        out[_GAP + r * step : _GAP + r * step + size, _GAP + c * step : _GAP + c * step + size] = (
            tile
        )
    return out

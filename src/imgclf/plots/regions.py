"""Decision regions of k-NN on 2D points, the lecture's picture for k = 1 and k = 3."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap

from imgclf.neighbors import KNNClassifier
from imgclf.plots._figure import new_figure, save

__all__ = ["grid_over", "knn_regions"]

PALETTE = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf"]


def grid_over(points: np.ndarray, steps: int = 200, margin: float = 0.5):
    """A ``steps x steps`` grid covering ``points`` plus a margin: ``(xx, yy, (steps², 2))``."""
    low, high = points.min(axis=0) - margin, points.max(axis=0) + margin
    xx, yy = np.meshgrid(np.linspace(low[0], high[0], steps), np.linspace(low[1], high[1], steps))
    return xx, yy, np.c_[xx.ravel(), yy.ravel()].astype(np.float32)


def _region_image(clf: KNNClassifier, grid: np.ndarray, shape) -> np.ndarray:
    """Winning class per grid point, or -1 where the top vote is tied (drawn white)."""
    shares = clf.predict_proba(grid)
    top = np.sort(shares, axis=1)[:, -2:]
    winner = shares.argmax(axis=1)
    return np.where(np.isclose(top[:, 0], top[:, 1]), -1, winner).reshape(shape)


def knn_regions(
    points: np.ndarray,
    labels: np.ndarray,
    classes,
    path=None,
    *,
    ks=(1, 3),
    metric: str = "l2",
    steps: int = 250,
    title: str = "k-nearest-neighbour decision regions",
):
    """Side-by-side decision regions of k-NN for each k; tied regions are white.

    Parameters
    ----------
    points : ndarray, shape (n, 2)
    labels : ndarray of int, shape (n,)
    classes : sequence of str
    ks : sequence of int
    """
    xx, yy, grid = grid_over(points, steps)
    colours = ListedColormap(["white"] + PALETTE[: len(classes)])
    figure = new_figure(4.6 * len(ks), 4.6)
    for i, k in enumerate(ks):
        ax = figure.add_subplot(1, len(ks), i + 1)
        clf = KNNClassifier(k=k, metric=metric).fit(points, labels)
        regions = _region_image(clf, grid, xx.shape)
        ax.pcolormesh(
            xx, yy, regions + 1, cmap=colours, vmin=0, vmax=len(classes), shading="auto", alpha=0.45
        )
        for label, name in enumerate(classes):
            member = labels == label
            ax.scatter(
                *points[member].T,
                s=14,
                color=PALETTE[label],
                edgecolor="black",
                linewidth=0.4,
                label=name,
            )
        ax.set(title=f"k = {k} ({metric.upper()})", xlabel="x₁", ylabel="x₂")
    figure.axes[0].legend(fontsize="small", loc="upper left")
    figure.suptitle(f"{title} (white: tied vote)")
    return save(figure, path)

"""Decision regions of k-NN on 2D points, the lecture's picture for k = 1 and k = 3."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from imgclf.neighbors import KNNClassifier
from imgclf.plots._figure import BESIDE, literal, new_figure, save

__all__ = ["TIE_NOTE", "grid_over", "knn_regions", "scatter_points"]

PALETTE = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf"]

# The legend entry of tied regions, drawn only when a region is tied.
TIE_NOTE = "white: tied vote"


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


def _scatter_classes(ax, points: np.ndarray, labels: np.ndarray, classes) -> None:
    """The points of each class in its palette colour, labelled for the legend."""
    for label, name in enumerate(classes):
        member = labels == label
        ax.scatter(
            *points[member].T,
            s=14,
            color=PALETTE[label % len(PALETTE)],
            edgecolor="black",
            linewidth=0.4,
            label=literal(name),
        )


def scatter_points(
    points: np.ndarray,
    labels: np.ndarray,
    classes,
    path=None,
    *,
    title: str = "The training points, coloured by class",
):
    """A scatter plot of 2D points, one colour per class, the legend beside the axes.

    Parameters
    ----------
    points : ndarray, shape (n, 2)
    labels : ndarray of int, shape (n,)
    classes : sequence of str
    """
    figure = new_figure(6.4, 4.8)
    ax = figure.add_subplot()
    _scatter_classes(ax, points, labels, classes)
    ax.set(title=literal(title), xlabel="x₁", ylabel="x₂")
    ax.legend(fontsize="small", **BESIDE)
    return save(figure, path)


def knn_regions(
    points: np.ndarray,
    labels: np.ndarray,
    classes,
    path=None,
    *,
    ks=(1, 3),
    metric: str = "l2",
    weights: str = "uniform",
    steps: int = 250,
    title: str = "Which class k-NN predicts where",
):
    """Side-by-side decision regions of k-NN for each k; tied regions are white.

    The legend says what white means only when some region is tied.

    Parameters
    ----------
    points : ndarray, shape (n, 2)
    labels : ndarray of int, shape (n,)
    classes : sequence of str
    ks : sequence of int
    metric, weights : str
        As :class:`~imgclf.neighbors.KNNClassifier` takes them.
    """
    xx, yy, grid = grid_over(points, steps)
    colours = ListedColormap(["white"] + [PALETTE[i % len(PALETTE)] for i in range(len(classes))])
    figure = new_figure(4.6 * len(ks) + 1.6, 4.8)
    tied = False
    for i, k in enumerate(ks):
        ax = figure.add_subplot(1, len(ks), i + 1)
        clf = KNNClassifier(k=k, metric=metric, weights=weights).fit(points, labels)
        regions = _region_image(clf, grid, xx.shape)
        tied |= bool((regions == -1).any())
        ax.pcolormesh(
            xx, yy, regions + 1, cmap=colours, vmin=0, vmax=len(classes), shading="auto", alpha=0.45
        )
        _scatter_classes(ax, points, labels, classes)
        votes = "" if weights == "uniform" else f", {weights} votes"
        ax.set(title=f"k = {k} ({metric.upper()}{votes})", xlabel="x₁", ylabel="x₂")
    handles, names = figure.axes[0].get_legend_handles_labels()
    if tied:
        handles.append(Patch(facecolor="white", edgecolor="black", linewidth=0.5))
        names.append(TIE_NOTE)
    figure.axes[-1].legend(handles, names, fontsize="small", **BESIDE)
    figure.suptitle(literal(title))
    return save(figure, path)

"""The curse of dimensionality: the lecture's coverage picture, then measured on the user's data.

Top: covering the unit interval, square and cube with points a quarter apart
takes 4, 16 and 64 points; in d dimensions 4^d. Bottom (given measurements
from :func:`imgclf.challenges.concentration`): as the images are down-sampled,
the ratio of each test image's nearest to its farthest training image, beside
uniform random points of the same dimension (near 1: every point about as far
as every other), and 1-NN accuracy against chance.
"""

from __future__ import annotations

import os

import numpy as np

from imgclf.plots._figure import literal, new_figure, save

__all__ = ["dimensionality"]


def dimensionality(
    train=None,
    test=None,
    path: str | os.PathLike | None = None,
    *,
    rows: list[dict] | None = None,
    spacing: float = 0.25,
    n_train: int = 5000,
    n_test: int = 500,
    seed: int = 0,
    title: str | None = None,
):
    """Points needed for coverage in 1, 2, 3 dimensions; distance concentration on real images.

    Parameters
    ----------
    train, test : Dataset, optional
        Square images with labels: measured with
        :func:`imgclf.challenges.concentration` (``n_train``, ``n_test``, ``seed``).
    path : path, optional
        Where to write the PNG.
    rows : list of dict, optional
        Measurements already made by ``concentration`` (instead of ``train`` and ``test``).
    spacing : float, default=0.25
        Distance between neighbouring grid points in the coverage panels.

    Returns
    -------
    matplotlib.figure.Figure
        Without data: the three coverage panels only.

    Examples
    --------
    >>> figure = dimensionality()
    >>> [ax.get_title() for ax in figure.axes]
    ['1 dimension: 4 points', '2 dimensions: 16 points', '3 dimensions: 64 points']
    """
    from imgclf.challenges import concentration, coverage_points

    if rows is None and train is not None:
        rows = concentration(train, test, n_train=n_train, n_test=n_test, seed=seed)
    figure = new_figure(12.0, 4.2 if rows is None else 8.8)
    top, bottom = (
        (figure, None) if rows is None else figure.subfigures(2, 1, height_ratios=[1, 1.15])
    )
    counts = coverage_points(spacing, (1, 2, 3))
    _coverage(top, counts, spacing)
    if rows is not None:
        _measured(bottom, rows)
        top.suptitle(
            "The lecture's picture: points needed to cover the unit interval, square, cube"
        )
        bottom.suptitle(_measured_words(rows, train, test))
    per_axis = counts[1]
    default = (
        f"The curse of dimensionality: a grid of points {spacing:g} apart needs "
        f"{per_axis}^d points in d dimensions"
    )
    figure.suptitle(literal(title or default), fontsize="x-large")
    return save(figure, path)


def _coverage(figure, counts: dict[int, int], spacing: float) -> None:
    ticks = np.arange(spacing / 2, 1, spacing)
    for d, count in counts.items():
        ax = figure.add_subplot(1, 3, d, **({"projection": "3d"} if d == 3 else {}))
        grid = np.meshgrid(*([ticks] * d), indexing="ij")
        points = [g.ravel() for g in grid]
        if d == 1:
            ax.scatter(points[0], np.zeros_like(points[0]), s=40)
            ax.set_yticks([])
            ax.set_ylim(-0.5, 0.5)
        elif d == 2:
            ax.scatter(*points, s=40)
            ax.set(ylim=(0, 1), ylabel="x2", aspect="equal")
        else:
            ax.scatter(*points, s=25, depthshade=False)
            ax.set(ylim=(0, 1), zlim=(0, 1), ylabel="x2", zlabel="x3")
            ax.set_box_aspect(None, zoom=0.8)  # room for the axis labels
        ax.set_xlim(0, 1)
        ax.set_title(f"{d} dimension{'s' if d > 1 else ''}: {count} points")
        ax.set_xlabel("x1")


def _measured_words(rows: list[dict], train, test) -> str:
    side = rows[0]["side"]
    where = "" if train is None or not train.name else f" of {train.name.split(':')[0]}"
    return (
        f"Measured on the images{where}, down-sampled from {side}x{side} to "
        f"{rows[-1]['side']}x{rows[-1]['side']}, and on uniform random points"
    )


def _measured(figure, rows: list[dict]) -> None:
    dims = np.array([r["dimension"] for r in rows])
    sides = [f"{r['side']}x{r['side']}" for r in rows]
    left, right = figure.subplots(1, 2)
    left.plot(dims, [r["ratio"] for r in rows], "o-", label="images (down-sampled)")
    left.plot(dims, [r["ratio_uniform"] for r in rows], "s--", label="uniform random points")
    left.set_ylabel("nearest / farthest neighbour distance\n(mean over test images)")
    left.set_ylim(0, 1)
    left.set_title("Distances concentrate: the nearest is hardly nearer")
    left.legend(loc="best")
    right.plot(dims, [r["accuracy"] for r in rows], "o-", label="1-NN on the images (L2)")
    right.axhline(rows[0]["chance"], color="grey", linestyle=":", label="chance")
    right.set_ylabel("1-NN test accuracy")
    right.set_ylim(0, 1)
    right.set_title("1-NN accuracy at each image size")
    right.legend(loc="best")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xticks(dims, [f"{d:,}\n({s})" for d, s in zip(dims, sides, strict=True)])
        ax.minorticks_off()
        ax.set_xlabel("dimension (image size in pixels)")
        ax.grid(alpha=0.3)

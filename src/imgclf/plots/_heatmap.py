"""One heat-map panel of a two-parameter grid: a cell per pair, values written in."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.patches import Rectangle

from imgclf.plots._figure import literal

__all__ = ["grid_matrix", "heatmap_panel"]


def grid_matrix(xs, ys, values) -> tuple[list, list, np.ndarray, np.ndarray]:
    """Configurations ``(xs[i], ys[i]) -> values[i]`` as a ``(len(rows), len(cols))`` matrix.

    Returns the sorted distinct column values, row values, the matrix (NaN
    where a pair was not tried or its value is NaN) and a mask of the pairs tried.
    """
    columns, rows = sorted(set(xs)), sorted(set(ys))
    matrix = np.full((len(rows), len(columns)), np.nan)
    tried = np.zeros(matrix.shape, dtype=bool)
    for x, y, value in zip(xs, ys, values, strict=True):
        matrix[rows.index(y), columns.index(x)] = value
        tried[rows.index(y), columns.index(x)] = True
    return columns, rows, matrix, tried


def heatmap_panel(ax, columns, rows, matrix, tried, norm, *, best=None, spread=None):
    """Draw ``matrix`` on ``ax``: a coloured, labelled cell per pair; ``best`` ringed.

    Parameters
    ----------
    ax : matplotlib Axes
    columns, rows : list
        The values tried along x and y: the tick labels, in order.
    matrix : ndarray, shape (len(rows), len(columns))
    tried : ndarray of bool, same shape
        False cells read "not tried"; tried cells with NaN read "diverged".
    norm : matplotlib.colors.Normalize
        Shared by the panels of one figure.
    best : (int, int), optional
        ``(row, column)`` of the cell to ring.
    spread : ndarray, optional
        Standard deviations written under the values.

    Returns
    -------
    matplotlib.image.AxesImage
        For a colour bar.
    """
    cmap = colormaps["viridis"].with_extremes(bad="#dddddd")
    image = ax.imshow(matrix, cmap=cmap, norm=norm, origin="lower", aspect="auto")
    size = "medium" if len(columns) <= 6 else "small"
    for (i, j), value in np.ndenumerate(matrix):
        text = _cell_text(value, tried[i, j], spread, (i, j))
        ax.text(j, i, text, fontsize=size, **_text_style(value, norm))
    if best is not None:
        ax.add_patch(
            Rectangle(
                (best[1] - 0.5, best[0] - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=3
            )
        )
    ax.set_xticks(range(len(columns)), [literal(_tick(v)) for v in columns])
    ax.set_yticks(range(len(rows)), [literal(_tick(v)) for v in rows])
    ax.tick_params(length=0)
    return image


def _tick(value) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _cell_text(value, tried: bool, spread, cell) -> str:
    if not tried:
        return "not tried"
    if not np.isfinite(value):
        return "diverged"
    if spread is not None and spread[cell] > 0:
        return f"{value:.3f}\n± {spread[cell]:.3f}"
    return f"{value:.3f}"


def _text_style(value, norm) -> dict:
    """Dark text on the light end of viridis (and on grey), light text on the dark end."""
    light = not np.isfinite(value) or norm(value) > 0.6
    return dict(ha="center", va="center", color="black" if light else "white")

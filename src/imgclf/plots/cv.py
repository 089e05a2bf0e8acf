"""Pictures of a hyperparameter search: accuracy against k, and a two-parameter heat map."""

from __future__ import annotations

import os
import textwrap

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.ticker import FixedLocator, NullLocator

from imgclf.model_selection import SearchResult
from imgclf.plots._figure import literal, new_figure, param_label, save
from imgclf.plots._heatmap import grid_matrix, heatmap_panel

__all__ = ["cv_curve", "search_heatmap"]


def _varying(result: SearchResult) -> list[str]:
    """The hyperparameters that take more than one value in ``result``."""
    names = list(result.configs[0])
    return [n for n in names if len({repr(c[n]) for c in result.configs}) > 1]


def _series(result: SearchResult, exclude: tuple[str, ...]) -> dict[str, list[int]]:
    """Configuration rows grouped by the varying parameters not in ``exclude``."""
    others = [n for n in _varying(result) if n not in exclude]
    groups: dict[str, list[int]] = {}
    for row, config in enumerate(result.configs):
        groups.setdefault(_describe({n: config[n] for n in others}), []).append(row)
    return groups


def _describe(params: dict) -> str:
    return ", ".join(f"{param_label(k, short=True)} = {_value(v)}" for k, v in params.items())


def _value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


LEGEND_HALF_WIDTH = 48  # characters of a legend label that fit half the figure's width


def cv_curve(
    result: SearchResult,
    path: str | os.PathLike | None = None,
    *,
    x: str = "k",
    title: str | None = None,
):
    """Validation accuracy against ``x``: fold dots, mean line, ±1 std bars, best marked.

    The ticks on the x axis are exactly the values tried, and the legend sits
    to the right of the axes, where it cannot cover a point.

    Parameters
    ----------
    result : SearchResult
        From :func:`~imgclf.model_selection.sweep_knn` or ``cross_validate``.
    path : path, optional
        Where to write the PNG.
    x : str
        The hyperparameter on the horizontal axis; every other one that varies
        gets its own colour.
    title : str, optional
        Default: "Validation accuracy against" the parameter, in words.

    Returns
    -------
    matplotlib.figure.Figure
    """
    folds = result.scores.shape[1]
    figure = new_figure(8.5, 4.5)
    ax = figure.add_subplot()
    for label, rows in _series(result, (x,)).items():
        xs = np.array([result.configs[r][x] for r in rows], dtype=float)
        _draw_series(ax, xs, result.scores[rows], label)
    best = result.best_index
    ax.plot(
        result.configs[best][x],
        result.mean[best],
        marker="*",
        markersize=16,
        color="gold",
        markeredgecolor="black",
        linestyle="none",
        label=f"chosen: {_describe(result.best_params)} ({result.best_score:.4f})",
    )
    _value_ticks(ax, sorted({float(c[x]) for c in result.configs}))
    ax.set(
        title=literal(title or f"Validation accuracy against {param_label(x, short=True)}"),
        xlabel=param_label(x),
        ylabel="validation accuracy" + (f" ({folds} folds)" if folds > 1 else ""),
    )
    ax.grid(alpha=0.3)
    # below the axes, never over a point; wide labels get the figure's whole width
    handles, labels = _literal_handles(ax)
    two_fit = max(map(len, labels)) <= LEGEND_HALF_WIDTH  # else one column: nothing clipped
    figure.legend(
        handles, labels, loc="outside lower center", ncols=min(2 if two_fit else 1, len(labels))
    )
    return save(figure, path)


def _value_ticks(ax, values: list[float]) -> None:
    """A tick at every value tried (log axis when they span a decade), no others."""
    if values[0] > 0 and values[-1] / values[0] >= 10:
        ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{v:g}" for v in values])


def _literal_handles(ax) -> tuple[list, list[str]]:
    handles, labels = ax.get_legend_handles_labels()
    return handles, [literal(label) for label in labels]


def _draw_series(ax, xs: np.ndarray, scores: np.ndarray, label: str) -> None:
    """Mean line with ±1 std bars; with several folds, one faint dot per fold."""
    order = np.argsort(xs)
    xs, scores = xs[order], scores[order]
    folds = scores.shape[1]
    suffix = "mean ± std over folds" if folds > 1 else "validation accuracy"
    line = ax.errorbar(
        xs,
        scores.mean(axis=1),
        yerr=scores.std(axis=1) if folds > 1 else None,
        capsize=3,
        marker="o" if folds == 1 else None,
        label=f"{label}: {suffix}" if label else suffix,
    )
    if folds > 1:
        colour = line.lines[0].get_color()
        ax.scatter(np.repeat(xs, folds), scores.ravel(), s=10, alpha=0.5, color=colour)


# --- two parameters: a heat map ----------------------------------------------------------


def search_heatmap(
    result: SearchResult,
    path: str | os.PathLike | None = None,
    *,
    x: str = "learning_rate",
    y: str = "reg",
    title: str | None = None,
):
    """Validation accuracy of every ``x`` x ``y`` pair as a heat map; the chosen one ringed.

    Each cell is labelled with its mean accuracy (± std over folds when there
    are several); the axes are labelled with the values tried. A parameter
    other than ``x`` and ``y`` that varies gets one panel per value.

    Parameters
    ----------
    result : SearchResult
        From :func:`~imgclf.model_selection.cross_validate` over (at least) ``x`` and ``y``.
    path : path, optional
        Where to write the PNG.
    x, y : str
        The hyperparameters along the horizontal and vertical axes.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = _series(result, (x, y))
    mean, std = result.mean, result.std if result.scores.shape[1] > 1 else None
    finite = mean[np.isfinite(mean)]
    norm = Normalize(*((finite.min(), finite.max()) if finite.size else (0.0, 1.0)))
    n_x, n_y = (len({repr(c[name]) for c in result.configs}) for name in (x, y))
    width = max(6.4, len(groups) * (1.2 * n_x + 1.8) + 1.4)  # room for the titles too
    figure = new_figure(width, max(3.6, 0.8 * n_y + 2.6))
    axes = figure.subplots(1, len(groups), squeeze=False)[0]
    for ax, (label, rows) in zip(axes, groups.items(), strict=True):
        image = _heatmap_of(ax, result, rows, (x, y), norm, mean, std)
        ax.set(xlabel=param_label(x), ylabel=param_label(y), title=literal(label))
    figure.colorbar(image, ax=axes, label="validation accuracy")
    figure.suptitle(
        literal(title or f"Validation accuracy of each\n{param_label(x)} and {param_label(y)}")
    )
    chosen = f"{literal(_describe(result.best_params))}; accuracy {result.best_score:.4f}"
    figure.supxlabel(
        "\n".join(textwrap.wrap(f"chosen (red frame): {chosen}", int(width * 11))),
        fontsize="medium",
    )
    return save(figure, path)


def _heatmap_of(ax, result: SearchResult, rows: list[int], names, norm, mean, std):
    configs = [result.configs[r] for r in rows]
    xs, ys = ([c[name] for c in configs] for name in names)
    columns, row_values, matrix, tried = grid_matrix(xs, ys, mean[rows])
    spread = None if std is None else grid_matrix(xs, ys, std[rows])[2]
    best = None
    if result.best_index in rows:
        chosen = result.configs[result.best_index]
        best = (row_values.index(chosen[names[1]]), columns.index(chosen[names[0]]))
    return heatmap_panel(ax, columns, row_values, matrix, tried, norm, best=best, spread=spread)

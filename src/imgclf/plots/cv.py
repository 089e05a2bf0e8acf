"""The lecture's cross-validation picture: accuracy against k, one dot per fold."""

from __future__ import annotations

import os

import numpy as np

from imgclf.model_selection import SearchResult
from imgclf.plots._figure import new_figure, save

__all__ = ["cv_curve"]


def _series(result: SearchResult, x: str) -> dict[str, list[int]]:
    """Configuration rows grouped by everything except ``x`` (one curve each)."""
    groups: dict[str, list[int]] = {}
    for row, config in enumerate(result.configs):
        label = ", ".join(f"{v}" for k, v in config.items() if k != x) or "score"
        groups.setdefault(label, []).append(row)
    return groups


def cv_curve(
    result: SearchResult,
    path: str | os.PathLike | None = None,
    *,
    x: str = "k",
    title: str = "Cross-validation: accuracy against k",
):
    """Validation accuracy against ``x``: fold dots, mean line, ±1 std bars, best marked.

    Parameters
    ----------
    result : SearchResult
        From :func:`~imgclf.model_selection.sweep_knn` or ``cross_validate``.
    path : path, optional
        Where to write the PNG.
    x : str
        The hyperparameter on the horizontal axis; every other one gets its own colour.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure = new_figure(7, 4.5)
    ax = figure.add_subplot()
    for label, rows in _series(result, x).items():
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
        label=f"best: {_describe(result.best_params)} ({result.best_score:.3f})",
    )
    all_x = [c[x] for c in result.configs]
    if max(all_x) / max(min(all_x), 1e-12) >= 10:
        ax.set_xscale("log")
    ax.set(title=title, xlabel=x, ylabel="validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return save(figure, path)


def _draw_series(ax, xs: np.ndarray, scores: np.ndarray, label: str) -> None:
    order = np.argsort(xs)
    xs, scores = xs[order], scores[order]
    line = ax.errorbar(
        xs, scores.mean(axis=1), yerr=scores.std(axis=1), capsize=3, label=f"{label} (mean ± std)"
    )
    colour = line.lines[0].get_color()
    fold_x = np.repeat(xs, scores.shape[1])
    ax.scatter(fold_x, scores.ravel(), s=10, alpha=0.5, color=colour)


def _describe(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())

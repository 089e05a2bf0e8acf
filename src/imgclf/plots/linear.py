"""Pictures of linear classifiers: templates, loss curve, lr x reg grid, 2D decision regions.

Every function returns a matplotlib ``Figure`` built without pyplot (so no
window ever opens) and writes it as a PNG when ``path`` is given. A fitted
:class:`~sklearn.pipeline.Pipeline` is accepted wherever a classifier is: its
last step is the classifier.
"""

from __future__ import annotations

import math
import os

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.lines import Line2D

from imgclf._validation import final_estimator
from imgclf.plots._figure import BESIDE, literal, new_figure, save
from imgclf.plots._heatmap import grid_matrix, heatmap_panel

__all__ = ["decision_regions", "loss_curve", "lr_reg_grid", "templates"]

Path = str | os.PathLike | None


def _class_names(clf, classes) -> list[str]:
    names = final_estimator(clf).classes_ if classes is None else classes
    return [str(c) for c in names]


def _colours(n: int) -> list:
    """Class colours: k-NN's region palette when it is long enough (one look across a
    report), else tab10 / tab20."""
    from imgclf.plots.regions import PALETTE

    if n <= len(PALETTE):
        return PALETTE[:n]
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# --- templates ---------------------------------------------------------------------------


def templates(clf, image_shape, classes=None, path: Path = None):
    """One tile per class: its row of ``coef_`` (bias excluded) seen as an image.

    All tiles share one rescaling to 0-255 (the smallest weight black, the
    largest white), so their contrasts can be compared, as in CS231n. The
    weights are shown as learned, in the space of the classifier's input
    (after a pipeline's ``MeanImage``).

    Parameters
    ----------
    clf : fitted LinearClassifier or Pipeline ending in one
    image_shape : tuple of int
        ``(H, W, C)`` (or ``(H, W)``) of the images the classifier was fitted on.
    classes : sequence of str, optional
        Tile titles; default ``classes_``.
    path : path, optional
        Where to write the PNG.

    Returns
    -------
    matplotlib.figure.Figure
    """
    weights = np.asarray(final_estimator(clf).coef_, dtype=np.float64)
    images = weights.reshape(len(weights), *image_shape)
    low, high = images.min(), images.max()
    images = (255 * (images - low) / (high - low or 1)).astype(np.uint8)
    columns = min(len(images), 10)
    rows = math.ceil(len(images) / columns)
    figure = new_figure(1.3 * columns + 0.6, 1.5 * rows + 0.9)
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax, image, name in zip(axes.flat, images, _class_names(clf, classes), strict=False):
        _show_tile(ax, image, name)
    for ax in axes.flat[len(images) :]:
        ax.set_axis_off()
    figure.suptitle(
        "What each class's template looks like (its weights, all rescaled together to 0-255)"
    )
    return save(figure, path)


def _show_tile(ax, image: np.ndarray, name: str) -> None:
    grey = image.ndim == 2 or image.shape[-1] == 1
    ax.imshow(
        image.squeeze(-1) if image.ndim == 3 and grey else image,
        cmap="gray" if grey else None,
        vmin=0,
        vmax=255,
        interpolation="nearest",
    )
    ax.set_title(literal(name), fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


# --- loss curve --------------------------------------------------------------------------


def loss_curve(clf_or_history, path: Path = None):
    """Training loss at every step, with its moving average.

    Parameters
    ----------
    clf_or_history : fitted LinearClassifier, Pipeline, or array-like of float
        A classifier's ``loss_history_``, or the losses themselves. A
        classifier with a validation set also gets a second panel: validation
        accuracy per epoch.
    path : path, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    model = final_estimator(clf_or_history)
    losses = np.asarray(getattr(model, "loss_history_", clf_or_history), dtype=np.float64)
    val = np.asarray(getattr(model, "val_score_history_", []))
    figure = new_figure(6.4 * (1 + (len(val) > 0)) * 0.8, 4.0)
    axes = figure.subplots(1, 1 + (len(val) > 0), squeeze=False)[0]
    _draw_losses(axes[0], losses)
    if len(val):
        axes[1].plot(np.arange(1, len(val) + 1), val, marker="o")
        axes[1].set(title="Validation accuracy after each epoch", xlabel="epoch", ylabel="accuracy")
    name = getattr(model, "loss", None)
    figure.suptitle(f"Training loss ({name} loss)" if name else "Training loss")
    return save(figure, path)


def _draw_losses(ax, losses: np.ndarray) -> None:
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, alpha=0.35, linewidth=0.8, label="minibatch")
    window = max(1, len(losses) // 50)
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, label=f"mean of {window}")
    ax.set(title="Loss per step", xlabel="iteration (minibatch step)", ylabel="loss")
    ax.legend()


# --- learning rate x regularization ------------------------------------------------------


def lr_reg_grid(results: dict, path: Path = None):
    """Training and validation accuracy over the learning-rate x regularization grid.

    Parameters
    ----------
    results : dict of (float, float) to (float, float)
        ``(learning_rate, reg) -> (train_accuracy, val_accuracy)``, as
        returned by :func:`imgclf.linear.lr_reg_search` (NaN: diverged).
    path : path, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two heat maps sharing one colour scale, a cell per pair tried, ticks
        at the values tried; the best validation cell is framed in red.
    """
    lrs, regs, scores = _grid_arrays(results)
    norm = Normalize(*_range(scores[np.isfinite(scores)]))
    columns, rows = sorted(set(lrs)), sorted(set(regs))
    figure = new_figure(
        2 * max(3.2, 1.1 * len(columns) + 1.6) + 1.2, max(3.4, 0.7 * len(rows) + 2.4)
    )
    axes = figure.subplots(1, 2, sharex=True, sharey=True)
    val = scores[:, 1]
    best = int(np.nanargmax(val)) if np.isfinite(val).any() else None
    for column, (ax, title) in enumerate(zip(axes, ("Training", "Validation"), strict=True)):
        _, _, matrix, tried = grid_matrix(lrs, regs, scores[:, column])
        cell = (
            None
            if best is None or column == 0
            else (rows.index(regs[best]), columns.index(lrs[best]))
        )
        image = heatmap_panel(ax, columns, rows, matrix, tried, norm, best=cell)
        ax.set(title=f"{title} accuracy", xlabel="learning rate")
    axes[0].set_ylabel("regularization strength")
    if best is not None:
        axes[1].set_title(
            f"Validation accuracy\n(best {val[best]:.3f}: learning rate "
            f"{lrs[best]:g}, reg {regs[best]:g}, framed in red)"
        )
    figure.colorbar(image, ax=axes, label="accuracy", pad=0.02, fraction=0.05)
    figure.suptitle("Accuracy for each learning rate and regularization strength")
    return save(figure, path)


def _grid_arrays(results: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Learning rates ``(m,)``, regs ``(m,)`` and (train, val) accuracies ``(m, 2)``."""
    keys = list(results)
    lrs, regs = (np.array([key[i] for key in keys], dtype=float) for i in (0, 1))
    return lrs, regs, np.array([results[key] for key in keys], dtype=float).reshape(-1, 2)


def _range(values: np.ndarray) -> tuple[float, float]:
    return (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)


# --- 2D decision regions -----------------------------------------------------------------


def decision_regions(clf, X2d, y, path: Path = None, classes=None, resolution: int = 300):
    """Coloured class regions of a classifier of 2D points, its hyperplanes and the data.

    Parameters
    ----------
    clf : fitted classifier (or Pipeline) of 2D points
        Regions come from ``predict``; if the final step has ``coef_`` and
        ``intercept_``, each class's hyperplane ``w_c . x + b_c = 0`` is drawn
        as a line in that class's colour (straight for a linear model after an
        affine preprocessing such as ``MeanImage``).
    X2d : ndarray, shape (n, 2)
    y : ndarray, shape (n,)
        Labels in ``clf.classes_``.
    path : path, optional
    classes : sequence of str, optional
        Legend names, default ``classes_``.
    resolution : int, default=300
        Grid points along each axis.

    Returns
    -------
    matplotlib.figure.Figure
    """
    X2d, y = np.asarray(X2d, dtype=np.float64), np.asarray(y)
    known = final_estimator(clf).classes_
    names, colours = _class_names(clf, classes), _colours(len(known))
    mesh = _grid(X2d, resolution)
    grid = np.column_stack([mesh[0].ravel(), mesh[1].ravel()])
    region = np.searchsorted(known, clf.predict(grid)).reshape(mesh[0].shape)
    figure = new_figure(8.0, 5.6)
    ax = figure.subplots()
    levels = np.arange(len(known) + 1) - 0.5  # one band per class index
    ax.contourf(*mesh, region, levels=levels, colors=colours, alpha=0.25)
    lines = _hyperplanes(ax, clf, grid, mesh, colours, names)
    for index, (colour, name) in enumerate(zip(colours, names, strict=True)):
        mine = y == known[index]
        style = dict(color=colour, edgecolors="k", linewidths=0.4, s=18)
        ax.scatter(X2d[mine, 0], X2d[mine, 1], label=literal(name), **style)
    # beside the axes: a legend inside could hide points or a boundary
    handles = ax.get_legend_handles_labels()[0] + lines
    ax.legend(handles=handles, fontsize=8, **BESIDE)
    accuracy = np.mean(clf.predict(X2d) == y)
    lines_too = _lines_note(len(lines), _linear_lines(clf))
    ax.set(
        title=f"Which class is predicted where{lines_too}\n"
        f"(accuracy on these points: {accuracy:.2f})",
        xlabel="x₁",
        ylabel="x₂",
    )
    return save(figure, path)


def _grid(X2d: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    low, high = X2d.min(axis=0), X2d.max(axis=0)
    pad = 0.1 * (high - low) + 1e-9
    axes = [np.linspace(low[i] - pad[i], high[i] + pad[i], resolution) for i in (0, 1)]
    return np.meshgrid(*axes)


def _hyperplanes(ax, clf, grid, mesh, colours, names) -> list:
    """Zero lines of each class score; legend handles for those inside the picture."""
    scores = _linear_scores(clf, grid)
    if scores is None:
        return []
    handles = []
    for c in range(scores.shape[1]):
        level = scores[:, c].reshape(mesh[0].shape)
        if level.min() < 0 < level.max():  # the line crosses the picture
            ax.contour(*mesh, level, levels=[0], colors=[colours[c]], linewidths=2, linestyles="--")
            # a binary scikit-learn model has one row: the boundary between the two classes
            label = literal(names[c]) if scores.shape[1] > 1 else "boundary"
            handles.append(
                Line2D([], [], color=colours[c], linestyle="--", label=f"{label}: w·x + b = 0")
            )
    return handles


def _lines_note(drawn: int, total: int) -> str:
    """What the title says of the class lines: drawn, partly outside, or none in sight."""
    if total == 0:
        return ""
    if drawn == 0:
        return ";\nno class's line w·x + b = 0 crosses the picture"
    note = ", and each class's line w·x + b = 0 (dashed)"
    missed = total - drawn
    return note + (f";\n{missed} of them outside the picture" if missed else "")


def _linear_lines(clf) -> int:
    """How many class lines a linear model has (rows of ``coef_``); 0 for other models."""
    return len(np.atleast_2d(getattr(final_estimator(clf), "coef_", np.empty((0, 0)))))


def _linear_scores(clf, grid) -> np.ndarray | None:
    """``coef_ @ features + intercept_`` per class, features after the pipeline's transforms."""
    model = final_estimator(clf)
    if not (hasattr(model, "coef_") and hasattr(model, "intercept_")):
        return None
    features = grid
    for _, step in getattr(clf, "steps", [])[:-1]:
        features = step.transform(features)
    return (
        np.asarray(features, dtype=np.float64) @ np.asarray(model.coef_, np.float64).T
        + model.intercept_
    )

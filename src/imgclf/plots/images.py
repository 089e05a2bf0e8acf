"""Pictures of images: sample grids, nearest neighbours, distance matrices, confusion."""

from __future__ import annotations

import numpy as np

from imgclf.plots._figure import literal, new_figure, save

__all__ = ["confusion", "distances", "neighbours", "samples"]


def _show(ax, image: np.ndarray) -> None:
    """One uint8 image ``(H, W, C)`` on ``ax``, greyscale when C = 1, without ticks."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def samples(
    images: np.ndarray,
    labels: np.ndarray,
    classes,
    path=None,
    *,
    per_class: int = 8,
    seed: int = 0,
    title: str = "Training images, a row per class",
):
    """A grid of training images: one row per class, ``per_class`` random examples each.

    Parameters
    ----------
    images : ndarray of uint8, shape (n, H, W, C)
    labels : ndarray of int, shape (n,)
    classes : sequence of str
    """
    rng = np.random.default_rng(seed)
    figure = new_figure(per_class * 0.9 + 1.2, len(classes) * 0.9 + 0.6)
    grid = figure.subplots(len(classes), per_class, squeeze=False)
    for row, name in enumerate(classes):
        members = np.flatnonzero(labels == row)
        chosen = rng.choice(members, min(per_class, len(members)), replace=False)
        for col, ax in enumerate(grid[row]):
            if col < len(chosen):
                _show(ax, images[chosen[col]])
            else:
                ax.axis("off")
        grid[row, 0].set_ylabel(literal(name), rotation=0, ha="right", va="center")
    figure.suptitle(literal(title))
    return save(figure, path)


def neighbours(
    query_images: np.ndarray,
    query_labels: np.ndarray,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    neighbor_index: np.ndarray,
    classes,
    path=None,
    *,
    title: str = "Test images and their nearest training images",
):
    """Each test image (left) followed by its nearest training images, matches framed green.

    Parameters
    ----------
    query_images : ndarray of uint8, shape (m, H, W, C)
    query_labels : ndarray of int, shape (m,)
    train_images : ndarray of uint8, shape (n, H, W, C)
    train_labels : ndarray of int, shape (n,)
    neighbor_index : ndarray of int, shape (m, k)
        Training rows, nearest first (from ``kneighbors``).
    """
    m, k = neighbor_index.shape
    figure = new_figure((k + 1) * 0.9 + 1.5, m * 0.95 + 0.8)
    grid = figure.subplots(m, k + 1, squeeze=False)
    for row in range(m):
        _show(grid[row, 0], query_images[row])
        name = literal(classes[query_labels[row]])
        grid[row, 0].set_ylabel(name, rotation=0, ha="right", va="center")
        for col, train_row in enumerate(neighbor_index[row], start=1):
            _show(grid[row, col], train_images[train_row])
            same = train_labels[train_row] == query_labels[row]
            _frame(grid[row, col], "tab:green" if same else "tab:red")
    grid[0, 0].set_title("test")
    for col in range(1, k + 1):
        grid[0, col].set_title(f"#{col}", fontsize="small")
    figure.suptitle(f"{literal(title)} (green frame: same class, red frame: another class)")
    return save(figure, path)


def _frame(ax, colour: str) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)


def confusion(matrix: np.ndarray, classes, path=None, *, title: str = "Confusion matrix"):
    """Heat map of a ``(C, C)`` confusion matrix (rows: true class, columns: predicted)."""
    n = len(classes)
    figure = new_figure(max(5, 0.55 * n + 2.5), max(4.5, 0.5 * n + 2))
    ax = figure.add_subplot()
    shown = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(shown, ax=ax, label="test images")
    names = [literal(name) for name in classes]
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    if n <= 20:
        limit = matrix.max() / 2
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize="medium" if n <= 10 else "x-small",
                color="white" if count > limit else "black",
            )
    ax.set(title=literal(title), xlabel="predicted class", ylabel="true class")
    return save(figure, path)


def distances(
    matrix: np.ndarray,
    path=None,
    *,
    title: str = "Test-by-train distances",
    row_label: str = "test image",
    column_label: str = "training image",
):
    """A ``(m, n)`` distance matrix as an image (dark = near)."""
    figure = new_figure(7, 4.5)
    ax = figure.add_subplot()
    shown = ax.imshow(matrix, cmap="viridis", aspect="auto", interpolation="nearest")
    figure.colorbar(shown, ax=ax, label="distance")
    ax.set(title=title, xlabel=column_label, ylabel=row_label)
    return save(figure, path)

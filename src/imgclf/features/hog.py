"""Histograms of oriented gradients (HOG) of the grey image, for whole blocks of images."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from imgclf._validation import check_choice, check_int
from imgclf.features._images import ImageFeatures, as_float, check_n_jobs

__all__ = ["BLOCK_NORMS", "HOG"]

GREY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])  # ITU-R BT.709 luma, as skimage's rgb2gray
EPS = 1e-5  # keeps block normalization finite on flat regions (skimage's value)


def _grey(images: np.ndarray) -> np.ndarray:
    """Grey levels ``(n, H, W)`` in [0, 1]: BT.709 luma of RGB, as ``skimage.color.rgb2gray``."""
    channels = images.shape[-1]
    if channels == 1:
        return as_float(images[..., 0])
    if channels != 3:
        raise ValueError(f"HOG needs greyscale (C=1) or RGB (C=3) images; got C={channels}")
    return as_float(images) @ GREY_WEIGHTS


BLOCK_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys", None)


class HOG(ImageFeatures):
    """Histograms of oriented gradients (Dalal & Triggs, 2005) of the grey image.

    1. Grey level: BT.709 luma of RGB in [0, 1] (``skimage.color.rgb2gray``).
    2. Gradients by central differences ``[-1, 0, 1]``, 0 on the border.
    3. Each square cell of ``pixels_per_cell`` pixels gets a histogram of its
       gradient orientations, unsigned (0-180 degrees) in ``orientations``
       equal bins, each pixel voting its gradient magnitude into its bin
       (hard binning, no interpolation), divided by the cell's area.
    4. Blocks of ``cells_per_block`` x ``cells_per_block`` cells, one at every
       cell position, are normalized by ``block_norm`` and concatenated.

    This is ``skimage.feature.hog(rgb2gray(image), orientations,
    (pixels_per_cell,) * 2, (cells_per_block,) * 2, block_norm)``, computed
    for a whole block of images at once in NumPy; the tests check equality
    to 1e-6 (scikit-image sums cells in float32). ``block_norm=None`` skips
    step 4 and returns the cell histograms themselves, like CS231n's
    ``hog_feature`` (which differs in details: one-sided differences, other
    grey weights, bins shifted by 90 degrees).

    Parameters
    ----------
    orientations : int, default=9
        Orientation bins over 0-180 degrees.
    pixels_per_cell : int, default=8
        Side of a square cell; pixels beyond the last whole cell are ignored.
    cells_per_block : int, default=2
        Side of a square block, in cells.
    block_norm : {"L2-Hys", "L2", "L1", "L1-sqrt", None}, default="L2-Hys"
        ``L2-Hys``: L2-normalize, clip at 0.2, L2-normalize again (Dalal &
        Triggs' choice); None: no normalization.
    image_shape : tuple of int, optional
        ``(H, W, C)`` or ``(H, W)``; needed only for flattened rows.
    n_jobs : int, optional
        Threads (default: every core).

    Notes
    -----
    Output length: ``B_r * B_c * cells_per_block**2 * orientations`` with
    ``B = H // pixels_per_cell - cells_per_block + 1`` blocks per side, or
    ``(H // cell) * (W // cell) * orientations`` without normalization. For
    32x32 images and the defaults: 3 x 3 blocks x 36 = 324.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((1, 16, 16, 1), np.uint8)
    >>> image[:, :, 8:] = 255                       # one vertical edge
    >>> cells = HOG(block_norm=None).fit_transform(image).reshape(2, 2, 9)
    >>> int(cells[0, 0].argmax()), int(cells[0, 1].argmax())   # bin of 0 degrees
    (0, 0)
    """

    def __init__(
        self,
        orientations=9,
        pixels_per_cell=8,
        cells_per_block=2,
        block_norm="L2-Hys",
        image_shape=None,
        n_jobs=None,
    ):
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.image_shape = image_shape
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        check_int("orientations", self.orientations, low=1)
        check_int("pixels_per_cell", self.pixels_per_cell, low=1)
        check_int("cells_per_block", self.cells_per_block, low=1)
        check_choice("block_norm", self.block_norm, BLOCK_NORMS)
        check_n_jobs(self.n_jobs)

    def _check_fits(self, shape: tuple) -> None:
        cells = min(shape[0], shape[1]) // self.pixels_per_cell
        needed = 1 if self.block_norm is None else self.cells_per_block
        if cells < needed:
            side = needed * self.pixels_per_cell
            raise ValueError(
                f"images of {shape[0]}x{shape[1]} pixels are too small for "
                f"HOG(pixels_per_cell={self.pixels_per_cell}, cells_per_block="
                f"{self.cells_per_block}): need at least {side}x{side}"
            )

    def _features(self, images: np.ndarray) -> np.ndarray:
        cells = _cell_histograms(_grey(images), self.orientations, self.pixels_per_cell)
        if self.block_norm is not None:
            cells = _normalized_blocks(cells, self.cells_per_block, self.block_norm)
        return cells.reshape(len(images), -1).astype(np.float32)


def _gradients(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences along rows and columns of ``(n, H, W)``; 0 on the border."""
    g_row, g_col = np.zeros_like(grey), np.zeros_like(grey)
    np.subtract(grey[:, 2:], grey[:, :-2], out=g_row[:, 1:-1])
    np.subtract(grey[:, :, 2:], grey[:, :, :-2], out=g_col[:, :, 1:-1])
    return g_row, g_col


def _orientation_bins(g_row: np.ndarray, g_col: np.ndarray, orientations: int) -> np.ndarray:
    """Bin of every unsigned gradient orientation; ``orientations`` marks none.

    The angle and the bin edges are computed exactly as scikit-image does
    (degrees modulo 180; edges in float32), so pixels on an edge land in the
    same bin, and an angle past the last float32 edge in none, as there.
    """
    angle = np.arctan2(g_row, g_col)
    np.rad2deg(angle, out=angle)
    np.remainder(angle, 180, out=angle)
    width = np.float32(180.0 / orientations)
    upper = (width * np.arange(1, orientations + 1, dtype=np.float32)).astype(np.float64)
    return np.searchsorted(upper, angle, side="right")


def _cell_histograms(grey: np.ndarray, orientations: int, cell: int) -> np.ndarray:
    """Magnitude-weighted orientation histograms ``(n, H // cell, W // cell, orientations)``.

    One ``bincount`` over (image, cell, bin) indices does every histogram at
    once; pixels outside whole cells or bins go to a discarded extra slot.
    """
    n, height, width = grey.shape
    rows, cols = height // cell, width // cell
    g_row, g_col = _gradients(grey)
    magnitude = np.hypot(g_col, g_row)
    index = _orientation_bins(g_row, g_col, orientations)
    bins, slots = orientations + 1, rows * cols + 1
    r, c = np.arange(height) // cell, np.arange(width) // cell
    cell_of = np.where((r[:, None] < rows) & (c < cols), r[:, None] * cols + c, slots - 1)
    index += (np.arange(n)[:, None, None] * slots + cell_of) * bins
    sums = np.bincount(index.ravel(), weights=magnitude.ravel(), minlength=n * slots * bins)
    sums = sums.reshape(n, slots, bins)[:, :-1, :-1] / (cell * cell)
    return sums.reshape(n, rows, cols, orientations)


def _normalized_blocks(cells: np.ndarray, block: int, method: str) -> np.ndarray:
    """Every ``block`` x ``block`` window of cells, normalized: ``(n, B_r, B_c, b, b, o)``."""
    windows = sliding_window_view(cells, (block, block), axis=(1, 2))
    blocks = windows.transpose(0, 1, 2, 4, 5, 3)  # skimage's order: block row, col, bin
    axes = (3, 4, 5)
    if method.startswith("L1"):
        out = blocks / (np.abs(blocks).sum(axis=axes, keepdims=True) + EPS)
        return np.sqrt(out) if method == "L1-sqrt" else out
    out = _l2_normalized(blocks, axes)
    if method == "L2-Hys":
        out = _l2_normalized(np.minimum(out, 0.2), axes)
    return out


def _l2_normalized(blocks: np.ndarray, axes: tuple) -> np.ndarray:
    return blocks / np.sqrt((blocks * blocks).sum(axis=axes, keepdims=True) + EPS**2)

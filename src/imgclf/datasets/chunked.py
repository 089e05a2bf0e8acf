"""Rows of a lazy array, walked a window of whole chunks at a time under a memory budget.

A *lazy* array (a :class:`~imgclf.datasets.store.StoredArray`, or anything with
``lazy = True``, ``chunk_rows``, ``row_bytes``, ``take(rows)`` and ``read(lo, hi)``)
is read the way its chunks lie on disk: each window holds as many whole chunks as
fit in half the budget (:func:`~imgclf.datasets.store.in_memory_bytes` by default:
the next window is read while the caller may still hold the last one), so every
chunk file is read once per pass however the rows are ordered.

What uses it:

``windows``        the rows asked for, a window of whole chunks at a time: validation
                   accuracy, column sums
``blocks``         consecutive rows in blocks of bounded bytes: scoring, evaluation
``column_sums``    float64 sums of the rows (or of their squared deviations), for the
                   standardization of out-of-core training
``shuffled_windows``  one epoch's order: windows of blocks of ~1 MiB of consecutive rows,
                   each spanning the whole array, in a seeded random order, rows shuffled
                   within each window (see :func:`shuffled_windows`)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from imgclf.datasets.store import in_memory_bytes

__all__ = [
    "blocks",
    "column_sums",
    "fits_in_memory",
    "is_lazy",
    "shuffled_windows",
    "windows",
]

FLOAT64_BLOCK_BYTES = 32 * 2**20  # a float64 copy of this many bytes at a time in sums
# An epoch shuffles blocks of consecutive rows of about this size, not whole 16 MiB chunks:
# a folder's store holds its images class by class, and a window of a few chunks would be
# a few classes (2 epochs on CIFAR-10 with windows of one chunk: 0.22 accuracy, against
# 0.32 in memory); 1 MiB reads still stream from disk.
SHUFFLE_BLOCK_BYTES = 2**20


def is_lazy(X) -> bool:
    """Whether ``X`` is an on-disk array read in chunks (``X.lazy``)."""
    return bool(getattr(X, "lazy", False))


def fits_in_memory(X, budget: int | None = None) -> bool:
    """Whether reading all of lazy ``X`` stays within ``budget`` bytes (default: the limit)."""
    return X.nbytes <= in_memory_bytes(budget)


def _chunks_per_window(X, budget: int | None) -> int:
    return max(1, in_memory_bytes(budget) // 2 // max(1, X.chunk_rows * X.row_bytes))


def windows(
    X, rows: np.ndarray, *, budget: int | None = None, chunk_order: np.ndarray | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(positions, block)`` per window: ``block == X[rows[positions]]``.

    Parameters
    ----------
    X : lazy array, shape (n, ...)
    rows : ndarray of int, shape (m,)
        The rows wanted (any order, no repeats needed).
    budget : int, optional
        Bytes of ``X`` two windows may hold (whole chunks; at least one chunk each).
    chunk_order : ndarray of int, optional
        The chunks (those holding ``rows``) in the order to visit them; ascending
        if None.

    Yields
    ------
    positions : ndarray of int
        Indices into ``rows`` of the rows in this window, ascending.
    block : ndarray, shape (len(positions), ...)
        Their values, each chunk file read once.
    """
    rows = np.asarray(rows, dtype=np.int64)
    chunk_of = rows // X.chunk_rows
    order = np.unique(chunk_of) if chunk_order is None else np.asarray(chunk_order)
    per_window = _chunks_per_window(X, budget)
    for first in range(0, len(order), per_window):
        positions = np.flatnonzero(np.isin(chunk_of, order[first : first + per_window]))
        yield positions, X.take(rows[positions])


def shuffled_windows(
    X, rows: np.ndarray, rng: np.random.Generator, *, budget: int | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One epoch over ``rows`` of lazy ``X`` in a seeded order that reads each row once.

    The rows of ``X`` are cut into *blocks* of ``r = max(1, SHUFFLE_BLOCK_BYTES //
    X.row_bytes)`` consecutive rows (block ``b``: rows ``b*r .. b*r + r - 1``). The
    ``B`` blocks that hold ``rows`` (ascending) are dealt into ``W`` windows of at most
    ``p`` blocks each (``p`` blocks fit in half the budget, ``W = ceil(B / p)``) so that
    every window spans the whole array: the blocks are cut into ``p`` *strata* of ``W``
    consecutive blocks (the last one shorter), and window ``w`` takes the ``w``-th block
    of each stratum after ``rng.permuted`` shuffles every stratum (one call, on the
    ``(p, W)`` table of blocks, padded with -1). The windows are then visited in the
    order ``rng.permutation(W)``, and each window's rows in the order
    ``rng.permutation`` of their count. A set stored class by class (a folder's store)
    thus gives every window about the set's class proportions, every row comes once an
    epoch, and each block is one read of consecutive bytes.

    Yields
    ------
    rows : ndarray of int
        The window's rows of ``X``, ascending.
    block : ndarray, shape (len(rows), ...)
        ``X[rows]``.
    order : ndarray of int
        The shuffled order to visit them in: positions in ``block`` (no copy of
        the window is made in that order).
    """
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    per_block = max(1, SHUFFLE_BLOCK_BYTES // max(1, X.row_bytes))
    block_of = rows // per_block
    held = np.unique(block_of)
    per_window = max(1, in_memory_bytes(budget) // 2 // (per_block * max(1, X.row_bytes)))
    n_windows = -(-len(held) // per_window)
    table = np.full(per_window * n_windows, -1, np.int64)
    table[: len(held)] = held
    table = rng.permuted(table.reshape(per_window, n_windows), axis=1)
    for w in rng.permutation(n_windows):
        chosen = rows[np.isin(block_of, table[:, w][table[:, w] >= 0])]
        yield chosen, _read_by_blocks(X, chosen, per_block), rng.permutation(len(chosen))


def _read_by_blocks(X, rows: np.ndarray, per_block: int) -> np.ndarray:
    """``X[rows]`` for ascending ``rows``: one read of each block of rows they touch."""
    out = np.empty((len(rows), *X.shape[1:]), X.dtype)
    block_of = rows // per_block
    bounds = np.flatnonzero(np.diff(block_of, prepend=-1, append=-2))
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        lo = int(block_of[a]) * per_block
        out[a:b] = X.read(lo, min(lo + per_block, len(X)))[rows[a:b] - lo]
    return out


def blocks(
    X,
    *,
    rows: int | None = None,
    row_bytes: int | None = None,
    max_bytes: int = 64 * 2**20,
    max_rows: int = 4096,
):
    """``(start, block)`` over consecutive rows of ``X``: ``rows`` at a time, or blocks of
    at most ``max_bytes`` (and ``max_rows``).

    ``row_bytes`` is what one row costs the caller (e.g. 8 bytes a value for a
    float64 copy); ``X.row_bytes`` if None.
    """
    step = rows or max(1, min(max_rows, max_bytes // max(1, row_bytes or X.row_bytes)))
    for start in range(0, len(X), step):
        yield start, X[start : start + step]


def column_sums(
    X, rows: np.ndarray, centre: np.ndarray | None = None, *, budget: int | None = None
) -> np.ndarray:
    """Float64 column sums of ``X[rows]`` ``(n, d)``, or of ``(X[rows] - centre) ** 2``.

    Read a window at a time and summed in float64 blocks of
    :data:`FLOAT64_BLOCK_BYTES`: no copy of the data beyond one window.
    """
    total = np.zeros(X.shape[1])
    step = max(1, FLOAT64_BLOCK_BYTES // (8 * X.shape[1]))
    for _, block in windows(X, rows, budget=budget):
        for start in range(0, len(block), step):
            values = block[start : start + step].astype(np.float64)
            if centre is not None:
                values -= centre
                values *= values
            total += values.sum(axis=0)
    return total

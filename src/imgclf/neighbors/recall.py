"""How much of the true neighbourhood an approximate search found."""

from __future__ import annotations

import numpy as np

__all__ = ["recall"]


def recall(approx_indices, exact_indices, k: int | None = None) -> float:
    """Recall@k: the mean fraction of each query's true ``k`` nearest that were found.

    Parameters
    ----------
    approx_indices : array-like of int, shape (m, k_approx)
        Neighbours an approximate index returned, best first.
    exact_indices : array-like of int, shape (m, k_exact)
        The exact neighbours, best first.
    k : int, optional
        Compare the first ``k`` columns of each (default: all of ``exact_indices``;
        ``approx_indices`` needs at least ``k`` columns).

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> recall([[3, 1], [5, 6]], [[1, 3], [5, 7]])
    0.75
    """
    approx, exact = np.asarray(approx_indices), np.asarray(exact_indices)
    if approx.ndim != 2 or exact.ndim != 2 or len(approx) != len(exact):
        raise ValueError(
            f"recall needs two (m, k) index arrays with the same rows; got shapes "
            f"{approx.shape} and {exact.shape}"
        )
    k = exact.shape[1] if k is None else k
    if not 1 <= k <= min(approx.shape[1], exact.shape[1]):
        raise ValueError(
            f"k must be in 1..{min(approx.shape[1], exact.shape[1])} (the columns of both); got {k}"
        )
    if not len(exact):
        return float("nan")
    hits = sum(
        _hits(approx[lo : lo + 1024, :k], exact[lo : lo + 1024, :k])
        for lo in range(0, len(exact), 1024)
    )
    return hits / exact[:, :k].size


def _hits(approx: np.ndarray, exact: np.ndarray) -> int:
    """Exact ids that also occur in their row of ``approx`` (an (m, k, k) comparison)."""
    return int((exact[:, :, None] == approx[:, None, :]).any(axis=2).sum())

"""The k-NN sweep on a lazy array above the in-memory limit: every fold searched from disk
in windows of chunks, with the in-memory sweep's neighbours and scores, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.datasets.store import IN_MEMORY_ENV, StoreWriter, open_store
from imgclf.errors import DatasetError
from imgclf.model_selection import sweep_knn, train_val_split
from imgclf.model_selection.streamed import fold_neighbors
from imgclf.neighbors import ExactIndex


@pytest.fixture(params=[7])
def lazy(tmp_path, monkeypatch, request):
    """(StoredArray of 150 flat rows in chunks of ``param`` rows, the same in memory, labels).

    Values 0..3 in 6 dimensions: many rows at equal distances, so ties decide neighbours.
    """
    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, (150, 6), dtype=np.uint8)
    y = rng.integers(0, 3, 150)
    with StoreWriter(tmp_path / "s.zarr") as store:
        store.array("x", (6,), np.uint8, chunk_rows=request.param).append(X)
        store.publish({})
    monkeypatch.setenv(IN_MEMORY_ENV, "200")  # 900 bytes on disk: lazy; windows of 1 chunk
    return open_store(tmp_path / "s.zarr")[1]["x"], X, y


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_fold_neighbors_equal_the_in_memory_search_in_any_train_order(lazy, metric):
    stored, X, _ = lazy
    rng = np.random.default_rng(1)
    order = rng.permutation(150)
    train, held_out = order[:110], order[110:]  # shuffled, as a held-out split gives them
    dist, positions = fold_neighbors(stored, train, held_out, metric, 9)
    want_dist, want_positions = ExactIndex(X[train], metric).search(X[held_out], 9)
    np.testing.assert_array_equal(positions, want_positions)
    np.testing.assert_array_equal(dist, want_dist)
    ties = np.diff(dist, axis=1) == 0
    assert ties.mean() > 0.3  # the tie rule is exercised, not avoided


@pytest.mark.parametrize("lazy", [40], indirect=True)  # 4 chunks: 16 searches a fold
def test_the_sweep_from_disk_equals_the_in_memory_sweep(lazy):
    stored, X, y = lazy
    grid = {"ks": [1, 4, 9], "metrics": ("l1", "l2"), "weights": ("uniform", "distance")}
    for folds in (5, [train_val_split(y, 0.3, seed=3)]):
        on_disk = sweep_knn(stored, y, **grid, folds=folds, seed=2)
        in_memory = sweep_knn(X, y, **grid, folds=folds, seed=2)
        assert on_disk.configs == in_memory.configs
        np.testing.assert_array_equal(on_disk.scores, in_memory.scores)


def test_only_exact_search_sweeps_a_set_larger_than_memory(lazy):
    stored, _, y = lazy
    with pytest.raises(DatasetError, match="algorithm='ivf' cannot sweep a dataset larger"):
        sweep_knn(stored, y, [1], algorithm="ivf")

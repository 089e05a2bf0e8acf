"""StreamedIndex: exact search over a store read block by block equals the in-memory engine
(no Dask needed)."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.datasets.store import StoreWriter, open_store
from imgclf.neighbors import ExactIndex, StreamedIndex
from tests.distributed.conftest import tied_pixels


@pytest.fixture
def stored(tmp_path):
    rng = np.random.default_rng(0)
    images = tied_pixels(rng, 700, 4 * 4 * 3).reshape(700, 4, 4, 3)
    with StoreWriter(tmp_path / "s.zarr") as store:
        store.array("images", (4, 4, 3), np.uint8, chunk_rows=64).append(images)
        store.publish({})
    return images, open_store(tmp_path / "s.zarr")[1]["images"]


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("block_bytes", [48, 48 * 100, 10**9])  # 1 row, 100 rows, everything
def test_streamed_search_equals_the_in_memory_engine(stored, metric, block_bytes):
    images, lazy = stored
    queries = images[::50]
    index = StreamedIndex(lazy, metric, block_bytes=block_bytes)
    local = ExactIndex(images, metric)
    for k in (1, 10, 700):
        got, expected = index.search(queries, k), local.search(queries, k)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


def test_streamed_search_takes_plain_arrays_and_checks_its_arguments(stored):
    images, _ = stored
    index = StreamedIndex(images.reshape(700, -1), "l1", block_bytes=4096)
    assert index.block_rows == 4096 // 48 and len(index) == 700
    with pytest.raises(ValueError, match="k must be <= 700"):
        index.search(images[:1], 701)
    with pytest.raises(ValueError, match="queries have 47 features but the database has 48"):
        index.search(np.zeros((1, 47), np.uint8), 1)

"""StreamedIndex: exact and IVF search over a store read block by block equal the in-memory
indexes (no Dask needed)."""

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


@pytest.mark.parametrize("metric", ["l1", "l2"])
@pytest.mark.parametrize("block_bytes", [48 * 7, 48 * 300, 10**9])
def test_streamed_ivf_equals_the_in_memory_ivf(stored, metric, block_bytes):
    """The same cells (fitted on IVFIndex's sample), the same lists, the same answers,
    the probing of further lists when the probed ones hold fewer than k rows included."""
    from imgclf.neighbors import IVFIndex

    images, lazy = stored
    settings = {"n_lists": 16, "n_probe": 2, "seed": 3}
    index = StreamedIndex(lazy, metric, algorithm="ivf", block_bytes=block_bytes, **settings)
    local = IVFIndex(images, metric, **settings)
    for name, array in local.to_arrays().items():
        np.testing.assert_array_equal(index.to_arrays()[name], array, err_msg=name)
    queries = images[::50]
    for n_probe, k in ((2, 1), (2, 10), (1, 200), (16, 5)):
        index.n_probe = local.n_probe = n_probe
        got, expected = index.search(queries, k), local.search(queries, k)
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
    again = StreamedIndex(lazy, metric, algorithm="ivf", layout=index.to_arrays(), n_probe=2)
    np.testing.assert_array_equal(again.labels, index.labels)  # a model file's lists, no fit


def test_streamed_ivf_checks_its_arguments(stored):
    images, lazy = stored
    with pytest.raises(ValueError, match="algorithm"):
        StreamedIndex(lazy, "l2", algorithm="hnsw")
    with pytest.raises(ValueError, match="fewer than n_lists=701"):
        StreamedIndex(lazy, "l2", algorithm="ivf", n_lists=701)
    with pytest.raises(ValueError, match="no arrays"):
        StreamedIndex(lazy, "l2").to_arrays()

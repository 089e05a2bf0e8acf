"""A fitted transformer applied to a lazy array chunk by chunk (TransformedArray) or written
to a store (transform_to_store): the values of transforming the whole array in memory."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf.datasets.store import IN_MEMORY_ENV, StoreWriter, open_store
from imgclf.datasets.transformed import TransformedArray, transform_to_store
from imgclf.errors import DatasetError
from imgclf.preprocessing import MeanImage


@pytest.fixture(scope="module")
def pixels(tmp_path_factory):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (203, 4, 4, 3), dtype=np.uint8)
    with StoreWriter(tmp_path_factory.mktemp("t") / "pixels.zarr") as store:
        store.array("images", (4, 4, 3), np.uint8, chunk_rows=16).append(images)
        path = store.publish({})
    return images, open_store(path)[1]["images"]


def test_a_transformed_view_reads_what_the_in_memory_transform_gives(pixels):
    images, lazy = pixels
    mean = MeanImage(scale="std").fit(images)
    expected = mean.transform(images)
    view = TransformedArray(lazy, mean)
    assert view.shape == expected.shape and view.dtype == np.float32 and view.lazy
    np.testing.assert_array_equal(view[:], expected)
    np.testing.assert_array_equal(view[20:37], expected[20:37])
    rows = np.array([202, 0, 17, 17, 150])
    np.testing.assert_array_equal(view.take(rows), expected[rows])
    np.testing.assert_array_equal(view[5], expected[5])
    np.testing.assert_array_equal(np.concatenate([b for _, b in view.chunks()]), expected)


def test_features_are_written_to_a_store_chunk_by_chunk(pixels, tmp_path, monkeypatch):
    images, lazy = pixels
    mean = MeanImage().fit(images)
    monkeypatch.setattr("imgclf.datasets.transformed.TRANSFORM_BLOCK_BYTES", 48 * 4 * 10)
    stored = transform_to_store(lazy, mean, tmp_path / "f.zarr", attributes={"of": "pixels"})
    np.testing.assert_array_equal(stored[:], mean.transform(images))
    assert stored.chunk_rows >= 1 and stored.dtype == np.float32
    assert open_store(tmp_path / "f.zarr")[0] == {"of": "pixels"}
    zarr = pytest.importorskip("zarr")  # a standard Zarr v3 array, as the pixels are
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "f.zarr/features")[:], stored[:])
    # an in-memory array goes to a store just as well
    again = transform_to_store(images, mean, tmp_path / "g.zarr")
    np.testing.assert_array_equal(again[:], stored[:])


def test_a_transformed_view_is_refused_whole_above_the_limit(pixels, monkeypatch):
    images, lazy = pixels
    view = TransformedArray(lazy, MeanImage().fit(images))
    monkeypatch.setenv(IN_MEMORY_ENV, str(view.nbytes - 1))
    with pytest.raises(DatasetError, match="transform_to_store"):
        np.asarray(view)


def test_a_transformer_that_does_not_map_rows_to_rows_is_named(pixels):
    from sklearn.preprocessing import FunctionTransformer

    _, lazy = pixels
    with pytest.raises(ValueError, match="FunctionTransformer.transform gave shape"):
        TransformedArray(lazy, FunctionTransformer(lambda x: x[:, 0]))


@pytest.mark.parametrize("scale", [None, "std", 255.0])
def test_mean_image_fits_a_lazy_array_by_chunks_as_in_memory(pixels, monkeypatch, scale):
    from imgclf.preprocessing import column_moments

    images, lazy = pixels
    monkeypatch.setenv(IN_MEMORY_ENV, "100")  # every window one chunk
    on_disk, in_memory = MeanImage(scale=scale).fit(lazy), MeanImage(scale=scale).fit(images)
    np.testing.assert_array_equal(on_disk.mean_, in_memory.mean_)
    np.testing.assert_array_equal(on_disk.scale_, in_memory.scale_)
    assert on_disk.n_features_in_ == in_memory.n_features_in_ == 48
    flat = images.reshape(len(images), -1).astype(np.float64)  # NumPy's own mean and std
    rows = np.array([3, 200, 17, 64])
    for X in (lazy.reshape_rows(), flat):
        mean, std = column_moments(X, rows)
        np.testing.assert_allclose(mean, flat[rows].mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(std, flat[rows].std(axis=0), rtol=1e-12)

"""plots.centroids: the k-means features' centroids, de-whitened, as tiles of one mosaic."""

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from imgclf import plots
from imgclf.features import FeatureSet, KMeansFeatures
from imgclf.linear import LinearClassifier
from imgclf.plots.centroids import _mosaic
from tests.plots_helpers import assert_png


@pytest.fixture(scope="module")
def kmeans():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 10, 10, 3), dtype=np.uint8)
    return KMeansFeatures(n_centroids=9, n_patches=500, patch_size=4).fit(images)


def shown(figure) -> np.ndarray:
    return figure.axes[0].images[0].get_array()


def test_tiles_are_the_dewhitened_centroids_rescaled(kmeans, tmp_path):
    figure = plots.centroids(kmeans, tmp_path / "c.png")
    assert_png(tmp_path / "c.png")
    mosaic = shown(figure)
    assert mosaic.shape == (3 * 5 + 1, 3 * 5 + 1, 3)  # 3 x 3 tiles of 4 px, 1 px gaps
    # back through the whitening: the normalized patch whose whitening is the centroid
    patch = kmeans.centroids_[4] @ np.linalg.inv(kmeans.whitening_.astype(np.float64))
    patch = (patch + kmeans.patch_mean_).reshape(4, 4, 3)
    expected = (255 * (patch - patch.min()) / (patch.max() - patch.min())).astype(np.uint8)
    np.testing.assert_array_equal(mosaic[6:10, 6:10], expected)  # tile 4: row 1, column 1
    assert (mosaic[5] == 255).all() and (mosaic[:, 5] == 255).all()  # the gaps
    assert "9 of 9 k-means centroids of 4x4 patches, de-whitened" in figure.axes[0].get_title()


def test_whitened_and_inside_feature_sets_and_pipelines(kmeans):
    whitened = shown(plots.centroids(kmeans, whitened=True))
    c = kmeans.centroids_[0].reshape(4, 4, 3)
    expected = (255 * (c - c.min()) / (c.max() - c.min())).astype(np.uint8)
    np.testing.assert_array_equal(whitened[1:5, 1:5], expected)
    images = np.random.default_rng(1).integers(0, 256, (30, 10, 10, 3), dtype=np.uint8)
    features = FeatureSet(["kmeans:5", "color"]).fit(images)
    model = Pipeline([("features", features), ("clf", LinearClassifier(epochs=1))])
    model.fit(images, np.arange(30) % 2)
    assert shown(plots.centroids(model, max_centroids=4)).shape == (2 * 7 + 1, 2 * 7 + 1, 3)


def test_without_kmeans_features_says_so():
    with pytest.raises(ValueError, match=r"centroids needs fitted k-means patch features"):
        plots.centroids(FeatureSet(["hog"]))


def test_mosaic_fills_rows_and_keeps_gaps_white():
    tiles = np.zeros((5, 2, 2, 1), np.uint8)
    mosaic = _mosaic(tiles)
    assert mosaic.shape == (2 * 3 + 1, 3 * 3 + 1, 3)
    assert (mosaic[4:6, 7:9] == 255).all()  # the sixth place is empty
    assert (mosaic[1:3, 1:3] == 0).all()

"""k-means patch features: the fused kernel against plain NumPy, whitening, fit, contract."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from imgclf.features import FeatureSet, KMeansFeatures, learned_patches, make_features
from imgclf.features import _patches as patches
from imgclf.linear import LinearClassifier


def images(n=6, shape=(12, 12, 3), seed=0):
    """Random uint8 images, one flat (every patch normalizes to zeros) and one with an edge."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    out[0] = 77
    out[1, :, : shape[1] // 2] = 0
    return out


def fitted(shape=(12, 12, 3), **params):
    return KMeansFeatures(**{"n_centroids": 7, "n_patches": 300, **params}).fit(images(20, shape))


# --- the encoding kernel against references ----------------------------------------------


@pytest.mark.parametrize("encoder", ["triangle", "hard", "soft"])
@pytest.mark.parametrize("pooling", ["quadrants", "sum", "pyramid"])
@pytest.mark.parametrize("whiten, stride, size", [(True, 1, 6), (False, 2, 3), (True, 3, 5)])
def test_transform_equals_the_plain_numpy_reference(encoder, pooling, whiten, stride, size):
    model = fitted(encoder=encoder, pooling=pooling, whiten=whiten, stride=stride, patch_size=size)
    batch = images(5, (12, 12, 3), seed=1)
    mean, whitening, centroids = model._dictionary()
    expected = patches.encode_reference(
        batch, size, stride, mean, whitening, centroids, encoder, pooling
    )
    ours = model.transform(batch)
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    if encoder == "hard":  # counts: equal unless float32 flips a near tie
        assert np.abs(ours - expected).sum() <= 2 * len(batch)
        np.testing.assert_array_equal(
            ours.reshape(5, -1, 7).sum(2), expected.reshape(5, -1, 7).sum(2)
        )
    else:
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-3)


def test_reference_is_the_papers_formula_on_explicit_patches():
    """Distances by cdist, quadrants by explicit position masks, one patch at a time."""
    model = fitted((10, 10, 3))
    image = images(3, (10, 10, 3), seed=2)[2]
    codes = np.zeros((4, 7))
    for r in range(5):  # 10 - 6 + 1 positions; quadrant split after ceil(5 / 2) = 3
        for c in range(5):
            x = image[r : r + 6, c : c + 6].reshape(1, -1).astype(np.float64)
            x = (x - x.mean()) / np.sqrt(x.var(ddof=1) + 10)
            x = (x - model.patch_mean_) @ model.whitening_
            z = cdist(x, model.centroids_.astype(np.float64))[0]
            codes[2 * (r >= 3) + (c >= 3)] += np.maximum(z.mean() - z, 0)
    np.testing.assert_allclose(model.transform(image[None])[0], codes.ravel(), rtol=1e-4, atol=1e-4)


def test_soft_codes_are_thresholded_dot_products_of_both_signs_with_unit_centroids():
    """Coates & Ng (2011): max(0, d.x - alpha) and max(0, -d.x - alpha), |d| = 1, per patch."""
    model = fitted((10, 10, 3), encoder="soft", alpha=0.4)
    image = images(3, (10, 10, 3), seed=2)[2]
    unit = model.centroids_ / np.linalg.norm(model.centroids_.astype(np.float64), axis=1)[:, None]
    codes = np.zeros((4, 2, 7))
    for r in range(5):
        for c in range(5):
            x = image[r : r + 6, c : c + 6].reshape(-1).astype(np.float64)
            x = (x - x.mean()) / np.sqrt(x.var(ddof=1) + 10)
            s = unit @ ((x - model.patch_mean_) @ model.whitening_)
            codes[2 * (r >= 3) + (c >= 3)] += [np.maximum(s - 0.4, 0), np.maximum(-s - 0.4, 0)]
    ours = model.transform(image[None])[0]
    assert ours.shape == (4 * 2 * 7,) and (ours >= 0).all() and (ours == 0).any()
    np.testing.assert_allclose(ours, codes.ravel(), rtol=1e-4, atol=1e-4)
    # a larger threshold can only lower every code; 0 keeps |d.x| whole
    assert (model.set_params(alpha=1.0).transform(image[None])[0] <= ours + 1e-6).all()


def test_pyramid_is_the_quadrants_then_the_whole_image():
    """Explicit position masks on a 7x7 map (odd: the split after ceil(7 / 2) = 4)."""
    model = fitted((12, 12, 3), pooling="pyramid")
    batch = images(3, (12, 12, 3), seed=4)
    mean, whitening, centroids = model._dictionary()
    x = patches.normalize(patches.patches_of(batch, 6, 1))
    z = cdist((x - mean) @ whitening, centroids).reshape(3, 7, 7, 7)  # image, row, col, k
    f = np.maximum(z.mean(3, keepdims=True) - z, 0)
    top, left = np.arange(7) < 4, np.arange(7) < 4
    masks = [(top, left), (top, ~left), (~top, left), (~top, ~left), (top | True, left | True)]
    expected = np.concatenate([f[:, r][:, :, c].sum((1, 2)) for r, c in masks], axis=1)
    ours = model.transform(batch)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(
        ours[:, :28], model.set_params(pooling="quadrants").transform(batch)
    )


def test_power_raises_every_pooled_code_and_mirror_adds_the_mirror_images_codes():
    model = fitted(n_jobs=1)
    batch = images(5, seed=5)
    plain, mirrored = model.transform(batch), model.transform(batch[:, :, ::-1])
    assert not np.allclose(plain, mirrored)  # the images are not symmetric
    np.testing.assert_allclose(
        model.set_params(power=0.5).transform(batch), np.sqrt(plain), rtol=1e-6, atol=1e-6
    )
    both = model.set_params(power=0.3, mirror=True).transform(batch)
    np.testing.assert_allclose(both, (plain + mirrored) ** 0.3, rtol=1e-5, atol=1e-5)
    # the same features for an image and its mirror image
    np.testing.assert_allclose(model.transform(batch[:, :, ::-1]), both, rtol=1e-6, atol=1e-6)
    assert (both[plain + mirrored == 0] == 0).all() and np.isfinite(both).all()


def test_blocks_and_threads_give_the_same_codes(monkeypatch):
    model = fitted(n_jobs=1)
    batch = images(9, seed=3)
    one = model.transform(batch)
    monkeypatch.setattr(patches, "BLOCK_BYTES", 1)  # one image per block
    # BLAS may sum in another order for another block height: equal to rounding
    np.testing.assert_allclose(
        model.set_params(n_jobs=3).transform(batch), one, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(model.transform(batch[4:5]), one[4:5], rtol=1e-5, atol=1e-5)


# --- fit: normalization, whitening, k-means ----------------------------------------------


def test_normalize_is_mean_and_unbiased_variance_plus_ten():
    x = np.random.default_rng(0).uniform(0, 255, (50, 27)).astype(np.float32)
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, ddof=1, keepdims=True) + 10)
    np.testing.assert_allclose(patches.normalize(x.copy()), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eps", [0.1, 30.0])
def test_zca_whitens_and_is_symmetric(eps):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((4000, 5)) @ rng.standard_normal((5, 5)) * 10).astype(np.float32)
    mean, matrix = patches.zca(x, eps) if eps != 0.1 else patches.zca(x)  # 0.1: the default
    np.testing.assert_allclose(matrix, matrix.T, rtol=1e-4, atol=1e-6)
    white = (x - mean) @ matrix
    cov = np.cov(white, rowvar=False)
    eigenvalues = np.linalg.eigvalsh(np.cov(x, rowvar=False))
    # covariance V diag(e / (e + eps)) V^T: eigenvalues e / (e + eps), close to 1 for e >> eps
    np.testing.assert_allclose(
        np.linalg.eigvalsh(cov), np.sort(eigenvalues / (eigenvalues + eps)), rtol=1e-3
    )


def test_fit_learns_from_the_drawn_patches_and_is_seeded():
    batch = images(20)
    model = KMeansFeatures(n_centroids=5, n_patches=400, seed=4).fit(batch)
    drawn = patches.random_patches(batch, 400, 6, np.random.default_rng(4))
    normalized = patches.normalize(drawn)  # in place
    mean, matrix = patches.zca(normalized)
    np.testing.assert_allclose(model.patch_mean_, mean, atol=1e-5)
    np.testing.assert_allclose(model.whitening_, matrix, rtol=1e-4, atol=1e-4)
    damped = KMeansFeatures(n_centroids=5, n_patches=400, seed=4, whiten_eps=2.0).fit(batch)
    _, matrix = patches.zca(normalized, 2.0)
    np.testing.assert_allclose(damped.whitening_, matrix, rtol=1e-4, atol=1e-4)
    assert np.linalg.norm(damped.whitening_) < np.linalg.norm(model.whitening_)
    assert model.centroids_.shape == (5, 108) and model.centroids_.dtype == np.float32
    again = KMeansFeatures(n_centroids=5, n_patches=400, seed=4).fit(batch)
    np.testing.assert_array_equal(again.centroids_, model.centroids_)
    other = KMeansFeatures(n_centroids=5, n_patches=400, seed=5).fit(batch)
    assert not np.array_equal(other.centroids_, model.centroids_)


def test_random_patches_are_real_patches():
    batch = images(4, (9, 8, 3))
    rng = np.random.default_rng(0)
    drawn = patches.random_patches(batch, 50, 3, rng)
    every = patches.patches_of(batch, 3, 1)
    assert all((every == row).all(1).any() for row in drawn)


def test_centroids_find_planted_patch_clusters():
    """Images tiled with two patterns: the centroids are (whitened) those two patterns."""
    rng = np.random.default_rng(0)
    stripes = np.tile(np.repeat([0, 255], 3), 2)[:6].astype(np.uint8)
    a = np.broadcast_to(stripes[None, :, None], (6, 6, 3))
    b = np.broadcast_to(stripes[:, None, None], (6, 6, 3))
    batch = np.stack([a, b] * 10)
    model = KMeansFeatures(n_centroids=2, n_patches=500, patch_size=6, seed=1).fit(batch)
    white = (
        patches.normalize(patches.patches_of(batch[:2], 6, 1)) - model.patch_mean_
    ) @ model.whitening_
    np.testing.assert_allclose(np.sort(cdist(white, model.centroids_).min(1)), [0, 0], atol=1e-3)
    assert rng is not None


# --- contract ----------------------------------------------------------------------------


@parametrize_with_checks(
    [
        KMeansFeatures(n_centroids=3, patch_size=1, n_patches=40),
        KMeansFeatures(
            n_centroids=3,
            patch_size=1,
            n_patches=40,
            pooling="pyramid",
            power=0.5,
            mirror=True,
            whiten_eps=1.0,
        ),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_float_images_are_read_as_0_to_1():
    batch = images(8)
    as_uint8 = fitted().transform(batch)
    np.testing.assert_allclose(fitted().transform(batch / 255.0), as_uint8, rtol=1e-4, atol=1e-3)


def test_in_a_feature_set_and_a_pipeline():
    batch = images(20)
    both = FeatureSet(["kmeans:7", "color"]).fit(batch)
    alone = KMeansFeatures(7).fit(batch)  # the set's part: default parameters
    np.testing.assert_array_equal(both.centroids_, alone.centroids_)
    out = both.transform(batch)
    assert out.shape == (20, 4 * 7 + 10)
    np.testing.assert_array_equal(out[:, :28], alone.transform(batch))
    assert learned_patches(Pipeline([("f", both), ("c", LinearClassifier())])).n_centroids == 7
    assert learned_patches(FeatureSet()) is None
    assert make_features("kmeans").names == ["kmeans"]
    with pytest.raises(Exception, match="not fitted"):
        FeatureSet(["kmeans:3"]).transform(batch)
    copy = clone(both)
    assert not hasattr(copy, "centroids_") and copy.get_params() == both.get_params()


def test_learns_a_texture_task():
    """Vertical against horizontal stripes at random phases: the codes separate them."""
    rng = np.random.default_rng(0)
    base = (np.arange(16) // 2 % 2 * 255).astype(np.uint8)
    rows = [np.roll(base, s) for s in rng.integers(0, 4, 60)]
    vertical = np.stack([np.broadcast_to(r[None, :, None], (16, 16, 3)) for r in rows])
    horizontal = vertical.transpose(0, 2, 1, 3)
    X = np.concatenate([vertical, horizontal])
    X = np.clip(X + rng.integers(0, 40, X.shape), 0, 255).astype(np.uint8)
    y = np.repeat([0, 1], 60)
    model = Pipeline(
        [
            ("f", KMeansFeatures(n_centroids=8, n_patches=2000, patch_size=4)),
            ("c", LinearClassifier(learning_rate=0.01, epochs=10)),
        ]
    ).fit(X[::2], y[::2])
    assert model.score(X[1::2], y[1::2]) >= 0.95


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_centroids": 0}, r"n_centroids must be >= 1; got 0"),
        ({"patch_size": 2.5}, r"patch_size must be an integer; got 2.5"),
        ({"encoder": "sparse"}, r"encoder must be one of 'triangle', 'hard', 'soft'; got 'sparse'"),
        ({"alpha": -0.5}, r"alpha must be a non-negative number; got -0.5"),
        ({"pooling": "max"}, r"pooling must be one of 'quadrants', 'sum', 'pyramid'; got 'max'"),
        ({"power": 0}, r"power must be a positive number; got 0"),
        ({"power": 1.5}, r"power must be a number in \(0, 1\]; got 1.5"),
        ({"mirror": "on"}, r"mirror must be one of False, True; got 'on'"),
        ({"whiten": "yes"}, r"whiten must be one of False, True; got 'yes'"),
        ({"whiten_eps": 0}, r"whiten_eps must be a positive number; got 0"),
        (
            {"n_patches": 3},
            r"n_patches must be >= n_centroids=7 .*; got n_patches=3, 3 drawn from 3 images",
        ),
        ({"patch_size": 13}, r"images of 12x12 pixels are smaller than patch_size=13"),
        ({"n_jobs": 0}, r"n_jobs must be >= 1; got 0"),
    ],
    ids=repr,
)
def test_bad_parameters_name_argument_and_value(params, message):
    with pytest.raises(ValueError, match=message):
        KMeansFeatures(**{"n_centroids": 7, "n_patches": 100, **params}).fit(images(3))


@pytest.mark.parametrize(
    "names, message",
    [
        (["kmeans:x"], r"kmeans:N needs a number of centroids N; got 'x'"),
        (["kmeans:0"], r"must be >= 1; got 0"),
        (["kmeans", "kmeans:5"], r"feature names must not repeat"),
        (["hog:5"], r"feature name must be one of .*'kmeans'; got 'hog:5'"),
    ],
)
def test_bad_feature_names(names, message):
    with pytest.raises(ValueError, match=message):
        make_features(names)


def test_transform_checks_the_fitted_shape():
    model = fitted()
    with pytest.raises(
        ValueError, match=r"X has 192 features, but KMeansFeatures is expecting 432"
    ):
        model.transform(images(2, (8, 8, 3)))


# --- lazy (on-disk) images ----------------------------------------------------------------


class RecordingArray:
    """A lazy array that records the rows it is asked for and refuses to be read whole."""

    lazy = True

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim = array, array.shape, array.dtype, array.ndim
        self.requests = []

    def __len__(self):
        return len(self.array)

    def __getitem__(self, rows):
        self.requests.append(np.arange(len(self.array))[rows])
        return self.array[rows]

    def __array__(self, dtype=None, copy=None):
        raise AssertionError("the whole array was read")


def test_fit_on_a_lazy_array_reads_only_the_drawn_images_in_order():
    pictures = images(400)
    lazy = RecordingArray(pictures)
    features = KMeansFeatures(n_centroids=5, n_patches=30, seed=1).fit(lazy)
    reference = KMeansFeatures(n_centroids=5, n_patches=30, seed=1).fit(pictures)
    np.testing.assert_array_equal(features.centroids_, reference.centroids_)
    np.testing.assert_array_equal(features.whitening_, reference.whitening_)
    read = np.concatenate(lazy.requests)
    assert len(read) <= 30 and np.all(np.diff(read) > 0)  # drawn images only, in order
    np.testing.assert_array_equal(features.transform(lazy), reference.transform(pictures))


def test_fit_on_a_store_learns_what_it_learns_in_memory(tmp_path):
    from imgclf.datasets.store import StoreWriter, open_store

    pictures = images(64)
    with StoreWriter(tmp_path / "s.zarr") as store:
        store.array("images", pictures.shape[1:], np.uint8, chunk_rows=8).append(pictures)
        path = store.publish({})
    stored = open_store(path)[1]["images"]
    on_disk = KMeansFeatures(n_centroids=6, n_patches=500).fit(stored)
    in_memory = KMeansFeatures(n_centroids=6, n_patches=500).fit(pictures)
    np.testing.assert_array_equal(on_disk.centroids_, in_memory.centroids_)
    flat = KMeansFeatures(n_centroids=6, n_patches=500, image_shape=pictures.shape[1:])
    np.testing.assert_array_equal(flat.fit(stored.reshape_rows()).centroids_, in_memory.centroids_)
    with pytest.raises(ValueError, match="X has 108 features, but KMeansFeatures is expecting 432"):
        on_disk.transform(RecordingArray(images(3, (6, 6, 3))))

"""Image features: HOG and colour histogram against scikit-image, shapes, contract, cache."""

import itertools

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import imgclf.features
import imgclf.features._images as feature_blocks
import imgclf.features.combine as combine
from imgclf.features import (
    HOG,
    ColorHistogram,
    FeatureSet,
    MeanImage,
    Pixels,
    Standardize,
    make_features,
)
from imgclf.features.hog import EPS as HOG_EPS
from imgclf.linear import LinearClassifier

skimage_feature = pytest.importorskip("skimage.feature")
skimage_color = pytest.importorskip("skimage.color")


def images(n=12, shape=(32, 32, 3), seed=0):
    """Random uint8 images with structure: noise, a ramp, a flat image, hard edges."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, (max(n, 5), *shape), dtype=np.uint8)
    height, width = shape[:2]
    diagonal = 3 * np.add.outer(np.arange(height), np.arange(width)) % 256
    out[1] = diagonal[..., None].astype(np.uint8)  # gradients at exactly 45 degrees
    out[2] = 128  # flat: no gradient, no hue
    out[3, :, : width // 2] = 0
    out[3, :, width // 2 :] = 255  # one vertical edge
    out[4] = rng.integers(0, 2, (height, width, 1)) * 255  # black-and-white noise
    return out[:n]


def reference_hog(image, orientations=9, cell=8, block=2, norm="L2-Hys"):
    grey = skimage_color.rgb2gray(image) if image.shape[-1] == 3 else image[..., 0] / 255
    return skimage_feature.hog(grey, orientations, (cell, cell), (block, block), block_norm=norm)


# --- HOG ---------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["L2-Hys", "L2", "L1", "L1-sqrt"])
@pytest.mark.parametrize("block", [1, 2, 3])
def test_hog_equals_skimage(norm, block):
    batch = images()
    ours = HOG(cells_per_block=block, block_norm=norm).fit_transform(batch)
    expected = np.stack([reference_hog(image, block=block, norm=norm) for image in batch])
    assert ours.dtype == np.float32 and ours.shape == expected.shape
    # scikit-image sums each cell in float32; ours sums in float64
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "orientations, cell, shape",
    [
        (7, 5, (23, 31, 3)),  # float32 bin edges that are not round; pixels beyond whole cells
        (8, 4, (16, 16, 1)),  # greyscale; an edge at 45 degrees, exactly a bin boundary
        (12, 6, (24, 18, 3)),
    ],
)
def test_hog_equals_skimage_on_other_settings(orientations, cell, shape):
    batch = images(6, shape, seed=orientations)
    ours = HOG(orientations, cell, 2).fit_transform(batch)
    expected = np.stack([reference_hog(image, orientations, cell, 2) for image in batch])
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


def test_hog_without_normalization_is_skimage_cells_before_l1():
    batch = images()
    cells = HOG(block_norm=None).fit_transform(batch).reshape(len(batch), 16, 9)
    expected = np.stack([reference_hog(image, block=1, norm="L1") for image in batch])
    normalized = cells / (cells.sum(axis=-1, keepdims=True) + HOG_EPS)
    np.testing.assert_allclose(normalized.reshape(len(batch), -1), expected, atol=1e-6)
    assert cells.shape == (12, 16, 9) and np.all(cells >= 0)


def test_hog_of_a_flat_image_is_zero_and_of_an_edge_one_bin():
    batch = images()
    flat, edge = HOG(block_norm=None).fit_transform(batch[[2, 3]]).reshape(2, 4, 4, 9)
    assert not flat.any()
    # a vertical edge has a horizontal gradient: orientation 0, bin 0, in the cells it crosses
    assert edge[:, 1:3, 0].all() and not edge[:, :, 1:].any()


@pytest.mark.parametrize(
    "shape, cell, block, length",
    [
        ((32, 32, 3), 8, 2, 3 * 3 * 2 * 2 * 9),
        ((32, 32, 3), 8, 3, 2 * 2 * 3 * 3 * 9),
        ((32, 32, 3), 8, 1, 4 * 4 * 9),
        ((28, 20, 1), 6, 2, 3 * 2 * 2 * 2 * 9),
    ],
)
def test_hog_length(shape, cell, block, length):
    assert HOG(pixels_per_cell=cell, cells_per_block=block).fit_transform(
        images(2, shape)
    ).shape == (2, length)


def test_flattened_rows_need_and_use_image_shape():
    batch = images(4)
    rows = batch.reshape(4, -1)
    hog = HOG(image_shape=(32, 32, 3))
    np.testing.assert_array_equal(hog.fit_transform(rows), HOG().fit_transform(batch))
    with pytest.raises(ValueError, match=r"rows of 3072 values need image_shape"):
        HOG().fit(rows)
    with pytest.raises(ValueError, match=r"image_shape=\(32, 32, 1\) holds 1024 values"):
        HOG(image_shape=(32, 32, 1)).fit(rows)
    with pytest.raises(ValueError, match=r"image_shape=\(16, 16, 3\) but the images are"):
        HOG(image_shape=(16, 16, 3)).fit(batch)


# --- colour histogram --------------------------------------------------------------------


def every_tricky_colour() -> np.ndarray:
    """One image whose pixels are all combinations of levels near the edges and ties."""
    levels = [0, 1, 2, 85, 127, 128, 170, 253, 254, 255]
    pixels = np.array(list(itertools.product(levels, repeat=3)), dtype=np.uint8)
    return pixels.reshape(1, 10, 100, 3)


def reference_color(image, bins=10):
    hue = skimage_color.rgb2hsv(image)[..., 0]
    counts, _ = np.histogram(hue, bins=bins, range=(0, 1))
    return counts / hue.size


@pytest.mark.parametrize("bins", [10, 3, 36])
def test_color_histogram_equals_skimage_and_numpy(bins):
    batch = np.concatenate([images(8, (10, 100, 3)), every_tricky_colour()])
    ours = ColorHistogram(bins).fit_transform(batch)
    expected = np.stack([reference_color(image, bins) for image in batch])
    np.testing.assert_array_equal(ours, expected.astype(np.float32))
    np.testing.assert_allclose(ours.sum(axis=1), 1, rtol=1e-6)


def test_color_histogram_of_grey_is_all_in_the_first_bin():
    grey = np.repeat(images(3, (8, 8, 1)), 3, axis=-1)
    np.testing.assert_array_equal(ColorHistogram(4).fit_transform(grey), [[1, 0, 0, 0]] * 3)


def test_color_histogram_needs_rgb():
    with pytest.raises(ValueError, match=r"ColorHistogram needs RGB images \(C=3\); got C=1"):
        ColorHistogram().fit(images(2, (8, 8, 1)))


# --- several features, threads, cache -----------------------------------------------------


def test_feature_set_is_its_parts_side_by_side():
    batch = images(5)
    both = make_features(["hog", "color", "pixels"]).fit_transform(batch)
    parts = [
        HOG().fit_transform(batch),
        ColorHistogram().fit_transform(batch),
        batch.reshape(5, -1).astype(np.float32),
    ]
    np.testing.assert_array_equal(both, np.hstack(parts))
    assert both.dtype == np.float32
    assert make_features("pixels").fit_transform(batch).dtype == np.uint8
    assert make_features("hog,color").names == ["hog", "color"]


def test_threads_and_blocks_give_the_same_features(monkeypatch):
    monkeypatch.setattr(feature_blocks, "CHUNK", 7)
    batch = images(30, (16, 16, 3))
    for cls in (HOG, ColorHistogram):
        one = cls(n_jobs=1).fit_transform(batch)
        np.testing.assert_array_equal(cls(n_jobs=3).fit_transform(batch), one)
        np.testing.assert_array_equal(
            np.vstack([cls().fit_transform(batch[i : i + 1]) for i in range(30)]), one
        )


def test_cache_stores_then_reads_features(monkeypatch, isolated_cache):
    monkeypatch.setattr(combine, "CACHE_MIN_IMAGES", 10)
    batch = images(12, (16, 16, 3))
    cached = FeatureSet(["hog", "color"], cache=True)
    first = cached.fit_transform(batch)
    assert len(list((isolated_cache / "features").iterdir())) == 1

    def fail(*args):
        raise AssertionError("recomputed instead of read from the cache")

    monkeypatch.setattr(combine, "_concatenate", fail)
    np.testing.assert_array_equal(cached.transform(batch), first)
    changed = batch.copy()
    changed[0, 0, 0, 0] ^= 1
    with pytest.raises(AssertionError, match="recomputed"):
        cached.transform(changed)  # other pixels: another entry


def test_corrupt_cache_entry_is_recomputed(monkeypatch, isolated_cache):
    monkeypatch.setattr(combine, "CACHE_MIN_IMAGES", 10)
    batch = images(12, (16, 16, 3))
    expected = FeatureSet(cache=True).fit_transform(batch)
    (entry,) = (isolated_cache / "features").iterdir()
    entry.write_bytes(entry.read_bytes()[:100])
    np.testing.assert_array_equal(FeatureSet(cache=True).transform(batch), expected)


# --- transformer contract ----------------------------------------------------------------


@parametrize_with_checks([Pixels(), Standardize()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "transformer",
    [
        HOG(),
        HOG(orientations=6, block_norm=None),
        ColorHistogram(bins=5),
        FeatureSet(),
        FeatureSet(["pixels", "color"]),
    ],
    ids=repr,
)
def test_image_transformer_contract(transformer):
    batch = images(6, (16, 16, 3))
    copy = clone(transformer)
    assert copy.get_params() == transformer.get_params()
    assert copy.fit(batch) is copy and copy.n_features_in_ == 16 * 16 * 3
    out = copy.transform(batch)
    assert out.dtype == np.float32 and out.ndim == 2 and len(out) == 6
    np.testing.assert_array_equal(clone(transformer).fit_transform(batch), out)
    np.testing.assert_array_equal(clone(transformer).transform(batch), out)  # stateless
    np.testing.assert_array_equal(copy.transform(batch[3:4]), out[3:4])
    with pytest.raises(ValueError, match=r"fitted on images of 768 values; got 192"):
        copy.transform(images(2, (8, 8, 3)))


def test_features_in_a_pipeline_learn_a_colour_task():
    rng = np.random.default_rng(0)
    reddish = rng.integers(0, 60, (60, 8, 8, 3), dtype=np.uint8)
    reddish[..., 0] += 150
    greenish = reddish[..., [1, 0, 2]]  # same pixels, red and green swapped
    X, y = np.concatenate([reddish, greenish]), np.repeat([0, 1], 60)
    model = Pipeline(
        [
            ("features", make_features(["color"])),
            ("std", Standardize()),
            ("clf", LinearClassifier(learning_rate=0.1)),
        ]
    ).fit(X, y)
    assert model.score(X, y) == 1.0


def test_standardize_is_mean_image_with_std_scale():
    X = np.random.default_rng(1).normal(3, 5, (50, 7)).astype(np.float32)
    np.testing.assert_array_equal(
        Standardize().fit_transform(X), MeanImage(scale="std").fit_transform(X)
    )
    assert Standardize().get_params() == {}
    assert MeanImage is imgclf.features.MeanImage and MeanImage.__module__ == "imgclf.preprocessing"


def test_pixels_keep_dtype_and_flatten():
    batch = images(3, (4, 4, 3))
    out = Pixels().fit_transform(batch)
    assert out.dtype == np.uint8 and out.shape == (3, 48)
    np.testing.assert_array_equal(out, batch.reshape(3, -1))


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "transformer, message",
    [
        (HOG(orientations=0), r"orientations must be >= 1; got 0"),
        (HOG(pixels_per_cell=2.5), r"pixels_per_cell must be an integer; got 2.5"),
        (
            HOG(block_norm="L3"),
            r"block_norm must be one of 'L1', 'L1-sqrt', 'L2', 'L2-Hys', "
            r"None; got 'L3'",
        ),
        (HOG(n_jobs=0), r"n_jobs must be >= 1; got 0"),
        (
            HOG(pixels_per_cell=8, cells_per_block=3),
            r"images of 16x16 pixels are too small for "
            r"HOG\(pixels_per_cell=8, cells_per_block=3\)",
        ),
        (ColorHistogram(bins=0), r"bins must be >= 1; got 0"),
        (
            FeatureSet(["hog", "sift"]),
            r"feature name must be one of 'pixels', 'hog', 'color', 'kmeans'; "
            r"got 'sift'",
        ),
        (FeatureSet(["hog", "hog"]), r"feature names must not repeat"),
        (FeatureSet([]), r"names must list at least one of"),
        (FeatureSet(cache="yes"), r"cache must be one of False, True; got 'yes'"),
    ],
    ids=repr,
)
def test_bad_parameters_name_argument_and_value(transformer, message):
    with pytest.raises(ValueError, match=message):
        transformer.fit(images(2, (16, 16, 3)))


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"images must be uint8 \(0-255\) or float"):
        HOG().fit(np.zeros((2, 16, 16, 3), np.int64))
    with pytest.raises(ValueError, match=r"got an array of shape \(2, 16, 16, 3, 1\)"):
        HOG().fit(np.zeros((2, 16, 16, 3, 1), np.uint8))
    with pytest.raises(ValueError, match=r"HOG needs greyscale \(C=1\) or RGB \(C=3\)"):
        HOG().fit_transform(np.zeros((2, 16, 16, 4), np.uint8))
    with pytest.raises(ValueError, match=r"feature name must be one of"):
        make_features(["colour"])

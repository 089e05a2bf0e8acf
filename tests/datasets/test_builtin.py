"""The built-in digits and the 2D toy sets."""

import numpy as np
import pytest

from imgclf.datasets import load, load_digits, load_toy
from imgclf.datasets.builtin import TOY_SETS
from imgclf.errors import DatasetError


def test_digits_split_is_fixed_stratified_and_uint8():
    first, again = load_digits(), load_digits()
    train, test = first["train"], first["test"]
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape == (1437, 8, 8, 1) and train.images.dtype == np.uint8
    assert train.images.max() == 255 and train.images.min() == 0
    assert train.classes == tuple("0123456789")
    np.testing.assert_array_equal(train.images, again["train"].images)
    counts = np.array(list(test.class_counts().values()))
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: 360 / 10 each, give or take


def test_digits_pixels_match_scikit_learn():
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    everything = np.concatenate([s.images for s in load_digits().values()])
    expected = np.round(bunch.images * 255 / 16).astype(np.uint8)[..., None]
    # same images, in another order: compare sorted byte strings
    assert sorted(x.tobytes() for x in everything) == sorted(x.tobytes() for x in expected)


@pytest.mark.parametrize("name", sorted(TOY_SETS))
def test_toy_sets_are_seeded_2d_points(name):
    a, b, c = load_toy(name, seed=1), load_toy(name, seed=1), load_toy(name, seed=2)
    train = a["train"]
    assert train.points.shape == (400, 2) and train.points.dtype == np.float32
    assert train.images is None and train.image_shape is None
    np.testing.assert_array_equal(train.points, b["train"].points)
    assert not np.array_equal(train.points, c["train"].points)
    assert not np.array_equal(train.points, a["test"].points)
    assert min(train.class_counts().values()) > 50  # every class is well represented


def test_xor_labels_follow_the_quadrants():
    ds = load_toy("xor")["train"]
    x, y = ds.points.T
    np.testing.assert_array_equal(ds.labels, (x * y < 0).astype(int))


def test_ring_labels_follow_the_norm():
    ds = load_toy("ring")["train"]
    r = np.linalg.norm(ds.points, axis=1)
    np.testing.assert_array_equal(ds.labels, ((r >= 1) & (r <= 2)).astype(int))


def test_three_modes_positives_sit_in_three_disks():
    from imgclf.datasets.builtin import _MODES

    ds = load_toy("three-modes")["train"]
    dist = np.linalg.norm(ds.points[:, None] - _MODES[None], axis=2).min(axis=1)
    assert (dist[ds.labels == 1] <= 0.7 + 1e-5).all()
    assert (dist[ds.labels == 0] > 0.7 - 1e-5).all()


def test_unknown_toy_set_lists_the_choices():
    with pytest.raises(DatasetError, match="three-modes"):
        load("toy:spiral")

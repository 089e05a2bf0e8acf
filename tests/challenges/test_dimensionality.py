"""Distance concentration and 1-NN accuracy as images shrink; t-SNE maps."""

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances

from imgclf.challenges import concentration, coverage_points, tsne
from imgclf.challenges.dimensionality import _ratio_and_nearest, downsample, halvings
from imgclf.datasets import load_digits


def test_coverage_and_halvings():
    assert coverage_points(0.25, (1, 2, 3)) == {1: 4, 2: 16, 3: 64}
    assert coverage_points(0.1, (2,)) == {2: 100}
    assert halvings(32) == [32, 16, 8, 4, 2] and halvings(8) == [8, 4, 2] and halvings(6) == [6, 3]


def test_downsample_is_the_block_mean():
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 2), dtype=np.uint8)
    out = downsample(images, 2)
    expected = np.array([[[[images[n, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4, c].mean()
                            for c in range(2)] for j in range(2)] for i in range(2)]
                         for n in range(3)])  # fmt: skip
    assert out.shape == (3, 2, 2, 2) and np.allclose(out, expected)
    with pytest.raises(ValueError, match="side must divide the image size 8x8; got 3"):
        downsample(images, 3)


def test_ratio_and_nearest_match_scikit_learn():
    rng = np.random.default_rng(1)
    queries, base = rng.random((20, 30), dtype=np.float32), rng.random((50, 30), dtype=np.float32)
    ratio, nearest = _ratio_and_nearest(queries, base)
    d = pairwise_distances(queries, base)
    assert ratio == pytest.approx((d.min(axis=1) / d.max(axis=1)).mean(), rel=1e-4)
    assert np.array_equal(nearest, d.argmin(axis=1))


def test_distances_concentrate_as_dimension_grows():
    digits = load_digits()
    rows = concentration(digits["train"], digits["test"], n_train=600, n_test=100)
    assert [r["side"] for r in rows] == [8, 4, 2] and [r["dimension"] for r in rows] == [64, 16, 4]
    uniform = [r["ratio_uniform"] for r in rows]
    assert uniform[0] > uniform[1] > uniform[2]  # random points: nearest ~ farthest in 64D
    assert all(r["ratio"] < r["ratio_uniform"] for r in rows)  # real images are not uniform
    assert rows[0]["accuracy"] > 0.9 and rows[0]["chance"] == pytest.approx(0.1)


def test_tsne_keeps_separate_groups_apart():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (20, 40)), rng.normal(12, 1, (20, 40))])
    xy = tsne(X, seed=0)
    assert xy.shape == (40, 2) and xy.min() >= 0 and xy.max() <= 1
    a, b = xy[:20].mean(axis=0), xy[20:].mean(axis=0)
    spread = max(xy[:20].std(axis=0).max(), xy[20:].std(axis=0).max())
    assert np.linalg.norm(a - b) > 4 * spread
    with pytest.raises(ValueError, match="at least 5 images"):
        tsne(X[:3])

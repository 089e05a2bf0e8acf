"""Image, region, confusion and distance pictures: valid PNGs of the expected size, labelled."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from imgclf import plots
from imgclf.datasets import load, load_digits
from imgclf.metrics import confusion_matrix
from imgclf.neighbors import KNNClassifier, pairwise_distances
from tests.plots_helpers import assert_png


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def titled(figure) -> bool:
    return bool(figure._suptitle and figure._suptitle.get_text()) or all(
        ax.get_title() for ax in figure.axes if ax.get_visible() and ax.has_data()
    )


def test_samples_grid_has_a_row_per_class(digits, tmp_path):
    train = digits["train"]
    figure = plots.samples(
        train.images, train.labels, train.classes, tmp_path / "s.png", per_class=6
    )
    assert assert_png(tmp_path / "s.png") == (660, 960)
    row_labels = [ax.get_ylabel() for ax in figure.axes if ax.get_ylabel()]
    assert row_labels == list(train.classes) and titled(figure)


def test_neighbours_marks_matches(digits, tmp_path):
    train, test = digits["train"], digits["test"]
    _, index = KNNClassifier().fit(train.X, train.labels).kneighbors(test.X[:4], 10)
    figure = plots.neighbours(
        test.images[:4],
        test.labels[:4],
        train.images,
        train.labels,
        index,
        train.classes,
        tmp_path / "n.png",
    )
    assert_png(tmp_path / "n.png")
    assert len(figure.axes) == 4 * 11 and titled(figure)
    for col, ax in enumerate(figure.axes[1:11]):
        same = train.labels[index[0, col]] == test.labels[0]
        expected = to_rgba("tab:green" if same else "tab:red")
        assert ax.spines["top"].get_edgecolor() == expected


def test_knn_regions_draws_ties_white(tmp_path):
    toy = load("toy:three-modes")["train"]
    figure = plots.knn_regions(toy.points, toy.labels, toy.classes, tmp_path / "r.png", steps=80)
    assert_png(tmp_path / "r.png")
    assert [ax.get_title() for ax in figure.axes] == ["k = 1 (L2)", "k = 3 (L2)"]
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in figure.axes)


def test_region_image_marks_tied_votes():
    from imgclf.plots.regions import _region_image

    points = np.array([[0, 0], [2, 0]], np.float32)
    clf = KNNClassifier(k=2).fit(points, [0, 1])
    regions = _region_image(clf, np.array([[1, 0], [-5, 0]], np.float32), (2,))
    assert regions.tolist() == [-1, -1]  # with k=2 and two classes every vote ties
    clf = KNNClassifier(k=1).fit(points, [0, 1])
    assert _region_image(clf, np.array([[-5, 0], [5, 0]], np.float32), (2,)).tolist() == [0, 1]


def test_confusion_has_class_names(tmp_path):
    y = np.array([0, 1, 2, 2, 1])
    figure = plots.confusion(
        confusion_matrix(y, [0, 2, 2, 2, 1]), ["cat", "dog", "frog"], tmp_path / "c.png"
    )
    assert_png(tmp_path / "c.png")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "frog"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"


def test_distance_matrix_picture(digits, tmp_path):
    train, test = digits["train"], digits["test"]
    dist = pairwise_distances(test.X[:20], train.X[:50])
    assert dist.shape == (20, 50)
    np.testing.assert_allclose(dist[3, 7], np.linalg.norm(test.X[3] - train.X[7].astype(float)))
    figure = plots.distances(dist, tmp_path / "d.png")
    assert assert_png(tmp_path / "d.png") == (700, 450)
    assert figure.axes[0].get_title() and figure.axes[0].get_xlabel() == "training image"

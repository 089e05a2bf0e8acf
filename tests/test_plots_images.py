"""Image, region, confusion and distance pictures: valid PNGs of the expected size, labelled."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from imgclf import plots
from imgclf.datasets import load, load_digits
from imgclf.metrics import confusion_matrix
from imgclf.neighbors import KNNClassifier, pairwise_distances
from imgclf.plots._figure import literal, new_figure
from imgclf.plots.regions import TIE_NOTE
from tests.plots_helpers import BAD_MATHTEXT, assert_legend_covers_no_data, assert_png


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
    assert_legend_covers_no_data(figure)


def figure_text(figure) -> str:
    """Every string drawn on ``figure``: titles, labels, legend entries."""
    figure.canvas.draw()
    return "\n".join(t.get_text() for t in figure.findobj(lambda a: hasattr(a, "get_text")))


def region_ties(points, labels, k, steps) -> bool:
    """Whether k-NN's regions over the picture's grid have a tied vote anywhere."""
    from imgclf.plots.regions import _region_image, grid_over

    xx, _, grid = grid_over(points, steps)
    clf = KNNClassifier(k=k).fit(points, labels)
    return bool((_region_image(clf, grid, xx.shape) == -1).any())


@pytest.mark.parametrize(
    ("points", "labels", "k", "tied"),
    [
        # two points of two classes, k = 2: every vote is 1-1
        (np.array([[0, 0], [2, 0]], np.float32), np.array([0, 1]), 2, True),
        # k = 1 on separated clusters placed off the grid's lines: no tie anywhere
        (
            np.array([[0, 0.1], [0.3, 0], [3, 3.2], [3.3, 3]], np.float32),
            np.array([0, 0, 1, 1]),
            1,
            False,
        ),
    ],
)
def test_tie_note_appears_iff_a_region_is_tied(points, labels, k, tied):
    assert region_ties(points, labels, k, 60) is tied
    figure = plots.knn_regions(points, labels, ["a", "b"], ks=(k,), steps=60)
    assert (TIE_NOTE in figure_text(figure)) is tied


def test_knn_regions_of_a_real_toy_set_note_ties_only_when_present():
    toy = load("toy:xor")["train"]
    for k in (1, 4):
        figure = plots.knn_regions(toy.points, toy.labels, toy.classes, ks=(k,), steps=60)
        has_tie = region_ties(toy.points, toy.labels, k, 60)
        assert (TIE_NOTE in figure_text(figure)) is has_tie
    assert region_ties(toy.points, toy.labels, 4, 60)  # an even k ties somewhere


def test_scatter_points_colours_each_class(tmp_path):
    toy = load("toy:blobs")["train"]
    figure = plots.scatter_points(toy.points, toy.labels, toy.classes, tmp_path / "p.png")
    assert_png(tmp_path / "p.png")
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend == list(toy.classes)
    assert_legend_covers_no_data(figure)


def test_unescaped_bad_mathtext_would_fail_to_draw():
    figure = new_figure()
    figure.add_subplot().set_title(BAD_MATHTEXT)
    with pytest.raises(ValueError):
        figure.canvas.draw()
    assert literal("a $b$") == r"a \$b\$"


def test_class_names_with_dollar_signs_render_in_every_picture(digits, tmp_path):
    train, test = digits["train"], digits["test"]
    names = [BAD_MATHTEXT, *(f"${c} cost" for c in range(1, 10))]
    figure = plots.samples(train.images, train.labels, names, tmp_path / "s.png", per_class=2)
    assert BAD_MATHTEXT in [ax.get_ylabel().replace("\\$", "$") for ax in figure.axes]
    _, index = KNNClassifier().fit(train.X, train.labels).kneighbors(test.X[:3], 2)
    plots.neighbours(
        test.images[:3],
        test.labels[:3],
        train.images,
        train.labels,
        index,
        names,
        tmp_path / "n.png",
    )
    plots.confusion(np.eye(10, dtype=int), names, tmp_path / "c.png")
    toy = load("toy:blobs")["train"]
    plots.knn_regions(toy.points, toy.labels, names[:3], tmp_path / "r.png", steps=20)
    plots.scatter_points(toy.points, toy.labels, names[:3], tmp_path / "p.png")
    for name in "sncrp":
        assert_png(tmp_path / f"{name}.png")


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


def test_figures_show_in_a_notebook_without_pyplot():
    from imgclf.plots._figure import new_figure

    figure = new_figure(2, 1)
    figure.add_subplot().plot([0, 1], [1, 0])
    png = figure._repr_png_()  # what Jupyter displays for a Figure that has it
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 500

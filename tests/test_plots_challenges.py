"""The lecture's pictures: robustness curves, same-distance versions, dimensionality, t-SNE maps."""

import numpy as np
import pytest

from imgclf import plots
from imgclf.challenges import robustness
from imgclf.challenges.calibration import l2_distances
from imgclf.datasets import load_digits
from imgclf.linear import LinearClassifier
from imgclf.neighbors import KNNClassifier
from tests.challenges.conftest import smooth_images
from tests.plots_helpers import BAD_MATHTEXT, assert_legend_covers_no_data, assert_png


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def knn(digits):
    return KNNClassifier(k=1).fit(digits["train"].X, digits["train"].labels)


@pytest.fixture(scope="module")
def results(digits, knn):
    train, test = digits["train"], digits["test"]
    linear = LinearClassifier(epochs=5, seed=0).fit(train.X, train.labels)
    plan = {"shift": [0.5, 1], "brightness": [-0.3, 0.3], "occlude": [2]}
    return [
        robustness(knn, test, plan, name="k-NN"),
        robustness(linear, test, plan, name=BAD_MATHTEXT),
    ]


def test_robustness_draws_a_panel_per_perturbation_and_a_line_per_model(tmp_path, results):
    figure = plots.robustness(results, tmp_path / "r.png", n_classes=10)
    assert_png(tmp_path / "r.png", min_size=(600, 300))
    shown = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in shown] == ["shift", "brightness", "occlude"]
    assert [ax.get_xlabel() for ax in shown] == [
        "shift (pixels)", "brightness change (%)", "side of a black box (pixels)"
    ]  # fmt: skip
    assert shown[0].get_ylabel() == "test accuracy"
    lines = {line.get_label(): line.get_xydata() for line in shown[1].lines}
    x, y = lines["k-NN"].T
    assert x.tolist() == [-30, 0, 30]  # in percent, severity 0 (the clean images) between
    assert y[1] == pytest.approx(results[0].clean_accuracy)
    assert set(shown[0].lines[-1].get_ydata()) == {0.1}  # chance
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["k-NN", BAD_MATHTEXT.replace("$", r"\$"), "chance"]
    assert figure._suptitle.get_text().startswith("Test accuracy as the test images are perturbed")
    assert_legend_covers_no_data(figure)


def test_robustness_refuses_what_is_not_a_result():
    with pytest.raises(ValueError, match="results is empty"):
        plots.robustness([])
    with pytest.raises(ValueError, match=r"results\[0\] must be a RobustnessResult"):
        plots.robustness([{"accuracy": 1}])


def test_same_distance_labels_each_version_with_its_distance(tmp_path):
    image = smooth_images(n=1, side=32, seed=3)[0]
    figure = plots.same_distance(image, path=tmp_path / "s.png")
    assert_png(tmp_path / "s.png", min_size=(600, 200))
    titles = [ax.get_title() for ax in figure.axes]
    assert len(titles) == 4 and titles[0] == "original"
    distances = [float(t.split("L2 distance ")[1].replace(",", "")) for t in titles[1:]]
    assert np.ptp(distances) <= 0.02 * np.mean(distances)
    assert [t.split(":")[0] for t in titles[1:]] == ["boxed", "shifted", "tinted"]
    shown = figure.axes[1].get_images()[0].get_array()
    assert l2_distances(np.asarray(shown)[None], image[None])[0] == pytest.approx(
        distances[0], abs=1
    )


def test_same_distance_with_a_knn_model_shows_neighbours_and_the_scale(digits, knn):
    test = digits["test"]
    figure = plots.same_distance(test.images[0], knn, label=test.labels[0],
                                 classes=[f"digit {c}" for c in test.classes])  # fmt: skip
    assert len(figure.axes) == 8
    top, bottom = figure.axes[:4], figure.axes[4:]
    assert top[0].get_title().startswith(f"original\nclass: digit {test.labels[0]}\npredicted: ")
    assert all("predicted: digit " in ax.get_title() for ax in top)
    scale = bottom[0].get_title()
    assert scale.startswith("the original's nearest\ntraining image: digit ")
    nearest = np.linalg.norm(digits["train"].X.astype(float) - test.X[0], axis=1).min()
    assert f"at L2 distance {nearest:,.0f}" in scale
    dist, index = knn.kneighbors(np.stack([test.images[0]]).reshape(1, -1), 1)
    shown = bottom[0].get_images()[0].get_array()
    assert np.array_equal(shown, digits["train"].images[index[0, 0], :, :, 0])  # greyscale
    assert all(ax.get_title().startswith("nearest training image\ndigit ") for ax in bottom[1:])


def test_dimensionality_alone_draws_the_coverage_picture():
    figure = plots.dimensionality()
    assert [ax.get_title() for ax in figure.axes] == [
        "1 dimension: 4 points", "2 dimensions: 16 points", "3 dimensions: 64 points"
    ]  # fmt: skip
    assert len(figure.axes[1].collections[0].get_offsets()) == 16
    assert "4^d points in d dimensions" in figure._suptitle.get_text()


def test_dimensionality_on_data_adds_the_measurements(tmp_path, digits):
    figure = plots.dimensionality(digits["train"], digits["test"], tmp_path / "d.png",
                                  n_train=500, n_test=100)  # fmt: skip
    assert_png(tmp_path / "d.png", min_size=(800, 600))
    ratio, accuracy = figure.axes[3:]
    assert ratio.get_xlabel() == "dimension (image size in pixels)"
    assert ratio.get_ylabel().startswith("nearest / farthest neighbour distance")
    assert [t.get_text() for t in ratio.get_legend().get_texts()] == [
        "images (down-sampled)", "uniform random points"
    ]  # fmt: skip
    assert ratio.lines[0].get_xdata().tolist() == [64, 16, 4]
    assert accuracy.get_ylabel() == "1-NN test accuracy"
    assert_legend_covers_no_data(figure)


def test_embedding_draws_thumbnails_in_pixel_and_feature_space(tmp_path):
    from imgclf.datasets import Dataset

    images = smooth_images(n=60, side=16, seed=5)
    data = Dataset(images, np.arange(60) % 3, ("sky", "grass", BAD_MATHTEXT), "smooth")
    figure = plots.embedding(data, ("hog", "color"), tmp_path / "e.png", n=45)
    assert_png(tmp_path / "e.png", min_size=(800, 400))
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == [
        "t-SNE of the pixels of 45 images",
        "t-SNE of the HOG + colour histograms features of 45 images",
    ]
    canvas = figure.axes[0].get_images()[0].get_array()
    assert canvas.shape == (960, 960, 3) and (canvas != 255).any(axis=-1).mean() > 0.02
    legend = [t.get_text() for t in figure.axes[1].get_legend().get_texts()]
    assert legend == ["sky", "grass", BAD_MATHTEXT.replace("$", r"\$")]
    with pytest.raises(ValueError, match="n must be >= 5"):
        plots.embedding(data, None, n=2)

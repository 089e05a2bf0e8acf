"""The Dataset record and the load(spec) front door."""

import numpy as np
import pytest

from imgclf.datasets import Dataset, load
from imgclf.errors import DatasetError


def make(n=6, classes=("a", "b", "c")):
    images = np.arange(n * 2 * 2 * 3, dtype=np.uint8).reshape(n, 2, 2, 3)
    return Dataset(images, np.arange(n) % len(classes), classes, "toy")


def test_subset_keeps_classes_and_selects_rows():
    ds = make()
    sub = ds.subset([4, 1])
    assert len(sub) == 2 and sub.classes == ds.classes
    np.testing.assert_array_equal(sub.images, ds.images[[4, 1]])
    np.testing.assert_array_equal(sub.labels, [1, 1])
    assert sub.class_counts() == {"a": 0, "b": 2, "c": 0}


def test_X_flattens_images_without_copying_dtype():
    ds = make()
    assert ds.X.shape == (6, 12) and ds.X.dtype == np.uint8


def test_summary_is_json_ready():
    import json

    info = make().summary()
    assert json.loads(json.dumps(info))["per_class"] == {"a": 2, "b": 2, "c": 2}
    assert info["image_shape"] == [2, 2, 3]


def test_coarse_labels_are_subset_too():
    ds = Dataset(
        np.zeros((3, 1, 1, 1), np.uint8),
        [0, 1, 2],
        "xyz",
        coarse_labels=[0, 0, 1],
        coarse_classes=("p", "q"),
    )
    np.testing.assert_array_equal(ds.subset([2]).coarse_labels, [1])


@pytest.mark.parametrize(
    "images, labels, message",
    [
        (np.zeros((2, 2, 2), np.uint8), [0, 0], "uint8 \\(N, H, W, C\\)"),
        (np.zeros((2, 1, 1, 1), np.float32), [0, 0], "uint8"),
        (np.zeros((2, 1, 1, 1), np.uint8), [0], "2 samples but labels"),
        (np.zeros((2, 1, 1, 1), np.uint8), [0, 5], "labels must lie in"),
    ],
)
def test_inconsistent_datasets_are_refused(images, labels, message):
    with pytest.raises(DatasetError, match=message):
        Dataset(images, labels, ("a", "b"), "bad")


@pytest.mark.parametrize("spec", ["does/not/exist", "cifar10:does/not/exist"])
def test_missing_paths_are_named(spec):
    with pytest.raises(DatasetError, match="does/not/exist"):
        load(spec)


def test_a_folder_that_is_no_dataset_says_so(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(DatasetError, match="not a dataset"):
        load(str(tmp_path))


def test_folder_options_are_refused_for_other_formats(tmp_path):
    with pytest.raises(DatasetError, match="image folders only"):
        load(f"cifar10:{tmp_path}", size=(8, 8))


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="colour"):
        load("digits", colour="red")


@pytest.mark.parametrize("spec", ["digits", "toy:xor"])
@pytest.mark.parametrize("option", [{"size": (4, 4)}, {"mode": "L"}, {"on_error": "skip"}])
def test_folder_options_are_refused_for_built_in_sets(spec, option):
    with pytest.raises(DatasetError, match=f"{next(iter(option))} apply to image folders only"):
        load(spec, **option)


def test_an_empty_spec_is_refused_not_the_current_folder():
    with pytest.raises(DatasetError, match="spec is empty"):
        load("  ")


def sorted_by_class(per_class=20, classes=("a", "b", "c", "d")):
    """Like CIFAR-10's folders: all of class 0, then all of class 1, ..."""
    labels = np.repeat(np.arange(len(classes)), per_class)
    images = np.arange(len(labels), dtype=np.uint8).reshape(-1, 1, 1, 1)
    return Dataset(images, labels, classes, "sorted")


def test_subset_of_a_size_is_stratified_and_seeded():
    ds = sorted_by_class()
    sub = ds.subset(20, seed=3)
    assert sub.class_counts() == {"a": 5, "b": 5, "c": 5, "d": 5}
    np.testing.assert_array_equal(sub.images, ds.subset(20, seed=3).images)
    assert not np.array_equal(sub.images, ds.subset(20, seed=4).images)
    assert len(ds.subset(0.5)) == 40 and len(ds.subset(80)) == 80 and len(ds.subset(1000)) == 80


def test_subset_of_a_size_matches_the_training_subset_of_experiments():
    from imgclf.model_selection import train_val_split

    ds = sorted_by_class()
    _, keep = train_val_split(ds.labels, 12, seed=1)
    np.testing.assert_array_equal(ds.subset(12, seed=1).labels, ds.labels[keep])


@pytest.mark.parametrize("bad", [0, -3, 0.0])
def test_subset_of_no_size_is_an_error(bad):
    with pytest.raises(DatasetError, match="positive size"):
        sorted_by_class().subset(bad)


def test_repr_is_one_short_line():
    ds = sorted_by_class()
    assert repr(ds) == "Dataset('sorted': 80 images 1x1x1, 4 classes)"
    points = load("toy:ring")["train"]
    assert repr(points).startswith("Dataset('toy:ring:train': ") and "points in 2D" in repr(points)
    assert "\n" not in repr(load("digits")["train"])


def test_an_empty_dataset_has_rows_of_the_image_width():
    ds = Dataset(np.zeros((0, 28, 28, 1), np.uint8), np.zeros(0, np.int64), ("a",), "empty")
    assert ds.X.shape == (0, 784) and len(ds) == 0 and ds.class_counts() == {"a": 0}

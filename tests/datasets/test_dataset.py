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

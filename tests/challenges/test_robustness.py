"""Robustness records: severity 0 gives the plain accuracy; each row, that on its images."""

import json

import numpy as np
import pytest

from imgclf.challenges import perturb, robustness
from imgclf.challenges.robustness import parse_perturbations, plan
from imgclf.datasets import load_digits
from imgclf.linear import LinearClassifier
from imgclf.neighbors import KNNClassifier


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def models(digits):
    train = digits["train"]
    return {
        "knn": KNNClassifier(k=3).fit(train.X, train.labels),
        "linear": LinearClassifier(epochs=5, seed=0).fit(train.X, train.labels),
    }


@pytest.mark.parametrize("kind", ["knn", "linear"])
def test_severity_zero_equals_the_plain_accuracy(digits, models, kind):
    test, model = digits["test"], models[kind]
    plain = model.score(test.X, test.labels)
    result = robustness(model, test, {"shift": [0, 1], "noise": [0.0], "flip": [0]})
    assert result.clean_accuracy == pytest.approx(plain)
    zero = [r for r in result.to_records() if r["severity"] == 0]
    assert len(zero) == 4 and all(r["accuracy"] == pytest.approx(plain) for r in zero)
    assert all(r["mean_l2_distance"] == 0 for r in zero)


def test_each_row_is_the_accuracy_on_the_perturbed_images(digits, models):
    test, model = digits["test"], models["linear"]
    result = robustness(model, test, ["occlude", "tint"], [2, 4], seed=3)
    assert result.perturbations == ["occlude", "occlude", "tint", "tint"]
    for name, severity, accuracy in zip(
        result.perturbations, result.severities, result.accuracy, strict=True
    ):
        moved = perturb(test.images, name, severity, seed=3)
        assert accuracy == pytest.approx(
            np.mean(model.predict(moved.reshape(len(moved), -1)) == test.labels)
        )


def test_pixel_nearest_neighbours_do_not_survive_a_two_pixel_shift(digits, models):
    result = robustness(models["knn"], digits["test"], {"shift": [1, 2]}, name="k-NN")
    severity, accuracy = result.curve("shift")
    assert severity.tolist() == [0, 1, 2]
    assert accuracy[0] > 0.95 and accuracy[2] < 0.5 and np.all(np.diff(accuracy) < 0)


def test_records_and_json(digits, models):
    result = robustness(models["knn"], (digits["test"].images[:50], digits["test"].labels[:50]),
                        {"brightness": [-0.3, 0.3]}, name="k-NN")  # fmt: skip
    records = result.to_records()
    assert [r["condition"] for r in records] == ["clean", "brightness -30%", "brightness +30%"]
    assert all(r["model"] == "k-NN" and r["n_test"] == 50 for r in records)
    assert records[1]["mean_l2_distance"] > 0
    loaded = json.loads(result.to_json())
    assert loaded["results"] == records and set(loaded["timings"]) == {
        "perturb_s",
        "distance_s",
        "predict_s",
    }
    with pytest.raises(ValueError, match="'shift' was not measured; measured: brightness"):
        result.curve("shift")


def test_the_plan_defaults_and_checks():
    assert plan(["shift"]) == {"shift": (1.0, 2.0, 4.0)}
    assert list(plan()) == list(plan(None, None))
    assert len(plan()) == 10 and all(len(levels) == 3 for levels in plan().values())
    assert plan({"occlude": [8], "flip": None}) == {"occlude": (8.0,), "flip": (0.25, 0.5, 1.0)}
    with pytest.raises(ValueError, match="perturbation must be one of"):
        plan(["zoom"])
    with pytest.raises(ValueError, match="severity of contrast"):
        plan(["contrast"], [2])
    with pytest.raises(ValueError, match="no severities given for shift"):
        plan({"shift": []})


def test_command_line_perturbations_are_parsed_and_checked():
    assert parse_perturbations(None) is None and parse_perturbations([]) is None
    parsed = parse_perturbations(["shift=1,2.5", "flip, occlude", "shift=3"])
    assert parsed == {"shift": (3.0,), "flip": None, "occlude": None}
    with pytest.raises(ValueError, match="'shift=a': severities must be numbers after '='"):
        parse_perturbations(["shift=a"])
    with pytest.raises(ValueError, match="perturbation must be one of"):
        parse_perturbations(["shift,zoom"])
    with pytest.raises(ValueError, match="severity of noise must be a number in"):
        parse_perturbations(["noise=-1"])


def test_test_data_is_checked(models):
    with pytest.raises(ValueError, match="one per image"):
        robustness(models["knn"], (np.zeros((3, 8, 8, 1), np.uint8), [0, 1]))
    with pytest.raises(ValueError, match="uint8 images"):
        robustness(models["knn"], (np.zeros((3, 64)), [0, 1, 2]))

"""Metrics equal scikit-learn's."""

import numpy as np
import pytest
from sklearn import metrics as sk

from imgclf import metrics


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 6, 500)
    y_pred = np.where(rng.random(500) < 0.6, y_true, rng.integers(0, 6, 500))
    scores = rng.random((500, 6)).round(1)  # rounding makes ties common
    return y_true, y_pred, scores


def test_accuracy_and_confusion_match_scikit_learn(predictions):
    y_true, y_pred, _ = predictions
    assert metrics.accuracy(y_true, y_pred) == sk.accuracy_score(y_true, y_pred)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y_true, y_pred), sk.confusion_matrix(y_true, y_pred)
    )


def test_per_class_accuracy_is_recall(predictions):
    y_true, y_pred, _ = predictions
    np.testing.assert_allclose(
        metrics.per_class_accuracy(y_true, y_pred), sk.recall_score(y_true, y_pred, average=None)
    )


@pytest.mark.parametrize("k", [1, 2, 5])
def test_top_k_matches_scikit_learn_without_ties(predictions, k):
    y_true, _, _ = predictions
    scores = np.random.default_rng(k).random((500, 6))
    assert metrics.top_k_accuracy(y_true, scores, k) == sk.top_k_accuracy_score(
        y_true, scores, k=k, labels=np.arange(6)
    )


@pytest.mark.parametrize("k", [1, 2, 5])
def test_top_k_ties_rank_the_lower_class_first(predictions, k):
    # scikit-learn ranks a tie's *higher* class first; with the classes in reverse order
    # its rule becomes ours, so the two must then agree exactly.
    y_true, _, scores = predictions
    expected = sk.top_k_accuracy_score(5 - y_true, scores[:, ::-1], k=k, labels=np.arange(6))
    assert metrics.top_k_accuracy(y_true, scores, k) == expected


def test_top_1_is_argmax_accuracy(predictions):
    y_true, _, scores = predictions
    assert metrics.top_k_accuracy(y_true, scores, 1) == metrics.accuracy(y_true, scores.argmax(1))


@pytest.mark.parametrize("k", [1, 2, 5])
def test_top_k_from_a_ranking_equals_top_k_from_scores(predictions, k):
    y_true, _, scores = predictions
    ranking = np.argsort(-scores, axis=1, kind="stable")[:, :5]  # as top_k_accuracy ranks
    assert metrics.top_k_accuracy_from_ranking(y_true, ranking, k) == metrics.top_k_accuracy(
        y_true, scores, k
    )


def test_top_k_from_a_ranking_of_labels():
    ranking = [["cat", "dog"], ["dog", "emu"], ["emu", "cat"]]
    y_true = ["dog", "dog", "dog"]
    assert metrics.top_k_accuracy_from_ranking(y_true, ranking, k=1) == pytest.approx(1 / 3)
    assert metrics.top_k_accuracy_from_ranking(y_true, ranking, k=2) == pytest.approx(2 / 3)


def test_absent_class_gives_nan_and_explicit_size():
    assert np.isnan(metrics.per_class_accuracy([0, 0], [0, 1], n_classes=3)[2])
    assert metrics.confusion_matrix([0], [0], n_classes=3).shape == (3, 3)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.accuracy([1, 2], [1]), "equal length"),
        (lambda: metrics.accuracy([], []), "empty"),
        (lambda: metrics.top_k_accuracy([0], [[0.2, 0.8]], k=3), "k must be <= 2"),
        (lambda: metrics.top_k_accuracy([0, 1], [[0.2, 0.8]], k=1), "scores must be"),
        (lambda: metrics.top_k_accuracy_from_ranking([0], [[1, 0]], k=3), "k must be <= 2"),
        (lambda: metrics.top_k_accuracy_from_ranking([0, 1], [[1, 0]], k=1), "ranking must be"),
        (lambda: metrics.top_k_accuracy_from_ranking([0], [1], k=1), "ranking must be"),
        (lambda: metrics.top_k_accuracy_from_ranking([], [], k=1), "y_true must be 1D"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()

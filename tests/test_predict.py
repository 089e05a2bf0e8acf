"""imgclf.predict: decoded rows skip scikit-learn's checks and give the public methods' answers.

A server ranks rows it decoded itself (uint8, the model's width), so
:func:`imgclf.predict.rank_top` goes straight to the estimators' arithmetic;
these tests hold it to the public ``predict_proba`` / ``decision_function`` /
``rank_classes``, bit for bit, and check which inputs take the short way.
"""

from __future__ import annotations

import numpy as np
import pytest

from imgclf import predict
from imgclf.datasets import load_digits
from imgclf.linear import LinearClassifier, linear_pipeline
from imgclf.neighbors import KNNClassifier
from imgclf.nn import TwoLayerNet


@pytest.fixture(scope="module")
def digits():
    splits = load_digits()
    train, test = splits["train"], splits["test"]
    rows = np.ascontiguousarray(test.images.reshape(len(test.images), -1)[:40])
    return train.images.reshape(len(train.images), -1), train.labels, rows


MODELS = {
    "softmax, mean image": lambda: linear_pipeline("softmax", epochs=3, seed=0),
    "svm, mean image scaled": lambda: linear_pipeline("svm", scale="std", epochs=3, seed=0),
    "softmax alone": lambda: LinearClassifier(epochs=3, seed=0),
    "net": lambda: TwoLayerNet(hidden=16, epochs=3, seed=0),
    "knn": lambda: KNNClassifier(k=3),
}


def public_scores(model, X):
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    scores = model.decision_function(X)
    return scores if scores.ndim == 2 else np.column_stack([-scores, scores])


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("n_rows", [1, 40])
def test_decoded_rows_score_as_the_public_methods(digits, name, n_rows):
    train_X, train_y, rows = digits
    model = MODELS[name]().fit(train_X, train_y)
    X = rows[:n_rows]
    assert predict._decoded_rows(model, X)
    np.testing.assert_array_equal(predict.class_scores(model, X), public_scores(model, X))
    ranking, scores, voters = predict.rank_top(model, X, top=3, neighbors=True)
    np.testing.assert_array_equal(scores, public_scores(model, X))
    if name == "knn":
        np.testing.assert_array_equal(ranking, model.rank_classes(X, top=3))
        for got, expected in zip(voters, model.kneighbors(X), strict=True):
            np.testing.assert_array_equal(got, expected)
    else:
        assert voters is None
        np.testing.assert_array_equal(ranking, np.argsort(-scores, axis=1, kind="stable")[:, :3])


def test_two_classes_give_both_columns(digits):
    train_X, train_y, rows = digits
    keep = train_y < 2
    model = linear_pipeline("svm", epochs=3, seed=0).fit(train_X[keep], train_y[keep])
    scores = predict.class_scores(model, rows)
    decision = model.decision_function(rows)
    np.testing.assert_array_equal(scores, np.column_stack([-decision, decision]))


@pytest.mark.parametrize(
    "change",
    ["float rows", "a column short", "not contiguous", "no rows"],
)
def test_other_inputs_take_the_checked_way(digits, change):
    train_X, train_y, rows = digits
    model = linear_pipeline("softmax", epochs=3, seed=0).fit(train_X, train_y)
    X = {
        "float rows": rows.astype(np.float32),
        "a column short": rows[:, :-1],
        "not contiguous": rows[:, ::-1],
        "no rows": rows[:0],
    }[change]
    assert not predict._decoded_rows(model, X)
    if change in ("float rows", "not contiguous"):  # still valid: same answer, checked way
        np.testing.assert_array_equal(predict.class_scores(model, X), model.predict_proba(X))
    elif change == "a column short":
        with pytest.raises(ValueError, match="features"):
            predict.class_scores(model, X)


def test_a_feature_step_takes_the_checked_way(digits):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_X, train_y, rows = digits
    model = make_pipeline(StandardScaler(), LinearClassifier(epochs=2, seed=0))
    model.fit(train_X, train_y)
    assert not predict._decoded_rows(model, rows)
    np.testing.assert_array_equal(predict.class_scores(model, rows), model.predict_proba(rows))


class _Saved:
    """What :class:`imgclf.predict.Ranker` reads of a saved model."""

    def __init__(self, model, names=None):
        self.model, self.class_names = model, names


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("n_rows", [1, 40])
def test_ranker_answers_as_rank_top(digits, name, n_rows):
    """The prepared ranker (a server's) gives the generic path's answers, neighbours too."""
    train_X, train_y, rows = digits
    model = MODELS[name]().fit(train_X, train_y)
    saved = _Saved(model, [f"digit {i}" for i in range(10)])
    ranker = predict.Ranker(saved)
    assert ranker.takes_decoded and (ranker.scorer is None) == (name == "knn")
    X = rows[:n_rows]
    answers = ranker(X, top=3, all_scores=True, neighbors=True)
    ranking, scores, voters = predict.rank_top(model, X, top=3, neighbors=True)
    assert [[t["class"] for t in a["top"]] for a in answers] == [
        [f"digit {model.classes_[i]}" for i in row] for row in ranking
    ]
    np.testing.assert_array_equal([a["scores"] for a in answers], scores)
    assert ("neighbors" in answers[0]) == (name == "knn")
    # rows the short way does not take (float) still get the checked way's same answer
    assert ranker(X.astype(np.float64), top=3, all_scores=True) == [
        {k: v for k, v in a.items() if k != "neighbors"} for a in answers
    ]


def test_ranker_weights_made_once(digits, monkeypatch):
    """The float64 weights are converted when the ranker is made, not per call."""
    train_X, train_y, rows = digits
    model = linear_pipeline("softmax", epochs=2, seed=0).fit(train_X, train_y)
    ranker = predict.Ranker(_Saved(model))
    clf = model[-1]
    calls = []
    monkeypatch.setattr(clf, "_float64_weights", lambda: calls.append(1) or (None, None))
    ranker(rows[:2], top=2)
    assert calls == []

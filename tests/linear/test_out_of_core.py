"""Training and scoring on a lazy (store-backed) array: exactly the in-memory results when
the data fit; above the memory limit, the documented block-shuffled order, replayed here in
plain NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from imgclf._minibatch import split_off_validation
from imgclf.datasets.store import IN_MEMORY_ENV, StoreWriter, open_store
from imgclf.linear import LinearClassifier
from imgclf.linear.classifier import INIT_SCALE
from imgclf.linear.losses import softmax_loss
from imgclf.nn import TwoLayerNet

N, SHAPE, CHUNK_ROWS, BLOCK_ROWS, CLASSES = 300, (4, 4, 3), 32, 16, 3
ROW_BYTES = int(np.prod(SHAPE))


@pytest.fixture(autouse=True)
def small_shuffle_blocks(monkeypatch):
    """Epochs shuffle blocks of 16 rows here (about 1 MiB of rows by default)."""
    monkeypatch.setattr("imgclf.datasets.chunked.SHUFFLE_BLOCK_BYTES", BLOCK_ROWS * ROW_BYTES)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Images whose class shifts their mean (learnable), in memory and in a store."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, CLASSES, N)
    images = np.clip(rng.normal(100 + 40 * y[:, None, None, None], 30, (N, *SHAPE)), 0, 255)
    images = images.astype(np.uint8)
    with StoreWriter(tmp_path_factory.mktemp("lazy") / "s.zarr") as store:
        store.array("images", SHAPE, np.uint8, chunk_rows=CHUNK_ROWS).append(images)
        path = store.publish({})
    return images, y, open_store(path)[1]["images"]


def limit_to_blocks(monkeypatch, blocks: int) -> None:
    """Arrays above ``2 * blocks`` shuffle blocks stay on disk; a window holds ``blocks``."""
    monkeypatch.setenv(IN_MEMORY_ENV, str(2 * blocks * BLOCK_ROWS * ROW_BYTES))


@pytest.mark.parametrize(
    "make",
    [
        lambda: LinearClassifier(epochs=3, val_fraction=0.2, early_stopping=True),
        lambda: TwoLayerNet(hidden=8, epochs=2, val_fraction=0.2),
    ],
    ids=["linear", "net"],
)
def test_a_lazy_array_that_fits_trains_exactly_as_in_memory(data, make):
    images, y, lazy = data
    assert lazy.lazy and lazy.nbytes < 2**30  # under the default limit: read whole
    in_memory, on_disk = make().fit(images, y), make().fit(lazy, y)
    for name in ("coef_", "intercept_", "W1_", "W2_", "loss_history_", "val_score_history_"):
        if hasattr(in_memory, name):
            np.testing.assert_array_equal(getattr(on_disk, name), getattr(in_memory, name))


def replayed_epoch(images, y, *, seed, lr, batch, window_blocks):
    """One epoch of LinearClassifier(standardize=False, optimizer="sgd") in plain NumPy,
    in the order shuffled_windows documents: windows dealt one block from each stratum,
    visited in a permuted order, then rows permuted per window."""
    X = images.reshape(len(images), -1).astype(np.float32)
    rng = np.random.default_rng(seed)
    split_off_validation(len(X), None, rng)  # fit draws its (empty) split first
    W = (INIT_SCALE * rng.standard_normal((X.shape[1] + 1, CLASSES))).astype(np.float32)
    W[-1] = 0
    block_of = np.arange(len(X)) // BLOCK_ROWS
    n_blocks = block_of[-1] + 1
    n_windows = -(-n_blocks // window_blocks)
    strata = [list(range(s * n_windows, (s + 1) * n_windows)) for s in range(window_blocks)]
    table = np.array([[b if b < n_blocks else -1 for b in stratum] for stratum in strata])
    table = rng.permuted(table, axis=1)  # one block of every stratum in each window
    for w in rng.permutation(n_windows):
        rows = np.flatnonzero(np.isin(block_of, table[:, w][table[:, w] >= 0]))
        rows = rows[rng.permutation(len(rows))]
        for start in range(0, len(rows), batch):
            part = rows[start : start + batch]
            inputs = np.hstack([X[part], np.ones((len(part), 1), np.float32)])
            _, grad = softmax_loss(W, inputs, y[part], 0.0, bias_row=True)
            W = W - lr * grad
    return W


def test_out_of_core_training_follows_the_documented_block_order(data, monkeypatch):
    images, y, lazy = data
    limit_to_blocks(monkeypatch, 3)  # 19 blocks of 16 rows (10 chunks of 32), windows of 3
    params = dict(standardize=False, optimizer="sgd", epochs=1, reg=0.0, batch_size=16)
    clf = LinearClassifier(learning_rate=1e-4, seed=7, **params).fit(lazy, y)
    W = replayed_epoch(images, y, seed=7, lr=1e-4, batch=16, window_blocks=3)
    np.testing.assert_allclose(clf.coef_, W[:-1].T, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(clf.intercept_, W[-1], rtol=1e-5, atol=1e-7)
    # 19 blocks dealt into 7 windows from 3 strata (7, 7 and 5 blocks): 5 windows of 3
    # blocks and 2 of 2, each ending on its own minibatch of at most 16 rows
    assert len(clf.loss_history_) == 5 * 3 + 2 * 2


def test_out_of_core_training_learns_and_scores_as_in_memory(data, monkeypatch):
    images, y, lazy = data
    limit_to_blocks(monkeypatch, 2)
    clf = LinearClassifier(epochs=5, val_fraction=0.2, seed=1).fit(lazy, y)
    assert clf.n_features_in_ == ROW_BYTES and clf.n_iter_ == 5
    # standardized by chunked sums: the in-memory statistics up to float rounding
    reference = LinearClassifier(epochs=1, seed=1, val_fraction=0.2).fit(images, y)
    np.testing.assert_allclose(clf.mean_, reference.mean_, rtol=1e-6)
    np.testing.assert_allclose(clf.scale_, reference.scale_, rtol=1e-6)
    # scoring reads blocks of the store: the same float64 scores as in memory
    np.testing.assert_array_equal(clf.decision_function(lazy), clf.decision_function(images))
    np.testing.assert_array_equal(clf.predict(lazy), clf.predict(images))
    # the validation accuracy it recorded is that of its final weights
    rows = split_off_validation(N, 0.2, np.random.default_rng(1))[1]
    assert clf.val_score_history_[-1] == pytest.approx(clf.score(images[rows], y[rows]))
    # it learns as well as in-memory training does (another order of the same rows)
    in_memory = LinearClassifier(epochs=5, val_fraction=0.2, seed=1).fit(images, y)
    assert clf.score(lazy, y) > 0.6 and abs(clf.score(lazy, y) - in_memory.score(images, y)) < 0.1


def test_a_store_ordered_by_class_is_learned_as_well_as_in_memory(data, tmp_path, monkeypatch):
    """A folder's store holds its images class by class: windows of random blocks mix them.
    (Windows of whole 100-row chunks here, one class each, scored 0.68-1.0 over these
    seeds, 0.85 on average: long runs of one class at a large learning rate.)"""
    images, y, _ = data
    by_class = np.argsort(y, kind="stable")
    with StoreWriter(tmp_path / "sorted.zarr") as store:
        store.array("images", SHAPE, np.uint8, chunk_rows=100).append(images[by_class])
        lazy = open_store(store.publish({}))[1]["images"]
    limit_to_blocks(monkeypatch, 2)
    params = dict(epochs=1, batch_size=8, learning_rate=0.5)
    in_memory = LinearClassifier(seed=4, **params).fit(images[by_class], y[by_class])
    scores = [
        LinearClassifier(seed=seed, **params).fit(lazy, y[by_class]).score(images, y)
        for seed in range(4)
    ]
    assert np.mean(scores) > in_memory.score(images, y) - 0.03


def test_out_of_core_network_trains_reproducibly(data, monkeypatch):
    images, y, lazy = data
    limit_to_blocks(monkeypatch, 2)
    first = TwoLayerNet(hidden=16, epochs=3, seed=2, val_fraction=0.2).fit(lazy, y)
    second = TwoLayerNet(hidden=16, epochs=3, seed=2, val_fraction=0.2).fit(lazy, y)
    np.testing.assert_array_equal(first.W1_, second.W1_)
    assert np.isfinite(first.loss_history_).all() and len(first.train_acc_history_) == 3
    assert first.score(lazy, y) == first.score(images, y) > 0.6


def test_lazy_inputs_are_checked_without_reading_them(data, monkeypatch):
    images, y, lazy = data
    limit_to_blocks(monkeypatch, 2)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        LinearClassifier(epochs=1).fit(lazy, y[:-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        LinearClassifier(epochs=1).fit(lazy, np.zeros(N, int))
    clf = LinearClassifier(epochs=1).fit(images[:, :2], y)  # fewer features than the store
    with pytest.raises(ValueError, match=f"X has {ROW_BYTES} features"):
        clf.predict(lazy)


def lazy_dataset(images, y, lazy, name):
    from imgclf.datasets import Dataset

    return Dataset(lazy, y, ("a", "b", "c"), name), Dataset(images, y, ("a", "b", "c"), name)


@pytest.mark.parametrize("model", ["linear", "net"])
def test_experiments_train_and_evaluate_a_set_larger_than_the_limit(data, monkeypatch, model):
    from imgclf import experiments

    images, y, lazy = data
    on_disk, in_memory = lazy_dataset(images, y, lazy, "synthetic")
    params = {"epochs": 2, **({"hidden": 8} if model == "net" else {})}
    # under the limit: read whole, the very model in-memory training gives
    same = experiments.fit_model(experiments.make_model(model, **params), on_disk)
    reference = experiments.fit_model(experiments.make_model(model, **params), in_memory)
    np.testing.assert_array_equal(same.predict_proba(images), reference.predict_proba(images))
    limit_to_blocks(monkeypatch, 2)  # above it: the pipeline is fitted out of core
    fitted = experiments.fit_model(experiments.make_model(model, **params), on_disk)
    mean = fitted.steps[0][1]
    np.testing.assert_allclose(mean.mean_, reference.steps[0][1].mean_, rtol=1e-6)
    np.testing.assert_allclose(mean.scale_, reference.steps[0][1].scale_, rtol=1e-6)
    # evaluation reads the test set in blocks: the in-memory figures exactly
    lazy_eval = experiments.evaluate(fitted, on_disk)
    memory_eval = experiments.evaluate(fitted, in_memory)
    assert lazy_eval.accuracy == memory_eval.accuracy > 0.6
    np.testing.assert_array_equal(lazy_eval.confusion, memory_eval.confusion)
    np.testing.assert_array_equal(lazy_eval.predictions, memory_eval.predictions)


def test_features_on_a_set_larger_than_the_limit_are_computed_chunk_by_chunk(data, monkeypatch):
    """Image features (pixels and colour histograms) of a set above the limit: extracted once,
    chunk by chunk, into a temporary store the classifier trains from; the statistics after
    them and the evaluation from disk are the in-memory ones. A step that needs every row in
    memory to fit says so."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from imgclf import experiments
    from imgclf.datasets.cache import cache_dir
    from imgclf.errors import DatasetError

    images, y, lazy = data
    on_disk, in_memory = lazy_dataset(images, y, lazy, "synthetic")
    params = {"features": ["pixels", "color"], "image_shape": SHAPE, "epochs": 2}
    reference = experiments.fit_model(experiments.make_model("linear", **params), in_memory)
    limit_to_blocks(monkeypatch, 2)
    fitted = experiments.fit_model(experiments.make_model("linear", **params), on_disk)
    mean, want = fitted.named_steps["mean"], reference.named_steps["mean"]
    np.testing.assert_allclose(mean.mean_, want.mean_, rtol=1e-6)
    np.testing.assert_allclose(mean.scale_, want.scale_, rtol=1e-6)
    assert not list(cache_dir().glob("features-*"))  # the temporary store is gone
    lazy_eval = experiments.evaluate(fitted, on_disk)
    assert lazy_eval.accuracy == experiments.evaluate(fitted, in_memory).accuracy > 0.5
    needs_all = Pipeline([("scaler", StandardScaler()), ("clf", LinearClassifier(epochs=1))])
    with pytest.raises(DatasetError, match="StandardScaler step cannot be fitted on a dataset"):
        experiments.fit_model(needs_all, on_disk)


def test_a_lazy_float_array_with_nan_is_refused(tmp_path, monkeypatch):
    from sklearn.preprocessing import FunctionTransformer

    from imgclf.datasets.transformed import transform_to_store

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    X[150, 2] = np.nan
    stored = transform_to_store(X, FunctionTransformer(), tmp_path / "f.zarr")
    monkeypatch.setenv(IN_MEMORY_ENV, "1000")
    with pytest.raises(ValueError, match="NaN or infinity"):
        LinearClassifier(epochs=1).fit(stored, rng.integers(0, 2, 200))

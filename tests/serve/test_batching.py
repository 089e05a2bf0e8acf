"""Micro-batching: requests arriving together share a model call; every answer is the lone one."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from imgclf.serve.batching import MicroBatcher


class Recorder:
    """A fake model: answers ``row.sum()``, remembers how many rows each call had."""

    def __init__(self, fail_on: int | None = None):
        self.calls: list[int] = []
        self.fail_on = fail_on

    def __call__(self, rows: np.ndarray, top: int) -> list:
        self.calls.append(len(rows))
        if self.fail_on is not None and self.fail_on in rows[:, 0]:
            raise RuntimeError("boom")
        return [{"sum": int(row.sum()), "top": top} for row in rows]


def _submit_all(batcher: MicroBatcher, rows, tops) -> list:
    async def main():
        return await asyncio.gather(
            *(batcher.submit(r, t) for r, t in zip(rows, tops, strict=True)),
            return_exceptions=True,
        )

    return asyncio.run(main())


def test_requests_arriving_together_share_one_call():
    run = Recorder()
    rows = [np.full(4, i, np.uint8) for i in range(20)]
    answers = _submit_all(MicroBatcher(run, max_batch=8), rows, [5] * 20)
    assert answers == [{"sum": 4 * i, "top": 5} for i in range(20)]
    assert run.calls == [8, 8, 4]  # at most max_batch rows a call


def test_distinct_top_values_are_ranked_separately_and_rows_alone_when_asked():
    run = Recorder()
    rows = [np.full(2, i, np.uint8) for i in range(6)]
    answers = _submit_all(MicroBatcher(run), rows, [1, 2, 1, 2, 1, 2])
    assert [a["top"] for a in answers] == [1, 2, 1, 2, 1, 2] and sorted(run.calls) == [3, 3]
    alone = Recorder()
    _submit_all(MicroBatcher(alone, together=False), rows, [3] * 6)
    assert alone.calls == [1] * 6


@pytest.mark.parametrize(("together", "crowded"), [(True, False), (False, False), (False, True)])
def test_a_row_that_runs_alone_anyway_waits_for_no_loop_turn(together, crowded):
    """One call per row on the loop, nothing else in flight: the row runs at once (a batch
    would change nothing); rows that may share a call, or that come while other requests
    are in flight, wait a turn of the loop for the others."""
    events: list[str] = []

    def run(rows: np.ndarray, top: int) -> list:
        events.append("run")
        return [{"sum": int(row.sum())} for row in rows]

    async def main():
        asyncio.get_running_loop().call_soon(events.append, "turn")
        batcher = MicroBatcher(run, together=together, crowded=lambda: crowded)
        return await batcher.submit(np.ones(3, np.uint8), 1)

    assert asyncio.run(main()) == {"sum": 3}
    assert events == (["turn", "run"] if together or crowded else ["run", "turn"])


def test_a_failing_row_alone_fails_its_request():
    async def main():
        return await MicroBatcher(Recorder(fail_on=3), together=False).submit(
            np.full(2, 3, np.uint8), 1
        )

    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(main())


def test_a_failing_batch_fails_its_requests_only():
    run = Recorder(fail_on=3)
    batcher = MicroBatcher(run, max_batch=4)
    answers = _submit_all(batcher, [np.full(2, i, np.uint8) for i in range(8)], [5] * 8)
    assert all(isinstance(a, RuntimeError) for a in answers[:4])
    assert answers[4:] == [{"sum": 2 * i, "top": 5} for i in range(4, 8)]


def test_max_wait_gathers_rows_that_come_a_little_later():
    run = Recorder()

    async def main():
        batcher = MicroBatcher(run, max_wait=0.05)
        first = asyncio.ensure_future(batcher.submit(np.zeros(2, np.uint8), 1))
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(batcher.submit(np.ones(2, np.uint8), 1))
        return await asyncio.gather(first, second)

    assert [a["sum"] for a in asyncio.run(main())] == [0, 2] and run.calls == [2]


# --- batches of a real model answer as its rows do alone -----------------------------------------


def _knn(metric: str, weights: str = "uniform"):
    from imgclf.datasets import load_digits
    from imgclf.neighbors import KNNClassifier
    from imgclf.serve.models import ServedModel

    train = load_digits()["train"]
    clf = KNNClassifier(k=4, metric=metric, weights=weights).fit(train.images, train.labels)

    class Saved:  # what io.load returns, without a file
        model, model_type, class_names = clf, "knn", list(train.classes)
        image_shape, signed, verified = (8, 8, 1), False, False

    return ServedModel(f"knn-{metric}", "memory", Saved()), train.images


@pytest.mark.parametrize(("metric", "weights"), [("l1", "uniform"), ("l2", "distance")])
def test_exact_knn_batches_equal_single_rows_with_ties(metric, weights):
    """Random images, training images (distance 0), duplicates and constant images."""
    model, train = _knn(metric, weights)
    assert model.batch_invariant
    rng = np.random.default_rng(7)
    rows = np.concatenate(
        [
            rng.integers(0, 17, (20, 64), dtype=np.uint8),
            train[:10].reshape(10, -1),
            np.repeat(train[10:11].reshape(1, -1), 3, axis=0),
            np.zeros((2, 64), np.uint8),
            np.full((2, 64), 16, np.uint8),
        ]
    )
    together = model.predict_rows(rows, top=5)
    alone = [model.predict_rows(row[None], top=5)[0] for row in rows]
    assert together == alone


@pytest.mark.parametrize("metric", ["l1", "l2"])
def test_ivf_knn_batches_equal_single_rows(metric):
    """An IVF model on pixels: alone, a row takes the pruned path over its probed lists; in
    a batch, the lists' scan. Both pick the lists by the same code, so the answers agree,
    also for rows near the boundary of two lists (midpoints of two clusters)."""
    from imgclf.neighbors import KNNClassifier
    from imgclf.neighbors.search import PRUNE_MIN_DATABASE
    from imgclf.serve.models import ServedModel

    rng = np.random.default_rng(5)
    centres = rng.integers(30, 226, (16, 48))
    which = rng.integers(0, 16, PRUNE_MIN_DATABASE + 500)
    train = np.clip(centres[which] + rng.integers(-20, 21, (len(which), 48)), 0, 255)
    train = train.astype(np.uint8).reshape(-1, 4, 4, 3)
    clf = KNNClassifier(k=5, metric=metric, algorithm="ivf", n_lists=20, n_probe=2)
    clf.fit(train, which % 10)

    class Saved:
        model, model_type, class_names = clf, "knn", [str(c) for c in range(10)]
        image_shape, signed, verified = (4, 4, 3), False, False

    model = ServedModel(f"ivf-{metric}", "memory", Saved())
    assert model.batch_invariant
    middles = (centres[rng.integers(0, 16, 20)] + centres[rng.integers(0, 16, 20)]) // 2
    rows = np.concatenate([middles.astype(np.uint8), train[:10].reshape(10, -1)])
    for top in (1, 5):  # top 1: one batch search; top 5: classes from each row's lists
        together = model.predict_rows(rows, top=top)
        alone = [model.predict_rows(row[None], top=top)[0] for row in rows]
        assert together == alone
    assert clf._index._pruner is not None  # the rows alone were pruned
    assert clf._index._blocks is not None  # and the batch scanned the lists


def test_float_models_are_not_batched_by_default(saved_models):
    from imgclf.serve.models import ServedModel

    kinds = {name: ServedModel(name, "x", saved).batch_invariant
             for name, saved in saved_models.items()}  # fmt: skip
    assert kinds["digits-knn"] and not kinds["digits-linear"] and not kinds["digits-net"]


def test_64_clients_at_once_get_their_own_answers(server, saved_models, digits_files):
    """64 threads post different images at the same moment; each answer is its image's."""
    from io import BytesIO

    from PIL import Image

    from imgclf.datasets import load_digits
    from imgclf.predict import rank_images

    images = load_digits()["test"].images[:64]
    bodies = []
    for image in images:
        out = BytesIO()
        Image.fromarray(image[:, :, 0]).save(out, format="PNG")
        bodies.append(out.getvalue())
    results: list = [None] * 64
    barrier = threading.Barrier(64)

    def client(i: int) -> None:
        name = ("digits-knn", "digits-linear", "digits-net")[i % 3]
        barrier.wait()
        results[i] = (name, server.post(f"/v1/models/{name}/predict", bodies[i]))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for i, (name, (status, got)) in enumerate(results):
        want = rank_images(saved_models[name], images[i].reshape(1, -1))[0]
        assert status == 200 and got["top"] == want["top"], i


def test_which_models_are_batched(all_models):
    """Float models: one call per image unless asked; exact k-NN: when measured faster."""
    from imgclf.serve.app import App, Settings
    from imgclf.serve.models import load_models

    digits = {n: p for n, p in all_models.items() if n.startswith("digits")}
    models = load_models([f"{n}={p}" for n, p in digits.items()])
    app = App(models)
    assert not app.batched(models["digits-linear"]) and not app.batched(models["digits-net"])
    assert isinstance(app.batched(models["digits-knn"]), bool)  # measured: either is right
    every = App(models, Settings(batch_float_models=True))
    assert all(every.batched(m) for m in models.values())


def test_a_model_that_does_not_batch_keeps_no_copy_for_batches():
    """The trial runs the batch path (which makes the index's copy of the rows); a model
    found faster one image at a time frees it, one found faster in batches keeps it."""
    model, train = _knn("l2")
    index = model.estimator._index
    faster = model.batches_faster()
    assert (index._blocks is not None) == faster
    rows = train[:6].reshape(6, -1)
    assert model.predict_rows(rows, top=3) == [model.predict_rows(r[None], 3)[0] for r in rows]


def test_the_batching_trial_uses_rows_like_real_queries():
    """Without --data a k-NN model's trial rows are its own training images with a little
    noise (random pixels are far from every image and would misjudge the pruned path)."""
    model, train = _knn("l1")
    rows = model._trial_rows(8).astype(np.int64)
    flat = train.reshape(len(train), -1).astype(np.int64)
    nearest = np.abs(rows[:, None, :] - flat[None]).max(axis=2).min(axis=1)
    assert rows.shape == (8, 64) and (nearest <= 24).all()

"""The models a server holds: loaded from their files, asked through :mod:`imgclf.predict`.

A :class:`ServedModel` decodes an upload with
:func:`~imgclf.predict.decode_for_model` and ranks a batch of rows with
:func:`~imgclf.predict.rank_images`, the steps of :func:`~imgclf.predict.predict_file`
that ``imgclf predict`` runs, so an HTTP answer equals the command's and the
library's for the same file by construction. It adds what a page wants to show:
a k-NN model's neighbours (training index, label, distance) and training images,
and a linear model's class templates.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf.errors import ImgclfError
from imgclf.serve.png import decode_png

__all__ = [
    "ServedModel",
    "TrainingImages",
    "load_data_images",
    "load_models",
    "model_name",
    "png_bytes",
]

# Batches must take at most this share of the time of one call per row to be used: they
# hold another copy of a k-NN model's training set, and the trial is a few milliseconds.
BATCH_MARGIN = 0.8
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 ``(H, W, C)`` image (C = 1 or 3) as PNG bytes."""
    from PIL import Image

    pixels = image[:, :, 0] if image.shape[-1] == 1 else image
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=1)
    return out.getvalue()


@dataclass
class TrainingImages:
    """Images a page can show: the training images neighbours point to, and test images.

    Attributes
    ----------
    train, test : uint8 ndarray (N, H, W, C) or None
    train_labels, test_labels : int64 ndarray (N,) or None
    classes : list of str
    source : str
        Where they came from (the model file, or the ``--data`` spec).
    """

    train: np.ndarray | None
    train_labels: np.ndarray | None
    test: np.ndarray | None
    test_labels: np.ndarray | None
    classes: list[str]
    source: str


class ServedModel:
    """One loaded model, ready to classify decoded uploads in batches.

    Parameters
    ----------
    name : str
        Its name in URLs (``/v1/models/{name}/predict``).
    path : path
        Its model file.
    saved : imgclf.io.SavedModel
    """

    def __init__(self, name: str, path: str | os.PathLike, saved):
        from imgclf._validation import final_estimator
        from imgclf.predict import Ranker, score_kind

        if saved.image_shape is None:
            raise ImgclfError(f"{path}: this model was not trained on images; it cannot serve")
        self.name, self.path, self.saved = name, str(path), saved
        self.image_shape: tuple[int, int, int] = tuple(saved.image_shape)
        self.estimator = final_estimator(saved.model)
        self.score_kind = score_kind(saved.model)
        labels = self.estimator.classes_
        names = saved.class_names
        self.classes = [names[int(i)] for i in labels] if names else [str(i) for i in labels]
        self.is_knn = hasattr(self.estimator, "kneighbors")
        if self.is_knn:  # one request's search on one core: the others serve other requests
            self.estimator.single_query_threads(1)
        self.images: TrainingImages | None = self._own_training_images()
        self._ranker = Ranker(saved)

    # --- what the model is --------------------------------------------------------------

    @property
    def k(self) -> int | None:
        """Neighbours that vote (k-NN), else None."""
        return int(self.estimator.k) if self.is_knn else None

    @property
    def batch_invariant(self) -> bool:
        """Whether a row's answer is the same whatever rows are ranked with it.

        True for k-NN on raw pixels, exact or by imgclf's IVF index: uint8
        distances are exact integers, ties go to the lower index, and the IVF
        index picks a query's lists by the same compiled code in any batch.
        Float models (linear, net, k-NN on features, faiss or HNSW) go through
        BLAS or SIMD sums whose order can depend on the batch.
        """
        return (
            self.is_knn
            and getattr(self.estimator, "algorithm", "exact") in ("exact", "ivf")
            and not hasattr(self.saved.model, "steps")
            and getattr(self.estimator, "_fit_X", np.empty(0, np.float32)).dtype == np.uint8
        )

    @property
    def n_features(self) -> int:
        """Length of one input row (``H * W * C``)."""
        return int(np.prod(self.image_shape))

    def describe(self) -> dict:
        """What a client needs to know: type, classes, input shape, scores, extras."""
        height, width, channels = self.image_shape
        return {
            "name": self.name,
            "model_type": self.saved.model_type,
            "file": os.path.basename(self.path),
            "classes": self.classes,
            "image_shape": [height, width, channels],
            "mode": "L" if channels == 1 else "RGB",
            "score": self.score_kind,
            "k": self.k,
            "templates": self.has_templates(),
            "training_images": self.images is not None and self.images.train is not None,
            "test_images": 0
            if self.images is None or self.images.test is None
            else len(self.images.test),
            "signed": self.saved.signed,
            "verified": self.saved.verified,
        }

    # --- classifying --------------------------------------------------------------------

    def decode(
        self, data: bytes, filename: str = "upload", max_bytes: int | None = None
    ) -> tuple[np.ndarray, str | None]:
        """An upload decoded as training did: ``(row (d,), resized)``; see ``decode_for_model``.

        ``filename`` names it in errors (its ending picks the format tried first);
        ``max_bytes`` bounds its decoded pixels.
        """
        from imgclf.predict import decode_for_model

        pixels = decode_png(data, *self.image_shape)  # a plain PNG of the model's size, fast
        if pixels is not None and (max_bytes is None or pixels.nbytes <= max_bytes):
            return pixels.reshape(-1), None
        image, resized = decode_for_model(self.saved, filename, data=data, max_bytes=max_bytes)
        # a writeable copy (3 KB for CIFAR): Pillow's pixels are read-only, and numba compiles
        # its kernels again, for seconds, the first time it sees a read-only array
        return np.array(image.reshape(-1)), resized

    def predict_rows(self, rows: np.ndarray, top: int, neighbors: bool = True) -> list[dict]:
        """``rows`` ``(n, d)`` uint8 ranked in one call (:class:`~imgclf.predict.Ranker`, as
        :func:`~imgclf.predict.rank_images`).

        Each answer holds ``score``, ``top`` and ``scores`` (every class, in class
        order); a k-NN model's answers add its ``k`` voters as ``neighbors`` (from the
        same search) unless ``neighbors=False``.
        """
        if top > 1 and len(rows) > 1 and self._ranks_in_lists:
            return [self._ranker(row[None], top=top, all_scores=True, neighbors=neighbors)[0]
                    for row in rows]  # fmt: skip
        return self._ranker(rows, top=top, all_scores=True, neighbors=neighbors)

    @property
    def _ranks_in_lists(self) -> bool:
        """Whether a lone row's classes past the voters come from its probed lists (an IVF
        index), where a batch's deeper search may probe further lists: such rows go one
        by one, so that a batch answers as they do alone; a batch's top-1 answers need
        no more than the voters."""
        return self.is_knn and getattr(self.estimator, "algorithm", "exact") == "ivf"

    def warm_up(self) -> None:
        """Classify two images alone and together, so that the first request does not pay
        for lazy set-up (kernels compiled on first use, an index's first search)."""
        rows = np.random.default_rng(0).integers(0, 256, (2, self.n_features), dtype=np.uint8)
        top = min(5, len(self.classes))
        self.predict_rows(rows[:1], top=top)
        self.predict_rows(rows, top=top)

    def batches_faster(self, n: int = 8) -> bool:
        """Whether ``n`` rows take clearly less time in one call than one by one (measured
        once, the faster of two tries each).

        k-NN's exact index answers a single query with a cascade of lower bounds that
        skips most rows, and a block of queries with a kernel that reads every row: at a
        few queries the lone path can be the faster one. The rows are like real queries
        (:meth:`_trial_rows`). The batch path runs once untimed (its first call makes the
        index's copy for batches, another copy of the training set); it must win by
        :data:`BATCH_MARGIN` to be kept, else that copy is freed.
        """
        rows = self._trial_rows(n)
        top = 1 if self._ranks_in_lists else min(5, len(self.classes))  # (what batches)
        self.predict_rows(rows, top=top)
        together = _fastest(lambda: self.predict_rows(rows, top=top))
        alone = _fastest(lambda: [self.predict_rows(row[None], top=top) for row in rows])
        faster = together < BATCH_MARGIN * alone
        if not faster and self.is_knn:
            self.estimator.release_batch_copy()
        return faster

    def _trial_rows(self, n: int) -> np.ndarray:
        """``n`` rows like real queries, for :meth:`batches_faster`: training images with
        some noise (near some, as real queries are: random pixels are far from all, and
        prune worse), from ``--data`` or the k-NN model's own rows, else random pixels."""
        rng = np.random.default_rng(1)
        train = self.images.train if self.images is not None else None
        if train is None:
            train = getattr(self.estimator, "_fit_X", None)
        if train is not None and train.dtype == np.uint8:
            base = train[rng.integers(0, len(train), n)]
            noise = rng.integers(-24, 25, base.shape)
            rows = np.clip(base.reshape(n, -1) + noise.reshape(n, -1), 0, 255).astype(np.uint8)
        else:
            rows = rng.integers(0, 256, (n, self.n_features), dtype=np.uint8)
        return rows

    # --- pictures -----------------------------------------------------------------------

    def has_templates(self) -> bool:
        """A linear model on pixels: each class's weights can be seen as an image."""
        coef = getattr(self.estimator, "coef_", None)
        return coef is not None and coef.ndim == 2 and coef.shape[1] == self.n_features

    def templates(self) -> np.ndarray:
        """Each class's weights as a uint8 image, all rescaled together to 0-255 (CS231n)."""
        if not self.has_templates():
            raise ImgclfError(f"model {self.name}: not a linear model on pixels; no templates")
        weights = np.asarray(self.estimator.coef_, dtype=np.float64)
        low, high = weights.min(), weights.max()
        scaled = 255 * (weights - low) / (high - low or 1)
        return np.rint(scaled).astype(np.uint8).reshape(len(weights), *self.image_shape)

    def _own_training_images(self) -> TrainingImages | None:
        """A k-NN model on raw pixels holds its training images: neighbours can be shown."""
        fit_x = getattr(self.estimator, "_fit_X", None)
        if fit_x is None or fit_x.dtype != np.uint8 or fit_x.shape[1] != self.n_features:
            return None
        if hasattr(self.saved.model, "steps"):  # features: the rows are not the images
            return None
        train = fit_x.reshape(len(fit_x), *self.image_shape)
        return TrainingImages(train, self.estimator._y, None, None, self.classes, self.path)

    def attach_data(self, images: TrainingImages) -> None:
        """Use ``--data``'s test images (and its training images, when the model has none)."""
        if images.train is not None and images.train.shape[1:] != self.image_shape:
            raise ImgclfError(
                f"--data {images.source}: its images are "
                f"{'x'.join(map(str, images.train.shape[1:]))}; model {self.name} expects "
                f"{'x'.join(map(str, self.image_shape))}"
            )
        own = self.images
        train_ok = own is None and self.is_knn and _same_training_count(self, images)
        self.images = TrainingImages(
            own.train if own else images.train if train_ok else None,
            own.train_labels if own else images.train_labels if train_ok else None,
            images.test,
            images.test_labels,
            images.classes,
            images.source,
        )


def _same_training_count(model: ServedModel, images: TrainingImages) -> bool:
    """Neighbour indices can point into ``--data``'s training split only if it has as many."""
    fit_x = getattr(model.estimator, "_fit_X", None)
    return images.train is not None and fit_x is not None and len(fit_x) == len(images.train)


def _fastest(fn, tries: int = 2) -> float:
    """The least of ``tries`` timings of ``fn()``, in seconds."""
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def model_name(path: str | os.PathLike) -> str:
    """A model's name in URLs: its file name without the ending (``knn.imgclf`` -> ``knn``)."""
    stem = Path(path).name.split(".")[0] or "model"
    return "".join(c if c in _NAME_CHARS else "_" for c in stem)


def load_models(paths, *, key: bytes | None = None) -> dict[str, ServedModel]:
    """Load every model file (checksums verified); a bad file or a repeated name is an error.

    Parameters
    ----------
    paths : sequence of path
        Model files; each is named after its file (``NAME=PATH`` names it explicitly).
    key : bytes, optional
        Refuse files not signed with this key (see :func:`imgclf.io.load`).
    """
    from imgclf import io as model_io

    models: dict[str, ServedModel] = {}
    for given in paths:
        text = os.fspath(given)
        name, eq, path = text.partition("=")
        if not eq or not name or any(c not in _NAME_CHARS for c in name):
            name, path = model_name(text), text
        if name in models:
            raise ImgclfError(
                f"two models named {name!r} ({models[name].path} and {path}); "
                "name one explicitly: NAME=PATH"
            )
        models[name] = ServedModel(name, path, model_io.load(path, key=key))
    return models


def load_data_images(spec: str) -> TrainingImages:
    """``--data``: the dataset's splits as images a page can show."""
    from imgclf import datasets

    splits = datasets.load(spec)
    train, test = splits.get("train"), splits.get("test")
    first = train if train is not None else test
    return TrainingImages(
        train.images if train is not None else None,
        train.labels if train is not None else None,
        test.images if test is not None else None,
        test.labels if test is not None else None,
        list(first.classes),
        spec,
    )

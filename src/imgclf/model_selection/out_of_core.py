"""Fitting and scoring a model on a lazy array larger than memory, and its scratch stores.

What :func:`imgclf.experiments.fit_model` and :func:`~imgclf.model_selection.cross_validate`
do when the rows are on disk (a :attr:`~imgclf.datasets.Dataset.lazy` set above
:func:`~imgclf.datasets.store.in_memory_bytes`):

``fit_rows``     a classifier, or a pipeline step by step: each step before the classifier
                 is fitted on the lazy rows and the next one sees its output (a
                 :class:`~imgclf.preprocessing.MeanImage`'s as the rows are read, an
                 image-feature step's computed once into a temporary store)
``score_rows``   accuracy of ``X[rows]`` read a block at a time (the same figure)
``scratch_folder``  a temporary folder for such a store, in the cache folder

A temporary store is removed when the fit ends, also by an exception. A k-NN
classifier keeps its training rows, so the store of its features lives as long as
the fitted model does (removed when the model is garbage-collected, or when the
process exits). A process killed outright cannot clean up: every scratch folder
names its process id, and the next one made removes those whose process is gone,
and any older than :data:`STALE_HOURS` (a folder of an older imgclf, or of a process
on another machine sharing the cache).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from imgclf.datasets.chunked import fits_in_memory, is_lazy

__all__ = ["SCRATCH_PREFIX", "STALE_HOURS", "features_of", "fit_rows", "scratch_folder",
           "score_rows", "sweep_scratch"]  # fmt: skip

SCRATCH_PREFIX = "features-"
STALE_HOURS = 24  # a scratch folder older than this is left over, whoever made it
SCORE_BLOCK_BYTES = 64 * 2**20  # the rows of one block scored at a time


def fit_rows(model, X, y):
    """``model`` fitted on lazy rows ``X`` ``(n, d)`` and labels ``y``; returns it.

    Rows that fit the in-memory limit are read whole (the same model as in
    memory); a larger ``X`` is never read whole (see the module's docstring).
    """
    if fits_in_memory(X) or not isinstance(model, Pipeline):
        return model.fit(np.asarray(X) if fits_in_memory(X) else X, y)
    with contextlib.ExitStack() as scratch:
        for _, step in model.steps[:-1]:
            X = features_of(step, X, scratch)
        final = model.steps[-1][1]
        final.fit(X, y)
        if is_lazy(getattr(final, "_fit_X", None)):  # k-NN searches these rows from disk
            final._scratch = scratch.pop_all()  # removed with the model, not now
    return model


def features_of(step, X, scratch: contextlib.ExitStack):
    """``step`` (a feature extractor) fitted on lazy rows ``X`` and its output of every
    row, written chunk by chunk to a scratch store that ``scratch`` removes: lazy."""
    return _output_of(_fit_step(step, X), X, scratch)


def _fit_step(step, X):
    """A pipeline step fitted on lazy rows ``X``, which it never reads whole.

    A step that learns nothing from the rows (HOG, colour histograms: scikit-learn's
    ``requires_fit`` tag is False) is fitted on the first rows only, for their shape;
    others are given the lazy array (MeanImage sums it by windows of chunks, k-means
    features read the images of their random patches), and a step that cannot take
    one says so.
    """
    from imgclf.errors import DatasetError

    if not step.__sklearn_tags__().requires_fit:
        return step.fit(X.read(0, min(len(X), X.chunk_rows)))
    try:
        return step.fit(X)
    except DatasetError as exc:  # it asked for every row in memory
        raise DatasetError(
            f"a {type(step).__name__} step cannot be fitted on a dataset larger than memory "
            "yet (it reads every row at once); train on a subset (--train-size), or with "
            "other features"
        ) from exc


def _output_of(step, X, scratch: contextlib.ExitStack):
    """What the next step of the pipeline reads: ``step``'s output of the lazy rows ``X``."""
    from imgclf.datasets.transformed import TransformedArray, transform_to_store
    from imgclf.preprocessing import MeanImage

    if isinstance(step, MeanImage):  # cheap per row: applied as the rows are read
        return TransformedArray(X, step)
    folder = scratch.enter_context(scratch_folder())
    return transform_to_store(X, step, Path(folder) / "features.zarr")


def scratch_folder() -> tempfile.TemporaryDirectory:
    """A new temporary folder ``features-<pid>-*`` in the cache folder, removed on exit
    of its context (or when it is garbage-collected); stale ones are removed first."""
    from imgclf.datasets.cache import cache_dir

    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    sweep_scratch(root)
    return tempfile.TemporaryDirectory(dir=root, prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")


def sweep_scratch(root: Path, max_age_s: float = STALE_HOURS * 3600) -> list[Path]:
    """Remove scratch folders in ``root`` left by processes that no longer run, and any
    older than ``max_age_s`` seconds; the folders removed."""
    from imgclf._atomic import _running

    removed, now = [], time.time()
    for folder in root.glob(f"{SCRATCH_PREFIX}*"):
        pid = folder.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        try:
            old = now - folder.stat().st_mtime > max_age_s
        except OSError:  # removed meanwhile by another process
            continue
        if folder.is_dir() and (old or (pid.isdigit() and not _running(int(pid)))):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def score_rows(model, X, y, rows: np.ndarray) -> float:
    """Accuracy of ``model`` on ``X[rows]`` of a lazy ``X``, read a block of rows at a
    time (each row's prediction depends on that row alone: ``model.score``'s figure)."""
    rows = np.asarray(rows, dtype=np.int64)
    step = max(1, SCORE_BLOCK_BYTES // max(1, X.row_bytes))
    correct = 0
    for lo in range(0, len(rows), step):
        part = rows[lo : lo + step]
        correct += int(np.sum(model.predict(X.take(part)) == np.asarray(y)[part]))
    return correct / len(rows)

"""The Dataset record every loader returns."""

from __future__ import annotations

import numbers
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from imgclf.errors import DatasetError

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A labelled set of images.

    Parameters
    ----------
    images : ndarray of uint8, shape (N, H, W, C), or None
        C-contiguous pixels, or a *lazy* array of them on disk
        (:class:`~imgclf.datasets.store.StoredArray`, for sets larger than memory:
        indexing reads rows, :meth:`~imgclf.datasets.store.StoredArray.chunks`
        walks them; see :attr:`lazy`).
    labels : ndarray of int64, shape (N,)
        Indices into ``classes``.
    classes : tuple of str
        Class names; ``classes[labels[i]]`` names image ``i``.
    name : str
        Where the data came from (for messages and reports).
    coarse_labels : ndarray of int64, shape (N,), optional
        Superclass indices (CIFAR-100's 20 coarse classes).
    coarse_classes : tuple of str, optional
        Superclass names.
    points : ndarray of float32, shape (N, D), optional
        For the 2D toy sets, which are points, not images: given instead of
        ``images``.

    Examples
    --------
    >>> import numpy as np
    >>> ds = Dataset(np.zeros((4, 2, 2, 1), np.uint8), np.array([0, 1, 1, 0]), ("a", "b"))
    >>> len(ds), ds.subset([1, 2]).class_counts()
    (4, {'a': 0, 'b': 2})
    """

    images: np.ndarray | None
    labels: np.ndarray
    classes: tuple[str, ...]
    name: str = ""
    coarse_labels: np.ndarray | None = None
    coarse_classes: tuple[str, ...] | None = None
    points: np.ndarray | None = None
    meta: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if (self.images is None) == (self.points is None):
            raise DatasetError(f"{self._label}: give exactly one of images or points")
        if getattr(self.images, "lazy", False):  # on disk: checked, never read here
            if self.images.dtype != np.uint8 or self.images.ndim != 4:
                raise DatasetError(
                    f"{self._label}: images must be uint8 (N, H, W, C), "
                    f"got {self.images.dtype} {self.images.shape}"
                )
        elif self.images is not None:
            images = np.ascontiguousarray(self.images)
            if images.dtype != np.uint8 or images.ndim != 4:
                raise DatasetError(
                    f"{self._label}: images must be uint8 (N, H, W, C), "
                    f"got {images.dtype} {images.shape}"
                )
            object.__setattr__(self, "images", images)
        else:
            points = np.ascontiguousarray(self.points, dtype=np.float32)
            if points.ndim != 2:
                raise DatasetError(f"{self._label}: points must be (N, D), got {points.shape}")
            object.__setattr__(self, "points", points)
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        object.__setattr__(self, "labels", self._checked_labels(self.labels, self.classes))
        if self.coarse_labels is not None:
            coarse = tuple(str(c) for c in self.coarse_classes or ())
            object.__setattr__(self, "coarse_classes", coarse)
            object.__setattr__(
                self, "coarse_labels", self._checked_labels(self.coarse_labels, coarse)
            )

    def _checked_labels(self, labels, classes) -> np.ndarray:
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        n = len(self.X)
        if labels.shape != (n,):
            raise DatasetError(f"{self._label}: {n} samples but labels of shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
            raise DatasetError(
                f"{self._label}: labels must lie in [0, {len(classes)}), "
                f"got [{labels.min()}, {labels.max()}]"
            )
        return labels

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def _label(self) -> str:
        return self.name or "dataset"

    @property
    def lazy(self) -> bool:
        """Whether the images stay on disk (read in chunks) rather than in memory."""
        return bool(getattr(self.images, "lazy", False))

    @property
    def X(self) -> np.ndarray:
        """Feature matrix ``(N, D)``: flattened uint8 pixels, or the float32 points (for a
        :attr:`lazy` set, the same rows flat on disk)."""
        if self.images is None:
            return self.points  # type: ignore[return-value]
        if self.lazy:
            return self.images.reshape_rows()
        # the width spelled out: reshape(0, -1) is ambiguous for an empty dataset
        return self.images.reshape(len(self.images), int(np.prod(self.images.shape[1:])))

    @property
    def image_shape(self) -> tuple[int, ...] | None:
        """``(H, W, C)`` of every image; None for a point set."""
        return None if self.images is None else tuple(self.images.shape[1:])

    def subset(self, selection, *, seed: int = 0) -> Dataset:
        """A smaller Dataset with the same classes.

        Parameters
        ----------
        selection : int, float, index array or boolean mask
            An int ``n`` (or a fraction in (0, 1)) takes a seeded, stratified
            sample: every class keeps its share, so a subset of a dataset
            stored class by class still holds every class. An array selects
            those samples, in its order. A subset of a :attr:`lazy` set is read
            into memory when it fits the in-memory limit, else it stays on disk
            (:class:`~imgclf.datasets.row_subset.RowSubset`).
        seed : int, default=0
            Seed of the sample (for an int or a fraction only).

        Examples
        --------
        >>> import numpy as np
        >>> ds = Dataset(np.zeros((6, 1, 1, 1), np.uint8), np.array([0, 0, 0, 1, 1, 1]), ("a", "b"))
        >>> ds.subset(4).class_counts()
        {'a': 2, 'b': 2}
        """
        indices = self._sample(selection, seed) if _is_size(selection) else np.asarray(selection)
        coarse = None if self.coarse_labels is None else self.coarse_labels[indices]
        return Dataset(
            None if self.images is None else _rows_of(self.images, indices),
            self.labels[indices],
            self.classes,
            self.name,
            coarse,
            self.coarse_classes,
            None if self.points is None else self.points[indices],
            dict(self.meta),
        )

    def with_classes(self, classes) -> Dataset:
        """The same samples, labelled by name as indices into ``classes``.

        Labels are indices, and two splits of a folder (or a model and a dataset)
        may number their classes differently: ``test/{cow,dog}`` against a model
        of ``(cat, dog)``. Matching by name is the only meaningful comparison. A
        class ``classes`` lacks is an error (a model cannot be right about a
        class it never saw); a class of ``classes`` without samples here is fine.

        Examples
        --------
        >>> import numpy as np
        >>> ds = Dataset(np.zeros((2, 1, 1, 1), np.uint8), np.array([0, 1]), ("dog", "cat"))
        >>> ds.with_classes(("cat", "cow", "dog")).labels.tolist()
        [2, 0]
        """
        classes = tuple(str(c) for c in classes)
        if classes == self.classes:
            return self
        position = {name: i for i, name in enumerate(classes)}
        unknown = [name for name in self.classes if name not in position]
        if unknown:
            raise DatasetError(
                f"{self._label}: class(es) {', '.join(map(repr, unknown))} are not among "
                f"the classes {', '.join(map(repr, classes))}; labels are matched by name"
            )
        mapping = np.array([position[name] for name in self.classes], dtype=np.int64)
        return Dataset(
            self.images,
            mapping[self.labels],
            classes,
            self.name,
            self.coarse_labels,
            self.coarse_classes,
            self.points,
            dict(self.meta),
        )

    def _sample(self, size: int | float, seed: int) -> np.ndarray:
        from imgclf._sampling import split_indices

        if isinstance(size, numbers.Integral) and size >= len(self):
            return np.arange(len(self))  # all of it: nothing to sample
        if not size > 0:
            raise DatasetError(f"{self._label}: a subset needs a positive size; got {size!r}")
        try:
            return split_indices(self.labels, size, seed=seed)[1]
        except ValueError as exc:
            raise DatasetError(f"{self._label}: {exc}") from None

    def __repr__(self) -> str:
        return f"Dataset({self.name or 'unnamed'!r}: {self._size_text()})"

    def _repr_html_(self) -> str:  # a notebook shows size, classes and a row of samples
        from imgclf.datasets._display import dataset_html

        return dataset_html(self)

    def _size_text(self) -> str:
        if self.images is None:
            kind = f"{len(self):,} points in {self.X.shape[1]}D"
        else:
            kind = f"{len(self):,} images {'x'.join(map(str, self.image_shape))}"
        return f"{kind}, {len(self.classes)} classes"

    def summary(self) -> dict:
        """A JSON-able description: size, image shape, classes and images per class."""
        return {
            "name": self.name,
            "images": len(self),
            "image_shape": list(self.image_shape or self.X.shape[1:]),
            "classes": list(self.classes),
            "per_class": self.class_counts(),
        }

    def class_counts(self) -> dict[str, int]:
        """Number of images per class name, in class order (zeros included)."""
        counts = Counter(self.labels.tolist())
        return {name: counts.get(i, 0) for i, name in enumerate(self.classes)}


def _is_size(selection) -> bool:
    """An int or a float asks for a sample of that size; anything else selects."""
    return isinstance(selection, numbers.Real) and not isinstance(selection, bool)


def _rows_of(images, indices: np.ndarray):
    """``images[indices]``; for a lazy array too large for the in-memory limit, a lazy
    view of those rows (nothing read)."""
    if getattr(images, "lazy", False):
        from imgclf.datasets.row_subset import RowSubset
        from imgclf.datasets.store import in_memory_bytes

        rows = np.flatnonzero(indices) if indices.dtype == bool else indices
        subset = RowSubset(images, rows)
        if subset.nbytes > in_memory_bytes():
            return subset
    return images[indices]

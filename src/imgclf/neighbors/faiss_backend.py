"""Search through any faiss index (``factory`` string), with the engine's exact contract.

faiss proposes candidates; imgclf re-ranks them against the stored database,
so the answer always holds true distances (float64; L1, or Euclidean not
squared) in ascending order with ties to the lower index, as
:class:`~imgclf.neighbors.ExactIndex` gives. How many candidates: ``2 * k``
for factories that store vectors exactly (``Flat``, ``IVF<nlist>,Flat``,
``HNSW<M>``: the extra ``k`` puts boundary ties and faiss's float32 rounding
right), ``4 * k`` for lossy codes (PQ, SQ, transforms), since their
approximate distances misorder close neighbours; ``rerank_factor`` overrides
both. Only the candidates faiss finds can be returned, so an approximate
factory's recall stays its own (tune ``n_probe`` / ``ef_search``).

Examples
--------
>>> import numpy as np
>>> X = np.random.default_rng(0).random((500, 8), dtype=np.float32)
>>> index = FaissIndex(X, factory="IVF8,Flat", n_probe=8)
>>> dist, idx = index.search(X[:2], k=3)
>>> idx[:, 0].tolist(), dist[:, 0].tolist()
([0, 1], [0.0, 0.0])
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from imgclf.errors import ModelFileError
from imgclf.neighbors._index_bytes import (
    L1_ALGORITHMS,
    RerankedIndex,
    check_in_child,
    check_setting,
    check_trusted,
    float32_rows,
    index_bytes,
    short_message,
)

__all__ = ["DEFAULT_FACTORY", "FaissIndex", "faiss_available"]

DEFAULT_FACTORY = "Flat"
ADD_CHUNK = 16384  # database rows converted to float32 and added at a time
TRAIN_POINTS_PER_CENTROID = 256  # faiss's ClusteringParameters.max_points_per_centroid
_CHILDREN = ("index", "base_index", "quantizer", "storage")  # sub-indexes of faiss wrappers

_CHILD_IMPORTS = "import numpy as np\nimport faiss"
_CHILD_CHECK = """
faiss.omp_set_num_threads(1)
n, d = int(sys.argv[1]), int(sys.argv[2])
index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
if index.d != d:
    sys.exit(f"their vectors have {index.d} features, not the database's {d}")
index.search(np.random.default_rng(0).standard_normal((4, d)).astype(np.float32), min(n, 10))
"""


def faiss_available() -> bool:
    """True if ``import faiss`` works."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "the faiss backend needs the faiss extra: pip install 'imgclf[faiss]'"
        ) from exc
    return faiss


class FaissIndex(RerankedIndex):
    """A faiss index built from a factory string, searched with exact re-ranking.

    Parameters
    ----------
    database : array-like, shape (n, d) or (n, H, W, C)
        uint8 (kept as uint8 for re-ranking; faiss gets float32) or floats.
    metric : {"l2", "l1"}
        ``"l1"`` only with the factories ``Flat``, ``IVF<nlist>,Flat`` and
        ``HNSW<M>`` (the only ones faiss 1.15 searches correctly under L1).
    n_jobs : int, optional
        OpenMP threads for building and searching (default: faiss's own).
    seed : int, default=0
        Seed of faiss's k-means (IVF lists, PQ codebooks). A build is
        reproducible for a fixed seed and thread count.
    factory : str, default="Flat"
        Any faiss ``index_factory`` string: ``"Flat"``, ``"IVF1024,Flat"``,
        ``"HNSW32"``, ``"IVF1024,PQ64"``, ...
    n_probe : int, optional
        IVF lists visited per query (faiss ``nprobe``; faiss's default is 1).
        Clamped to the number of lists with a warning. IVF factories only.
    ef_search : int, optional
        HNSW search breadth (faiss ``efSearch``, default 16), for ``HNSW<M>``
        or an IVF with an HNSW coarse quantizer.
    rerank_factor : int, optional
        Candidates fetched per neighbour for exact re-ranking (default 2, or
        4 for lossy codes).
    working_memory : int, optional
        Bytes re-ranking (and the exact fallback) may use at once.

    Both ``n_probe`` and ``ef_search`` can be set again after the build.

    Notes
    -----
    - L1 as measured on faiss 1.15.1 (3,000 x 64 floats, recall@10 against
      NumPy): ``Flat``, ``IVF<nlist>,Flat`` and ``HNSW<M>`` search true L1;
      ``PQ``, ``PCA``/``OPQ`` transforms and ``NSG`` build but rank by another
      distance (recall 0.06-0.7); ``IVF<n>,PQ``, ``SQ``, ``LSH``, fast-scan PQ
      and ``IVF<n>_HNSW<M>`` raise. Others under L1 are refused up front.
    - The build skips PQ's polysemous training: it only renumbers codes for a
      Hamming pre-filter imgclf never enables, changes no result, and takes
      about a minute even on 3,000 rows.
    - faiss's HNSW draws node levels from a fixed generator: ``seed`` does not
      change it (one thread still gives reproducible graphs).
    - A query the index finds fewer than ``k`` candidates for (an IVF probing
      too few small lists) is answered by an exact scan.
    - Pickling goes through :meth:`to_arrays` (the C++ index cannot be pickled).
    """

    backend = "faiss"

    def __init__(
        self,
        database,
        metric: str = "l2",
        *,
        n_jobs: int | None = None,
        seed: int = 0,
        factory: str = DEFAULT_FACTORY,
        n_probe: int | None = None,
        ef_search: int | None = None,
        rerank_factor: int | None = None,
        working_memory: int | None = None,
    ):
        faiss = _faiss()
        self._setup(database, metric, n_jobs, seed, working_memory, rerank_factor)
        self.factory = _check_factory(factory)
        n, d = self.database.shape
        doing = f"building faiss index {self.factory!r} on {n} rows"
        index = _new_index(faiss, d, self.factory, self.metric, doing)
        _check_trainable(faiss, index, self.factory, n)
        _seed_training(faiss, index, self.seed)
        try:
            with self._threads():
                if not index.is_trained:
                    index.train(_training_rows(faiss, index, self.database, self.seed))
                for start in range(0, n, ADD_CHUNK):
                    index.add(float32_rows(self.database, start, start + ADD_CHUNK))
        except RuntimeError as exc:
            raise ValueError(f"{doing}: {short_message(str(exc))}") from None
        self._attach(faiss, index, n_probe, ef_search)

    @classmethod
    def from_arrays(
        cls,
        database,
        arrays,
        metric: str = "l2",
        *,
        n_jobs: int | None = None,
        trusted: bool = False,
        seed: int = 0,
        factory: str = DEFAULT_FACTORY,
        n_probe: int | None = None,
        ef_search: int | None = None,
        rerank_factor: int | None = None,
        working_memory: int | None = None,
    ) -> FaissIndex:
        """The index :meth:`to_arrays` gave, over the same ``database``; no rebuild.

        Unless ``trusted`` (the model file's signature was verified), the
        bytes are first loaded and searched once in a child Python under a
        memory cap and a timeout, because faiss parses them in C++ and
        crafted bytes could crash this process. Settings given here override
        the ``n_probe`` / ``ef_search`` saved in the bytes.

        Raises
        ------
        ModelFileError (a ValueError)
            ``"faiss index bytes are damaged: ..."``, or the index does not
            match the database, the metric or the factory.
        """
        faiss = _faiss()
        self = cls.__new__(cls)
        self._setup(database, metric, n_jobs, seed, working_memory, rerank_factor)
        self.factory = _check_factory(factory)
        trusted = check_trusted(trusted)
        data = index_bytes(arrays, "faiss_index", "faiss index arrays")
        n, d = self.database.shape
        if not trusted:
            check_in_child(data, _CHILD_IMPORTS, _CHILD_CHECK, [n, d], what="faiss index bytes")
        try:
            index = faiss.deserialize_index(data)
        except (RuntimeError, MemoryError) as exc:
            raise ModelFileError(
                f"faiss index bytes are damaged: {short_message(str(exc))}"
            ) from None
        _check_loaded(faiss, index, self.factory, self.metric, n, d)
        self._attach(faiss, index, n_probe, ef_search)
        return self

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{"faiss_index": uint8}``: ``faiss.serialize_index`` (with n_probe, ef_search)."""
        return {"faiss_index": _faiss().serialize_index(self._index)}

    @property
    def settings(self) -> dict:
        """The keyword arguments :meth:`from_arrays` needs besides the arrays."""
        return {
            "factory": self.factory,
            "seed": self.seed,
            "n_probe": self.n_probe,
            "ef_search": self.ef_search,
            "rerank_factor": self.rerank_factor,
            "working_memory": self.working_memory,
        }

    @property
    def nlist(self) -> int | None:
        """Inverted lists of an IVF factory, else None."""
        ivf = self._ivf()
        return None if ivf is None else int(ivf.nlist)

    @property
    def n_probe(self) -> int | None:
        """IVF lists visited per query; None for factories without inverted lists."""
        ivf = self._ivf()
        return None if ivf is None else int(ivf.nprobe)

    @n_probe.setter
    def n_probe(self, value: int) -> None:
        value = check_setting("n_probe", value)
        ivf = self._ivf()
        if ivf is None:
            raise ValueError(
                f"n_probe applies to IVF factories only; factory {self.factory!r} "
                "has no inverted lists"
            )
        if value > ivf.nlist:
            warnings.warn(
                f"n_probe={value} is more than the {ivf.nlist} lists of {self.factory!r}; "
                f"using n_probe={ivf.nlist}",
                UserWarning,
                stacklevel=2,
            )
            value = int(ivf.nlist)
        ivf.nprobe = value

    @property
    def ef_search(self) -> int | None:
        """HNSW search breadth; None for factories without an HNSW graph."""
        hnsw = self._hnsw()
        return None if hnsw is None else int(hnsw.efSearch)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        value = check_setting("ef_search", value)
        hnsw = self._hnsw()
        if hnsw is None:
            raise ValueError(
                f"ef_search applies to HNSW factories only (HNSW<M>, or IVF<nlist>_HNSW<M>); "
                f"factory {self.factory!r} has no HNSW graph"
            )
        hnsw.efSearch = value

    # --- internals -----------------------------------------------------------------------

    def _attach(self, faiss, index, n_probe, ef_search) -> None:
        self._index = index
        self._lossy = not _lossless(faiss, index)
        if n_probe is not None:
            self.n_probe = n_probe
        if ef_search is not None:
            self.ef_search = ef_search

    def _ivf(self):
        faiss = _faiss()
        top = _unwrap(faiss, self._index)
        return top if isinstance(top, faiss.IndexIVF) else None

    def _hnsw(self):
        faiss = _faiss()
        top = _unwrap(faiss, self._index)
        if isinstance(top, faiss.IndexIVF):
            top = faiss.downcast_index(top.quantizer)
        return top.hnsw if isinstance(top, faiss.IndexHNSW) else None

    @contextlib.contextmanager
    def _threads(self):
        """faiss's OpenMP threads are process-wide: set ``n_jobs`` for one call, then restore."""
        if self.n_jobs is None:
            yield
            return
        faiss = _faiss()
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(self.n_jobs)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(before)

    def _candidates(self, queries: np.ndarray, wanted: int, k: int) -> np.ndarray:
        with self._threads():
            return self._index.search(queries, wanted)[1]


def _check_factory(factory) -> str:
    if not isinstance(factory, str) or not factory.strip():
        raise ValueError(
            "factory must be a faiss index_factory string such as 'Flat', 'IVF1024,Flat', "
            f"'HNSW32' or 'IVF1024,PQ64'; got {factory!r}"
        )
    return factory


def _unwrap(faiss, index):
    """The index doing the search under pre-transforms, refinement and id maps."""
    index = faiss.downcast_index(index)
    while True:
        if isinstance(index, faiss.IndexPreTransform | faiss.IndexIDMap):
            index = faiss.downcast_index(index.index)
        elif isinstance(index, faiss.IndexRefine):
            index = faiss.downcast_index(index.base_index)
        else:
            return index


def _metric_type(faiss, metric: str) -> int:
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_L1


def _new_index(faiss, d: int, factory: str, metric: str, doing: str):
    """``faiss.index_factory``, with faiss's refusal and L1's limits as ValueErrors."""
    try:
        index = faiss.index_factory(d, factory, faiss.METRIC_L2)
    except RuntimeError as exc:
        raise ValueError(f"{doing}: {short_message(str(exc))}") from None
    if metric == "l2":
        return index
    try:
        index = faiss.index_factory(d, factory, faiss.METRIC_L1)
    except RuntimeError:
        raise _no_l1(factory) from None
    if not _l1_capable(faiss, index):
        raise _no_l1(factory)
    return index


def _no_l1(factory: str) -> ValueError:
    return ValueError(
        f"metric='l1' is not supported by faiss factory {factory!r}; L1 is available in "
        f"{L1_ALGORITHMS}"
    )


def _l1_capable(faiss, index) -> bool:
    """Measured on faiss 1.15: flat storage under a flat or IVF-with-flat-quantizer or HNSW."""
    top = faiss.downcast_index(index)
    if isinstance(top, faiss.IndexIVFFlat):
        return isinstance(faiss.downcast_index(top.quantizer), faiss.IndexFlat)
    return isinstance(top, faiss.IndexFlat | faiss.IndexHNSWFlat)


def _lossless(faiss, index) -> bool:
    """Whether the index stores the vectors exactly (its distances are exact up to rounding)."""
    top = faiss.downcast_index(index)
    return isinstance(
        top, faiss.IndexFlat | faiss.IndexIVFFlat | faiss.IndexHNSWFlat | faiss.IndexNSGFlat
    )


def _training_rows(faiss, index, database: np.ndarray, seed: int) -> np.ndarray:
    """The float32 rows to train on: all, or a seeded sample as large as faiss would keep.

    faiss's k-means keeps at most 256 points per centroid (``max_points_per_centroid``)
    and subsamples the rest itself; sampling first only spares the float32 copy of a
    large (uint8) database. The largest k-means is the IVF lists or a 256-centroid PQ.
    """
    top = _unwrap(faiss, index)
    centroids = max(256, int(top.nlist) if isinstance(top, faiss.IndexIVF) else 0)
    keep = TRAIN_POINTS_PER_CENTROID * centroids
    if len(database) <= keep:
        return float32_rows(database)
    rows = np.sort(np.random.default_rng(seed).choice(len(database), keep, replace=False))
    return float32_rows(database[rows])


def _check_trainable(faiss, index, factory: str, n: int) -> None:
    """An IVF needs a database row per list to train: say so before faiss does."""
    top = _unwrap(faiss, index)
    if isinstance(top, faiss.IndexIVF) and top.nlist > n:
        raise ValueError(
            f"factory {factory!r} has {top.nlist} inverted lists, which needs at least "
            f"{top.nlist} database rows to train; the database has {n} (about sqrt(n) lists "
            f"suit it: IVF{max(1, int(np.sqrt(n)))},...)"
        )


def _seed_training(faiss, index, seed: int) -> None:
    """Seed every k-means the build runs: IVF coarse lists and product-quantizer codebooks.

    Also turns off PQ's polysemous training: it only renumbers the codes for a
    Hamming pre-filter (``polysemous_ht``) that imgclf never enables, leaves every
    search result as it is, and takes about a minute even for 3,000 rows.
    """
    top = faiss.downcast_index(index)
    parts = [top]
    while parts:
        part = parts.pop()
        if hasattr(part, "cp"):
            part.cp.seed = seed
        if hasattr(part, "pq"):
            part.pq.cp.seed = seed
        if hasattr(part, "do_polysemous_training"):
            part.do_polysemous_training = False
        for name in _CHILDREN:
            child = getattr(part, name, None)
            if child is not None and hasattr(child, "ntotal"):
                parts.append(faiss.downcast_index(child))


def _structure(faiss, index) -> list:
    """``(class, nlist)`` from the top index down, to compare a loaded index with a factory's."""
    levels, index = [], faiss.downcast_index(index)
    while index is not None:
        levels.append((type(index), index.nlist if isinstance(index, faiss.IndexIVF) else None))
        children = (getattr(index, name, None) for name in _CHILDREN)
        child = next((c for c in children if c is not None and hasattr(c, "ntotal")), None)
        index = None if child is None else faiss.downcast_index(child)
    return levels


def _same_structure(have: list, want: list) -> bool:
    """Level by level the same kind (IndexFlatL2 is an IndexFlat) and the same list count."""
    return len(have) == len(want) and all(
        (issubclass(h, w) or issubclass(w, h)) and h_lists == w_lists
        for (h, h_lists), (w, w_lists) in zip(have, want, strict=True)
    )


def _describe(levels: list) -> str:
    return " > ".join(
        cls.__name__ + ("" if lists is None else f"({lists} lists)") for cls, lists in levels
    )


def _check_loaded(faiss, index, factory: str, metric: str, n: int, d: int) -> None:
    """The deserialized index must fit the database, the metric and the factory string."""
    problem = None
    if index.d != d or index.ntotal != n:
        problem = (
            f"they hold {index.ntotal} vectors of {index.d} features, not the database's {n} of {d}"
        )
    elif index.metric_type != _metric_type(faiss, metric):
        names = {faiss.METRIC_L2: "'l2'", faiss.METRIC_L1: "'l1'"}
        have = names.get(index.metric_type, f"faiss metric type {index.metric_type}")
        problem = f"their metric is {have}, not {metric!r}"
    elif not index.is_trained:
        problem = "the index in them is not trained"
    else:
        try:
            expected = faiss.index_factory(d, factory, _metric_type(faiss, metric))
        except RuntimeError as exc:
            raise ValueError(
                f"loading faiss index {factory!r}: {short_message(str(exc))}"
            ) from None
        have, want = _structure(faiss, index), _structure(faiss, expected)
        if not _same_structure(have, want):
            problem = (
                f"they hold {_describe(have)} but factory {factory!r} builds {_describe(want)}"
            )
    if problem:
        raise ModelFileError(f"faiss index bytes do not match: {problem}")

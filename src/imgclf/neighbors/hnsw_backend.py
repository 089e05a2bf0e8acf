"""Approximate search on an HNSW graph from ``hnswlib``, with the engine's exact contract.

hnswlib proposes ``2 * k`` candidates (``rerank_factor`` changes that) from its
graph, searched with breadth ``max(ef_search, 2 * k)``; imgclf re-ranks them
against the stored database, so distances are true Euclidean distances
(float64, not hnswlib's squared float32 ones), ascending, ties to the lower
index, as :class:`~imgclf.neighbors.ExactIndex` gives. hnswlib has no L1: for
L1 use imgclf's exact or IVF index, or faiss (``FaissIndex`` with
``factory="HNSW32"`` is an HNSW graph that does L1).

Examples
--------
>>> import numpy as np
>>> X = np.random.default_rng(0).random((500, 8), dtype=np.float32)
>>> index = HnswIndex(X, ef_search=50, n_jobs=1)
>>> dist, idx = index.search(X[:2], k=3)
>>> idx[:, 0].tolist(), dist[:, 0].tolist()
([0, 1], [0.0, 0.0])
"""

from __future__ import annotations

import os
import struct
import tempfile

import numpy as np

from imgclf._validation import check_choice, check_int
from imgclf.errors import ModelFileError
from imgclf.neighbors._index_bytes import (
    L1_ALGORITHMS,
    RerankedIndex,
    check_in_child,
    check_setting,
    check_trusted,
    float32_rows,
    index_bytes,
    index_int,
    short_message,
)
from imgclf.neighbors.search import METRICS

__all__ = ["HnswIndex", "hnswlib_available"]

ADD_CHUNK = 16384  # database rows converted to float32 and added at a time
# hnswlib's own default ef is 10: recall@10 ~0.77 on test data; 64 reaches ~0.99 there
DEFAULT_EF_SEARCH = 64
_FILE = "index.bin"

_CHILD_IMPORTS = "import os\nimport tempfile\nimport numpy as np\nimport hnswlib"
_CHILD_CHECK = """
n, d = int(sys.argv[1]), int(sys.argv[2])
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "index.bin")
    with open(path, "wb") as file:
        file.write(payload)
    index = hnswlib.Index(space="l2", dim=d)
    index.load_index(path, max_elements=n)
index.set_num_threads(1)
index.knn_query(np.random.default_rng(0).standard_normal((4, d)).astype(np.float32), k=1)
"""


def hnswlib_available() -> bool:
    """True if ``import hnswlib`` works."""
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return False
    return True


def _hnswlib():
    try:
        import hnswlib
    except ImportError as exc:
        raise ImportError(
            "the hnsw backend needs the hnsw extra: pip install 'imgclf[hnsw]'"
        ) from exc
    return hnswlib


def _check_metric(metric) -> str:
    check_choice("metric", metric, METRICS)
    if metric != "l2":
        raise ValueError(
            f"metric={metric!r} is not supported by hnswlib (its spaces are L2, inner product "
            f"and cosine); L1 is available in {L1_ALGORITHMS}"
        )
    return metric


class HnswIndex(RerankedIndex):
    """An hnswlib HNSW graph over the database (L2 only), searched with exact re-ranking.

    Parameters
    ----------
    database : array-like, shape (n, d) or (n, H, W, C)
        uint8 (kept as uint8 for re-ranking; hnswlib gets float32) or floats.
    metric : {"l2"}
        hnswlib has no L1 (a ValueError names the algorithms that have).
    n_jobs : int, optional
        Threads for building and searching (default: every core).
    seed : int, default=0
        hnswlib's ``random_seed`` (the levels of the graph's nodes). A build
        with ``n_jobs=1`` is reproducible; more threads insert in varying order.
    M : int, default=16
        Links per node (hnswlib's ``M``); more: better recall, more memory.
    ef_construction : int, default=200
        Search breadth while building.
    ef_search : int, optional
        Search breadth (hnswlib's ``ef``; default :data:`DEFAULT_EF_SEARCH`, 64); the search uses at
        least the number of candidates it fetches. Settable after the build.
    rerank_factor : int, optional
        Candidates fetched per neighbour for exact re-ranking (default 2).
    working_memory : int, optional
        Bytes re-ranking (and the exact fallback) may use at once.
    """

    backend = "hnsw"

    def __init__(
        self,
        database,
        metric: str = "l2",
        *,
        n_jobs: int | None = None,
        seed: int = 0,
        M: int = 16,  # noqa: N803 (hnswlib's and the paper's name)
        ef_construction: int = 200,
        ef_search: int | None = None,
        rerank_factor: int | None = None,
        working_memory: int | None = None,
    ):
        hnswlib = _hnswlib()
        self._setup(database, _check_metric(metric), n_jobs, seed, working_memory, rerank_factor)
        self.M = check_int("M", M, low=2, high=4096)
        self.ef_construction = check_int("ef_construction", ef_construction, low=1)
        n, d = self.database.shape
        index = hnswlib.Index(space="l2", dim=d)
        try:
            index.init_index(
                max_elements=n,
                ef_construction=self.ef_construction,
                M=self.M,
                random_seed=self.seed,
            )
            for start in range(0, n, ADD_CHUNK):
                rows = float32_rows(self.database, start, start + ADD_CHUNK)
                ids = np.arange(start, start + len(rows))
                index.add_items(rows, ids=ids, num_threads=self._threads())
        except (RuntimeError, MemoryError) as exc:
            raise ValueError(
                f"building hnswlib index (M={self.M}) on {n} rows: {short_message(str(exc))}"
            ) from None
        self._attach(index, DEFAULT_EF_SEARCH if ef_search is None else ef_search)

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
        M: int | None = None,  # noqa: N803
        ef_construction: int | None = None,
        ef_search: int | None = None,
        rerank_factor: int | None = None,
        working_memory: int | None = None,
    ) -> HnswIndex:
        """The graph :meth:`to_arrays` gave, over the same ``database``; no rebuild.

        The file's layout is checked first in NumPy (header, sizes, every link
        id in range, the vectors equal to the database's rows), since hnswlib
        itself checks little. Unless ``trusted`` (the model file's signature was
        verified), the bytes are then loaded and searched once in a child
        Python under a memory cap and a timeout, because hnswlib parses them in
        C++ and crafted bytes could crash this process. ``M`` and ``ef_construction``, when given,
        must match the saved graph; ``ef_search`` overrides the saved one.
        ``arrays`` may lack ``ef_search`` (hnswlib's default 10 then).

        Raises
        ------
        ModelFileError (a ValueError)
            ``"hnswlib index bytes are damaged: ..."``, or the graph does not
            match the database or the settings.
        """
        hnswlib = _hnswlib()
        self = cls.__new__(cls)
        self._setup(database, _check_metric(metric), n_jobs, seed, working_memory, rerank_factor)
        trusted = check_trusted(trusted)
        what = "hnswlib index arrays"
        data = index_bytes(arrays, "hnsw_index", what, optional=("ef_search",))
        saved_ef = index_int(arrays, "ef_search", what)
        n, d = self.database.shape
        _check_file(data, self.database)
        if not trusted:
            check_in_child(data, _CHILD_IMPORTS, _CHILD_CHECK, [n, d], what="hnswlib index bytes")
        index = hnswlib.Index(space="l2", dim=d)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, _FILE)
            data.tofile(path)
            try:
                index.load_index(path, max_elements=n)
            except (RuntimeError, MemoryError, ValueError) as exc:
                raise ModelFileError(
                    f"hnswlib index bytes are damaged: {short_message(str(exc))}"
                ) from None
        self.M, self.ef_construction = int(index.M), int(index.ef_construction)
        _check_loaded(index, self.database, M=M, ef_construction=ef_construction)
        self._attach(index, saved_ef if ef_search is None else ef_search)
        return self

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``hnsw_index``: the file hnswlib's ``save_index`` writes (uint8); ``ef_search``.

        hnswlib's file leaves out the search breadth, so it travels beside it.
        """
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, _FILE)
            self._index.save_index(path)
            data = np.fromfile(path, dtype=np.uint8)
        return {"hnsw_index": data, "ef_search": np.array([self.ef_search], dtype=np.int64)}

    @property
    def settings(self) -> dict:
        """The keyword arguments :meth:`from_arrays` needs besides the arrays."""
        return {
            "seed": self.seed,
            "M": self.M,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "rerank_factor": self.rerank_factor,
            "working_memory": self.working_memory,
        }

    @property
    def ef_search(self) -> int:
        """Search breadth (hnswlib's ``ef``)."""
        return int(self._index.ef)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._index.set_ef(check_setting("ef_search", value))

    def _attach(self, index, ef_search) -> None:
        self._index = index
        self._lossy = False  # float32 rows, as the database (uint8 or float32) holds them
        if ef_search is not None:
            self.ef_search = ef_search

    def _threads(self) -> int:
        return -1 if self.n_jobs is None else self.n_jobs

    def _candidates(self, queries: np.ndarray, wanted: int, k: int) -> np.ndarray:
        # hnswlib refuses a whole batch if any query finds fewer than asked (a sparse
        # graph); then ask for k only, and failing that let the exact scan answer.
        for depth in dict.fromkeys((wanted, k)):
            try:
                labels, _ = self._index.knn_query(queries, k=depth, num_threads=self._threads())
            except RuntimeError:
                continue
            return labels.astype(np.int64)
        return np.empty((len(queries), 0), np.int64)


def _check_loaded(index, database: np.ndarray, *, M, ef_construction) -> None:  # noqa: N803
    """The loaded graph must hold exactly the database's rows 0..n-1 with these settings."""
    n = len(database)
    problem = None
    if index.element_count != n:
        problem = f"they hold {index.element_count} vectors, not the database's {n}"
    elif M is not None and index.M != M:
        problem = f"the graph has M={index.M}, not M={M}"
    elif ef_construction is not None and index.ef_construction != ef_construction:
        problem = (
            f"the graph was built with ef_construction={index.ef_construction}, "
            f"not {ef_construction}"
        )
    else:
        ids = np.sort(np.asarray(index.get_ids_list(), dtype=np.int64))
        if not np.array_equal(ids, np.arange(n)):
            problem = f"their ids are not the database rows 0..{n - 1}"
        else:
            probe = np.unique([0, n // 2, n - 1])
            stored = np.asarray(index.get_items(probe), dtype=np.float32)
            if not np.array_equal(stored, float32_rows(database[probe])):
                problem = "the vectors in them are not the database's rows"
    if problem:
        raise ModelFileError(f"hnswlib index bytes do not match: {problem}")


# hnswlib 0.8's save_index: a header of size_t/int fields, then every element's level-0
# block (link count, maxM0 link ids, the vector, the label), then per element a uint32
# byte count and its upper-level link blocks (count and maxM ids each).
_HEADER = struct.Struct("<QQQQQQiIQQQdQ")


def _check_file(data: np.ndarray, database: np.ndarray) -> None:
    """hnswlib's file, parsed without hnswlib: ModelFileError unless it is a graph of ``database``.

    Every link id must name an element and every count fit its block, so that a
    search cannot read outside the graph; the labels must be rows 0..n-1 and the
    stored vectors equal to the database's rows (as float32).
    """
    n, d = database.shape
    raw = memoryview(data)
    if len(raw) < _HEADER.size:
        raise _damaged(f"they end too soon: {len(raw)} bytes, the header alone is {_HEADER.size}")
    (level0, _, count, per_element, label_at, data_at, max_level, entry, max_m, max_m0, m, _, _) = (
        _HEADER.unpack_from(raw)
    )
    if count != n:
        raise ModelFileError(
            f"hnswlib index bytes do not match: they hold {count} vectors, not the database's {n}"
        )
    links0 = 4 * max_m0 + 4
    expected = {
        "offsetLevel0": (level0, 0),
        "M": (m, max_m),
        "maxM0": (max_m0, 2 * m),
        "offsetData": (data_at, links0),
        "label offset": (label_at, links0 + 4 * d),
        "bytes per element": (per_element, links0 + 4 * d + 8),
    }
    for name, (have, want) in expected.items():
        if have != want:
            raise _damaged(f"{name} is {have}, expected {want}")
    if not 2 <= m <= 4096 or not 0 <= max_level < 256 or entry >= n:
        raise _damaged(f"M={m}, top level {max_level}, entry point {entry} (of {n} elements)")
    end0 = _HEADER.size + n * per_element
    if len(raw) < end0:
        raise _damaged(f"they end too soon: {len(raw)} bytes, the base layer needs {end0}")
    block = np.frombuffer(raw, np.uint8, n * per_element, _HEADER.size).reshape(n, per_element)
    _check_links(block[:, :links0], max_m0, n, "base layer")
    labels = block[:, label_at : label_at + 8].copy().view("<u8").ravel()
    if not np.array_equal(np.sort(labels), np.arange(n, dtype=np.uint64)):
        raise _damaged(f"their labels are not the rows 0..{n - 1}")
    labels = labels.astype(np.int64)
    for lo in range(0, n, ADD_CHUNK):  # element i holds database row labels[i]
        vectors = block[lo : lo + ADD_CHUNK, data_at : data_at + 4 * d].copy().view("<f4")
        if not np.array_equal(vectors, float32_rows(database[labels[lo : lo + ADD_CHUNK]])):
            raise ModelFileError(
                "hnswlib index bytes do not match: the vectors in them are not the database's rows"
            )
    _check_upper_levels(raw, end0, n, max_m, max_level, entry)


def _check_upper_levels(raw: memoryview, at: int, n: int, max_m: int, max_level: int, entry: int):
    links = 4 * max_m + 4
    for element in range(n):
        if at + 4 > len(raw):
            raise _damaged("they end too soon, in the upper levels of the graph")
        size = struct.unpack_from("<I", raw, at)[0]
        at += 4
        levels, extra = divmod(size, links)
        if extra or levels > max_level or (element == entry and levels != max_level):
            raise _damaged(f"element {element} has {size} bytes of upper-level links")
        if levels:
            if at + size > len(raw):
                raise _damaged("they end too soon, in the upper levels of the graph")
            part = np.frombuffer(raw, np.uint8, size, at).reshape(levels, links)
            _check_links(part, max_m, n, f"level links of element {element}")
            at += size
    if at != len(raw):
        raise _damaged(f"{len(raw) - at} bytes follow the graph")


def _check_links(blocks: np.ndarray, capacity: int, n: int, where: str) -> None:
    """Rows of ``[count (uint16), flags, ids (uint32) x capacity]``: counts and ids in range."""
    words = blocks.copy().view("<u4")
    counts = words[:, 0] & 0xFFFF
    if (words[:, 0] >> 16).any():
        raise _damaged(f"{where}: elements marked deleted")
    if (counts > capacity).any():
        raise _damaged(f"{where}: a link count is {counts.max()}, more than {capacity}")
    used = np.arange(capacity) < counts[:, None]
    if (words[:, 1:][used] >= n).any():
        raise _damaged(f"{where}: a link names element {words[:, 1:][used].max()} of {n}")


def _damaged(why: str) -> ModelFileError:
    return ModelFileError(f"hnswlib index bytes are damaged: {why}")

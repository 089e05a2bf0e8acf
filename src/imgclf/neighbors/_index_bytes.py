"""What the approximate backends (faiss, hnswlib) share: inputs, exact re-ranking, byte checks.

- :func:`matching_queries` applies ExactIndex's rules to queries: same width,
  uint8 queries on a float database become float32, float queries on a uint8
  database must hold byte values.
- :func:`rerank` turns an approximate index's candidate rows into the engine's
  contract: true distances (float64; L1, or Euclidean not squared) recomputed
  from the stored database, sorted, ties to the lower index. A query with
  fewer than ``k`` candidates (an IVF probing too few lists) is answered by an
  exact scan instead, so every row holds ``k`` real neighbours.
- :func:`check_in_child` loads untrusted index bytes in a fresh Python under an
  address-space cap and a timeout first, because faiss and hnswlib parse them
  in C++, where crafted bytes can crash the process instead of raising.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping

import numpy as np

from imgclf._validation import check_choice, check_int
from imgclf.errors import ModelFileError
from imgclf.neighbors.kernels.candidates import best_candidates
from imgclf.neighbors.search import METRICS, ExactIndex, _float_queries_on_uint8, as_features

__all__ = [
    "L1_ALGORITHMS",
    "LOSSLESS_RERANK",
    "LOSSY_RERANK",
    "RerankedIndex",
    "check_in_child",
    "check_setting",
    "check_trusted",
    "float32_rows",
    "index_bytes",
    "index_int",
    "matching_queries",
    "rerank",
    "short_message",
]

# Named in every "no L1 here" error. The faiss factories are the ones measured to
# search under METRIC_L1 correctly (faiss 1.15): PQ, SQ, LSH, PCA, OPQ and an HNSW
# coarse quantizer either refuse L1 or return distances of another metric.
L1_ALGORITHMS = (
    "imgclf's 'exact' and 'ivf', and faiss with factory 'Flat', 'IVF<nlist>,Flat' or 'HNSW<M>'"
)
LOSSLESS_RERANK = 2  # candidates per neighbour from indexes storing vectors exactly
LOSSY_RERANK = 4  # ... and from lossy codes (PQ, SQ, transforms)
CHILD_MEMORY_FACTOR = 4  # the child may use this many times the bytes, beyond its imports
CHILD_MEMORY_MARGIN = 512 * 2**20
CHILD_SECONDS = 60.0  # plus one second per CHILD_BYTES_PER_SECOND bytes
CHILD_BYTES_PER_SECOND = 50e6


def database_features(database) -> np.ndarray:
    """The database as ExactIndex keeps it: uint8 stays uint8, other numbers float32."""
    return as_features(database, "database")


def float32_rows(X: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of ``X`` as a C-contiguous float32 block (what faiss/hnswlib take)."""
    return np.ascontiguousarray(X[start:stop], dtype=np.float32)


def matching_queries(queries, database: np.ndarray) -> np.ndarray:
    """``queries`` as ``(m, d)`` in the database's dtype, by ExactIndex's rules.

    Raises ValueError when the widths differ ("queries have X features but the
    database has Y"), or when float queries with non-byte values meet a uint8
    database.
    """
    queries = as_features(queries, "queries")
    if queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"queries have {queries.shape[1]} features but the database has {database.shape[1]}"
        )
    if queries.dtype != database.dtype:
        queries = (
            queries.astype(database.dtype)
            if queries.dtype == np.uint8
            else _float_queries_on_uint8(queries)
        )
    return queries


def rerank(
    database: np.ndarray,
    queries: np.ndarray,
    candidates: np.ndarray,
    k: int,
    metric: str,
    *,
    exact: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each row's candidates by exact distance, as ExactIndex returns them.

    Parameters
    ----------
    database : ndarray (n, d), uint8 or float32
    queries : ndarray (m, d), the database's dtype
    candidates : ndarray of int (m, c)
        Database rows proposed for each query; ``-1`` marks an empty slot
        (faiss's convention). Other values outside ``[0, n)`` mean the index
        does not belong to this database: ModelFileError.
    k : int, ``k <= c``
    metric : {"l1", "l2"}
    exact : callable ``(row_indices) -> candidates (r, k)``
        Exact top-k rows for the queries of ``row_indices``; called only for
        queries with fewer than ``k`` candidates.

    Returns
    -------
    distances : float64 (m, k), ascending; true L1 or Euclidean (not squared)
    indices : int64 (m, k), ties to the lower index
    """
    candidates = np.asarray(candidates).astype(np.int64, copy=False)
    n = len(database)
    if candidates.size and (candidates.max() >= n or candidates.min() < -1):
        bad = candidates[(candidates >= n) | (candidates < -1)][0]
        raise ModelFileError(
            f"the index returned row {bad}, outside the database's {n} rows: "
            "it was not built on this database"
        )
    best_dist, best = best_candidates(database, queries, candidates, k, metric)
    short = (best < 0).any(axis=1)
    if short.any():
        rows = np.flatnonzero(short)
        found = np.asarray(exact(rows)).astype(np.int64, copy=False)
        best_dist[rows], best[rows] = rerank(
            database, queries[rows], found, k, metric, exact=_never
        )
    return best_dist, best


def _never(rows):
    raise AssertionError("an exact search returned fewer than k rows")  # pragma: no cover


def index_bytes(arrays, key: str, what: str, optional: tuple = ()) -> np.ndarray:
    """``arrays[key]`` as a non-empty 1-D uint8 array, else ModelFileError.

    ``arrays`` must hold ``key`` and nothing but it and the names in ``optional``.
    """
    if not isinstance(arrays, Mapping):
        raise ModelFileError(
            f"{what}: arrays must be a mapping of names to arrays; got {type(arrays).__name__}"
        )
    names = set(map(str, arrays))
    if key not in names or names - {key, *optional}:
        accepted = ", ".join(repr(name) for name in (key, *optional))
        raise ModelFileError(f"{what}: arrays must hold {accepted}; got {sorted(names)}")
    data = arrays[key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 1:
        raise ModelFileError(f"{what}: {key!r} must be a 1-D uint8 array; got {_describe(data)}")
    if data.size == 0:
        raise ModelFileError(f"{what}: {key!r} is empty")
    return np.ascontiguousarray(data)


def index_int(arrays: Mapping, key: str, what: str, low: int = 1) -> int | None:
    """``arrays[key]``, a one-element integer array ``>= low``, as an int; None if absent."""
    if key not in arrays:
        return None
    value = arrays[key]
    if (
        not isinstance(value, np.ndarray)
        or value.dtype.kind not in "iu"
        or value.size != 1
        or value.reshape(-1)[0] < low
    ):
        raise ModelFileError(
            f"{what}: {key!r} must be one integer >= {low}; got {_describe(value)}"
        )
    return int(value.reshape(-1)[0])


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        shown = f" {value.tolist()}" if value.size <= 4 else ""
        return f"{value.dtype} array of shape {value.shape}{shown}"
    return type(value).__name__


_CHILD_PRELUDE = """
import sys
payload = sys.stdin.buffer.read()
{imports}
try:
    import resource

    def _address_space():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
        raise OSError("no VmSize")

    cap = _address_space() + {factor} * len(payload) + {margin}
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
except (ImportError, OSError, ValueError):
    pass  # no /proc or no resource module: the timeout and the separate process remain
"""


def check_in_child(
    payload: bytes | np.ndarray,
    imports: str,
    check: str,
    args: list,
    *,
    what: str,
    timeout: float | None = None,
) -> None:
    """Run ``check`` on ``payload`` in a fresh Python; a crash, error or timeout is ModelFileError.

    The child reads the bytes from stdin into ``payload``, runs ``imports``,
    caps its address space at what it has after them plus
    ``CHILD_MEMORY_FACTOR`` times the bytes (and a margin), then runs
    ``check`` with ``sys.argv[1:] == args``. ``check`` signals a problem by
    raising or by exiting non-zero; its last stderr line becomes the message.
    OpenMP and BLAS get one thread each.

    Raises
    ------
    ModelFileError
        ``"{what} are damaged: <why>"``.
    """
    payload = payload.tobytes() if isinstance(payload, np.ndarray) else bytes(payload)
    if timeout is None:
        timeout = CHILD_SECONDS + len(payload) / CHILD_BYTES_PER_SECOND
    script = (
        _CHILD_PRELUDE.format(
            imports=imports, factor=CHILD_MEMORY_FACTOR, margin=CHILD_MEMORY_MARGIN
        )
        + check
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    try:
        done = subprocess.run(
            [sys.executable, "-P", "-c", script, *map(str, args)],
            input=payload,
            capture_output=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise ModelFileError(
            f"{what} are damaged: loading and searching them took over {timeout:.0f} s"
        ) from None
    if done.returncode == 0:
        return
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        reason = f"a separate process loading and searching them crashed ({name})"
    else:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {done.returncode}"
        reason = short_message(last)
        if "MemoryError" in last or "bad_alloc" in last:
            reason = f"loading them asks for more memory than {len(payload)} bytes can justify"
    raise ModelFileError(f"{what} are damaged: {reason}")


def short_message(message: str) -> str:
    """A C++ library's message without the exception name and faiss's source location.

    ``"RuntimeError: Error in <signature> at <file>:<line>: Error: 'nx >= k' failed:
    Number of training points ..."`` becomes ``"Number of training points ..."``.
    """
    message = message.strip()
    message = re.sub(r"^\w+(Error|Exception): ", "", message)
    message = re.sub(r"^Error in .*? at \S+:\d+: ", "", message, flags=re.S)
    message = re.sub(r"^Error: ", "", message)
    message = re.sub(r"^'.*?' failed: (?=\S)", "", message, flags=re.S)
    if message.startswith("read error"):
        message = f"they end too soon ({message})"
    return message[:500]


class RerankedIndex:
    """What an approximate backend shares: attributes, the search contract, pickling.

    A subclass sets ``self._lossy`` and provides ``_candidates(queries_f32,
    wanted, k) -> int array (m, c)`` (``-1`` for empty slots), ``to_arrays``,
    ``from_arrays`` and ``settings`` (the keyword arguments ``from_arrays``
    needs besides the arrays).
    """

    backend = "?"
    _lossy = False

    def _setup(self, database, metric, n_jobs, seed, working_memory, rerank_factor) -> None:
        self.metric = check_choice("metric", metric, METRICS)
        self.database = database_features(database)
        self.n_features = self.database.shape[1]
        self.n_jobs = check_setting("n_jobs", n_jobs)
        self.seed = check_int("seed", seed, low=0, high=2**31 - 1)
        self.working_memory = check_setting("working_memory", working_memory, low=2**16)
        self.rerank_factor = rerank_factor
        self._exact = None

    @property
    def rerank_factor(self) -> int | None:
        """Candidates per neighbour re-ranked exactly; None: the backend's default."""
        return self._rerank_factor

    @rerank_factor.setter
    def rerank_factor(self, value) -> None:
        self._rerank_factor = check_setting("rerank_factor", value)

    def __len__(self) -> int:
        return len(self.database)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} rows x {self.n_features} features, "
            f"metric={self.metric!r}, {self.settings})"
        )

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest database rows the index finds for each query.

        Same contract as :meth:`imgclf.neighbors.ExactIndex.search`: distances
        float64 ``(m, k)`` ascending (true L1, or Euclidean not squared),
        indices int64 ``(m, k)``, ties to the lower index. The rows are the
        best of the index's candidates, re-ranked exactly.
        """
        k = check_int("k", k, low=1, high=len(self))
        queries = matching_queries(queries, self.database)
        factor = self.rerank_factor or (LOSSY_RERANK if self._lossy else LOSSLESS_RERANK)
        candidates = self._candidates(float32_rows(queries), min(len(self), factor * k), k)
        if candidates.shape[1] < k:
            missing = np.full((len(candidates), k - candidates.shape[1]), -1, np.int64)
            candidates = np.hstack([candidates.astype(np.int64, copy=False), missing])
        return rerank(
            self.database,
            queries,
            candidates,
            k,
            self.metric,
            exact=lambda rows: self._exact_rows(queries[rows], k),
        )

    def _exact_rows(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Exact top-k rows: for queries the index found fewer than ``k`` candidates for."""
        if self._exact is None:
            self._exact = ExactIndex(
                self.database, self.metric, working_memory=self.working_memory, n_jobs=self.n_jobs
            )
        return self._exact.search(queries, k)[1]

    def __getstate__(self) -> dict:
        # Through to_arrays: the C++ index itself cannot be pickled (a pickle is trusted code).
        return {
            "database": self.database,
            "metric": self.metric,
            "n_jobs": self.n_jobs,
            "settings": self.settings,
            "arrays": self.to_arrays(),
        }

    def __setstate__(self, state: dict) -> None:
        loaded = type(self).from_arrays(
            state["database"],
            state["arrays"],
            state["metric"],
            n_jobs=state["n_jobs"],
            trusted=True,
            **state["settings"],
        )
        self.__dict__.update(loaded.__dict__)


def check_trusted(trusted) -> bool:
    """``trusted`` as a bool; anything but True/False is a ValueError (no truthy strings)."""
    if not isinstance(trusted, bool | np.bool_):
        raise ValueError(f"trusted must be True or False; got {trusted!r}")
    return bool(trusted)


def check_setting(name: str, value, low: int = 1, high: int | None = None) -> int | None:
    """``None`` or an int ``>= low``, named in the error (scikit-learn's style)."""
    return None if value is None else check_int(name, value, low=low, high=high)

"""Distance kernels, one module per family, each with a plain NumPy reference.

Every kernel module exposes the same small protocol, so the search engine
(:mod:`imgclf.neighbors.search`) can treat them alike:

``prepare(database) -> prepared``
    Done once per database (per ``fit``): convert, repack, precompute norms.
``block(queries, prepared, lo, hi, out) -> None``
    Fill ``out[:m, :hi - lo]`` with the distance between ``queries[i]`` and
    database row ``lo + j``. Compiled with ``nogil``, single-threaded: the
    engine runs several blocks at once on threads.
``reference(queries, database) -> ndarray``
    The same distances, the obvious NumPy way, for tests.
``variant() -> str``
    Which code path ``block`` runs on this CPU (for benchmarks and tests).

Features are zero-padded by the engine to a multiple of :data:`PAD` bytes,
so SIMD variants need not handle a tail (zeros add nothing to L1 distances
or dot products).
"""

import numpy as np

PAD = 64


def row_dtype(n: int):
    """The integer type of row positions in a database of ``n`` rows: int32 below 2^31
    rows, else int64. Half the bytes of int64 for an inverted file's list order and the
    cascade's row map (200 KB, not 400, for 50,000 rows), and one type for both, so
    the compiled kernels that take them are compiled once."""
    return np.int32 if n < 2**31 else np.int64

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

PAD = 64

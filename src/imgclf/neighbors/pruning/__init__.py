"""Exact search for a few queries by a cascade of lower bounds.

One query against a large database is bound by memory bandwidth: every byte
of the database is read to compute a single row of distances (50,000 CIFAR
images are 154 MB, ~8 ms at 20 GB/s). Small summaries give lower bounds on
every distance, and only rows whose bound could beat the k-th best need their
exact distance. Three stages, each run only on the rows that survived the
one before:

1. **First bound**, 32 (L2) or 64 (L1) bytes per row, over every row (on
   CIFAR 1.6 or 3.2 MB, not 154 MB):

   * L2: 31 principal axes of a sample plus the residual norm, int8 codes
     ``u`` with a scale ``s_j`` per axis, two axes a pair of bytes, so that
     ``vpmaddwd`` dots sixteen rows at a time with the query's weights ``q_j
     s_j`` rounded to int16: ``sum_j (q_j - s_j u_j)^2 = |q|^2 - 2 sum_j q_j
     s_j u_j + |s u|^2``, less an allowance for the rounding
     (:func:`_query_weights`; ``|s u|^2`` is stored per row). For
     ``A`` (``m x d``) of spectral norm at most 1, ``rho(v)^2 = |v|^2 -
     |A v|^2`` is a seminorm, so ``|q - x|^2 = |A(q - x)|^2 + rho(q - x)^2 >=
     |A(q - mu) - A(x - mu)|^2 + (rho(q - mu) - rho(x - mu))^2``. ``A`` is
     the axes rounded to int16 (``P_int = round(2^14 P)``) divided by its
     spectral norm, so ``A(x - mu)`` is an exact integer vector scaled once.
   * L1: sums over 64 coarse groups of features, rounded to uint8
     (``u = round(S / s)``), row-major, one ``vpsadbw`` pass per row. For
     any partition into groups ``G``, by the triangle inequality
     ``|q - x|_1 >= sum_G |S_q[G] - S_x[G]|``.

2. **Second bound**, for the rows past the first:

   * L2: the same with 127 axes (int16 codes, one scale, row-major);
   * L1: sums over 384 groups of 8 features, rounded to uint8 (``8 u``
     within 4 of the sum).

   The groups are learned from a sample: features are paired by
   correlation, pairs paired again (8 features), and on for the coarse
   groups. On CIFAR they come out as compact patches of one colour channel;
   far fewer rows survive them than survive consecutive features.

3. **Exact distances** (int64 L1 or squared L2; where the CPU has AVX2, L1
   by ``vpsadbw``, L2 by ``vpmaddwd`` on widened differences) of the rows
   that survive both, in increasing order of their second bound, stopping at
   the first bound above the k-th best distance.

Every rounding (codes, float32 sums) moves a bound by a known amount, and
the thresholds add that allowance before they prune: a bound is weakened,
never wrong (see :func:`_summarise` and :func:`_thresholds`).

The threshold ``tau``: the least first bound of every chunk of rows picks
about 200 seeds, the 16 (at least k) with the least second bounds are
measured, and the k-th smallest of their exact distances is at least the
true k-th distance, so a row whose bound exceeds ``tau`` cannot be among the
k nearest (nor tie with them). Most seeds pass the bounds again; they are not
measured twice (CIFAR-10, L2: 15 fewer rows of ~160 an inverted file's query
measures, 30 of ~235 for an exact query on two threads).

Threads take contiguous shares of the rows and run the whole cascade on
them, each pruning with the smallest k-th distance any of them has found;
the k best of all are merged, ties to the lower id as everywhere in the
engine. Scattered rows (short ranges) skip the first stage.

Without the cascade (small databases, or ``cascade=False`` for comparison)
the only bound is the sums of 16 consecutive features (uint16, exact; L2
adds the residual: ``g |q - x|^2 >= sum_j (S_q[j] - S_x[j])^2 + (r_q - r_x)^2``
by Cauchy-Schwarz).

On CIFAR-10 (k = 10, median over the test set) about 4% (L2) or 7% (L1) of
rows survive the first bound, 0.3% or 0.8% the second, and 0.2% or 0.7% are
measured exactly (``benchmarks/bench_single_query.py``).

The package, one concept a module, each importing only those above it in this list
(and the per-row SIMD kernels, :mod:`imgclf.neighbors.kernels.rows`, below them all):

* :mod:`.summaries`: what is kept of every database row, built once;
* :mod:`.bounds`: the query's summaries, each stage's bound, the thresholds;
* :mod:`.stages`: one thread's passes (first bounds, seeds, survivors, exact);
* :mod:`.cascade`: one thread's whole cascade, one compiled call;
* :mod:`.pruner`: :class:`LowerBoundPruner`, which owns the arrays and the threads.
"""

from imgclf.neighbors.pruning.pruner import (
    CASCADE_MIN_ROWS,
    FIRST_DIMS,
    GROUP,
    SECOND_DIMS,
    LowerBoundPruner,
)

__all__ = ["CASCADE_MIN_ROWS", "FIRST_DIMS", "GROUP", "SECOND_DIMS", "LowerBoundPruner"]

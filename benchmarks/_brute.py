"""Brute-force Hamming range scan for the ground truth (numba, parallel over queries).

Written independently of safehold's index code on purpose: the truth must not
share code with what it checks. The smoke test checks it against a plain NumPy
popcount scan (:func:`benchmarks.bench_index.brute_force_numpy`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

_QUERY_BLOCK = 32
"""Queries compared against each hash while it is in registers."""


@intrinsic
def _ctpop_intrinsic(typingctx: Any, x: Any) -> Any:
    """Population count of a uint64 (LLVM ``ctpop``: one POPCNT instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


_ctpop: Any = _ctpop_intrinsic


@njit(cache=True, parallel=True, nogil=True)
def scan(words, qwords, radius, cap):  # type: ignore[no-untyped-def]
    """Every (row, distance) within ``radius`` of each query, at most ``cap`` per query.

    ``words``: (n, 4) uint64 hashes; ``qwords``: (q, 4) uint64 queries; ``radius``:
    uint64. Returns (counts, rows, dists); a count above ``cap`` means the caller
    must rerun with a larger cap (only the first ``cap`` were stored). The distance
    of the first two words is checked first: partial sums only grow, so skipping
    the rest when they already exceed the radius is exact.
    """
    nq = qwords.shape[0]
    n = words.shape[0]
    counts = np.zeros(nq, np.int64)
    rows = np.full((nq, cap), -1, np.int64)
    dists = np.zeros((nq, cap), np.int64)
    nblocks = (nq + _QUERY_BLOCK - 1) // _QUERY_BLOCK
    for b in prange(nblocks):
        q0 = b * _QUERY_BLOCK
        q1 = min(nq, q0 + _QUERY_BLOCK)
        for r in range(n):
            w0 = words[r, 0]
            w1 = words[r, 1]
            for qi in range(q0, q1):
                d = _ctpop(w0 ^ qwords[qi, 0]) + _ctpop(w1 ^ qwords[qi, 1])
                if d <= radius:
                    d += _ctpop(words[r, 2] ^ qwords[qi, 2]) + _ctpop(words[r, 3] ^ qwords[qi, 3])
                    if d <= radius:
                        c = counts[qi]
                        if c < cap:
                            rows[qi, c] = r
                            dists[qi, c] = d
                        counts[qi] = c + 1
    return counts, rows, dists

"""Compiled inner loops of the PDQ index (numba, cached on disk after the first use).

A multi-index-hashing lookup is a chain of random memory reads: bucket bounds, row
numbers, then the 32-byte hashes themselves. The loops run the chain in three passes
over a batch of queries with software prefetching a few iterations ahead, so the
processor has many cache misses in flight at once (about twice the throughput of
plain loops and three times that of NumPy gathers here), and they release the GIL
so request threads search in parallel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

AHEAD = 24
"""How many iterations ahead to prefetch."""


@intrinsic
def _prefetch(typingctx: Any, arr: Any, idx: Any) -> Any:
    """Hint the CPU to load ``arr[idx]`` into cache (LLVM ``llvm.prefetch``)."""
    sig = types.void(arr, idx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary, ind = args
        aryty = signature.args[0]
        arrobj = context.make_array(aryty)(context, builder, ary)
        ptr = cgutils.get_item_pointer(context, builder, aryty, arrobj, [ind], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, high temporal locality, data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _popcount64(typingctx: Any, x: Any) -> Any:
    """Number of set bits of a uint64 (LLVM ``ctpop``: one POPCNT instruction)."""
    sig = types.uint64(types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.ctpop(args[0])

    return sig, codegen


@njit(cache=True, nogil=True)
def mih_search(keys, band_of, masks, base, offsets, rows, words, queries, dead, radius):  # type: ignore[no-untyped-def]
    """(query index, row, distance) of every live row within ``radius`` of each query.

    ``keys``: (q, m) band keys of the queries; ``band_of``/``masks``/``base``: the
    probe plan (band, flip mask, table base) for this radius; ``offsets``/``rows``:
    the CSR band tables; ``words``: (n, 4) hashes; ``queries``: (q, 4) hashes.
    """
    nq = keys.shape[0]
    nprobe = band_of.shape[0]
    total = nq * nprobe
    flat = words.reshape(-1)
    # 1. bucket bounds of every probe
    slots = np.empty(total, np.int64)
    for qi in range(nq):
        for p in range(nprobe):
            slots[qi * nprobe + p] = np.int64((keys[qi, band_of[p]] ^ masks[p]) + base[p])
    lo = np.empty(total, np.int64)
    ln = np.empty(total, np.int64)
    ncand = 0
    for i in range(total):
        if i + AHEAD < total:
            _prefetch(offsets, slots[i + AHEAD])
        a = np.int64(offsets[slots[i]])
        b = np.int64(offsets[slots[i] + 1])
        lo[i] = a
        ln[i] = b - a
        ncand += b - a
    # 2. row numbers of every candidate
    cand_r = np.empty(ncand, np.int64)
    cand_q = np.empty(ncand, np.int64)
    k = 0
    for i in range(total):
        if i + AHEAD < total:
            _prefetch(rows, lo[i + AHEAD])
        start = lo[i]
        qi = i // nprobe
        for j in range(ln[i]):
            cand_r[k] = rows[start + j]
            cand_q[k] = qi
            k += 1
    # 3. full distance of every candidate
    dist = np.empty(ncand, np.int64)
    for c in range(ncand):
        if c + AHEAD < ncand:
            _prefetch(flat, cand_r[c + AHEAD] * 4)
        r = cand_r[c]
        qi = cand_q[c]
        dist[c] = np.int64(
            _popcount64(words[r, 0] ^ queries[qi, 0])
            + _popcount64(words[r, 1] ^ queries[qi, 1])
            + _popcount64(words[r, 2] ^ queries[qi, 2])
            + _popcount64(words[r, 3] ^ queries[qi, 3])
        )
    # 4. keep live rows within the radius, once per query (the same row can be
    #    found through several bands; candidates are grouped by query)
    count = 0
    for c in range(ncand):
        if dist[c] <= radius:
            count += 1
    out_q = np.empty(count, np.int64)
    out_r = np.empty(count, np.int64)
    out_d = np.empty(count, np.int64)
    k = 0
    for c in range(ncand):
        if dist[c] <= radius and not dead[cand_r[c]]:
            r = cand_r[c]
            qi = cand_q[c]
            dup = False
            for x in range(k - 1, -1, -1):
                if out_q[x] != qi:
                    break
                if out_r[x] == r:
                    dup = True
                    break
            if not dup:
                out_q[k] = qi
                out_r[k] = r
                out_d[k] = dist[c]
                k += 1
    return out_q[:k], out_r[:k], out_d[:k]


@njit(cache=True, nogil=True)
def csr_rows(keys, offsets):  # type: ignore[no-untyped-def]
    """Row numbers grouped by key (a stable counting sort): bucket ``k`` of the band
    table is ``rows[offsets[k]:offsets[k + 1]]``."""
    pos = offsets[:-1].copy()
    rows = np.empty(keys.shape[0], np.uint32)
    for i in range(keys.shape[0]):
        k = keys[i]
        rows[pos[k]] = i
        pos[k] += 1
    return rows

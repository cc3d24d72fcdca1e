"""Exact range search over PDQ hashes: every entry within the radius, always.

The index is a small log-structured set of immutable *segments* plus a mutable
*memtable*:

* new entries go to the memtable, a FAISS ``IndexBinaryFlat`` (brute force, exact);
* a full memtable is frozen into a segment; segments of similar size are merged,
  so sizes grow geometrically and there are only a handful of them (adding an
  entry never rebuilds the whole index);
* small segments are FAISS flat indexes; large ones use multi-index hashing (MIH);
* removals mark the row dead at once; a segment with many dead rows is rewritten.

Multi-index hashing (Norouzi et al.) with an exactness guarantee: the 256 bits are
cut into ``m`` disjoint bands of ``b`` bits (``b`` close to log2 of the segment
size). For a query at radius ``r``, band ``i`` is probed with every key within
``k_i`` bits of the query's key, where ``sum(k_i + 1) >= r + 1``. By the pigeonhole
principle any hash within ``r`` bits differs by at most ``k_i`` bits in some band
``i``, so it is among the candidates; candidates are then checked with the full
distance. Recall against brute force is therefore 100% at every radius — when the
probes would cost more than a scan, the segment is scanned instead, which is exact
too. Band tables are compressed-sparse-row arrays (offsets + row numbers), so
10 million hashes take about 1.4 GB in all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Any

import faiss
import numpy as np

from safehold.index._kernels import csr_rows, mih_search

HASH_BYTES = 32
HASH_BITS = 256
MAX_RADIUS = 64

MEMTABLE_SIZE = 16_384
"""Entries kept in the mutable brute-force memtable before it is frozen."""
MIH_CUTOFF = 65_536
"""Segments at least this large use multi-index hashing; smaller ones are scanned."""
MERGE_RATIO = 4
"""Adjacent segments are merged while the newer one is at least 1/MERGE_RATIO the size."""
COMPACT_DEAD_FRACTION = 0.3
QUERY_BATCH = 16
MAX_FLIPS = 5

# One thread per call: the index is searched from several request threads at once,
# and FAISS' OpenMP start-up costs more than it saves on these small calls.
faiss.omp_set_num_threads(1)


@dataclass(frozen=True)
class SearchResult:
    """Matches of one query: entry ids and Hamming distances, sorted by distance."""

    ids: np.ndarray
    distances: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def pairs(self) -> list[tuple[int, int]]:
        return [(int(i), int(d)) for i, d in zip(self.ids, self.distances, strict=True)]


def as_codes(hashes: np.ndarray | Iterable[str]) -> np.ndarray:
    """(n, 32) uint8 array from an array or from hex strings."""
    if isinstance(hashes, np.ndarray):
        arr = np.ascontiguousarray(hashes, dtype=np.uint8)
    else:
        values = list(hashes)
        if not values:
            return np.zeros((0, HASH_BYTES), dtype=np.uint8)
        arr = np.frombuffer(bytes.fromhex("".join(values)), dtype=np.uint8)
    return arr.reshape(-1, HASH_BYTES)


def _words(codes: np.ndarray) -> np.ndarray:
    """(n, 4) uint64 view for popcount distance (byte order does not matter)."""
    words = np.ascontiguousarray(codes).view(np.uint64).reshape(-1, 4)
    # numba compiles a separate kernel for read-only arrays (queries decoded from bytes
    # are read-only): hand it a writable copy so one compiled version serves every call
    return words if words.flags.writeable else words.copy()


@lru_cache(maxsize=64)
def _flip_masks(width: int, k: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``k`` bits set."""
    masks = [0]
    for j in range(1, k + 1):
        masks.extend(sum(1 << b for b in c) for c in combinations(range(width), j))
    return np.array(masks, dtype=np.uint64)


def band_radii(m: int, radius: int) -> list[int]:
    """Per-band probe radius (-1: band not probed) with sum(k_i + 1) >= radius + 1."""
    need = radius + 1
    if need <= m:
        return [0] * need + [-1] * (m - need)
    base, rem = divmod(need, m)
    return [base] * rem + [base - 1] * (m - rem)


class _Segment:
    """Immutable hashes + ids; subclasses answer range queries over live rows."""

    def __init__(self, ids: np.ndarray, codes: np.ndarray) -> None:
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.codes = np.ascontiguousarray(codes, dtype=np.uint8)
        self.n = len(self.ids)
        self.dead = np.zeros(self.n, dtype=bool)
        self.n_dead = 0
        order = np.argsort(self.ids, kind="stable")
        self._sorted_ids = self.ids[order]
        self._sorted_rows = order.astype(np.int64)

    @property
    def live(self) -> int:
        return self.n - self.n_dead

    def kill(self, ids: np.ndarray) -> int:
        """Mark every live row of these ids dead (an id may have several rows when it was
        removed and added again before the segment was rewritten)."""
        if self.n == 0 or len(ids) == 0:
            return 0
        lo = np.searchsorted(self._sorted_ids, ids, side="left")
        hi = np.searchsorted(self._sorted_ids, ids, side="right")
        span = hi - lo
        if not span.any():
            return 0
        starts = np.repeat(lo, span)
        offsets = np.arange(int(span.sum())) - np.repeat(np.cumsum(span) - span, span)
        rows = self._sorted_rows[starts + offsets]
        rows = rows[~self.dead[rows]]
        self.dead[rows] = True
        self.n_dead += len(rows)
        return len(rows)

    def live_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        keep = ~self.dead
        return self.ids[keep], self.codes[keep]

    def search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, row, distance) of every live row within ``radius``."""
        raise NotImplementedError

    def memory(self) -> int:
        return int(
            self.ids.nbytes
            + self.codes.nbytes
            + self.dead.nbytes
            + self._sorted_ids.nbytes
            + self._sorted_rows.nbytes
        )


class _FlatSegment(_Segment):
    """Brute force through FAISS ``IndexBinaryFlat`` (exact)."""

    def __init__(self, ids: np.ndarray, codes: np.ndarray) -> None:
        super().__init__(ids, codes)
        self.index = faiss.IndexBinaryFlat(HASH_BITS)
        if self.n:
            self.index.add(self.codes)

    def search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.n == 0 or len(queries) == 0:
            return _EMPTY3
        lims, dist, rows = self.index.range_search(queries, radius + 1)
        qidx = np.repeat(np.arange(len(queries), dtype=np.int64), np.diff(lims).astype(np.int64))
        rows = rows.astype(np.int64)
        keep = ~self.dead[rows]
        return qidx[keep], rows[keep], dist[keep].astype(np.int64)


class _MihSegment(_Segment):
    """Multi-index hashing over CSR band tables (see the module docstring)."""

    def __init__(self, ids: np.ndarray, codes: np.ndarray, pool: ThreadPoolExecutor | None) -> None:
        super().__init__(ids, codes)
        self.words = _words(self.codes)
        self.width = int(min(24, max(12, round(np.log2(max(self.n, 2))))))
        self.m = HASH_BITS // self.width
        big = self.m * self.n >= 2**32
        span = (1 << self.width) + 1
        # All bands in one pair of arrays: band b's offsets start at b * span, and its
        # rows at b * n (the offsets already include that shift). Each band is built
        # straight into its slice, so building needs little more than the result.
        self.offsets = np.empty(self.m * span, dtype=np.uint64 if big else np.uint32)
        self.rows = np.empty(self.m * self.n, dtype=np.uint32)
        build = _BandBuilder(self)
        bands = range(self.m)
        if pool:
            list(pool.map(build, bands))
        else:
            for b in bands:
                build(b)
        self.span = span
        self._weights = np.uint64(1) << np.arange(self.width - 1, -1, -1, dtype=np.uint64)
        self._plans: dict[int, tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray] | None]] = {}

    def memory(self) -> int:
        return super().memory() + int(self.offsets.nbytes + self.rows.nbytes)

    def _plan(self, radius: int) -> tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        """Probe plan for a radius: (cost, (band of probe, flip mask, table base))."""
        if radius in self._plans:
            return self._plans[radius]
        radii = band_radii(self.m, radius)
        if max(radii) > MAX_FLIPS:
            plan: tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = (
                float("inf"),
                None,
            )
        else:
            bands, masks = [], []
            for band, k in enumerate(radii):
                if k >= 0:
                    fm = _flip_masks(self.width, k)
                    bands.append(np.full(len(fm), band, dtype=np.intp))
                    masks.append(fm)
            band_of = np.concatenate(bands)
            probes = len(band_of)
            candidates = probes * self.n / float(1 << self.width)
            cost = 3.0 * probes + 2.0 * candidates
            base = band_of.astype(np.uint64) * np.uint64(self.span)
            plan = (cost, (band_of, np.concatenate(masks), base))
        self._plans[radius] = plan
        return plan

    def _keys(self, queries: np.ndarray) -> np.ndarray:
        """(q, m) band keys of the queries."""
        bits = np.unpackbits(queries, axis=1)[:, : self.m * self.width].astype(np.uint64)
        keys: np.ndarray = (bits.reshape(len(queries), self.m, self.width) * self._weights).sum(
            axis=2, dtype=np.uint64
        )
        return keys

    def search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.n == 0 or len(queries) == 0:
            return _EMPTY3
        cost, plan = self._plan(radius)
        if plan is None or cost >= self.n:
            return self._scan(queries, radius)
        band_of, masks, base = plan
        found: tuple[np.ndarray, np.ndarray, np.ndarray] = mih_search(
            self._keys(queries),
            band_of,
            masks,
            base,
            self.offsets,
            self.rows,
            self.words,
            _words(queries),
            self.dead,
            radius,
        )
        return found

    def _scan(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out_q, out_r, out_d = [], [], []
        words = self.words
        qw = _words(queries)
        step = max(1, 2_000_000 // max(len(queries), 1))
        for s in range(0, self.n, step):
            block = words[s : s + step]
            d = np.bitwise_count(block[None, :, :] ^ qw[:, None, :]).sum(axis=2, dtype=np.int64)
            qi, ri = np.nonzero(d <= radius)
            ri = ri + s
            keep = ~self.dead[ri]
            out_q.append(qi[keep].astype(np.int64))
            out_r.append(ri[keep].astype(np.int64))
            out_d.append(d[qi[keep], ri[keep] - s])
        return np.concatenate(out_q), np.concatenate(out_r), np.concatenate(out_d)


class _BandBuilder:
    """Builds band ``b``'s CSR table into the segment's offsets and rows arrays."""

    def __init__(self, seg: _MihSegment) -> None:
        self.seg = seg

    def __call__(self, band: int) -> None:
        seg = self.seg
        keys = _band_from_bytes(seg.codes, band * seg.width, seg.width)
        span = (1 << seg.width) + 1
        offsets = seg.offsets[band * span : (band + 1) * span]
        offsets[0] = 0
        np.cumsum(np.bincount(keys, minlength=span - 1), out=offsets[1:])
        seg.rows[band * seg.n : (band + 1) * seg.n] = csr_rows(keys, offsets)
        np.add(offsets, band * seg.n, out=offsets, casting="unsafe")


def _band_from_bytes(codes: np.ndarray, start: int, width: int) -> np.ndarray:
    """Bits [start, start+width) of each hash (MSB first) as uint32, reading only the
    bytes that hold them (no full-width copy of the hashes)."""
    first, last = start // 8, (start + width - 1) // 8
    acc = np.zeros(len(codes), dtype=np.uint32)
    for b in range(first, last + 1):
        acc <<= np.uint32(8)
        acc |= codes[:, b]
    spare = (last - first + 1) * 8 - (start % 8) - width
    acc >>= np.uint32(spare)
    acc &= np.uint32((1 << width) - 1)
    return acc


_EMPTY3 = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))


class PdqIndex:
    """Exact Hamming range search over PDQ hashes with incremental add and remove.

    Ids are the caller's (bank entry ids); an id should be added once (remove it
    first to change its hash). Safe for concurrent searches with one writer.
    """

    def __init__(
        self,
        *,
        memtable_size: int = MEMTABLE_SIZE,
        mih_cutoff: int = MIH_CUTOFF,
        threads: int = 2,
    ) -> None:
        self.memtable_size = memtable_size
        self.mih_cutoff = mih_cutoff
        self._segments: list[_Segment] = []
        self._mem_ids = np.zeros(0, dtype=np.int64)
        self._mem_codes = np.zeros((0, HASH_BYTES), dtype=np.uint8)
        self._memtable: _FlatSegment = _FlatSegment(self._mem_ids, self._mem_codes)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads) if threads > 1 else None

    # ------------------------------------------------------------------ building

    @classmethod
    def build(cls, ids: np.ndarray, codes: np.ndarray, **kwargs: Any) -> PdqIndex:
        """Bulk-load: one segment for everything (the fast path at start-up)."""
        index = cls(**kwargs)
        ids = np.asarray(ids, dtype=np.int64)
        codes = as_codes(codes)
        if len(ids) != len(codes):
            raise ValueError("ids and codes differ in length")
        if len(ids):
            index._segments = [index._segment(ids, codes)]
        return index

    def _segment(self, ids: np.ndarray, codes: np.ndarray) -> _Segment:
        if len(ids) >= self.mih_cutoff:
            return _MihSegment(ids, codes, self._pool)
        return _FlatSegment(ids, codes)

    def add(self, ids: np.ndarray | Iterable[int], codes: np.ndarray | Iterable[str]) -> None:
        ids_arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        codes_arr = as_codes(codes)
        if len(ids_arr) != len(codes_arr):
            raise ValueError("ids and codes differ in length")
        if not len(ids_arr):
            return
        with self._lock:
            if len(ids_arr) >= self.memtable_size:
                self._segments.append(self._segment(ids_arr, codes_arr))
                self._rebalance()
                return
            mem_ids = np.concatenate([self._mem_ids, ids_arr])
            mem_codes = np.concatenate([self._mem_codes, codes_arr])
            old = self._memtable
            table = _FlatSegment(mem_ids, mem_codes)
            # carry over deaths of rows still in the memtable
            if old.n_dead:
                table.dead[: old.n] = old.dead
                table.n_dead = old.n_dead
            self._mem_ids, self._mem_codes, self._memtable = mem_ids, mem_codes, table
            if len(mem_ids) >= self.memtable_size:
                live_ids, live_codes = table.live_arrays()
                self._segments.append(self._segment(live_ids, live_codes))
                self._mem_ids = np.zeros(0, dtype=np.int64)
                self._mem_codes = np.zeros((0, HASH_BYTES), dtype=np.uint8)
                self._memtable = _FlatSegment(self._mem_ids, self._mem_codes)
                self._rebalance()

    def _rebalance(self) -> None:
        segs = sorted(self._segments, key=lambda s: s.live, reverse=True)
        while len(segs) >= 2 and segs[-1].live * MERGE_RATIO >= segs[-2].live:
            newer, older = segs.pop(), segs.pop()
            i1, c1 = older.live_arrays()
            i2, c2 = newer.live_arrays()
            segs.append(self._segment(np.concatenate([i1, i2]), np.concatenate([c1, c2])))
            segs.sort(key=lambda s: s.live, reverse=True)
        self._segments = segs

    def remove(self, ids: np.ndarray | Iterable[int]) -> int:
        """Remove entries by id; returns how many were live. Unknown ids are ignored."""
        arr = np.unique(
            np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        )
        if not len(arr):
            return 0
        removed = 0
        with self._lock:
            removed += self._memtable.kill(arr)
            rewrite = False
            for seg in self._segments:
                removed += seg.kill(arr)
                rewrite = rewrite or (seg.n > 0 and seg.n_dead / seg.n > COMPACT_DEAD_FRACTION)
            if rewrite:
                segs = []
                for seg in self._segments:
                    if seg.n and seg.n_dead / seg.n > COMPACT_DEAD_FRACTION:
                        live_ids, live_codes = seg.live_arrays()
                        if len(live_ids):
                            segs.append(self._segment(live_ids, live_codes))
                    else:
                        segs.append(seg)
                self._segments = segs
                self._rebalance()
        return removed

    # ------------------------------------------------------------------ querying

    def search(self, queries: np.ndarray | Iterable[str], radius: int) -> list[SearchResult]:
        """Every live entry within ``radius`` bits of each query (0 <= radius <= 64)."""
        if not 0 <= radius <= MAX_RADIUS:
            raise ValueError(f"radius must be between 0 and {MAX_RADIUS}, not {radius}")
        q = as_codes(queries)
        results: list[SearchResult] = []
        segments = [*self._segments, self._memtable]
        for s in range(0, len(q), QUERY_BATCH):
            batch = q[s : s + QUERY_BATCH]
            parts = [(seg, *seg.search(batch, radius)) for seg in segments]
            results.extend(_collect(parts, len(batch)))
        return results

    def search_one(self, query: str | np.ndarray, radius: int) -> SearchResult:
        codes = as_codes([query]) if isinstance(query, str) else as_codes(query)
        return self.search(codes, radius)[0]

    # ------------------------------------------------------------------ introspection

    def __len__(self) -> int:
        return sum(s.live for s in self._segments) + self._memtable.live

    def stats(self) -> dict[str, Any]:
        return {
            "entries": len(self),
            "segments": [
                {
                    "kind": "mih" if isinstance(s, _MihSegment) else "flat",
                    "rows": s.n,
                    "dead": s.n_dead,
                }
                for s in self._segments
            ],
            "memtable": self._memtable.live,
            "memory_bytes": sum(s.memory() for s in self._segments) + self._memtable.memory(),
        }

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=False)


def _collect(
    parts: list[tuple[_Segment, np.ndarray, np.ndarray, np.ndarray]], nq: int
) -> list[SearchResult]:
    ids = np.concatenate([seg.ids[r] for seg, _, r, _ in parts])
    q = np.concatenate([qi for _, qi, _, _ in parts])
    d = np.concatenate([di for _, _, _, di in parts])
    order = np.lexsort((ids, d, q))
    q, ids, d = q[order], ids[order], d[order]
    bounds = np.searchsorted(q, np.arange(nq + 1))
    return [
        SearchResult(ids[bounds[i] : bounds[i + 1]], d[bounds[i] : bounds[i + 1]])
        for i in range(nq)
    ]

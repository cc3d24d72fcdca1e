"""PDQ index: build time, memory, lookups/s, latency and recall, side by side.

For each size the parent process generates the same random PDQ hashes (a pure
function of size and seed), plants near-duplicate queries (copies of random
entries with 0-31 random bits flipped) plus random non-member queries, and finds
the true neighbours within the radius by brute force. Then every implementation
runs in its own fresh ``python -m benchmarks.bench_index --child`` process, so
its memory numbers are its own:

1. import and warm up (JIT compile, thread pools) on a small throw-away index;
2. baseline RSS; generate the hashes in the implementation's input format;
3. build (timed); drop the caller's inputs; RSS = what the index keeps;
4. a warm-up pass of single queries, then batched lookups (1 and 2 threads, each
   thread calling ``search`` on batches), then one query per call (latency
   percentiles, and lookups/s with 1 and 2 threads);
5. recall = true neighbours found / true neighbours (brute force).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    CACHE_DIR,
    REPO_ROOT,
    CpuWatch,
    fmt_load,
    fmt_mib,
    fmt_num,
    markdown_table,
    peak_rss_bytes,
    percentile_ms,
    release_memory,
    reset_peak_rss,
    rss_bytes,
    wait_for_idle,
)

RADIUS = 31
HASH_BYTES = 32
TRUTH_VERSION = 1

IMPLS: dict[str, str] = {
    "safehold": "safehold `PdqIndex`",
    "faiss-mih": "FAISS `IndexBinaryMultiHash(256,16,16)`, nflip=0",
    "pytx": "pytx `PdqSignal.get_index_cls()` (`PDQIndex`)",
}
IMPL_NOTES: dict[str, str] = {
    "safehold": "`PdqIndex.build(ids, codes)`; `search(batch, 31)`",
    "faiss-mih": "raw FAISS, `add(codes)`; `range_search(batch, 32)` (strict <)",
    "pytx": "`build([(hex, id), ...])`; `query(hex)` (IndexBinaryIDMap2 over "
    "IndexBinaryMultiHash(256,16,16); the query sets nflip = 31 // 16 = 1)",
}


# --------------------------------------------------------------------------- data


def make_codes(n: int, seed: int) -> np.ndarray:
    """(n, 32) uint8 uniformly random hashes; the same for the same (n, seed)."""
    rng = np.random.default_rng(seed)
    return np.frombuffer(rng.bytes(n * HASH_BYTES), dtype=np.uint8).reshape(n, HASH_BYTES).copy()


def make_queries(
    codes: np.ndarray, n_planted: int, n_random: int, seed: int, max_flips: int = RADIUS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(queries, source row or -1, bits flipped), shuffled.

    Planted queries copy a random entry and flip ``0..max_flips`` distinct random
    bits (uniformly many); the others are random non-members.
    """
    rng = np.random.default_rng(seed + 7919)
    n = len(codes)
    n_planted = min(n_planted, n)
    src = rng.choice(n, size=n_planted, replace=False).astype(np.int64)
    flips = rng.integers(0, max_flips + 1, size=n_planted)
    bits = np.unpackbits(codes[src], axis=1)
    order = np.argsort(rng.random((n_planted, 256)), axis=1)[:, :max_flips]
    chosen = np.arange(max_flips)[None, :] < flips[:, None]
    rows = np.repeat(np.arange(n_planted), chosen.sum(axis=1))
    bits[rows, order[chosen]] ^= 1
    planted = np.packbits(bits, axis=1)
    randoms = np.frombuffer(rng.bytes(n_random * HASH_BYTES), dtype=np.uint8).reshape(
        n_random, HASH_BYTES
    )
    queries = np.concatenate([planted, randoms])
    source = np.concatenate([src, np.full(n_random, -1, dtype=np.int64)])
    nflips = np.concatenate([flips, np.zeros(n_random, dtype=np.int64)])
    perm = rng.permutation(len(queries))
    return np.ascontiguousarray(queries[perm]), source[perm], nflips[perm]


@dataclass
class Truth:
    """Every (query, row, distance) within the radius, grouped by query (CSR)."""

    offsets: np.ndarray
    rows: np.ndarray
    dists: np.ndarray

    def of(self, q: int) -> np.ndarray:
        return self.rows[self.offsets[q] : self.offsets[q + 1]]

    def dists_of(self, q: int) -> np.ndarray:
        return self.dists[self.offsets[q] : self.offsets[q + 1]]


def _csr(per_query: Sequence[tuple[np.ndarray, np.ndarray]]) -> Truth:
    counts = np.array([len(r) for r, _ in per_query], dtype=np.int64)
    offsets = np.zeros(len(per_query) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    rows = np.concatenate([r for r, _ in per_query]) if per_query else np.zeros(0, np.int64)
    dists = np.concatenate([d for _, d in per_query]) if per_query else np.zeros(0, np.int64)
    return Truth(offsets, rows.astype(np.int64), dists.astype(np.int64))


def brute_force_numpy(codes: np.ndarray, queries: np.ndarray, radius: int) -> Truth:
    """Ground truth with NumPy popcount, chunked over the hashes (the simple reference)."""
    words = np.ascontiguousarray(codes).view(np.uint64).reshape(-1, 4)
    qwords = np.ascontiguousarray(queries).view(np.uint64).reshape(-1, 4)
    found: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(len(queries))]
    step = max(1, 4_000_000 // max(len(queries), 1))
    for s in range(0, len(words), step):
        block = words[s : s + step]
        d = np.zeros((len(qwords), len(block)), dtype=np.int64)
        for w in range(4):
            d += np.bitwise_count(qwords[:, w, None] ^ block[None, :, w])
        qi, ri = np.nonzero(d <= radius)
        for q, r in zip(qi.tolist(), ri.tolist(), strict=True):
            found[q].append((np.array([r + s]), np.array([d[q, r]])))
    per_query = []
    for parts in found:
        if parts:
            rows = np.concatenate([p[0] for p in parts])
            dists = np.concatenate([p[1] for p in parts])
            order = np.argsort(rows)
            per_query.append((rows[order], dists[order]))
        else:
            per_query.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
    return _csr(per_query)


def brute_force(codes: np.ndarray, queries: np.ndarray, radius: int) -> Truth:
    """Ground truth by scanning every hash for every query (numba, both cores).

    Same result as :func:`brute_force_numpy` (the smoke test checks it), an order
    of magnitude faster, so 10M x thousands of queries takes seconds.
    """
    from benchmarks._brute import scan

    words = np.ascontiguousarray(codes).view(np.uint64).reshape(-1, 4)
    qwords = np.ascontiguousarray(queries).view(np.uint64).reshape(-1, 4)
    cap = 64
    while True:
        counts, rows, dists = scan(words, qwords, np.uint64(radius), cap)
        if counts.max(initial=0) <= cap:
            break
        cap = int(counts.max()) + 1
    per_query = []
    for q in range(len(queries)):
        r, d = rows[q, : counts[q]], dists[q, : counts[q]]
        order = np.argsort(r)
        per_query.append((r[order], d[order]))
    return _csr(per_query)


def prepare_queries(
    n: int, seed: int, n_planted: int, n_random: int, radius: int, cache_dir: Path
) -> Path:
    """Queries and their ground truth for size ``n``, cached as an .npz file."""
    path = (
        cache_dir
        / "index"
        / f"truth-v{TRUTH_VERSION}-n{n}-s{seed}-p{n_planted}-r{n_random}-d{radius}.npz"
    )
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    codes = make_codes(n, seed)
    queries, source, flips = make_queries(codes, n_planted, n_random, seed)
    truth = brute_force(codes, queries, radius)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        queries=queries,
        source=source,
        flips=flips,
        offsets=truth.offsets,
        rows=truth.rows,
        dists=truth.dists,
    )
    tmp.replace(path)
    return path


def load_queries(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, Truth]:
    with np.load(path) as z:
        truth = Truth(z["offsets"], z["rows"], z["dists"])
        return z["queries"], z["source"], z["flips"], truth


# --------------------------------------------------------------------------- implementations


class Adapter:
    """One index implementation behind a common face (runs inside the child)."""

    batched = True

    def warm_up(self, codes: np.ndarray) -> None:
        """Import, JIT-compile and start pools on a throw-away index."""

    def inputs(self, codes: np.ndarray) -> Any:
        return codes

    def build(self, inputs: Any) -> None:
        raise NotImplementedError

    def search_batch(self, queries: np.ndarray) -> list[np.ndarray]:
        """Ids within the radius of each query."""
        raise NotImplementedError

    def search_one(self, query: Any) -> np.ndarray:
        raise NotImplementedError

    def query_input(self, queries: np.ndarray) -> list[Any]:
        """Per-query objects passed to :meth:`search_one`."""
        return [queries[i : i + 1] for i in range(len(queries))]

    def extra(self) -> dict[str, Any]:
        return {}


class SafeholdAdapter(Adapter):
    def __init__(self, radius: int) -> None:
        from safehold.index import PdqIndex

        self.cls = PdqIndex
        self.radius = radius
        self.index: Any = None

    def warm_up(self, codes: np.ndarray) -> None:
        n = min(len(codes), 5000)
        ids = np.arange(n, dtype=np.int64)
        # a small MIH segment so the numba kernel is compiled/loaded now
        idx = self.cls.build(ids, codes[:n], mih_cutoff=min(1000, n))
        idx.search(codes[:64], self.radius)
        idx.search(codes[:1], self.radius)
        idx.close()

    def build(self, inputs: Any) -> None:
        codes = inputs
        self.index = self.cls.build(np.arange(len(codes), dtype=np.int64), codes)

    def search_batch(self, queries: np.ndarray) -> list[np.ndarray]:
        return [r.ids for r in self.index.search(queries, self.radius)]

    def search_one(self, query: Any) -> np.ndarray:
        ids: np.ndarray = self.index.search(query, self.radius)[0].ids
        return ids

    def extra(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.index.stats()
        return {"stats": stats}


class FaissMihAdapter(Adapter):
    def __init__(self, radius: int) -> None:
        import faiss

        faiss.omp_set_num_threads(1)  # parallelism comes from request threads
        self.faiss = faiss
        self.radius = radius
        self.index: Any = None

    def _new(self) -> Any:
        index = self.faiss.IndexBinaryMultiHash(256, 16, 16)
        index.nflip = 0
        return index

    def warm_up(self, codes: np.ndarray) -> None:
        idx = self._new()
        idx.add(codes[:5000])
        idx.range_search(codes[:64], self.radius + 1)

    def build(self, inputs: Any) -> None:
        self.index = self._new()
        self.index.add(inputs)

    def search_batch(self, queries: np.ndarray) -> list[np.ndarray]:
        lims, _, ids = self.index.range_search(queries, self.radius + 1)
        return [ids[lims[i] : lims[i + 1]] for i in range(len(queries))]

    def search_one(self, query: Any) -> np.ndarray:
        lims, _, ids = self.index.range_search(query, self.radius + 1)
        result: np.ndarray = ids[lims[0] : lims[1]]
        return result


class PytxAdapter(Adapter):
    batched = False

    def __init__(self, radius: int) -> None:
        import faiss
        from threatexchange.signal_type.pdq.signal import PdqSignal

        faiss.omp_set_num_threads(1)  # as for the others: parallelism from request threads
        self.cls = PdqSignal.get_index_cls()
        self.index: Any = None
        threshold = int(self.cls.get_match_threshold())  # type: ignore[no-untyped-call]
        if radius != threshold:
            raise ValueError(f"pytx's index searches at radius {threshold}, not {radius}")

    def warm_up(self, codes: np.ndarray) -> None:
        idx = self.cls.build(self.inputs(codes[:5000]))
        idx.query(codes[0].tobytes().hex())

    def inputs(self, codes: np.ndarray) -> Any:
        hexes = codes.tobytes().hex()
        return [(hexes[i * 64 : (i + 1) * 64], i) for i in range(len(codes))]

    def build(self, inputs: Any) -> None:
        self.index = self.cls.build(inputs)

    def query_input(self, queries: np.ndarray) -> list[Any]:
        return [q.tobytes().hex() for q in queries]

    def search_one(self, query: Any) -> np.ndarray:
        return np.array([m.metadata for m in self.index.query(query)], dtype=np.int64)

    def extra(self) -> dict[str, Any]:
        return {"class": f"{self.cls.__module__}.{self.cls.__qualname__}"}


ADAPTERS: dict[str, Callable[[int], Adapter]] = {
    "safehold": SafeholdAdapter,
    "faiss-mih": FaissMihAdapter,
    "pytx": PytxAdapter,
}


# --------------------------------------------------------------------------- child


def _run_threads(fn: Callable[[int], None], threads: int, pool: ThreadPoolExecutor | None) -> None:
    if threads == 1 or pool is None:
        fn(0)
        return
    for f in [pool.submit(fn, t) for t in range(threads)]:
        f.result()


def _throughput(
    work: Callable[[int], None], threads: int, n_items: int, min_seconds: float
) -> tuple[float, int]:
    """(items/s, passes): ``work(t)`` is thread t's share of one pass."""
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        if pool is not None:  # start the threads before the clock
            list(pool.map(lambda _: None, range(threads)))
        passes, elapsed = 0, 0.0
        while passes == 0 or elapsed < min_seconds:
            t0 = time.perf_counter()
            _run_threads(work, threads, pool)
            elapsed += time.perf_counter() - t0
            passes += 1
        return n_items * passes / elapsed, passes
    finally:
        if pool is not None:
            pool.shutdown()


def _single_pass(
    adapter: Adapter, per_query: list[Any], budget: float, min_queries: int = 100
) -> tuple[dict[int, np.ndarray], list[int]]:
    """One query per call, in order, until done or ``budget`` seconds have passed."""
    found: dict[int, np.ndarray] = {}
    lat: list[int] = []
    start = time.perf_counter()
    for i, q in enumerate(per_query):
        t0 = time.perf_counter_ns()
        ids = adapter.search_one(q)
        lat.append(time.perf_counter_ns() - t0)
        found[i] = ids
        if len(lat) >= min_queries and time.perf_counter() - start > budget:
            break
    return found, lat


def score(found: dict[int, np.ndarray], truth: Truth, flips: np.ndarray) -> dict[str, Any]:
    """Recall over the evaluated queries, overall and by true distance band."""
    bands = ((0, 15), (16, 23), (24, 31))
    tp = total = extra = 0
    band_tp = [0] * len(bands)
    band_total = [0] * len(bands)
    for q, ids in found.items():
        want = truth.of(q)
        wd = truth.dists_of(q)
        got = np.unique(np.asarray(ids, dtype=np.int64))
        hit = np.isin(want, got)
        tp += int(hit.sum())
        total += len(want)
        extra += int((~np.isin(got, want)).sum())
        for b, (lo, hi) in enumerate(bands):
            sel = (wd >= lo) & (wd <= hi)
            band_tp[b] += int(hit[sel].sum())
            band_total[b] += int(sel.sum())
    return {
        "queries": len(found),
        "true_neighbours": total,
        "found": tp,
        "recall": tp / total if total else None,
        "extra": extra,
        "by_distance": {
            f"{lo}-{hi}": (band_tp[b] / band_total[b] if band_total[b] else None)
            for b, (lo, hi) in enumerate(bands)
        },
        "by_distance_counts": {f"{lo}-{hi}": band_total[b] for b, (lo, hi) in enumerate(bands)},
    }


def _measure_lookups(
    adapter: Adapter,
    queries: np.ndarray,
    batch: int,
    threads: Sequence[int],
    min_seconds: float,
    budget: float,
    out: dict[str, Any],
) -> dict[int, np.ndarray]:
    """Steps 4-6 of the module docstring; fills ``out``, returns the ids per query."""
    per_query = adapter.query_input(queries)
    batches = [queries[s : s + batch] for s in range(0, len(queries), batch)]

    # 4. warm-up pass, one query per call (first searches touch cold pages, fill
    #    caches, may compile): its answers give recall when there is no batch API
    single_found, _ = _single_pass(adapter, per_query, budget)
    found: dict[int, np.ndarray] = single_found
    # 5. batched lookups; the first pass answers every query (recall)
    if adapter.batched:
        results = adapter.search_batch(queries)
        found = {i: r for i, r in enumerate(results)}
        for t in threads:
            share = [batches[i::t] for i in range(t)]

            def work(k: int, share: list[list[np.ndarray]] = share) -> None:
                for b in share[k]:
                    adapter.search_batch(b)

            rate, passes = _throughput(work, t, len(queries), min_seconds)
            out[f"batched_{t}t"] = rate
            out[f"batched_{t}t_passes"] = passes
    # 6. one query per call, timed: latency and lookups/s within the time budget
    _, lat = _single_pass(adapter, per_query, budget)
    n_single = len(lat)
    out["queries_total"] = len(queries)
    out["single_queries"] = n_single
    out["p50_ms"] = percentile_ms(lat, 50)
    out["p99_ms"] = percentile_ms(lat, 99)
    out["max_ms"] = max(lat) / 1e6
    out["single_1t"] = n_single / (sum(lat) / 1e9)
    subset = per_query[:n_single]
    for t in threads:
        if t == 1:
            continue

        def work1(k: int, t: int = t) -> None:
            for q in subset[k::t]:
                adapter.search_one(q)

        rate, passes = _throughput(work1, t, n_single, min(min_seconds, budget))
        out[f"single_{t}t"] = rate
    out["single_agrees_with_batched"] = all(
        np.array_equal(np.sort(single_found[i]), np.sort(found[i])) for i in single_found
    )
    return found


def child_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one implementation at one size (runs in a fresh process)."""
    impl, n, seed, radius = spec["impl"], int(spec["n"]), int(spec["seed"]), int(spec["radius"])
    batch, threads = int(spec["batch"]), [int(t) for t in spec["threads"]]
    min_seconds, budget = float(spec["min_seconds"]), float(spec["single_budget_s"])
    queries, _source, flips, truth = load_queries(Path(spec["queries_path"]))
    out: dict[str, Any] = {"impl": impl, "n": n, "status": "ok"}
    rss_start = rss_bytes()

    adapter = ADAPTERS[impl](radius)
    adapter.warm_up(make_codes(6000, seed + 1))
    release_memory()
    base = rss_bytes()
    reset_peak_rss()
    codes = make_codes(n, seed)
    inputs = adapter.inputs(codes)
    del codes
    rss_inputs = rss_bytes()

    with CpuWatch() as watch:
        t0 = time.perf_counter()
        adapter.build(inputs)
        out["build_s"] = time.perf_counter() - t0
    out["other_cores_build"] = watch.other_cores
    peak = peak_rss_bytes()
    del inputs
    release_memory()
    after = rss_bytes()
    out.update(
        rss_start=rss_start,
        rss_baseline=base,
        rss_inputs=rss_inputs - base,
        rss_after_build=after,
        rss_index=after - base,
        rss_peak=peak,
        rss_peak_above_baseline=peak - base,
    )

    with CpuWatch() as watch:
        found = _measure_lookups(adapter, queries, batch, threads, min_seconds, budget, out)
    out["other_cores_queries"] = watch.other_cores
    out["recall"] = score(found, truth, flips)
    out["extra"] = adapter.extra()
    return out


# --------------------------------------------------------------------------- parent


@dataclass(frozen=True)
class IndexConfig:
    sizes: Sequence[int] = (100_000, 1_000_000, 10_000_000)
    impls: Sequence[str] = ("safehold", "faiss-mih", "pytx")
    n_planted: int = 1600
    n_random: int = 400
    radius: int = RADIUS
    batch: int = 64
    threads: Sequence[int] = (1, 2)
    min_seconds: float = 2.0
    single_budget_s: float = 8.0
    seed: int = 20240611
    pytx_max_size: int = 10_000_000
    timeout_s: float = 1200.0
    wait_idle: float = 0.0
    cache_dir: Path = CACHE_DIR


@dataclass
class IndexResults:
    config: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    truth_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    out_path = Path(spec["out"])
    out_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.bench_index", "--child", json.dumps(spec)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {
            "impl": spec["impl"],
            "n": spec["n"],
            "status": f"timed out after {timeout:.0f} s",
        }
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out_path.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {
            "impl": spec["impl"],
            "n": spec["n"],
            "status": f"failed (exit {proc.returncode}): " + " / ".join(tail),
        }
    result: dict[str, Any] = json.loads(out_path.read_text())
    result["child_wall_s"] = wall
    return result


def run(config: IndexConfig, log: Callable[[str], None] = print) -> IndexResults:
    results = IndexResults(
        config={
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(config).items()
            if k != "cache_dir"
        }
    )
    for n in config.sizes:
        t0 = time.perf_counter()
        qpath = prepare_queries(
            n, config.seed, config.n_planted, config.n_random, config.radius, config.cache_dir
        )
        took = results.truth_seconds[str(n)] = time.perf_counter() - t0
        log(f"[index] n={n:,}: queries and brute-force truth ready in {took:.1f} s")
        for impl in config.impls:
            if impl == "pytx" and n > config.pytx_max_size:
                results.runs.append(
                    {
                        "impl": impl,
                        "n": n,
                        "status": f"skipped: above --pytx-max-size {config.pytx_max_size:,}",
                    }
                )
                log(f"[index] n={n:,} {impl}: skipped")
                continue
            spec = {
                "impl": impl,
                "n": n,
                "seed": config.seed,
                "radius": config.radius,
                "batch": config.batch,
                "threads": list(config.threads),
                "min_seconds": config.min_seconds,
                "single_budget_s": config.single_budget_s,
                "queries_path": str(qpath),
                "out": str(config.cache_dir / "index" / f"result-{impl}-{n}.json"),
            }
            wait_for_idle(config.wait_idle, log)
            r = _run_child(spec, config.timeout_s)
            results.runs.append(r)
            if r.get("status") == "ok":
                rec = r["recall"]["recall"]
                log(
                    f"[index] n={n:,} {impl:9s}: build {r['build_s']:.1f} s, "
                    f"index {r['rss_index'] / 2**20:.0f} MiB, "
                    f"batched {r.get('batched_1t', float('nan')):.0f}/s, "
                    f"single {r['single_1t']:.0f}/s, p99 {r['p99_ms']:.2f} ms, "
                    f"recall {rec if rec is None else round(rec, 4)}"
                )
            else:
                log(f"[index] n={n:,} {impl}: {r['status']}")
    return results


# --------------------------------------------------------------------------- report

GOALS_10M = {
    "rss_bytes": 2 * 2**30,
    "build_s": 20.0,
    "recall": 1.0,
    "lookups_2t": 10_000.0,
    "p99_ms": 5.0,
}


def _size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def _other(r: dict[str, Any]) -> float | None:
    values = [
        v for v in (r.get("other_cores_build"), r.get("other_cores_queries")) if v is not None
    ]
    return max(values) if values else None


def _recall(r: dict[str, Any]) -> str:
    rec = r["recall"]["recall"]
    if rec is None:
        return "—"
    text = f"{rec:.4f}" if rec < 1 else "1.0"
    if r["recall"]["queries"] < r.get("queries_total", r["recall"]["queries"]):
        text += f" ({r['recall']['queries']} q)"
    return text


def render(results: IndexResults) -> str:
    cfg = results.config
    out: list[str] = []
    head = [
        "hashes",
        "implementation",
        "build s",
        "index RSS MiB",
        "process RSS MiB",
        "peak RSS MiB",
        "batched lookups/s 1 thr",
        "batched 2 thr",
        "single lookups/s 1 thr",
        "single 2 thr",
        "p50 ms",
        "p99 ms",
        "recall",
        "other load",
    ]
    rows: list[list[str]] = []
    for r in results.runs:
        label = IMPLS.get(r["impl"], r["impl"])
        if r.get("status") != "ok":
            rows.append([_size(r["n"]), label, r["status"], *["—"] * (len(head) - 3)])
            continue
        rows.append(
            [
                _size(r["n"]),
                label,
                f"{r['build_s']:.2f}",
                fmt_mib(r["rss_index"]),
                fmt_mib(r["rss_after_build"]),
                fmt_mib(r["rss_peak"]),
                fmt_num(r.get("batched_1t")),
                fmt_num(r.get("batched_2t")),
                fmt_num(r.get("single_1t")),
                fmt_num(r.get("single_2t")),
                f"{r['p50_ms']:.3f}",
                f"{r['p99_ms']:.3f}",
                _recall(r),
                fmt_load(_other(r)),
            ]
        )
    out.append(markdown_table(head, rows))
    nq = cfg["n_planted"] + cfg["n_random"]
    out.append(
        f"\nQueries: {nq:,} per size ({cfg['n_planted']:,} planted near-duplicates with "
        f"0–{cfg['radius']} bits flipped, {cfg['n_random']:,} random non-members), radius "
        f"{cfg['radius']}, batches of {cfg['batch']}. Single-query numbers cover at most "
        f"{cfg['single_budget_s']:.0f} s of queries (count in the JSON). "
        "*index RSS* = resident memory the built index keeps (process RSS after the build, "
        "with the caller's inputs dropped, minus RSS after imports and warm-up); "
        "*process RSS* and *peak RSS* are the whole child process (peak includes the "
        "inputs held during the build). *other load*: cores kept busy by other processes "
        "during the build or the lookups, whichever was higher (⚠: depressed numbers).\n"
    )
    out.append(
        "How each is called: "
        + "; ".join(f"{IMPLS[k]}: {v}" for k, v in IMPL_NOTES.items() if k in cfg["impls"])
        + ". FAISS runs with one OpenMP thread in every process (safehold sets this on "
        "import); the 2-thread columns are two Python threads calling the index at once.\n"
    )
    # recall by distance
    rows = []
    for r in results.runs:
        if r.get("status") != "ok":
            continue
        by = r["recall"]["by_distance"]
        counts = r["recall"]["by_distance_counts"]
        rows.append(
            [
                _size(r["n"]),
                IMPLS.get(r["impl"], r["impl"]),
                *[
                    "—" if by[k] is None else f"{by[k]:.4f} ({counts[k]})"
                    for k in ("0-15", "16-23", "24-31")
                ],
                str(r["recall"]["extra"]),
                "yes" if r.get("single_agrees_with_batched") else "no",
            ]
        )
    if rows:
        out.append("#### Recall by true distance (true neighbours in brackets)\n")
        out.append(
            markdown_table(
                [
                    "hashes",
                    "implementation",
                    "0–15 bits",
                    "16–23 bits",
                    "24–31 bits",
                    "results not in truth",
                    "single = batched",
                ],
                rows,
            )
        )
        out.append("")
    goals = goal_rows(results)
    if goals:
        out.append("#### safehold index goals at 10M\n")
        out.append(markdown_table(["goal", "measured", "met"], goals))
        out.append("")
    return "\n".join(out)


def goal_rows(results: IndexResults) -> list[list[str]]:
    r = next(
        (
            x
            for x in results.runs
            if x["impl"] == "safehold" and x["n"] == 10_000_000 and x.get("status") == "ok"
        ),
        None,
    )
    if r is None:
        return []
    g = GOALS_10M
    best2 = max(r.get("batched_2t") or 0.0, r.get("single_2t") or 0.0)
    rec = r["recall"]["recall"] or 0.0
    return [
        [
            "process RSS < 2 GiB",
            f"{r['rss_after_build'] / 2**30:.2f} GiB (index {r['rss_index'] / 2**30:.2f} GiB, "
            f"peak {r['rss_peak'] / 2**30:.2f} GiB)",
            "yes" if r["rss_after_build"] < g["rss_bytes"] else "no",
        ],
        ["build < 20 s", f"{r['build_s']:.1f} s", "yes" if r["build_s"] < g["build_s"] else "no"],
        ["recall 100%", f"{rec:.4f}", "yes" if rec >= g["recall"] else "no"],
        [
            "≥ 10k lookups/s on 2 cores",
            f"{best2:,.0f}/s (batched {fmt_num(r.get('batched_2t'))}, "
            f"single {fmt_num(r.get('single_2t'))})",
            "yes" if best2 >= g["lookups_2t"] else "no",
        ],
        ["p99 < 5 ms", f"{r['p99_ms']:.2f} ms", "yes" if r["p99_ms"] < g["p99_ms"] else "no"],
    ]


# --------------------------------------------------------------------------- entry


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="PDQ index benchmark child process")
    parser.add_argument("--child", required=True, help="JSON spec (internal)")
    args = parser.parse_args(argv)
    spec = json.loads(args.child)
    result = child_main(spec)
    out = Path(spec["out"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=_json_default))
    tmp.replace(out)
    return 0


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


if __name__ == "__main__":
    sys.exit(_main())

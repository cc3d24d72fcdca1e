"""PDQ hashing throughput and agreement: safehold vs python-threatexchange.

Every configuration hashes the same cached corpus of synthetic photo-like JPEGs
(see :mod:`benchmarks.corpus`) from the page cache, in worker processes started
(``spawn``) and warmed before the clock starts:

* "1 core" runs in one worker pinned to CPU 0 (``sched_setaffinity``);
* "2 procs" runs in a pool of two unpinned workers, one file per task.

A configuration's throughput is images hashed / wall-clock seconds over whole
passes of the corpus, repeated until ``min_seconds`` have elapsed.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CACHE_DIR,
    CpuWatch,
    fmt_load,
    fmt_rate,
    fmt_ratio,
    markdown_table,
    wait_for_idle,
)
from benchmarks.corpus import CorpusSpec, ensure_corpus, synthetic_photo

REFERENCE_DIR = Path("/work/shared/vectors/pdq")

FULL_SPECS = (
    CorpusSpec("1 MP", 1200, 850, 40),
    CorpusSpec("12 MP", 4000, 3000, 8),
)
QUICK_SPECS = (
    CorpusSpec("1 MP", 1200, 850, 6),
    CorpusSpec("12 MP", 4000, 3000, 2),
)

# (mode key, human name); all return the PDQ hex of one file
MODES: dict[str, str] = {
    "pytx": "pytx `PdqSignal.hash_from_file`",
    "exact": "safehold `hash_file` exact",
    "fast": "safehold `hash_file` fast",
    "pdq-exact": "safehold PDQ only, exact (`open_image` + `pdq_from_image`)",
    "pdq-fast": "safehold PDQ only, fast (`open_image(draft=FAST_LONG_SIDE)` + `pdq_from_image`)",
}

# (mode, worker processes) in the order they are measured and shown
PLAN: tuple[tuple[str, int], ...] = (
    ("pytx", 1),
    ("pytx", 2),
    ("exact", 1),
    ("exact", 2),
    ("fast", 1),
    ("fast", 2),
    ("pdq-exact", 1),
    ("pdq-fast", 1),
)


# --------------------------------------------------------------------------- workers


def _pytx(path: str) -> str:
    from threatexchange.signal_type.pdq.signal import PdqSignal

    return str(PdqSignal.hash_from_file(Path(path)))


def _exact(path: str) -> str:
    from safehold.hashing import hash_file

    return str(hash_file(path).pdq)


def _fast(path: str) -> str:
    from safehold.hashing import hash_file

    return str(hash_file(path, mode="fast").pdq)


def _pdq_exact(path: str) -> str:
    from safehold.media import open_image
    from safehold.signals.pdq import pdq_from_image

    return str(pdq_from_image(open_image(Path(path))).value)


def _pdq_fast(path: str) -> str:
    from safehold.hashing import FAST_LONG_SIDE
    from safehold.media import open_image
    from safehold.signals.pdq import pdq_from_image

    return str(pdq_from_image(open_image(Path(path), draft=FAST_LONG_SIDE)).value)


_FUNCS: dict[str, Callable[[str], str]] = {
    "pytx": _pytx,
    "exact": _exact,
    "fast": _fast,
    "pdq-exact": _pdq_exact,
    "pdq-fast": _pdq_fast,
}


def hash_one(mode: str, path: str) -> str:
    """PDQ hex of ``path`` computed the ``mode`` way ("" if pytx rejects the quality)."""
    return _FUNCS[mode](path)


def _init_worker(cpu: int | None, warm_path: str) -> None:
    """Pin (optionally), import everything and run every mode once."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    for mode in _FUNCS:
        hash_one(mode, warm_path)


def _pause(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _pool(workers: int, cpu: int | None, warm_path: Path) -> tuple[ProcessPoolExecutor, list[int]]:
    pool = ProcessPoolExecutor(
        workers,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(cpu, str(warm_path)),
    )
    # Make every worker start (and warm up) now rather than on the first timed task.
    pids = set(pool.map(_pause, [0.3] * workers))
    if len(pids) != workers:  # pragma: no cover - scheduling oddity
        pids |= set(pool.map(_pause, [0.5] * (workers * 2)))
    return pool, sorted(pids)


# --------------------------------------------------------------------------- results


@dataclass
class HashRow:
    corpus: str
    mode: str
    workers: int
    images: int
    passes: int
    seconds: float
    images_per_s: float
    vs_pytx_1core: float | None = None
    vs_pytx_same_procs: float | None = None
    max_dist_vs_exact: int | None = None
    mean_dist_vs_exact: float | None = None
    other_cores: float | None = None
    round_rates: list[float] = field(default_factory=list)

    @property
    def spread(self) -> float | None:
        """(max - min) / median of the per-round rates."""
        if len(self.round_rates) < 2 or not self.images_per_s:
            return None
        return (max(self.round_rates) - min(self.round_rates)) / self.images_per_s


@dataclass
class CorpusResult:
    spec: CorpusSpec
    mean_file_bytes: float
    rows: list[HashRow]
    exact_vs_pytx_max: int | None
    exact_vs_pytx_mismatches: int
    pytx_rejected: int


@dataclass
class ReferenceRow:
    file: str
    width: int
    height: int
    exact: str
    dist_exact_vs_published: int | None
    dist_exact_vs_pytx: int | None
    dist_fast_vs_exact: int


@dataclass
class HashResults:
    config: dict[str, Any]
    corpora: list[CorpusResult] = field(default_factory=list)
    reference: list[ReferenceRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HashConfig:
    specs: Sequence[CorpusSpec] = FULL_SPECS
    workers: int = 2
    min_seconds: float = 3.0
    cache_dir: Path = CACHE_DIR
    reference_dir: Path | None = REFERENCE_DIR
    seed: int = 1
    plan: Sequence[tuple[str, int]] = PLAN
    wait_idle: float = 0.0
    rounds: int = 3


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _timed_passes(
    pool: ProcessPoolExecutor, pids: list[int], mode: str, paths: list[str], min_seconds: float
) -> tuple[list[str], int, float, float | None]:
    """(hashes of the first pass, passes, seconds, other processes' load in cores)."""
    first: list[str] = []
    passes, elapsed = 0, 0.0
    with CpuWatch([os.getpid(), *pids]) as watch:
        while passes == 0 or (elapsed < min_seconds and passes < 100):
            t0 = time.perf_counter()
            out = list(pool.map(hash_one, [mode] * len(paths), paths, chunksize=1))
            elapsed += time.perf_counter() - t0
            if passes == 0:
                first = out
            passes += 1
    return first, passes, elapsed, watch.other_cores


def _fast_long_side() -> int:
    from safehold.hashing import FAST_LONG_SIDE

    return int(FAST_LONG_SIDE)


def _warm_image(cache_dir: Path) -> Path:
    path = cache_dir / "corpus" / "warmup-640x480.jpg"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        synthetic_photo(640, 480, 424242).save(path, format="JPEG", quality=90)
    return path


def run(config: HashConfig, log: Callable[[str], None] = print) -> HashResults:
    """Measure every (mode, workers) of ``config.plan`` on every corpus."""
    results = HashResults(
        config={
            "specs": [asdict(s) for s in config.specs],
            "workers": config.workers,
            "min_seconds": config.min_seconds,
            "rounds": config.rounds,
            "fast_long_side": _fast_long_side(),
        }
    )
    warm = _warm_image(config.cache_dir)
    corpora: list[tuple[CorpusSpec, list[Path]]] = []
    for spec in config.specs:
        t0 = time.perf_counter()
        paths = ensure_corpus(spec, config.cache_dir, seed=config.seed)
        took = time.perf_counter() - t0
        log(f"[hash] corpus {spec.label}: {len(paths)} files ready in {took:.1f} s")
        corpora.append((spec, paths))

    worker_counts = sorted({w for _, w in config.plan})
    pools: dict[int, tuple[ProcessPoolExecutor, list[int]]] = {}
    try:
        for w in worker_counts:
            pools[w] = _pool(w, 0 if w == 1 else None, warm)
        for spec, paths in corpora:
            results.corpora.append(_run_corpus(config, spec, paths, pools, log))
        if config.reference_dir is not None and 1 in pools:
            results.reference = _run_reference(config.reference_dir, pools[1][0])
    finally:
        for pool, _ in pools.values():
            pool.shutdown(cancel_futures=True)
    return results


def _run_corpus(
    config: HashConfig,
    spec: CorpusSpec,
    paths: list[Path],
    pools: dict[int, tuple[ProcessPoolExecutor, list[int]]],
    log: Callable[[str], None],
) -> CorpusResult:
    names = [str(p) for p in paths]
    hashes: dict[tuple[str, int], list[str]] = {}
    rows: dict[tuple[str, int], HashRow] = {}
    # Rounds interleave the configurations, so a neighbour that is busy for a while
    # hurts one round of each rather than every pass of one configuration; the
    # median round is reported.
    for rnd in range(config.rounds):
        for mode, workers in config.plan:
            wait_for_idle(config.wait_idle, log)
            pool, pids = pools[workers]
            first, passes, seconds, other = _timed_passes(
                pool, pids, mode, names, config.min_seconds
            )
            rate_now = len(names) * passes / seconds
            row = rows.get((mode, workers))
            if row is None:
                hashes[(mode, workers)] = first
                row = rows[(mode, workers)] = HashRow(
                    corpus=spec.label,
                    mode=mode,
                    workers=workers,
                    images=len(names),
                    passes=0,
                    seconds=0.0,
                    images_per_s=0.0,
                )
            row.passes += passes
            row.seconds = round(row.seconds + seconds, 3)
            row.round_rates.append(rate_now)
            row.images_per_s = statistics.median(row.round_rates)
            if other is not None:
                row.other_cores = max(row.other_cores or 0.0, other)
            log(
                f"[hash] {spec.label} {mode:9s} x{workers} round {rnd + 1}: "
                f"{rate_now:8.2f} images/s"
            )

    def rate(mode: str, workers: int) -> float | None:
        row = rows.get((mode, workers))
        return row.images_per_s if row else None

    exact = next((h for (m, _), h in hashes.items() if m == "exact"), None)
    pytx = next((h for (m, _), h in hashes.items() if m == "pytx"), None)
    for (mode, workers), hs in hashes.items():
        row = rows[(mode, workers)]
        base1 = rate("pytx", 1)
        same = rate("pytx", workers)
        row.vs_pytx_1core = row.images_per_s / base1 if base1 else None
        row.vs_pytx_same_procs = row.images_per_s / same if same else None
        if exact is not None:
            dists = [hamming(a, b) for a, b in zip(hs, exact, strict=True) if a and b]
            if dists:
                row.max_dist_vs_exact = max(dists)
                row.mean_dist_vs_exact = round(sum(dists) / len(dists), 2)
    max_d: int | None = None
    mismatches = rejected = 0
    if exact is not None and pytx is not None:
        ds = [hamming(a, b) for a, b in zip(exact, pytx, strict=True) if b]
        rejected = sum(1 for b in pytx if not b)
        max_d = max(ds) if ds else None
        mismatches = sum(1 for d in ds if d)
    sizes = [p.stat().st_size for p in paths]
    return CorpusResult(
        spec=spec,
        mean_file_bytes=sum(sizes) / max(len(sizes), 1),
        rows=list(rows.values()),
        exact_vs_pytx_max=max_d,
        exact_vs_pytx_mismatches=mismatches,
        pytx_rejected=rejected,
    )


def _run_reference(folder: Path, pool: ProcessPoolExecutor) -> list[ReferenceRow]:
    """Fast vs exact (and exact vs published and pytx) on the reference photos."""
    from PIL import Image

    files = sorted(folder.glob("*.jpg"))
    if not files:
        return []
    published: dict[str, str] = {}
    manifest = folder / "manifest.json"
    if manifest.exists():
        for item in json.loads(manifest.read_text()):
            if "file" in item and "pdq" in item:
                published[item["file"]] = item["pdq"]
    names = [str(f) for f in files]
    exact = list(pool.map(hash_one, ["exact"] * len(names), names))
    fast = list(pool.map(hash_one, ["fast"] * len(names), names))
    pytx = list(pool.map(hash_one, ["pytx"] * len(names), names))
    rows = []
    for f, e, fa, p in zip(files, exact, fast, pytx, strict=True):
        with Image.open(f) as im:
            width, height = im.size
        pub = published.get(f.name)
        rows.append(
            ReferenceRow(
                file=f.name,
                width=width,
                height=height,
                exact=e,
                dist_exact_vs_published=hamming(e, pub) if pub else None,
                dist_exact_vs_pytx=hamming(e, p) if p else None,
                dist_fast_vs_exact=hamming(fa, e),
            )
        )
    return rows


# --------------------------------------------------------------------------- report

GOAL_EXACT_X = 2.0
GOAL_FAST_X_12MP = 10.0
GOAL_FAST_REF_BITS = 8


def _label(mode: str, workers: int) -> str:
    procs = "1 core" if workers == 1 else f"{workers} procs"
    return f"{MODES[mode]} — {procs}"


def render(results: HashResults) -> str:
    out: list[str] = []
    for c in results.corpora:
        s = c.spec
        out.append(
            f"#### {s.label}: {s.count} JPEGs of {s.width}×{s.height} "
            f"(mean {c.mean_file_bytes / 1e6:.2f} MB)\n"
        )
        rows = []
        for r in c.rows:
            rows.append(
                [
                    _label(r.mode, r.workers),
                    fmt_rate(r.images_per_s),
                    "—" if r.spread is None else f"{100 * r.spread:.0f}%",
                    f"{1000 * r.workers / r.images_per_s:.1f}",
                    fmt_ratio(r.vs_pytx_1core),
                    fmt_ratio(r.vs_pytx_same_procs),
                    "—" if r.max_dist_vs_exact is None else str(r.max_dist_vs_exact),
                    "—" if r.mean_dist_vs_exact is None else f"{r.mean_dist_vs_exact:.2f}",
                    fmt_load(r.other_cores),
                ]
            )
        out.append(
            markdown_table(
                [
                    "implementation",
                    "images/s",
                    "spread",
                    "worker ms/image",
                    "× pytx 1 core",
                    "× pytx same procs",
                    "max bits vs exact",
                    "mean bits vs exact",
                    "other load",
                ],
                rows,
            )
        )
        agree = (
            "not measured"
            if c.exact_vs_pytx_max is None
            else f"max Hamming distance {c.exact_vs_pytx_max} "
            f"({c.exact_vs_pytx_mismatches} of {s.count} differ)"
        )
        rej = (
            f"; pytx returned no hash (quality < 50) for {c.pytx_rejected}"
            if c.pytx_rejected
            else ""
        )
        out.append(f"\nsafehold exact vs pytx on this corpus: {agree}{rej}.\n")
    out.append(
        f"*images/s*: median of {results.config.get('rounds', 1)} interleaved rounds; "
        "*spread*: (fastest − slowest round) / median. "
        "*worker ms/image* = time one worker process spends per image (workers / images/s). "
        "*× pytx same procs* compares with pytx run with the same number of processes. "
        "*bits vs exact*: Hamming distance to safehold's exact hash of the same file. "
        f"Fast mode keeps at least FAST_LONG_SIDE = {results.config.get('fast_long_side')} "
        "pixels on the long side. "
        "*other load*: cores kept busy by other processes during that row (⚠: the row "
        "is depressed by them).\n"
    )
    if results.reference:
        out.append("#### Reference photos (`/work/shared/vectors/pdq/*.jpg`, read in place)\n")
        rows = [
            [
                r.file,
                f"{r.width}×{r.height}",
                "—" if r.dist_exact_vs_published is None else str(r.dist_exact_vs_published),
                "—" if r.dist_exact_vs_pytx is None else str(r.dist_exact_vs_pytx),
                str(r.dist_fast_vs_exact),
            ]
            for r in results.reference
        ]
        out.append(
            markdown_table(
                ["file", "size", "exact vs published pdq", "exact vs pytx", "fast vs exact"], rows
            )
        )
        out.append("")
    goals = goal_rows(results)
    if goals:
        out.append("#### Hashing goals\n")
        out.append(markdown_table(["goal", "measured", "met"], goals))
        out.append("")
    return "\n".join(out)


def goal_rows(results: HashResults) -> list[list[str]]:
    rows: list[list[str]] = []

    def find(c: CorpusResult, mode: str, workers: int) -> HashRow | None:
        return next((r for r in c.rows if r.mode == mode and r.workers == workers), None)

    for c in results.corpora:
        best_exact = max(
            (r for r in c.rows if r.mode == "exact"), key=lambda r: r.images_per_s, default=None
        )
        if best_exact and best_exact.vs_pytx_1core is not None:
            rows.append(
                [
                    f"{c.spec.label}: exact ≥ {GOAL_EXACT_X:.0f}× pytx (1 core) on this machine",
                    f"{best_exact.vs_pytx_1core:.2f}× ({best_exact.workers} procs); "
                    f"{fmt_ratio((find(c, 'exact', 1) or best_exact).vs_pytx_1core)} on 1 core",
                    "yes" if best_exact.vs_pytx_1core >= GOAL_EXACT_X else "no",
                ]
            )
        if c.exact_vs_pytx_max is not None:
            rows.append(
                [
                    f"{c.spec.label}: exact = pytx (distance 0)",
                    f"max {c.exact_vs_pytx_max}",
                    "yes" if c.exact_vs_pytx_max == 0 else "no",
                ]
            )
        if c.spec.megapixels >= 10:
            best_fast = max(
                (r for r in c.rows if r.mode == "fast"), key=lambda r: r.images_per_s, default=None
            )
            if best_fast and best_fast.vs_pytx_1core is not None:
                one = find(c, "fast", 1)
                rows.append(
                    [
                        f"{c.spec.label}: fast ≥ {GOAL_FAST_X_12MP:.0f}× pytx (1 core)",
                        f"{best_fast.vs_pytx_1core:.1f}× ({best_fast.workers} procs); "
                        f"{fmt_ratio(one.vs_pytx_1core if one else None)} on 1 core",
                        "yes" if best_fast.vs_pytx_1core >= GOAL_FAST_X_12MP else "no",
                    ]
                )
    if results.reference:
        worst = max(r.dist_fast_vs_exact for r in results.reference)
        rows.append(
            [
                f"reference photos: fast within {GOAL_FAST_REF_BITS} bits of exact",
                f"max {worst}",
                "yes" if worst <= GOAL_FAST_REF_BITS else "no",
            ]
        )
    return rows

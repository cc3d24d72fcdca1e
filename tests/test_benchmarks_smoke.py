"""The benchmark suite runs end to end on tiny inputs and returns well-formed results.

These tests check structure and agreement, never speed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from benchmarks import __main__ as cli
from benchmarks import bench_hash, bench_index
from benchmarks.common import CpuWatch, markdown_table
from benchmarks.corpus import CorpusSpec, ensure_corpus, synthetic_photo


def _quiet(_: str) -> None:
    pass


# --------------------------------------------------------------------------- corpus


def test_synthetic_photo_is_deterministic_rgb() -> None:
    a = synthetic_photo(160, 120, 5)
    b = synthetic_photo(160, 120, 5)
    assert a.mode == "RGB" and a.size == (160, 120)
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(synthetic_photo(160, 120, 6)))


def test_corpus_is_cached(tmp_path: Path) -> None:
    spec = CorpusSpec("tiny", 200, 150, 2)
    first = ensure_corpus(spec, tmp_path)
    mtimes = [p.stat().st_mtime_ns for p in first]
    again = ensure_corpus(spec, tmp_path)
    assert first == again and [p.stat().st_mtime_ns for p in again] == mtimes
    assert all(p.read_bytes()[:3] == b"\xff\xd8\xff" for p in first)


# --------------------------------------------------------------------------- hashing


def test_hash_benchmark_smoke(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    ref.mkdir()
    synthetic_photo(300, 200, 77).save(ref / "a.jpg", quality=90)
    plan = (("pytx", 1), ("exact", 1), ("exact", 2), ("fast", 1), ("pdq-exact", 1))
    config = bench_hash.HashConfig(
        specs=(CorpusSpec("tiny", 320, 240, 3),),
        min_seconds=0.0,
        cache_dir=tmp_path / "cache",
        reference_dir=ref,
        plan=plan,
        rounds=2,
    )
    results = bench_hash.run(config, log=_quiet)

    assert len(results.corpora) == 1
    corpus = results.corpora[0]
    assert [(r.mode, r.workers) for r in corpus.rows] == list(plan)
    for row in corpus.rows:
        assert row.images == 3 and row.passes >= 2
        assert len(row.round_rates) == 2 and row.spread is not None
        assert row.images_per_s > 0
        assert row.vs_pytx_1core is not None and row.vs_pytx_1core > 0
        assert row.max_dist_vs_exact is not None and 0 <= row.max_dist_vs_exact <= 256
        assert row.other_cores is None or row.other_cores >= 0
    exact_rows = [r for r in corpus.rows if r.mode in ("exact", "pdq-exact")]
    assert all(r.max_dist_vs_exact == 0 for r in exact_rows)
    assert corpus.exact_vs_pytx_max is not None
    assert [r.file for r in results.reference] == ["a.jpg"]
    assert results.reference[0].dist_exact_vs_published is None  # no manifest
    json.dumps(results.to_json(), default=str)

    text = bench_hash.render(results)
    assert "images/s" in text and "a.jpg" in text and "Hashing goals" in text


# --------------------------------------------------------------------------- index


def test_make_queries_flips_exactly() -> None:
    codes = bench_index.make_codes(3000, 11)
    queries, source, flips = bench_index.make_queries(codes, 200, 50, 11)
    assert queries.shape == (250, 32) and queries.dtype == np.uint8
    assert (source >= 0).sum() == 200 and (source == -1).sum() == 50
    planted = source >= 0
    dist = np.unpackbits(queries[planted] ^ codes[source[planted]], axis=1).sum(axis=1)
    assert np.array_equal(dist, flips[planted])
    assert flips[planted].min() >= 0 and flips[planted].max() <= 31


def test_brute_force_matches_numpy_reference() -> None:
    codes = bench_index.make_codes(4000, 3)
    codes[10] = codes[20]  # a duplicate: two true neighbours for one query
    queries, _, _ = bench_index.make_queries(codes, 100, 20, 3)
    for radius in (31, 110):  # 110: many neighbours, exercises the capacity retry
        fast = bench_index.brute_force(codes, queries, radius)
        ref = bench_index.brute_force_numpy(codes, queries, radius)
        assert np.array_equal(fast.offsets, ref.offsets)
        assert np.array_equal(fast.rows, ref.rows)
        assert np.array_equal(fast.dists, ref.dists)


def test_index_benchmark_smoke(tmp_path: Path) -> None:
    config = bench_index.IndexConfig(
        sizes=(2000,),
        n_planted=60,
        n_random=20,
        min_seconds=0.0,
        single_budget_s=0.1,
        cache_dir=tmp_path,
        timeout_s=300,
    )
    results = bench_index.run(config, log=_quiet)

    assert [r["impl"] for r in results.runs] == list(config.impls)
    for r in results.runs:
        assert r["status"] == "ok", r["status"]
        assert r["n"] == 2000
        assert r["build_s"] >= 0
        assert r["rss_after_build"] > 0 and r["rss_peak"] >= r["rss_baseline"] > 0
        assert 1 <= r["single_queries"] <= 80
        assert 0 < r["p50_ms"] <= r["p99_ms"]
        assert r["single_1t"] > 0 and r["single_2t"] > 0
        rec = r["recall"]
        assert rec["true_neighbours"] >= 60  # every planted source at least
        assert rec["recall"] is not None and 0.0 <= rec["recall"] <= 1.0
        assert r["single_agrees_with_batched"] is True
        assert "other_cores_build" in r and "other_cores_queries" in r
        if r["impl"] != "pytx":
            assert r["batched_1t"] > 0 and r["batched_2t"] > 0
    text = bench_index.render(results)
    assert "safehold" in text and "recall" in text


def test_index_skips_pytx_above_limit(tmp_path: Path) -> None:
    config = bench_index.IndexConfig(
        sizes=(2000,),
        impls=("pytx",),
        n_planted=10,
        n_random=5,
        pytx_max_size=1000,
        cache_dir=tmp_path,
    )
    results = bench_index.run(config, log=_quiet)
    assert results.runs[0]["status"].startswith("skipped")
    assert "skipped" in bench_index.render(results)


# --------------------------------------------------------------------------- helpers


def test_cpu_watch_reports_other_load() -> None:
    with CpuWatch(min_wall=0.0) as w:
        sum(range(200_000))
    assert w.other_cores is not None and w.other_cores >= 0.0
    with CpuWatch(min_wall=60.0) as short:
        pass
    assert short.other_cores is None


def test_markdown_table_aligns_numbers_right() -> None:
    text = markdown_table(["name", "rate"], [["a", "1,234"], ["b", "2.50×"]])
    assert text.splitlines()[1] == "| --- | ---: |"


# --------------------------------------------------------------------------- entry point


def test_cli_arguments() -> None:
    args = cli.parse_args(["--quick", "--only", "index", "--sizes", "100k,2m,5000"])
    assert args.quick and args.only == "index" and args.wait_idle == 0.0
    assert args.sizes == [100_000, 2_000_000, 5000]
    with pytest.raises(SystemExit):
        cli.parse_args(["--only", "video"])


def test_report_has_machine_and_command() -> None:
    info = {
        "cpu": "Test CPU",
        "logical_cores": 2,
        "usable_cores": 2,
        "ram_gib": 1.0,
        "os": "Linux",
        "python": "3.11",
        "packages": {"safehold": "0"},
        "date": "today",
    }
    load = {
        "wall_s": 1.0,
        "own_cpu_s": 1.0,
        "other_cpu_s": 0.0,
        "other_cores_avg": 0.0,
        "steal_s": 0.0,
        "loadavg_at_start": 0.0,
    }
    text = cli.build_report(info, ".venv/bin/python -m benchmarks --quick", load, None, None)
    assert "Test CPU" in text and "`.venv/bin/python -m benchmarks --quick`" in text


# --------------------------------------------------------------------------- store


def test_store_benchmark_smoke(tmp_path: Path) -> None:
    from benchmarks import bench_store

    results = bench_store.run(sizes=(2000,), cache_dir=tmp_path, log=_quiet)
    backends = [r.backend for r in results.rows]
    assert backends[0].startswith("SQLite") and len(backends) == 2
    sqlite = results.rows[0]
    assert sqlite.add_s > 0 and sqlite.load_s > 0 and sqlite.index_s >= 0
    assert "goal" in bench_store.render(results)


# --------------------------------------------------------------------------- service load, start-up


def test_pdq_chunks_are_make_codes_in_slices() -> None:
    from benchmarks import bench_startup

    whole = bench_index.make_codes(2500, 9)
    parts = list(bench_startup.pdq_chunks(2500, 9, chunk=1000))
    assert [len(p) for p in parts] == [1000, 1000, 500]
    assert np.array_equal(np.concatenate(parts), whole)


@pytest.mark.postgres
def test_copied_rows_are_what_banks_add_writes(pg_url: str) -> None:
    from benchmarks import bench_startup

    from safehold.banks import Banks, make_entry
    from safehold.store import Database

    bank_id = bench_startup.create_bank(pg_url, "copied")
    assert bench_startup.copy_pdq_entries(pg_url, bank_id, 300, 4, log=_quiet) > 0
    codes = bench_index.make_codes(300, 4)
    with Database(pg_url) as db:
        banks = Banks(db)
        assert banks.get("copied").counts == {"pdq": 300}
        again = banks.add("copied", [make_entry("pdq", c.tobytes().hex()) for c in codes[:5]])
        assert (again.added, again.unchanged) == (0, 5)  # same digest: the same entries
        first = banks.entries("copied", limit=1)[0]
        assert (first.value, first.labels, first.source) == (codes[0].tobytes().hex(), [], "local")


@pytest.mark.postgres
@pytest.mark.slow
def test_startup_benchmark_smoke(pg_server: str, tmp_path: Path) -> None:
    from benchmarks import bench_startup

    results = bench_startup.run((2000,), cache_dir=tmp_path, log=_quiet)
    row = results.rows[0]
    assert row.note == "" and row.fill_s > 0
    assert row.load["status"] == "ok", row.load
    assert row.load["entries"] == 2000 and row.load["load_s"] > 0
    assert row.load["rss_after"] >= row.load["rss_baseline"] > 0
    assert row.breakdown["status"] == "ok", row.breakdown
    assert row.breakdown["rows"] == 2000
    assert row.breakdown["path"] in ("Banks.pdq_codes", "Banks.signals")
    for k in ("kernels_s", "fetch_s", "entry_banks_s", "build_s", "raw_fetch_s", "binary_copy_s"):
        assert row.breakdown[k] >= 0
    json.dumps(results.to_json())
    text = bench_startup.render(results)
    assert "2,000" in text and "Where the start-up time goes" in text


@pytest.mark.postgres
@pytest.mark.slow
def test_load_benchmark_smoke(pg_server: str, tmp_path: Path) -> None:
    from benchmarks import bench_load

    config = bench_load.LoadConfig(
        entries=2000,
        known=10,
        replicas=(1, 2),
        duration_s=0.5,
        warmup_s=0.1,
        concurrency=2,
        batch=20,
        n_queries=100,
        hit_fraction=0.3,
        pictures=2,
        picture_size=(320, 240),
        pytx_budget_s=0.2,
        cache_dir=tmp_path,
    )
    results = bench_load.run(config, log=_quiet)
    assert results.note == "" and results.entries == 2000 + 10 + 1
    assert len(results.ready_s) == 2
    runs = {(r["replicas"], r.get("scenario")): r for r in results.runs}
    assert set(runs) == {(n, s) for n in (1, 2) for s in config.scenarios}, results.runs
    for r in runs.values():
        assert r["status"] == "ok"
        assert r["requests"] > 0 and r["rps"] > 0
        assert r["errors"] == {} and r["wrong_matches"] == 0 and r["failures"] == []
        assert 0 < r["p50_ms"] <= r["p99_ms"]
    assert runs[(1, "lookup-batch")]["values"] == 20 * runs[(1, "lookup-batch")]["requests"]
    pytx = results.pytx
    assert pytx["status"] == "ok", pytx
    assert pytx["lookup"]["agrees"] and pytx["scan"]["agrees"]
    assert pytx["lookup"]["1t"]["calls"] > 0 and pytx["scan"]["2t"]["calls"] > 0
    json.dumps(results.to_json())
    text = bench_load.render(results)
    assert "requests/s" in text and "python-threatexchange" in text


def test_cli_service_benchmark_arguments() -> None:
    args = cli.parse_args(["--only", "startup", "--startup-size", "10m", "--load-size", "50k"])
    assert args.only == "startup" and args.startup_size == [10_000_000]
    assert args.load_size == [50_000]
    assert cli.parse_args(["--only", "load"]).startup_size is None

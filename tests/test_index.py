"""The PDQ index finds every hash within the radius (100% recall against brute force)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safehold.index import ExactIndex, PdqIndex
from safehold.index.pdq import band_radii


def brute(codes: np.ndarray, queries: np.ndarray, radius: int) -> list[set[int]]:
    a = codes.view(np.uint64).reshape(-1, 4)
    q = queries.view(np.uint64).reshape(-1, 4)
    d = np.bitwise_count(a[None, :, :] ^ q[:, None, :]).sum(axis=2)
    return [set(np.nonzero(row <= radius)[0].tolist()) for row in d]


def near(rng: np.random.Generator, codes: np.ndarray, n: int, max_flips: int) -> np.ndarray:
    """Queries: copies of random entries with up to ``max_flips`` bits flipped, and random ones."""
    if len(codes) == 0:
        return rng.integers(0, 256, (n, 32), dtype=np.uint8)
    q = codes[rng.integers(0, len(codes), n)].copy()
    for i in range(n):
        for bit in rng.choice(256, int(rng.integers(0, max_flips + 1)), replace=False):
            q[i, bit // 8] ^= 1 << (bit % 8)
    q[: n // 8] = rng.integers(0, 256, (n // 8, 32), dtype=np.uint8)
    return q


def test_band_radii_satisfy_pigeonhole() -> None:
    for m in range(1, 30):
        for r in range(0, 65):
            radii = band_radii(m, r)
            assert len(radii) == m
            assert sum(k + 1 for k in radii) >= r + 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 3000),
    radius=st.integers(0, 64),
    seed=st.integers(0, 2**32 - 1),
    mih=st.booleans(),
)
def test_recall_is_total_at_any_radius(n: int, radius: int, seed: int, mih: bool) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    # clusters of near-duplicates make the interesting cases (many hits per query)
    if n > 10:
        codes[n // 2 :] = near(rng, codes[: n // 2], n - n // 2, 40)
    queries = near(rng, codes, 24, 70)
    index = PdqIndex.build(np.arange(n) + 7, codes, mih_cutoff=0 if mih else 10**9)
    expected = brute(codes, queries, radius)
    for res, exp in zip(index.search(queries, radius), expected, strict=True):
        assert set((res.ids - 7).tolist()) == exp
        assert (res.distances <= radius).all()
        assert list(res.distances) == sorted(res.distances)


@pytest.mark.slow
def test_recall_on_a_large_mih_segment() -> None:
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 256, (200_000, 32), dtype=np.uint8)
    queries = near(rng, codes, 300, 40)
    index = PdqIndex.build(np.arange(len(codes)), codes)
    assert index.stats()["segments"][0]["kind"] == "mih"
    for radius in (0, 15, 31, 48, 64):
        expected = brute(codes, queries, radius)
        got = index.search(queries, radius)
        assert [set(r.ids.tolist()) for r in got] == expected


def test_distances_are_exact() -> None:
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (500, 32), dtype=np.uint8)
    index = PdqIndex.build(np.arange(500), codes, mih_cutoff=0)
    q = codes[:50].copy()
    q[:, 0] ^= 0b111  # exactly 3 bits away
    for i, res in enumerate(index.search(q, 3)):
        assert (i, 3) in [(int(a), int(b)) for a, b in zip(res.ids, res.distances, strict=True)]


def test_incremental_add_and_remove_match_brute_force() -> None:
    rng = np.random.default_rng(2)
    index = PdqIndex(memtable_size=64, mih_cutoff=200)
    live: dict[int, np.ndarray] = {}
    next_id = 0
    for step in range(60):
        k = int(rng.integers(1, 90))
        codes = rng.integers(0, 256, (k, 32), dtype=np.uint8)
        ids = np.arange(next_id, next_id + k)
        next_id += k
        index.add(ids, codes)
        live.update(zip(ids.tolist(), codes, strict=True))
        if step % 4 == 3:
            gone = rng.choice(sorted(live), min(len(live), 40), replace=False).tolist()
            assert index.remove(gone) == len(gone)
            for g in gone:
                del live[g]
        assert len(index) == len(live)
    assert index.remove([10**9]) == 0  # unknown ids are ignored
    keys = sorted(live)
    codes = np.array([live[k] for k in keys])
    queries = near(rng, codes, 60, 35)
    for radius in (0, 20, 31, 64):
        expected = brute(codes, queries, radius)
        got = index.search(queries, radius)
        assert [set(r.ids.tolist()) for r in got] == [{keys[j] for j in e} for e in expected]
    kinds = {s["kind"] for s in index.stats()["segments"]}
    assert kinds  # segments were frozen and merged along the way


def test_hex_queries_and_bad_radius() -> None:
    index = PdqIndex()
    index.add([1, 2], ["0" * 64, "f" * 64])
    assert index.search_one("0" * 63 + "1", 1).pairs() == [(1, 1)]
    assert index.search(["f" * 64], 0)[0].pairs() == [(2, 0)]
    with pytest.raises(ValueError):
        index.search(["0" * 64], 65)


def test_exact_index() -> None:
    index = ExactIndex()
    index.add([1, 2, 3], ["a", "b", "a"])
    assert index.search(["a", "b", "c"]) == [(1, 3), (2,), ()]
    index.add([1], ["c"])  # re-adding an id moves it
    assert index.search(["a", "c"]) == [(3,), (1,)]
    assert index.remove([3, 99]) == 1
    assert index.search(["a"]) == [()]
    assert len(index) == 2

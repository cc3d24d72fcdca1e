"""Tenants (own banks, read-only shared banks) and per-key rate limits through the API."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api_helpers import (
    assert_problem,
    bearer,
    cheap_argon2,
    flip_bits,
    key_id,
    new_key,
    picture_bytes,
    serve,
)
from safehold.hashing import hash_image_bytes
from safehold.store import Database

REDIS_URL = os.environ.get("SAFEHOLD_TEST_REDIS", "redis://127.0.0.1:6379/15")
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.fixture(autouse=True)
def _cheap_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


# --------------------------------------------------------------------------- tenants


@dataclass
class Tenants:
    c: TestClient
    a: dict[str, str]  # acme's admin
    b: dict[str, str]  # beta's admin
    b_scan: dict[str, str]
    b_read: dict[str, str]
    picture: bytes
    pdq: str

    def lookup(self, h: dict[str, str], value: str, **kw: Any) -> Any:
        return self.c.post(
            "/v1/lookup", json={"signal_type": "pdq", "values": [value], **kw}, headers=h
        )

    def scan(self, h: dict[str, str], **params: str) -> Any:
        files = {"file": ("p.png", self.picture, "image/png")}
        return self.c.post("/v1/scan", files=files, params=params, headers=h)


@pytest.fixture()
def tenants(db: Database) -> Iterator[Tenants]:
    """acme owns ``acme-block`` (the picture's PDQ) and ``acme-private`` (never shared)."""
    a = bearer(new_key(db, "admin", tenant="acme"))
    b = bearer(new_key(db, "admin", tenant="beta"))
    b_scan = bearer(new_key(db, "scan", tenant="beta"))
    b_read = bearer(new_key(db, "banks:read", tenant="beta"))
    picture = picture_bytes(7)
    pdq = hash_image_bytes(picture).pdq
    assert pdq is not None
    with serve(db) as c:
        for name in ("acme-block", "acme-private"):
            assert c.post("/v1/banks", json={"name": name}, headers=a).status_code == 201
        entry = {"signal_type": "pdq", "value": pdq, "labels": ["A1"], "source": "ncmec"}
        r = c.post("/v1/banks/acme-block/entries", json=entry, headers=a)
        assert r.status_code == 201, r.text
        yield Tenants(c, a, b, b_scan, b_read, picture, pdq)


def assert_invisible_to_b(t: Tenants) -> None:
    c, b = t.c, t.b
    assert t.lookup(t.a, t.pdq).json()["results"][0]["decision"] == "match"
    assert "acme-block" not in [x["name"] for x in c.get("/v1/banks", headers=b).json()["banks"]]
    assert c.get("/v1/banks", headers=t.b_read).json() == {"banks": [], "next_cursor": None}
    for method, path, body in (
        ("GET", "/v1/banks/acme-block", None),
        ("GET", "/v1/banks/acme-block/entries", None),
        ("GET", "/v1/banks/acme-block/entries/1", None),
        ("GET", "/v1/banks/acme-block/export", None),
        ("PATCH", "/v1/banks/acme-block", {"description": "mine now"}),
        ("DELETE", "/v1/banks/acme-block", None),
        ("POST", "/v1/banks/acme-block/entries", {"signal_type": "md5", "value": MD5}),
        ("POST", "/v1/banks/acme-block/entries/remove", {"ids": [1]}),
        ("DELETE", "/v1/banks/acme-block/entries/1", None),
        ("PUT", "/v1/banks/acme-block/shares/beta", None),
        ("DELETE", "/v1/banks/acme-block/shares/beta", None),
    ):
        body_404 = assert_problem(c.request(method, path, json=body, headers=b), 404, "not_found")
        assert "acme-private" not in body_404["detail"]  # no hint at other tenants' banks
    # B's lookups and scans do not match it, and cannot name it
    result = t.lookup(t.b_scan, t.pdq).json()["results"][0]
    assert result["decision"] == "no_match" and result["matches"] == []
    assert_problem(t.lookup(t.b_scan, t.pdq, banks=["acme-block"]), 404, "not_found")
    r = t.scan(t.b_scan)
    assert r.status_code == 200 and r.json()["decision"] == "allow"
    assert_problem(t.scan(t.b_scan, banks="acme-block"), 404, "not_found")


def test_a_tenants_bank_is_invisible_to_another(tenants: Tenants) -> None:
    assert_invisible_to_b(tenants)
    # and B's own bank of the same name space is refused, not merged: names are global
    r = tenants.c.post("/v1/banks", json={"name": "acme-block"}, headers=tenants.b)
    assert r.status_code == 409
    assert r.json()["detail"]


def test_shared_bank_is_read_only_for_the_other_tenant(tenants: Tenants) -> None:
    t, c = tenants, tenants.c
    r = c.put("/v1/banks/acme-block/shares/beta", headers=t.a)
    assert r.status_code == 200, r.text
    assert r.json()["shared_with"] == ["beta"] and r.json()["read_only"] is False

    listed = c.get("/v1/banks", headers=t.b_read).json()["banks"]
    assert [x["name"] for x in listed] == ["acme-block"]
    assert listed[0]["read_only"] is True and listed[0]["tenant"] == "acme"
    assert "shared_with" not in listed[0]  # B does not learn who else has it
    assert c.get("/v1/banks/acme-block", headers=t.b_read).json()["read_only"] is True
    entries = c.get("/v1/banks/acme-block/entries", headers=t.b_read).json()["entries"]
    assert [e["value"] for e in entries] == [t.pdq]
    assert t.pdq in c.get("/v1/banks/acme-block/export", headers=t.b_read).text
    assert_problem(c.get("/v1/banks/acme-private", headers=t.b_read), 404, "not_found")

    # B matches it, by default and by name
    for kw in ({}, {"banks": ["acme-block"]}):
        result = t.lookup(t.b_scan, t.pdq, **kw).json()["results"][0]
        assert result["decision"] == "match"
        assert result["matches"][0]["bank"] == "acme-block"
        assert result["matches"][0]["labels"] == ["A1"]
    scanned = t.scan(t.b_scan).json()
    assert scanned["decision"] == "block" and scanned["matches"][0]["bank"] == "acme-block"
    assert t.scan(t.b_scan, banks="acme-block").json()["decision"] == "block"

    # B cannot change it: 403, and nothing changes
    before = c.get("/v1/banks/acme-block", headers=t.a).json()
    entry_id = entries[0]["id"]
    for method, path, body in (
        ("PATCH", "/v1/banks/acme-block", {"thresholds": {"pdq": 0}}),
        ("DELETE", "/v1/banks/acme-block", None),
        ("POST", "/v1/banks/acme-block/entries", {"signal_type": "md5", "value": MD5}),
        ("POST", "/v1/banks/acme-block/entries/remove", {"ids": [entry_id]}),
        (
            "POST",
            "/v1/banks/acme-block/entries/remove",
            {"values": [{"signal_type": "pdq", "value": t.pdq}]},
        ),
        ("DELETE", f"/v1/banks/acme-block/entries/{entry_id}", None),
        ("PUT", "/v1/banks/acme-block/shares/gamma", None),
        ("DELETE", "/v1/banks/acme-block/shares/beta", None),
    ):
        r = c.request(method, path, json=body, headers=t.b)
        assert_problem(r, 403, "forbidden")
    r = c.post(
        "/v1/banks/acme-block/entries",
        content=f"signal_type,value\npdq,{flip_bits(t.pdq, 3)}\n",
        headers={**t.b, "Content-Type": "text/csv"},
    )
    assert_problem(r, 403, "forbidden")
    assert c.get("/v1/banks/acme-block", headers=t.a).json() == before
    assert before["entries"] == 1 and before["shared_with"] == ["beta"]

    # unsharing hides it again
    r = c.delete("/v1/banks/acme-block/shares/beta", headers=t.a)
    assert r.status_code == 200 and r.json()["shared_with"] == []
    assert_invisible_to_b(t)


def test_share_needs_admin_and_a_valid_tenant(tenants: Tenants, db: Database) -> None:
    t, c = tenants, tenants.c
    writer = bearer(new_key(db, "banks:write", tenant="acme"))
    assert_problem(c.put("/v1/banks/acme-block/shares/beta", headers=writer), 403, "forbidden")
    assert_problem(c.put("/v1/banks/acme-block/shares/acme", headers=t.a), 422, "invalid_value")
    for bad in ("-x", "a%20b", "a%00b", "%E2%80%AEx", "x" * 65):
        for method in ("PUT", "DELETE"):
            r = c.request(method, f"/v1/banks/acme-block/shares/{bad}", headers=t.a)
            assert 400 <= r.status_code < 500, (bad, method, r.status_code)
    assert c.get("/v1/banks/acme-block", headers=t.a).json()["shared_with"] == []


def test_negative_banks_of_another_tenant_do_not_suppress(tenants: Tenants) -> None:
    t, c = tenants, tenants.c
    # acme marks the picture a known false positive; beta has it in its own block bank
    r = c.post("/v1/banks", json={"name": "acme-fp", "kind": "negative"}, headers=t.a)
    assert r.status_code == 201
    entry = {"signal_type": "pdq", "value": t.pdq}
    assert c.post("/v1/banks/acme-fp/entries", json=entry, headers=t.a).status_code == 201
    assert c.post("/v1/banks", json={"name": "beta-block"}, headers=t.b).status_code == 201
    assert c.post("/v1/banks/beta-block/entries", json=entry, headers=t.b).status_code == 201

    # acme's own lookup is suppressed by its negative bank
    own = t.lookup(t.a, t.pdq).json()["results"][0]
    assert own["decision"] == "no_match"
    assert {m["bank"] for m in own["suppressed"]} == {"acme-block"}
    # beta's is not: acme's negative bank is not beta's
    for result in (
        t.lookup(t.b_scan, t.pdq).json()["results"][0],
        t.scan(t.b_scan).json(),
    ):
        assert result["decision"] in ("match", "block")  # lookup, scan
        assert [m["bank"] for m in result["matches"]] == ["beta-block"]
        assert "suppressed" not in result

    # once acme shares its false-positive list with beta, beta's match is suppressed
    assert c.put("/v1/banks/acme-fp/shares/beta", headers=t.a).status_code == 200
    result = t.lookup(t.b_scan, t.pdq).json()["results"][0]
    assert result["decision"] == "no_match"
    assert [m["bank"] for m in result["suppressed_by"]] == ["acme-fp"]


def test_the_operator_default_tenant_is_a_tenant_like_any_other(db: Database) -> None:
    """Banks made by the CLI/Python API belong to ``default``; keys of other tenants
    do not see them."""
    from safehold.banks import Banks, make_entry

    Banks(db).create("ops-bank")
    Banks(db).add("ops-bank", [make_entry("md5", MD5)])
    default = bearer(new_key(db, "scan,banks:read", tenant="default"))
    other = bearer(new_key(db, "scan,banks:read", tenant="other"))
    body = {"signal_type": "md5", "values": [MD5]}
    with serve(db) as c:
        assert [b["name"] for b in c.get("/v1/banks", headers=default).json()["banks"]] == [
            "ops-bank"
        ]
        assert c.get("/v1/banks", headers=other).json()["banks"] == []
        r = c.post("/v1/lookup", json=body, headers=default)
        assert r.json()["results"][0]["decision"] == "match"
        r = c.post("/v1/lookup", json=body, headers=other)
        assert r.json()["results"][0]["decision"] == "no_match"


# --------------------------------------------------------------------------- rate limits


def test_rate_limit_gives_429_with_retry_after(db: Database) -> None:
    key = new_key(db, "banks:read", rate=1, burst=2)
    other = new_key(db, "banks:read")
    with serve(db) as c:
        statuses = [c.get("/v1/banks", headers=bearer(key)) for _ in range(3)]
        assert [r.status_code for r in statuses[:2]] == [200, 200]
        body = assert_problem(statuses[2], 429, "rate_limited")
        assert key_id(key) in body["detail"]
        retry = statuses[2].headers["retry-after"]
        assert retry.isdigit() and int(retry) >= 1
        # the bucket is per key: another key is not limited
        assert c.get("/v1/banks", headers=bearer(other)).status_code == 200
        assert "safehold_rate_limited_total 1.0" in c.get("/metrics").text
        time.sleep(int(retry))
        assert c.get("/v1/banks", headers=bearer(key)).status_code == 200


def test_default_rate_applies_and_rate_zero_is_unlimited(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEHOLD_RATE_LIMIT", "1")
    monkeypatch.setenv("SAFEHOLD_RATE_BURST", "2")
    limited = new_key(db, "banks:read")
    unlimited = new_key(db, "banks:read", rate=0)
    with serve(db) as c:
        codes = [c.get("/v1/banks", headers=bearer(limited)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        codes = [c.get("/v1/banks", headers=bearer(unlimited)).status_code for _ in range(40)]
        assert codes == [200] * 40


@pytest.fixture()
def redis_url() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as e:
        if os.environ.get("SAFEHOLD_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis at {REDIS_URL} is required but unreachable: {e}")
        pytest.skip(f"Redis at {REDIS_URL} unreachable: {e}")
    yield REDIS_URL
    client.close()


def test_redis_limiter_shares_the_bucket_between_replicas(db: Database, redis_url: str) -> None:
    import redis

    key = new_key(db, "banks:read", rate=0.01, burst=2)
    h = bearer(key)
    r = redis.Redis.from_url(redis_url)
    bucket = f"safehold:rl:{key_id(key)}"
    try:
        with serve(db, redis_url=redis_url) as one, serve(db, redis_url=redis_url) as two:
            assert one.get("/v1/banks", headers=h).status_code == 200
            assert two.get("/v1/banks", headers=h).status_code == 200
            assert r.exists(bucket)
            for client in (one, two):
                res = client.get("/v1/banks", headers=h)
                assert_problem(res, 429, "rate_limited")
                assert int(res.headers["retry-after"]) >= 1
            # an unlimited key never touches Redis
            free = new_key(db, "banks:read", rate=0)
            assert all(
                one.get("/v1/banks", headers=bearer(free)).status_code == 200 for _ in range(5)
            )
            assert not r.exists(f"safehold:rl:{key_id(free)}")
            r.delete(f"safehold:rl:verify:{key_id(free)}")
    finally:
        r.delete(bucket, f"safehold:rl:verify:{key_id(key)}")
        r.close()


def test_unreachable_redis_lets_requests_through(db: Database) -> None:
    """A scanning service must not stop because its rate limiter is down."""
    key = new_key(db, "banks:read", rate=1, burst=1)
    with serve(db, redis_url=f"redis://127.0.0.1:1/{secrets.randbelow(16)}") as c:
        assert [c.get("/v1/banks", headers=bearer(key)).status_code for _ in range(3)] == [200] * 3

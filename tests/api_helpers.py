"""Shared helpers for the HTTP API tests: keys, clients, synthetic uploads, problem checks.

Argon2 makes each key cost tens of milliseconds (most of a second on a busy 2-core
machine) to create and to verify the first time, so tests create the few keys they
need once and reuse them for every request, and :func:`cheap_argon2` swaps in argon2id
with minimal cost parameters (same code path and hash format) where the cost is not
what is tested. Every picture is drawn by code (:func:`safehold.demo.synthetic_picture`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

import safehold.access.keys
from safehold.access import ApiKeys
from safehold.demo import synthetic_picture
from safehold.store import Database
from safehold.web.app import create_app

BASE_URL = "http://127.0.0.1"
PROBLEM = "https://safehold.dev/problems/"
PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics"}
"""The only paths of the OpenAPI document whose operations (GET, HEAD) need no key."""


def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash new keys with argon2id at minimal cost (verification follows the hash)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(safehold.access.keys, "_hasher", cheap)


def new_key(db: Database, scopes: str | Iterable[str], tenant: str = "acme", **kw: Any) -> str:
    """A fresh API key (the secret, as a client sends it)."""
    key, _ = ApiKeys(db).create(scopes=scopes, tenant=tenant, **kw)
    return key


def key_id(key: str) -> str:
    return key.split("_")[1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def serve(
    db: Database, *, client: tuple[str, int] = ("127.0.0.1", 50000), **kw: Any
) -> Iterator[TestClient]:
    """The app on ``db`` with its lifespan running (index loaded, follower started)."""
    with TestClient(create_app(db, **kw), base_url=BASE_URL, client=client) as c:
        yield c


def assert_problem(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """``r`` is a problem+json of ``status`` (and of ``code`` when given); returns the body."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["type"] == PROBLEM + code, body
    return body


def picture_bytes(seed: int = 1, fmt: str = "PNG", size: tuple[int, int] = (320, 240)) -> bytes:
    """A synthetic picture drawn by code, encoded as ``fmt``."""
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": 90} if fmt == "JPEG" else {}
    synthetic_picture(seed, size).save(buf, fmt, **kwargs)
    return buf.getvalue()


def flip_bits(hex_hash: str, n: int) -> str:
    """``hex_hash`` with its first ``n`` bits inverted (Hamming distance ``n``)."""
    value = int(hex_hash, 16) ^ (((1 << n) - 1) << (len(hex_hash) * 4 - n))
    return f"{value:0{len(hex_hash)}x}"


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()

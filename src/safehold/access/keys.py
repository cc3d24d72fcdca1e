"""API keys: a public id and a secret, the secret stored only as an argon2id hash.

A key reads ``shk_<id>_<secret>``: ``id`` is 12 hex digits (shown in listings and
logs), ``secret`` 43 URL-safe characters (256 random bits), shown once when the key is
created. Each key belongs to one tenant and carries scopes:

* ``scan`` — ``POST /v1/scan`` and ``POST /v1/lookup``;
* ``banks:read`` — list and read banks, entries and exports;
* ``banks:write`` — create, change and delete the tenant's banks and entries;
* ``reports`` — send reports (a partner's intake) and read the tenant's reports;
* ``blocklist`` — download the URL block list (network operators);
* ``admin`` — everything above, plus managing the tenant's keys and bank shares.

Verifying an argon2 hash takes tens of milliseconds on purpose, which a scan API
called at every upload cannot pay per request. A key verified once is therefore
remembered in memory (by a SHA-256 of the whole key, never the key itself) for
:data:`CACHE_SECONDS`; revoking a key is written to the change log, which makes every
replica forget it at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update

from safehold.audit import AuditLog
from safehold.banks.entries import DEFAULT_TENANT, check_tenant
from safehold.errors import InvalidValue, NotFound, Unauthorized, preview
from safehold.store import changes
from safehold.store.db import Database
from safehold.store.models import ApiKey, utcnow

SCOPES: tuple[str, ...] = ("scan", "banks:read", "banks:write", "reports", "blocklist", "admin")
PREFIX = "shk"
KEY_FORMAT = re.compile(r"shk_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})")
CACHE_SECONDS = 60.0
TOUCH_SECONDS = 60.0
"""``last_used_at`` is written at most this often per key and process."""

_hasher = PasswordHasher()


def parse_scopes(scopes: str | Iterable[str]) -> list[str]:
    """Scopes from ``"scan,banks:read"`` or a list; unknown scopes are refused."""
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    out: list[str] = []
    for raw in items:
        if not isinstance(raw, str):
            raise InvalidValue(f"scopes must be text, not {type(raw).__name__}")
        scope = raw.strip()
        if not scope:
            continue
        if scope not in SCOPES:
            raise InvalidValue(
                f"unknown scope {preview(scope)}: use one or more of {', '.join(SCOPES)}"
            )
        if scope not in out:
            out.append(scope)
    if not out:
        raise InvalidValue(f"give at least one scope: {', '.join(SCOPES)}")
    return out


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as stored, without its secret."""

    key_id: str
    name: str
    tenant: str
    scopes: tuple[str, ...]
    rate: float | None
    burst: int | None
    created_at: datetime
    created_by: str | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "name": self.name,
            "tenant": self.tenant,
            "scopes": list(self.scopes),
            "rate": self.rate,
            "burst": self.burst,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass
class _Cached:
    fingerprint: bytes
    info: ApiKeyInfo
    expires: float
    touched: float = field(default=0.0)


class ApiKeys:
    """Create, list, revoke and check API keys."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(64)]  # bounded: ids are untrusted
        self._generation = 0
        """Bumped by :meth:`forget`: a verification that read the database before a
        revocation must not put the key back in the cache after it."""

    def create(
        self,
        *,
        scopes: str | Iterable[str],
        tenant: str = DEFAULT_TENANT,
        name: str = "",
        rate: float | None = None,
        burst: int | None = None,
        created_by: str | None = None,
    ) -> tuple[str, ApiKeyInfo]:
        """A new key: returns ``(key, info)``. The key is not stored and cannot be shown again."""
        scope_list = parse_scopes(scopes)
        check_tenant(tenant)
        if not isinstance(name, str) or len(name) > 100 or "\x00" in name:
            raise InvalidValue("name must be at most 100 characters without NUL")
        if rate is not None and not (0 <= float(rate) <= 1_000_000):
            raise InvalidValue("rate must be between 0 (unlimited) and 1000000 requests/second")
        if burst is not None and not (1 <= int(burst) <= 10_000_000):
            raise InvalidValue("burst must be between 1 and 10000000 requests")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        key = f"{PREFIX}_{key_id}_{secret}"
        row = ApiKey(
            key_id=key_id,
            secret_hash=_hasher.hash(key),
            name=name,
            tenant=tenant,
            scopes=scope_list,
            rate=None if rate is None else float(rate),
            burst=None if burst is None else int(burst),
            created_at=utcnow(),
            created_by=created_by,
        )
        with self.db.session() as s:
            s.add(row)
            s.flush()
            info = _info(row)
            AuditLog(self.db).append(
                created_by or "system",
                "key_create",
                object_type="key",
                object_id=key_id,
                details={"scopes": scope_list, "name": name},
                tenant=tenant,
                session=s,
            )
        return key, info

    def list(self, *, tenant: str | None = None, revoked: bool = False) -> list[ApiKeyInfo]:
        with self.db.session() as s:
            q = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
            if tenant is not None:
                q = q.where(ApiKey.tenant == tenant)
            if not revoked:
                q = q.where(ApiKey.revoked_at.is_(None))
            return [_info(k) for k in s.scalars(q)]

    def get(self, key_id: str, *, tenant: str | None = None) -> ApiKeyInfo:
        with self.db.session() as s:
            return _info(self._row(s, key_id, tenant))

    def revoke(self, key_id: str, *, tenant: str | None = None, by: str = "system") -> ApiKeyInfo:
        """Revoke a key (idempotent); every replica stops accepting it at once."""
        with self.db.session() as s:
            row = self._row(s, key_id, tenant)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                s.flush()
                changes.record(s.connection(), changes.KEY, key_id=row.key_id)
                AuditLog(self.db).append(
                    by,
                    "key_revoke",
                    object_type="key",
                    object_id=row.key_id,
                    tenant=row.tenant,
                    session=s,
                )
            info = _info(row)
        self.forget(key_id)
        return info

    def _row(self, s: Any, key_id: str, tenant: str | None) -> ApiKey:
        row = s.scalar(select(ApiKey).where(ApiKey.key_id == str(key_id)))
        if row is None or (tenant is not None and row.tenant != tenant):
            raise NotFound(f"no API key with id {preview(key_id)}; `safehold key list` shows them")
        return row  # type: ignore[no-any-return]

    def forget(self, key_id: str) -> None:
        """Drop a key from the verification cache (it changed or was revoked)."""
        with self._lock:
            self._cache.pop(key_id, None)
            self._generation += 1

    def authenticate(
        self, key: str, *, before_verify: Callable[[str], None] | None = None
    ) -> ApiKeyInfo:
        """The key's record if ``key`` is a valid, unrevoked key; else :class:`Unauthorized`.

        ``before_verify(key_id)`` runs before each (slow) argon2 verification, so the
        caller can rate-limit guessing; it may raise."""
        match = KEY_FORMAT.fullmatch(key.strip()) if isinstance(key, str) else None
        if match is None:
            raise Unauthorized(
                "the API key is malformed: send 'Authorization: Bearer shk_...' with a key "
                "made by `safehold key create`"
            )
        key_id = match.group(1)
        fingerprint = hashlib.sha256(key.strip().encode()).digest()
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key_id)
        if (
            cached is not None
            and cached.expires > now
            and hmac.compare_digest(cached.fingerprint, fingerprint)
        ):
            self._touch(cached, now)
            return cached.info
        # one verification per key at a time: concurrent requests with a key that is not
        # cached wait for the first one's answer instead of each paying for argon2
        with self._stripes[hash(key_id) % len(self._stripes)]:
            with self._lock:
                cached = self._cache.get(key_id)
            if (
                cached is not None
                and cached.expires > time.monotonic()
                and hmac.compare_digest(cached.fingerprint, fingerprint)
            ):
                return cached.info
            return self._verify(key, key_id, fingerprint, now, before_verify)

    def _verify(
        self,
        key: str,
        key_id: str,
        fingerprint: bytes,
        now: float,
        before_verify: Callable[[str], None] | None,
    ) -> ApiKeyInfo:
        with self._lock:
            generation = self._generation
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
            if row is None or row.revoked_at is not None:
                raise Unauthorized("the API key is unknown or revoked; ask for a new key")
            stored, info = row.secret_hash, _info(row)
        if before_verify is not None:
            before_verify(key_id)
        try:
            _hasher.verify(stored, key.strip())
        except (VerificationError, InvalidHashError):
            raise Unauthorized("the API key is unknown or revoked; ask for a new key") from None
        entry = _Cached(fingerprint, info, now + CACHE_SECONDS)
        with self._lock:
            if self._generation == generation:
                self._cache[key_id] = entry
        self._touch(entry, now)
        return info

    def _touch(self, cached: _Cached, now: float) -> None:
        if now - cached.touched < TOUCH_SECONDS:
            return
        cached.touched = now
        try:
            with self.db.session() as s:
                s.execute(
                    update(ApiKey)
                    .where(ApiKey.key_id == cached.info.key_id)
                    .values(last_used_at=utcnow())
                )
        except Exception:  # a busy database must not fail the request over a timestamp
            cached.touched = 0.0


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        key_id=row.key_id,
        name=row.name,
        tenant=row.tenant,
        scopes=tuple(row.scopes or ()),
        rate=row.rate,
        burst=row.burst,
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )

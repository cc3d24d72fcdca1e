"""Console sessions: hashed tokens, idle and absolute timeouts, CSRF tokens, revocation."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

import safehold.access.users
from safehold.access.sessions import Sessions
from safehold.access.users import UserInfo, Users
from safehold.audit import AuditLog
from safehold.store import Database
from safehold.store.models import UserSession, utcnow


@pytest.fixture(autouse=True)
def _cheap_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(safehold.access.users, "_hasher", cheap)


@pytest.fixture()
def audit(db: Database) -> AuditLog:
    return AuditLog(db)


@pytest.fixture()
def alice(db: Database, audit: AuditLog) -> UserInfo:
    return Users(db, audit).create("alice", "correct horse battery", "reviewer")


def _age(db: Database, token: str, **values: object) -> None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    with db.session() as s:
        s.execute(update(UserSession).where(UserSession.token_hash == digest).values(**values))


def test_token_is_stored_only_as_sha256(db: Database, alice: UserInfo) -> None:
    token, csrf = Sessions(db).create(alice)
    assert len(token) >= 43 and len(csrf) >= 43 and token != csrf
    with db.session() as s:
        row = s.scalar(select(UserSession))
        assert row is not None
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in (row.token_hash, row.csrf_token)
        assert row.expires_at - row.created_at == timedelta(hours=12)


def test_lookup(db: Database, alice: UserInfo) -> None:
    sessions = Sessions(db)
    token, csrf = sessions.create(alice)
    found = sessions.lookup(token)
    assert found is not None
    assert (found.user.name, found.csrf) == ("alice", csrf)
    for bad in (None, "", "nope", token + "x", "x" * 5000):
        assert sessions.lookup(bad) is None


def test_idle_timeout(db: Database, alice: UserInfo) -> None:
    sessions = Sessions(db)
    token, _ = sessions.create(alice)
    _age(db, token, last_seen_at=utcnow() - timedelta(minutes=29))
    assert sessions.lookup(token) is not None  # touched: a minute and more since last seen
    _age(db, token, last_seen_at=utcnow() - timedelta(minutes=31))
    assert sessions.lookup(token) is None
    assert sessions.lookup(token) is None  # and gone for good


def test_idle_timeout_from_env(
    db: Database, alice: UserInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEHOLD_SESSION_IDLE_MINUTES", "5")
    sessions = Sessions(db)
    token, _ = sessions.create(alice)
    _age(db, token, last_seen_at=utcnow() - timedelta(minutes=6))
    assert sessions.lookup(token) is None


def test_absolute_timeout(db: Database, alice: UserInfo) -> None:
    sessions = Sessions(db)
    token, _ = sessions.create(alice)
    _age(db, token, expires_at=utcnow() - timedelta(seconds=1))
    assert sessions.lookup(token) is None


def test_touch_at_most_once_a_minute(db: Database, alice: UserInfo) -> None:
    sessions = Sessions(db)
    token, _ = sessions.create(alice)
    old = utcnow() - timedelta(seconds=30)
    _age(db, token, last_seen_at=old)
    sessions.lookup(token)
    with db.session() as s:
        assert s.scalar(select(UserSession.last_seen_at)) == old
    _age(db, token, last_seen_at=utcnow() - timedelta(seconds=90))
    sessions.lookup(token)
    with db.session() as s:
        seen = s.scalar(select(UserSession.last_seen_at))
        assert seen is not None and utcnow() - seen < timedelta(seconds=10)


def test_revoke_logs_out_and_audits(db: Database, alice: UserInfo, audit: AuditLog) -> None:
    sessions = Sessions(db, audit)
    token, _ = sessions.create(alice)
    other, _ = sessions.create(alice)
    assert sessions.revoke(token) is True
    assert sessions.revoke(token) is False
    assert sessions.lookup(token) is None
    assert sessions.lookup(other) is not None
    assert audit.list(action="logout")[0].actor == "user:alice"
    assert sessions.revoke_user(alice.id) == 1
    assert sessions.lookup(other) is None


def test_disabled_user_has_no_session(db: Database, alice: UserInfo, audit: AuditLog) -> None:
    sessions = Sessions(db, audit)
    token, _ = sessions.create(alice)
    with db.session() as s:
        from safehold.store.models import User

        s.execute(update(User).values(disabled_at=utcnow()))
    assert sessions.lookup(token) is None


def test_prune(db: Database, alice: UserInfo) -> None:
    sessions = Sessions(db)
    live, _ = sessions.create(alice)
    dead, _ = sessions.create(alice)
    _age(db, dead, expires_at=utcnow() - timedelta(seconds=1))
    assert sessions.prune() == 1
    assert sessions.lookup(live) is not None

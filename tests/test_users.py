"""Console users: roles, argon2id passwords, permissions, audit entries."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

import safehold.access.users
from safehold.access.sessions import Sessions
from safehold.access.users import ROLES, Users
from safehold.audit import AuditLog
from safehold.errors import Conflict, InvalidValue, NotFound, Unauthorized
from safehold.store import Database
from safehold.store.models import User

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _cheap_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(safehold.access.users, "_hasher", cheap)


@pytest.fixture()
def audit(db: Database) -> AuditLog:
    return AuditLog(db)


@pytest.fixture()
def users(db: Database, audit: AuditLog) -> Users:
    return Users(db, audit)


def test_create_stores_an_argon2id_hash_and_audits(
    db: Database, users: Users, audit: AuditLog
) -> None:
    info = users.create("alice", PASSWORD, "admin", by="cli:root")
    assert (info.name, info.role, info.tenant, info.disabled) == (
        "alice",
        "admin",
        "default",
        False,
    )
    with db.session() as s:
        row = s.get(User, info.id)
        assert row is not None
        assert row.password_hash.startswith("$argon2id$")
        assert PASSWORD not in row.password_hash
    entry = audit.list(action="user_create")[0]
    assert (entry.actor, entry.object) == ("cli:root", "user:alice")
    assert entry.details == {"role": "admin", "tenant": "default"}
    assert users.by_name("alice") == users.get(info.id)
    assert [u.name for u in users.list()] == ["alice"]


@pytest.mark.parametrize(
    ("name", "password", "role", "message"),
    [
        ("Alice", PASSWORD, "admin", "invalid user name"),
        ("a" * 65, PASSWORD, "admin", "invalid user name"),
        ("bob smith", PASSWORD, "admin", "invalid user name"),
        ("bob", "", "admin", "empty"),
        ("bob", "short", "admin", "too short"),
        ("bob", "x" * 2000, "admin", "too long"),
        ("bobbybobbybob", "bobbybobbybob", "admin", "user name"),
        ("bob", PASSWORD, "superuser", "unknown role"),
    ],
)
def test_create_refuses_bad_input(
    users: Users, name: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(InvalidValue, match=message):
        users.create(name, password, role)


def test_duplicate_names_conflict(users: Users) -> None:
    users.create("alice", PASSWORD, "reviewer")
    with pytest.raises(Conflict):
        users.create("alice", PASSWORD + "!", "admin")


def test_authenticate(users: Users, audit: AuditLog) -> None:
    users.create("alice", PASSWORD, "reviewer")
    info = users.authenticate("alice", PASSWORD)
    assert info.name == "alice" and info.last_login_at is not None
    assert audit.list(action="login")[0].actor == "user:alice"
    for name, pw in [("alice", "wrong password!!"), ("nobody", PASSWORD), ("", ""), ("A B", "x")]:
        with pytest.raises(Unauthorized) as exc:
            users.authenticate(name, pw)
        # one message whatever was wrong: no hint whether the name exists
        assert exc.value.message == "wrong user name or password, or the user is disabled"
    failed = audit.list(action="login_failed")
    assert len(failed) == 4
    assert {e.object_id for e in failed} == {"alice", "nobody", "?"}


def test_unknown_names_cost_a_verification(users: Users, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            calls.append(str(hash))
            return super().verify(hash, password)

    monkeypatch.setattr(
        safehold.access.users, "_hasher", Counting(time_cost=1, memory_cost=1024, parallelism=1)
    )
    with pytest.raises(Unauthorized):
        users.authenticate("ghost", PASSWORD)
    assert len(calls) == 1 and calls[0].startswith("$argon2id$")


def test_roles_and_permissions(users: Users) -> None:
    assert ROLES == ("reviewer", "lead", "admin", "auditor")
    made = {r: users.create(f"u-{r}", PASSWORD, r) for r in ROLES}
    table = {
        r: {p for p in ("read", "review", "lead", "admin", "audit") if u.can(p)}
        for r, u in made.items()
    }
    assert table == {
        "reviewer": {"read", "review"},
        "lead": {"read", "review", "lead"},
        "admin": {"read", "review", "lead", "admin", "audit"},
        "auditor": {"read", "audit"},
    }


def test_set_role_ends_sessions_and_audits(db: Database, users: Users, audit: AuditLog) -> None:
    info = users.create("bob", PASSWORD, "reviewer")
    sessions = Sessions(db, audit)
    token, _ = sessions.create(info)
    changed = users.set_role("bob", "lead", by="user:alice")
    assert changed.role == "lead" and changed.can("lead")
    assert sessions.lookup(token) is None
    entry = audit.list(action="role_change")[0]
    assert (entry.actor, entry.object, entry.details) == (
        "user:alice",
        "user:bob",
        {"from": "reviewer", "to": "lead"},
    )
    with pytest.raises(InvalidValue):
        users.set_role("bob", "king")
    with pytest.raises(NotFound):
        users.set_role("nobody", "lead")


def test_disable_refuses_login_and_ends_sessions(
    db: Database, users: Users, audit: AuditLog
) -> None:
    info = users.create("carol", PASSWORD, "reviewer")
    sessions = Sessions(db, audit)
    token, _ = sessions.create(info)
    disabled = users.disable("carol", by=users.create("root", PASSWORD, "admin"))
    assert disabled.disabled and not disabled.can("read")
    assert sessions.lookup(token) is None
    with pytest.raises(Unauthorized):
        users.authenticate("carol", PASSWORD)
    assert audit.list(action="user_disable")[0].actor == "user:root"
    assert audit.list(action="login_failed")[0].details == {"reason": "disabled"}
    users.disable("carol")  # idempotent: no second entry
    assert len(audit.list(action="user_disable")) == 1


def test_set_password(users: Users, audit: AuditLog) -> None:
    users.create("dave", PASSWORD, "reviewer")
    with pytest.raises(InvalidValue, match="too short"):
        users.set_password("dave", "tiny")
    users.set_password("dave", "another long password", by="cli:root")
    with pytest.raises(Unauthorized):
        users.authenticate("dave", PASSWORD)
    assert users.authenticate("dave", "another long password").name == "dave"
    assert audit.list(action="password_change")[0].object == "user:dave"


def test_blur_and_daily_limit(users: Users, audit: AuditLog) -> None:
    info = users.create("erin", PASSWORD, "reviewer")
    assert info.blur == 24 and info.daily_limit is None
    assert users.set_blur(info.id, 40).blur == 40
    for bad in (0, 2, 100, True):
        with pytest.raises(InvalidValue):
            users.set_blur(info.id, bad)
    assert users.set_daily_limit("erin", 50).daily_limit == 50
    assert users.set_daily_limit("erin", None).daily_limit is None
    with pytest.raises(InvalidValue):
        users.set_daily_limit("erin", 0)
    changes = audit.list(action="settings_change")
    assert [e.details for e in reversed(changes)] == [
        {"blur": {"from": 24, "to": 40}},
        {"daily_limit": {"from": None, "to": 50}},
        {"daily_limit": {"from": 50, "to": None}},
    ]
    assert audit.verify().ok


def test_users_per_tenant(users: Users) -> None:
    users.create("a1", PASSWORD, "reviewer", tenant="acme")
    users.create("b1", PASSWORD, "reviewer", tenant="beta")
    assert [u.name for u in users.list("acme")] == ["a1"]
    with pytest.raises(InvalidValue):
        users.create("c1", PASSWORD, "reviewer", tenant="bad tenant!")


def test_changes_by_name_can_be_limited_to_a_tenant(users: Users) -> None:
    users.create("zed", PASSWORD, "reviewer", tenant="beta")
    for change in (
        lambda: users.set_role("zed", "lead", by="user:root", tenant="acme"),
        lambda: users.disable("zed", tenant="acme"),
        lambda: users.set_password("zed", "another long password", tenant="acme"),
        lambda: users.set_daily_limit("zed", 5, tenant="acme"),
        lambda: users.by_name("zed", tenant="acme"),
    ):
        with pytest.raises(NotFound):
            change()
    assert users.set_role("zed", "lead", tenant="beta").role == "lead"

"""The audit log: a SHA-256 chain that notices changed, deleted, inserted and cut entries."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from safehold.audit import GENESIS, AuditLog, canonical_json, entry_hash
from safehold.errors import InvalidValue
from safehold.store import Database
from safehold.store.models import AuditEntry


@pytest.fixture()
def audit(db: Database) -> AuditLog:
    return AuditLog(db)


def _fill(audit: AuditLog, n: int = 5) -> None:
    for i in range(n):
        audit.append(
            "user:alice",
            "view_case",
            object_type="case",
            object_id=str(i + 1),
            details={"n": i, "note": "ünïcode ✓", "nested": {"b": [1, 2], "a": None}},
        )


def test_empty_log_verifies(audit: AuditLog) -> None:
    result = audit.verify()
    assert result.ok and result.checked == 0 and result.bad_id is None
    assert result.last_hash == GENESIS


def test_append_chains_entries(audit: AuditLog) -> None:
    first = audit.append("cli:root", "user_create", object_type="user", object_id="alice")
    second = audit.append("user:alice", "login", details={"ip": None})
    assert (first.id, second.id) == (1, 2)
    assert first.prev_hash == GENESIS
    assert second.prev_hash == first.hash
    # the documented formula, recomputed by hand
    body = canonical_json(
        {
            "id": 1,
            "at": first.at.isoformat(timespec="microseconds"),
            "tenant": "default",
            "actor": "cli:root",
            "action": "user_create",
            "object_type": "user",
            "object_id": "alice",
            "details": {},
            "prev_hash": GENESIS,
        }
    )
    import hashlib

    assert first.hash == hashlib.sha256(f"{GENESIS}\n{body}".encode()).hexdigest()
    assert audit.verify().ok
    assert audit.head() == (2, second.hash, 2)


def test_list_filters_and_pages(audit: AuditLog) -> None:
    _fill(audit, 6)
    audit.append("user:bob", "decide", object_type="case", object_id="3", tenant="acme")
    newest = audit.list(limit=3)
    assert [e.id for e in newest] == [7, 6, 5]
    assert [e.id for e in audit.list(limit=3, before_id=5)] == [4, 3, 2]
    assert [e.id for e in audit.list(object_type="case", object_id="3")] == [7, 3]
    assert [e.id for e in audit.list(actor="user:bob")] == [7]
    assert [e.id for e in audit.list(tenant="acme")] == [7]
    assert [e.id for e in audit.list(action="view_case", limit=100)] == [6, 5, 4, 3, 2, 1]
    entry = audit.list(limit=1)[0]
    assert entry.object == "case:3"
    assert json.loads(json.dumps(entry.to_dict()))["hash"] == entry.hash


def test_details_must_be_an_object(audit: AuditLog) -> None:
    with pytest.raises(InvalidValue):
        audit.append("cli", "export", details=["not", "an", "object"])  # type: ignore[arg-type]
    with pytest.raises(InvalidValue):
        audit.append("", "export")


def test_changed_field_is_detected(db: Database, audit: AuditLog) -> None:
    _fill(audit)
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_log SET details = :d WHERE id = 3"),
            {"d": json.dumps({"n": 99})},
        )
    result = audit.verify()
    assert not result.ok
    assert result.bad_id == 3
    assert "changed" in (result.reason or "")
    assert result.checked == 2


@pytest.mark.parametrize("column", ["actor", "action", "object_id", "tenant"])
def test_each_field_is_covered(db: Database, audit: AuditLog, column: str) -> None:
    _fill(audit)
    with db.engine.begin() as conn:
        conn.execute(text(f"UPDATE audit_log SET {column} = 'forged' WHERE id = 4"))
    result = audit.verify()
    assert (result.ok, result.bad_id) == (False, 4)


def test_changed_time_is_detected(db: Database, audit: AuditLog) -> None:
    _fill(audit)
    with db.session() as s:
        row = s.get(AuditEntry, 2)
        assert row is not None
        row.at = row.at - timedelta(microseconds=1)
    assert audit.verify().bad_id == 2


def test_deleted_row_is_detected(db: Database, audit: AuditLog) -> None:
    _fill(audit)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = 3"))
    result = audit.verify()
    assert not result.ok
    assert result.bad_id == 3
    assert "missing" in (result.reason or "")


def test_deleted_and_renumbered_row_is_detected(db: Database, audit: AuditLog) -> None:
    """Deleting entry 3 and moving 4 and 5 down leaves no gap, but breaks the chain."""
    _fill(audit)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id = 3"))
        conn.execute(text("UPDATE audit_log SET id = id - 1 WHERE id > 3"))
        conn.execute(text("UPDATE audit_head SET last_id = 4, count = 4"))
    result = audit.verify()
    assert (result.ok, result.bad_id) == (False, 3)


def test_inserted_row_is_detected(db: Database, audit: AuditLog) -> None:
    """A forged entry at the end, even with a correct hash of its own, is not in the head."""
    _fill(audit)
    last = audit.list(limit=1)[0]
    from safehold.store.models import utcnow

    at = utcnow()
    forged = entry_hash(
        id=6,
        at=at,
        tenant="default",
        actor="user:mallory",
        action="decide",
        object_type="case",
        object_id="1",
        details={},
        prev_hash=last.hash,
    )
    with db.session() as s:
        s.add(
            AuditEntry(
                id=6,
                at=at,
                tenant="default",
                actor="user:mallory",
                action="decide",
                object_type="case",
                object_id="1",
                details={},
                prev_hash=last.hash,
                hash=forged,
            )
        )
    result = audit.verify()
    assert (result.ok, result.bad_id) == (False, 6)
    assert "after the head" in (result.reason or "")


def test_inserted_row_in_the_middle_is_detected(db: Database, audit: AuditLog) -> None:
    _fill(audit)
    with db.engine.begin() as conn:
        # make room: move 4 and 5 up, then put a forged entry at 4
        conn.execute(text("UPDATE audit_log SET id = id + 10 WHERE id >= 4"))
        conn.execute(text("UPDATE audit_log SET id = id - 9 WHERE id >= 14"))
        conn.execute(
            text(
                "INSERT INTO audit_log (id, at, tenant, actor, action, details, prev_hash, hash)"
                " SELECT 4, at, tenant, 'user:mallory', 'decide', details, hash, :h"
                " FROM audit_log WHERE id = 3"
            ),
            {"h": "f" * 64},
        )
        conn.execute(text("UPDATE audit_head SET last_id = 6, count = 6"))
    result = audit.verify()
    assert (result.ok, result.bad_id) == (False, 4)


def test_cut_tail_is_detected(db: Database, audit: AuditLog) -> None:
    _fill(audit)
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE id >= 4"))
    result = audit.verify()
    assert not result.ok
    assert result.bad_id == 4
    assert "cut" in (result.reason or "")
    assert result.checked == 3


def test_rolled_back_transaction_leaves_no_entry(db: Database, audit: AuditLog) -> None:
    _fill(audit, 2)
    with pytest.raises(RuntimeError), db.session() as s:
        audit.append("user:alice", "decide", object_type="case", object_id="1", session=s)
        raise RuntimeError("the change failed")
    assert audit.head()[0] == 2
    assert audit.append("cli", "export").id == 3
    assert audit.verify().ok


def test_concurrent_appends_keep_one_chain(db_url: str) -> None:
    """Writers in many threads (own connections) append without forks or gaps, and a
    verification running meanwhile sees a valid chain."""
    dbs = [Database(db_url, upgrade=i == 0) for i in range(6)]
    try:
        audit_logs = [AuditLog(d) for d in dbs]
        per_thread = 15
        errors: list[BaseException] = []
        verified: list[bool] = []
        start = threading.Barrier(len(audit_logs) + 1)

        def writer(log: AuditLog, n: int) -> None:
            try:
                start.wait()
                for i in range(per_thread):
                    if i % 3 == 0:  # some in a caller's transaction with other work
                        with log.db.session() as s:
                            log.append(f"user:w{n}", "comment", details={"i": i}, session=s)
                    else:
                        log.append(f"user:w{n}", "view_case", details={"i": i})
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        def checker() -> None:
            start.wait()
            for _ in range(3):
                verified.append(AuditLog(dbs[0]).verify().ok)

        threads = [
            threading.Thread(target=writer, args=(log, n)) for n, log in enumerate(audit_logs)
        ]
        threads.append(threading.Thread(target=checker))
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert all(verified)
        total = per_thread * len(audit_logs)
        result = audit_logs[0].verify()
        assert result.ok and result.checked == total, result
        ids = [e.id for e in audit_logs[0].list(limit=1000)]
        assert sorted(ids) == list(range(1, total + 1))
    finally:
        for d in dbs:
            d.close()


def test_permission_changes_and_exports_are_audited(db: Database, audit: AuditLog) -> None:
    """API keys made and revoked, banks shared, unshared and deleted, and bank exports
    each leave an entry, in the same transaction as the change."""
    from safehold.access.keys import ApiKeys
    from safehold.banks import Banks
    from safehold.banks.repository import audit_export

    keys = ApiKeys(db)
    _, info = keys.create(scopes="scan", tenant="acme", created_by="cli:ops")
    keys.revoke(info.key_id, by="key:abc")
    banks = Banks(db)
    banks.create("shared-list", tenant="acme")
    banks.share("shared-list", "beta", tenant="acme", by="cli:ops")
    banks.unshare("shared-list", "beta", tenant="acme", by="cli:ops")
    audit_export(db, "shared-list", "csv", by="cli:ops", tenant="acme")
    banks.delete("shared-list", by="cli:ops")
    got = [(e.actor, e.action, e.object_type, e.object_id) for e in reversed(audit.list())]
    assert got == [
        ("cli:ops", "key_create", "key", info.key_id),
        ("key:abc", "key_revoke", "key", info.key_id),
        ("cli:ops", "bank_share", "bank", "shared-list"),
        ("cli:ops", "bank_unshare", "bank", "shared-list"),
        ("cli:ops", "export", "bank", "shared-list"),
        ("cli:ops", "bank_delete", "bank", "shared-list"),
    ]
    assert all(e.tenant == "acme" for e in audit.list())
    assert audit.verify().ok

"""Stored rule sets (versions, activation, hit counters, the audit trail) and replay,
on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from safehold.audit import AuditLog
from safehold.errors import NotFound
from safehold.rules import Context, RulesError, RuleSets, parse_rules, replay
from safehold.store import Database
from safehold.store.models import Event

HOLD_REPORTED = """\
rules:
  - name: reported
    when: {reports: {min: 1}}
    actions: [hold, review]
"""
BLOCK_MATCHES = """\
mode: all-match
rules:
  - name: any-match
    priority: 5
    when: {match: }
    actions: [block]
  - name: csam
    when: {match: {labels: [csam]}}
    actions: [{review: {queue: csam}}]
  - name: shadow-reports
    shadow: true
    when: {reports: {min: 2}}
    actions: [hold]
"""


def test_without_stored_rules_the_built_in_rules_are_active(db: Database) -> None:
    sets = RuleSets(db)
    active = sets.active()
    assert (active.id, active.version, active.active) == (None, 0, True)
    assert [r.name for r in active.rules.rules] == ["block-bank-match"]
    assert sets.versions() == []
    assert sets.get(0).version == 0
    assert sets.hits(None) == []
    sets.record_hits(None, ["block-bank-match"], [])  # not counted, no error


def test_save_versions_get_and_activate(db: Database) -> None:
    sets = RuleSets(db)
    v1 = sets.save(HOLD_REPORTED, created_by="cli:alice", note="first")
    assert (v1.version, v1.active, v1.created_by, v1.note) == (1, True, "cli:alice", "first")
    assert v1.id is not None and v1.created_at is not None
    assert sets.active().version == 1
    v2 = sets.save(BLOCK_MATCHES, activate=False)
    assert (v2.version, v2.active) == (2, False)
    assert sets.active().version == 1
    assert [(v.version, v.active) for v in sets.versions()] == [(2, False), (1, True)]
    assert sets.get(2).source == BLOCK_MATCHES
    assert sets.get(2).rules == parse_rules(BLOCK_MATCHES, filename="x")

    assert sets.activate(2).active
    assert sets.active().version == 2
    assert [(v.version, v.active) for v in sets.versions()] == [(2, True), (1, False)]
    assert sets.activate(0).version == 0  # back to the built-in rules
    assert sets.active().id is None
    with pytest.raises(NotFound, match=r"versions: 1, 2"):
        sets.get(7)
    with pytest.raises(NotFound):
        sets.activate(7)

    # tenants are separate
    other = sets.save(HOLD_REPORTED, tenant="acme")
    assert other.version == 1 and other.tenant == "acme"
    assert sets.active("acme").id == other.id
    assert sets.active().id is None
    with pytest.raises(NotFound, match="none stored yet"):
        sets.get(1, tenant="nobody")


def test_invalid_rules_store_nothing(db: Database) -> None:
    sets = RuleSets(db)
    with pytest.raises(RulesError) as info:
        sets.save("rules:\n  - name: x\n    when: {match: {bnk: a}}\n    actions: [block]\n")
    assert info.value.problems[0]["line"] == 3
    assert sets.versions() == []


def test_changes_are_in_the_audit_log(db: Database) -> None:
    sets = RuleSets(db)
    v1 = sets.save(HOLD_REPORTED, created_by="key:abc", note="n", tenant="acme")
    sets.activate(1, "acme", by="user:root")
    entries = AuditLog(db).list(action="rules_change")
    assert [(e.actor, e.object_type, e.object_id, e.tenant) for e in entries] == [
        ("user:root", "ruleset", str(v1.id), "acme"),
        ("key:abc", "ruleset", str(v1.id), "acme"),
    ]
    assert entries[1].details == {"version": 1, "activated": True, "note": "n"}
    assert AuditLog(db).verify().ok


def test_hit_counters(db: Database) -> None:
    sets = RuleSets(db)
    v = sets.save(BLOCK_MATCHES)
    assert v.id is not None
    sets.record_hits(v.id, ["any-match", "csam"], ["shadow-reports"])
    sets.record_hits(v.id, ["any-match"], [])
    with db.session() as s:  # in the caller's transaction (as the scan path does)
        sets.record_hits(v.id, ["any-match"], ["shadow-reports"], session=s)
    hits = {(h.rule, h.shadow): h.hits for h in sets.hits(v.id)}
    assert hits == {("any-match", False): 3, ("csam", False): 1, ("shadow-reports", True): 2}
    assert all(h.last_hit_at is not None for h in sets.hits(v.id))
    table = sets.hit_table(v)
    assert [(r["name"], r["shadow"], r["hits"]) for r in table] == [
        ("any-match", False, 3),
        ("csam", False, 1),
        ("shadow-reports", True, 2),
    ]
    other = sets.save(HOLD_REPORTED)
    assert [r["hits"] for r in sets.hit_table(other)] == [0]


def test_a_new_version_reaches_every_replica_within_a_second(db_url: str) -> None:
    writer, replica = RuleSets(Database(db_url)), RuleSets(Database(db_url))
    assert replica.active().version == 0
    writer.save(HOLD_REPORTED)
    deadline = time.monotonic() + 10
    while replica.active().version != 1:
        assert time.monotonic() < deadline, "the replica never saw version 1"
        time.sleep(0.05)
    writer.activate(0)
    while replica.active().version != 0:
        assert time.monotonic() < deadline, "the replica never went back to version 0"
        time.sleep(0.05)


def test_concurrent_saves_get_distinct_versions_and_one_active(db: Database) -> None:
    errors: list[BaseException] = []

    def save(n: int) -> None:
        try:
            for _ in range(4):
                RuleSets(db).save(HOLD_REPORTED, note=str(n))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    versions = RuleSets(db).versions()
    assert sorted(v.version for v in versions) == list(range(1, 13))
    assert [v.version for v in versions if v.active] == [12]


# --------------------------------------------------------------------------- replay


def _event(
    db: Database,
    ctx: Context,
    decision: str,
    *,
    at: datetime | None = None,
    tenant: str = "default",
) -> int:
    with db.session() as s:
        row = Event(
            tenant=tenant,
            at=at or datetime.now(UTC),
            content_id=ctx.content_id,
            account_id=ctx.account_id,
            context=ctx.to_json(),
            decision=decision,
            actions=[],
            rules=[],
        )
        s.add(row)
        s.flush()
        return int(row.id)


MATCH = {"bank": "b", "entry_id": 1, "labels": ["A1"], "source": "local", "distance": 0}


def test_replay_counts_fired_rules_and_decision_changes(db: Database) -> None:
    now = datetime.now(UTC)
    old = _event(
        db, Context(content_id="old", matches=[MATCH]), "block", at=now - timedelta(days=3)
    )
    ids = [
        _event(db, Context(content_id="m1", matches=[MATCH]), "block", at=now - timedelta(hours=3)),
        _event(db, Context(content_id="r2", reports=2), "allow", at=now - timedelta(hours=2)),
        _event(db, Context(content_id="r1", reports=1), "allow", at=now - timedelta(hours=1)),
        _event(db, Context(content_id="none"), "allow", at=now),
    ]
    _event(db, Context(reports=5), "allow", tenant="acme")

    report = replay(db, parse_rules(HOLD_REPORTED), since=timedelta(days=1))
    assert report.events == 4
    assert report.fired == {"reported": 2}
    assert report.shadow == {}
    assert report.before == {"allow": 3, "block": 1}
    assert report.decisions == {"hold": 2, "allow": 2}
    assert report.changes == {"allow -> hold": 2, "block -> allow": 1}
    assert report.changed == 3
    assert [e["event_id"] for e in report.examples] == [ids[2], ids[1], ids[0]]  # newest first
    assert report.examples[0]["rules"] == ["reported"]
    assert report.examples[2] == {
        **report.examples[2],
        "old": "block",
        "new": "allow",
        "content_id": "m1",
    }

    everything = replay(db, parse_rules(BLOCK_MATCHES))
    assert everything.events == 5
    assert everything.fired == {"any-match": 2, "csam": 2}
    assert everything.shadow == {"shadow-reports": 1}
    assert everything.changed == 0 and everything.examples == []
    assert old in {e["event_id"] for e in replay(db, parse_rules(HOLD_REPORTED)).examples}

    assert replay(db, parse_rules(HOLD_REPORTED), limit=2).events == 2
    assert replay(db, parse_rules(HOLD_REPORTED), tenant="acme").fired == {"reported": 1}
    d = report.to_dict()
    assert d["events"] == 4 and d["since"] is not None and d["limit"] == 1000


def test_replay_keeps_twenty_examples(db: Database) -> None:
    for i in range(25):
        _event(db, Context(content_id=str(i), reports=1), "allow")
    report = replay(db, parse_rules(HOLD_REPORTED))
    assert report.changed == 25 and len(report.examples) == 20


def test_builtin_rules_are_active_only_until_a_version_is(db: Database) -> None:
    sets = RuleSets(db)
    assert sets.get(0).active
    sets.save("rules: []\n")
    assert not sets.get(0).active and sets.active().version == 1
    sets.activate(0)
    assert sets.get(0).active and not sets.get(1).active

"""Preservation requests and account freeze (SQLite and PostgreSQL): recording with
checks (a deadline in the future, known scope keys, cleaned text), preserving an
account's uploads and event records in scope into the vault on legal hold (once:
idempotent origins), deadline tracking (due soon, overdue), fulfilment with the package
made for it, withdrawal that releases the holds, and the audit entries of each step.
The uploads are pictures drawn by code, scanned through the service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyrage
import pytest
from sqlalchemy import update
from tests.test_package import (
    REVIEW_ONLY,
    SUSPECT,
    World,
    make_world,
    suspect_case,
)
from typer.testing import CliRunner

from safehold.errors import Conflict, InvalidValue, NotFound
from safehold.refer.preservation import Preservations, Scope, clean_field, parse_when
from safehold.refer.vault import VaultNotConfigured
from safehold.store.models import Event, PreservationRequest, utcnow


@pytest.fixture()
def w(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The service without a preserve rule: the request preserves the uploads itself."""
    yield from make_world(db_url, tmp_path, monkeypatch, rules=REVIEW_ONLY)


@pytest.fixture()
def ws(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    yield from make_world(sqlite_url, tmp_path, monkeypatch, rules=REVIEW_ONLY)


def later(days: int = 30) -> datetime:
    return utcnow() + timedelta(days=days)


def active(w: World, item_id: int, reference: str) -> bool:
    return any(h.active and h.reference == reference for h in w.vault.holds(item_id))


# --------------------------------------------------------------------------- recording


def test_recording_checks_and_cleans(w: World) -> None:
    pres = w.preservations()
    hostile = "  LE-\u202e7\x07 <b>x</b>\u200b  "
    req = pres.record(
        "default",
        hostile,
        "Police\tUnit \u2066evil\u2069",
        " acct-1 ",
        {"content": True, "since": "2026-01-01", "until": "2026-03-31"},
        date.today() + timedelta(days=10),
        "user:leo",
        "line one\r\nline \u202etwo\x00".replace("\x00", ""),
    )
    assert req.reference == "LE- 7 <b>x</b>" and req.authority == "Police Unit evil"
    assert req.account_id == "acct-1" and req.status == "open"
    assert req.notes == "line one\nline two"
    assert req.scope.kinds == ("content",)
    assert req.scope.since == datetime(2026, 1, 1, tzinfo=UTC)
    assert req.scope.until is not None and req.scope.until.date() == date(2026, 3, 31)
    assert req.deadline_at is not None and req.deadline_at.date() == date.today() + timedelta(10)
    [entry] = w.svc.audit.list(action="preservation_record")
    assert entry.object == f"preservation:{req.id}" and entry.actor == "user:leo"
    assert entry.details["reference"] == req.reference and entry.details["scope"]["content"]

    bad: list[tuple[dict[str, Any], str]] = [
        ({"deadline": utcnow() - timedelta(hours=1)}, "not in the future"),
        ({"deadline": "yesterday"}, "not a date"),
        ({"deadline": later(5000)}, "more than"),
        ({"scope": {"content": True, "emails": True}}, "unknown keys"),
        ({"scope": {"content": "yes"}}, "true or false"),
        ({"scope": {"content": False}}, "covers nothing"),
        ({"scope": {"since": "2026-05-01", "until": "2026-04-01"}}, "after its until"),
        ({"scope": ["content"]}, "JSON object"),
        ({"reference": " \u202e "}, "reference"),
        ({"reference": "x" * 129}, "longer than"),
        ({"authority": ""}, "authority"),
        ({"account_id": "a\x00b"}, "account id"),
        ({"account_id": ""}, "account id"),
        ({"tenant": "../x"}, "tenant"),
    ]
    for change, message in bad:
        args: dict[str, Any] = {
            "tenant": "default",
            "reference": "LE-2",
            "authority": "Police",
            "account_id": "acct-2",
            "scope": None,
            "deadline": later(),
            "by": "user:leo",
        }
        args.update(change)
        with pytest.raises(InvalidValue, match=message):
            pres.record(**args)
    # the same open request twice is refused
    pres.record("default", "LE-2", "Police", "acct-2", None, None, "user:leo")
    with pytest.raises(Conflict, match="already open"):
        pres.record("default", "LE-2", "Police", "acct-2", None, None, "user:leo")
    assert len(w.svc.audit.list(action="preservation_record")) == 2


def test_scope_and_text_helpers() -> None:
    assert Scope.parse(None).kinds == ("content", "account", "events")
    assert Scope.from_options(["content,events"], "2026-02-01", "").kinds == ("content", "events")
    s = Scope.parse({"account": True, "since": "2026-02-01T10:00:00Z"})
    assert s.covers(datetime(2026, 2, 1, 10, 0, tzinfo=UTC))
    assert not s.covers(datetime(2026, 2, 1, 9, 59, tzinfo=UTC))
    assert not s.covers(None) and Scope().covers(None)
    assert Scope.parse(s.to_json()) == s
    with pytest.raises(InvalidValue, match="unknown kind"):
        Scope.from_options(["passwords"])
    assert clean_field("a\u202eb\u200bc", "x", 10) == "a b c"
    assert parse_when("2026-01-02", "x", end_of_day=True) == datetime(
        2026, 1, 2, 23, 59, 59, 999999, tzinfo=UTC
    )


# --------------------------------------------------------------------------- preserving


def test_preserving_an_account_freezes_its_data_in_scope(w: World) -> None:
    suspect_case(w)  # suspect-1: two uploads; other-2: one
    with w.db.session() as s:  # the suspect's second upload was 60 days ago
        s.execute(
            update(Event)
            .where(Event.content_id == "upload-2")
            .values(at=utcnow() - timedelta(days=60))
        )
    assert not w.vault.list_items()  # the rules here preserve nothing
    pres = w.preservations()
    req = pres.record(
        "default",
        "LE-2026-0042",
        "Police",
        "suspect-1",
        {"content": True, "events": True, "since": (utcnow() - timedelta(days=7)).isoformat()},
        later(90),
        "user:leo",
    )
    result = pres.preserve(req.id, "user:leo")
    assert result.events == 1 and len(result.new_items) == 2 and not result.skipped
    items = {i.id: i for i in w.vault.list_items()}
    assert set(result.items) == set(items) == set(result.new_items) == set(result.held)
    media_item = next(i for i in items.values() if i.origin and ":media:" in i.origin)
    record_item = next(i for i in items.values() if i.origin and ":events:" in i.origin)
    assert media_item.origin.startswith(f"preservation:{req.id}:media:")
    assert media_item.content_id == "upload-1" and media_item.labels  # from the matches
    assert media_item.case_id == w.case_of("suspect-1")
    evidence = w.vault.read(media_item.id, by="user:leo", reason="test")
    assert evidence.content == w.queries[1].read_bytes()
    assert evidence.context["preservation"]["reference"] == "LE-2026-0042"
    assert "account" not in evidence.context["input"]  # the scope names no account data
    events = json.loads(w.vault.read(record_item.id, by="user:leo", reason="test").content)
    assert [e["content_id"] for e in events["events"]] == ["upload-1"]
    assert "account" not in events["events"][0] and events["events"][0]["matches"]
    for item_id in items:
        assert active(w, item_id, "LE-2026-0042")
    req = pres.get(req.id)
    assert req.status == "preserved" and set(req.vault_items) == set(items)
    assert req.case_id == w.case_of("suspect-1")

    # again: nothing new (idempotent origins, holds already there)
    again = pres.preserve(req.id, "user:leo")
    assert again.new_items == [] and again.held == [] and set(again.items) == set(items)
    assert len(w.vault.list_items()) == 2
    # a new upload of the account in scope: preserved on the next run
    w.scan(4, "suspect-1", SUSPECT, "upload-4")
    third = pres.preserve(req.id, "user:leo")
    assert len(third.new_items) == 2  # its upload and a new snapshot of the event records
    assert len(pres.get(req.id).vault_items) == 4

    entries = w.svc.audit.list(action="preservation_preserve")
    assert len(entries) == 3 and entries[-1].details["events"] == 1
    assert {e.action for e in pres.history(req.id)} == {
        "preservation_record",
        "preservation_preserve",
    }
    assert len(w.svc.audit.list(action="vault_hold")) == 4
    assert w.vault.verify(record=False).ok and w.svc.audit.verify().ok


def test_what_the_rules_preserved_is_held_too(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for world in make_world(db_url, tmp_path, monkeypatch):  # rules that preserve
        suspect_case(world)
        before = {i.id for i in world.vault.list_items()}
        assert len(before) == 3
        pres = world.preservations()
        req = pres.record(
            "default", "LE-5", "Police", "suspect-1", {"content": True}, later(), "user:leo"
        )
        result = pres.preserve(req.id, "user:leo")
        suspect_items = {
            i.id for i in world.vault.list_items() if i.case_id == world.case_of("suspect-1")
        }
        assert suspect_items == set(result.items) == set(result.held)
        assert result.new_items == []  # what the rules preserved is not stored twice
        assert len(world.vault.list_items()) == 3
        for item_id in result.items:
            assert active(world, item_id, "LE-5")
        other = [i for i in world.vault.list_items() if i.case_id == world.case_of("other-2")]
        assert other and not any(i.on_hold for i in other)  # another account: not held


# --------------------------------------------------------------------------- deadlines


def test_deadlines(w: World) -> None:
    pres = w.preservations()
    now = utcnow()
    soon = pres.record("default", "LE-soon", "P", "a", None, now + timedelta(days=3), "user:l")
    far = pres.record("default", "LE-far", "P", "b", None, now + timedelta(days=60), "user:l")
    none = pres.record("default", "LE-none", "P", "c", None, None, "user:l")
    assert [r.id for r in pres.due_soon("default")] == [soon.id]
    assert pres.overdue("default") == []
    assert [r.id for r in pres.open("default")] == [soon.id, far.id, none.id]
    later_now = now + timedelta(days=10)
    assert [r.id for r in pres.overdue("default", now=later_now)] == [soon.id]
    assert pres.get(soon.id).overdue(later_now) and not pres.get(far.id).overdue(later_now)
    assert [r.id for r in pres.due_soon("default", days=90)] == [soon.id, far.id]
    pres.withdraw(soon.id, "user:l", "not needed")
    assert pres.overdue("default", now=later_now) == []  # closed requests are not overdue
    assert [r.id for r in pres.list("default", status="withdrawn")] == [soon.id]
    assert {r.id for r in pres.list("default", status="open")} == {far.id, none.id}
    with pytest.raises(InvalidValue, match="unknown status"):
        pres.list("default", status="lost")
    assert [r.id for r in pres.list("other")] == []
    with pytest.raises(NotFound):
        pres.get(far.id, tenant="other")
    monkey = pytest.MonkeyPatch()
    monkey.setenv("SAFEHOLD_PRESERVATION_DUE_DAYS", "90")
    try:
        assert {r.id for r in pres.due_soon("default")} == {far.id}
        monkey.setenv("SAFEHOLD_PRESERVATION_DUE_DAYS", "soon")
        with pytest.raises(InvalidValue, match="SAFEHOLD_PRESERVATION_DUE_DAYS"):
            pres.due_soon("default")
    finally:
        monkey.undo()


# --------------------------------------------------------------------------- closing


def test_withdrawal_releases_the_holds_but_not_those_of_another_open_request(w: World) -> None:
    suspect_case(w)
    pres = w.preservations()
    first = pres.record("default", "LE-7", "Police A", "suspect-1", None, later(), "user:leo")
    second = pres.record("default", "LE-7", "Police A", "other-2", None, later(), "user:leo")
    r1 = pres.preserve(first.id, "user:leo")
    r2 = pres.preserve(second.id, "user:leo")
    with w.db.session() as s:  # both requests hold one item (a request covering both)
        s.execute(
            update(PreservationRequest)
            .where(PreservationRequest.id == second.id)
            .values(vault_items=[*r2.items, r1.items[0]])
        )
    with pytest.raises(InvalidValue, match="reason"):
        pres.withdraw(first.id, "user:leo", "  ")
    done = pres.withdraw(first.id, "user:leo", "the force withdrew the request")
    assert done.status == "withdrawn" and done.closed_at is not None
    assert active(w, r1.items[0], "LE-7")  # still needed by the second request
    for item_id in r1.items[1:]:
        assert not active(w, item_id, "LE-7")
    [entry] = w.svc.audit.list(action="preservation_withdraw")
    assert entry.details["reason"] == "the force withdrew the request"
    assert entry.details["kept"] == [r1.items[0]]
    assert set(entry.details["released"]) == set(r1.items[1:])
    with pytest.raises(Conflict, match="withdrawn"):
        pres.withdraw(first.id, "user:leo", "again")
    with pytest.raises(Conflict, match="withdrawn"):
        pres.preserve(first.id, "user:leo")
    assert w.vault.verify(record=False).ok


def test_fulfilment_with_a_package(w: World, tmp_path: Path) -> None:
    case_id = suspect_case(w)
    pres = w.preservations()
    req = pres.record("default", "LE-8", "Police", "suspect-1", None, later(), "user:leo")
    pres.preserve(req.id, "user:leo")
    identity = pyrage.x25519.Identity.generate()
    out = tmp_path / "pkg"
    result = w.packages().export(
        case_id,
        out,
        recipients=str(identity.to_public()),
        by="user:leo",
        reason="LE-8",
        request_id=req.id,
    )
    with pytest.raises(InvalidValue, match="not a package"):
        pres.fulfil(req.id, "user:leo", tmp_path)
    done = pres.fulfil(req.id, "user:leo", out, note="delivered by courier")
    assert done.status == "fulfilled" and done.case_id == case_id
    facts = pres.package(req.id)
    assert facts is not None
    assert facts["export_id"] == result.export_id and facts["request_id"] == req.id
    assert all(active(w, i, "LE-8") for i in done.vault_items)  # holds stay by default
    with pytest.raises(Conflict):
        pres.fulfil(req.id, "user:leo")
    released = pres.release_holds(req.id, "user:leo", "trial concluded")
    assert set(released) == set(done.vault_items)
    assert not any(active(w, i, "LE-8") for i in done.vault_items)
    assert [e.action for e in pres.history(req.id)] == [
        "preservation_record",
        "preservation_preserve",
        "preservation_fulfil",
        "preservation_release",
    ]
    # a package answering another request does not fulfil this one
    other = pres.record("default", "LE-9", "Police", "suspect-1", None, later(), "user:leo")
    with pytest.raises(InvalidValue, match="answers preservation request"):
        pres.fulfil(other.id, "user:leo", out)
    # fulfil and release at once
    done = pres.fulfil(other.id, "user:leo", release_holds=True)
    assert done.status == "fulfilled"


def test_preserving_needs_the_vault(ws: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pres = Preservations(ws.db, ws.svc.audit, vault=None, media=ws.svc.media)
    req = pres.record("default", "LE-1", "Police", "suspect-1", None, None, "user:leo")
    with pytest.raises(VaultNotConfigured, match="SAFEHOLD_VAULT_KEY"):
        pres.preserve(req.id, "user:leo")
    # an account without events: nothing to preserve, the request is still tracked
    result = ws.preservations().preserve(req.id, "user:leo")
    assert result.events == 0 and result.items == [] and result.request.status == "preserved"


# --------------------------------------------------------------------------- the commands


def test_the_commands(ws: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safehold.cli import app

    case_id = suspect_case(ws)
    monkeypatch.setenv("SAFEHOLD_DATABASE_URL", str(ws.db.url))
    monkeypatch.setenv("USER", "ops")
    runner = CliRunner()

    def run(*args: str) -> Any:
        r = runner.invoke(app, ["--db", str(ws.db.url), *args])
        return r

    deadline = (utcnow() + timedelta(days=30)).date().isoformat()
    r = run(
        "preservation",
        "add",
        "--reference",
        "LE-CLI-1",
        "--authority",
        "Police",
        "--account",
        "suspect-1",
        "--deadline",
        deadline,
        "--kind",
        "content,account",
        "--json",
    )
    assert r.exit_code == 0, r.output
    rid = json.loads(r.stdout)["id"]
    r = run(
        "preservation",
        "add",
        "--reference",
        "LE-CLI-2",
        "--authority",
        "Police",
        "--account",
        "suspect-1",
        "--deadline",
        "2020-01-01",
    )
    assert r.exit_code == 2 and "not in the future" in r.output
    r = run("preservation", "preserve", str(rid), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["held"]
    r = run("preservation", "list")
    assert r.exit_code == 0 and "LE-CLI-1" in r.output
    r = run("preservation", "show", str(rid), "--json")
    shown = json.loads(r.stdout)
    assert shown["request"]["status"] == "preserved" and shown["holds"]
    assert shown["history"][0]["actor"] == "cli:ops"

    identity = pyrage.x25519.Identity.generate()
    out = tmp_path / "cli-pkg"
    r = run(
        "refer",
        "package",
        str(case_id),
        "--recipient",
        str(identity.to_public()),
        "-o",
        str(out),
        "--request",
        str(rid),
    )
    assert r.exit_code == 2 and "--reason is required" in r.output
    r = run(
        "refer",
        "package",
        str(case_id),
        "--recipient",
        str(identity.to_public()),
        "-o",
        str(out),
        "--request",
        str(rid),
        "--reason",
        "LE-CLI-1",
        "--json",
    )
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    assert made["request_id"] == rid and (out / "summary.pdf").is_file()
    key = tmp_path / "key.txt"
    key.write_text(f"# created: test\n{identity}\n")
    r = run("refer", "verify", str(out), "--identity-file", str(key))
    assert r.exit_code == 0, r.output
    (out / "summary.pdf").write_bytes(b"%PDF-1.4 changed")
    r = run("refer", "verify", str(out))
    assert r.exit_code == 1 and "summary.pdf" in r.output
    r = run("preservation", "fulfil", str(rid), "--package", str(out), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "fulfilled"
    r = run("preservation", "release", str(rid), "--reason", "done")
    assert r.exit_code == 0, r.output
    rid2 = ws.preservations().record("default", "LE-CLI-3", "P", "x", None, None, "cli:t").id
    r = run("preservation", "withdraw", str(rid2))
    assert r.exit_code == 2 and "reason" in r.output
    r = run("preservation", "withdraw", str(rid2), "--reason", "dropped", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["status"] == "withdrawn"

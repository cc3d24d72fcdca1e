"""The policy pipeline: ``Policy.decide`` (rules → decision, event row, hit counters,
media kept, job queued) and the job ``run_actions`` (review case, webhook delivery,
preservation, notification) — idempotent, and robust to failing actions. Every test
runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from api_helpers import picture_bytes
from job_helpers import Receiver
from safehold.actions.dispatch import Policy
from safehold.actions.run import render_message, run_actions
from safehold.actions.worker import worker_context
from safehold.hashing import ContentHashes, hash_file
from safehold.jobs import JobContext, Jobs
from safehold.rules import Context
from safehold.store import Database
from safehold.store.models import (
    CaseItem,
    Event,
    Media,
    Notification,
    RuleHit,
    User,
    WebhookDelivery,
)

MATCH = {
    "bank": "known",
    "entry_id": 1,
    "external_id": "x-1",
    "labels": ["A1"],
    "source": "ncmec",
    "distance": 0,
    "signal_type": "pdq",
}

ALL_ACTIONS = """
mode: all-match
rules:
  - name: known-abuse
    priority: 10
    when:
      match: {labels: [A1]}
    actions:
      - block
      - review: {queue: urgent, priority: 9, sla: 4h}
      - preserve: {days: 90}
      - notify: {to: lead, message: "Rule {rule} blocked {content_id} (case {case_id})"}
      - webhook: {url: "URL", secret_env: SAFEHOLD_TEST_POLICY_SECRET}
  - name: many-reports
    when:
      reports: {min: 3}
    actions:
      - hold
  - name: repeat-offender-trial
    shadow: true
    when:
      account: {prior_matches: {gte: 1}}
    actions:
      - block
"""


@pytest.fixture()
def parts(db: Database, tmp_path: Path) -> Iterator[tuple[Policy, JobContext]]:
    jobs = Jobs.from_url("memory://", db.url)  # queued, run by hand below
    ctx = worker_context(db, jobs)
    ctx.media.root = tmp_path / "media"
    policy = Policy(db, rulesets=ctx.rulesets, jobs=jobs, media=ctx.media, audit=ctx.audit)
    yield policy, ctx
    jobs.close()


@pytest.fixture()
def upload(tmp_path: Path) -> tuple[str, ContentHashes]:
    path = tmp_path / "upload.png"
    path.write_bytes(picture_bytes(7))
    return str(path), hash_file(path)


def context(hashes: ContentHashes | None = None, **kw: Any) -> Context:
    signals = hashes.to_json() if hashes else {}
    return Context(tenant=kw.pop("tenant", "acme"), signals=signals, **kw)


def count(db: Database, model: Any, *where: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def use_rules(ctx: JobContext, text: str, tenant: str = "acme") -> int:
    stored = ctx.rulesets.save(text, tenant=tenant)
    ctx.rulesets.forget(tenant)
    assert stored.id is not None
    return stored.id


# --------------------------------------------------------------------------- decide


def test_default_rules_block_a_match_and_open_a_case(
    db: Database, parts: tuple[Policy, JobContext], upload: tuple[str, ContentHashes]
) -> None:
    policy, ctx = parts
    path, hashes = upload
    out = policy.decide(
        context(hashes, content_id="c1", account_id="u1", matches=[MATCH]),
        upload_path=path,
        hashes=hashes,
    )
    assert out.decision == "block" and out.fired == ["block-bank-match"]
    assert out.actions == ["review"] and out.media_id is not None
    assert ctx.jobs.pending() == 1  # run_actions(event_id), for the worker
    with db.session() as s:
        ev = s.get_one(Event, out.event_id)
        assert (ev.tenant, ev.content_id, ev.account_id, ev.decision) == (
            "acme",
            "c1",
            "u1",
            "block",
        )
        assert ev.rules == ["block-bank-match"] and ev.ruleset_id is None
        assert ev.context["matches"] == [MATCH] and ev.context["signals"]["sha256"] == hashes.sha256
        assert [a["kind"] for a in ev.actions] == ["review"]
        media = s.get_one(Media, out.media_id)
        assert media.sha256 == hashes.sha256 and (ctx.media.root / media.path).is_file()

    report = run_actions(ctx, out.event_id)
    assert report.done == ["review"] and not report.errors
    page = ctx.cases.list_cases("acme")
    [case] = page.cases
    view = ctx.cases.get(case.id, "acme")
    assert case.queue == "default" and case.account_id == "u1"
    [item] = view.items
    assert item.event_id == out.event_id and item.media_id == out.media_id


def test_no_match_is_allowed_without_actions(
    db: Database, parts: tuple[Policy, JobContext], upload: tuple[str, ContentHashes]
) -> None:
    policy, ctx = parts
    path, hashes = upload
    out = policy.decide(context(hashes), upload_path=path, hashes=hashes)
    assert (out.decision, out.fired, out.actions, out.media_id) == ("allow", [], [], None)
    assert ctx.jobs.pending() == 0
    assert count(db, Media) == 0  # nothing kept: nobody needs to look at it
    assert count(db, Event) == 1


def test_every_action_runs_once_even_when_run_twice(
    db: Database,
    parts: tuple[Policy, JobContext],
    upload: tuple[str, ContentHashes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = Receiver().start()
    monkeypatch.setenv("SAFEHOLD_TEST_POLICY_SECRET", receiver.secret)
    try:
        policy, ctx = parts
        ruleset_id = use_rules(ctx, ALL_ACTIONS.replace("URL", receiver.url))
        path, hashes = upload
        out = policy.decide(
            context(hashes, content_id="c9", account_id="u9", matches=[MATCH], reports=5),
            upload_path=path,
            hashes=hashes,
        )
        assert out.decision == "block"  # block beats hold
        assert out.fired == ["known-abuse", "many-reports"]
        assert out.actions == ["review", "preserve", "notify", "webhook"]
        for _ in range(2):
            run_actions(ctx, out.event_id)
        assert count(db, CaseItem, CaseItem.event_id == out.event_id) == 1
        assert count(db, WebhookDelivery) == 1
        assert count(db, Notification) == 1
        [case] = ctx.cases.list_cases("acme").cases
        assert case.queue == "urgent" and case.priority == 9
        with db.session() as s:
            note = s.scalars(select(Notification)).one()
            assert note.to_role == "lead" and note.case_id == case.id
            assert note.message == f"Rule known-abuse blocked c9 (case {case.id})"
            media = s.get_one(Media, out.media_id)
            assert media.preserved_at is not None
            delivery = s.scalars(select(WebhookDelivery)).one()
            assert delivery.rule == "known-abuse" and delivery.secret_ref == (
                "SAFEHOLD_TEST_POLICY_SECRET"
            )
            ev = s.get_one(Event, out.event_id)
            assert {a["state"] for a in ev.actions} == {"done"}
            hits = {h.rule: h.hits for h in s.scalars(select(RuleHit))}
        assert hits == {"known-abuse": 1, "many-reports": 1}
        preserved = ctx.audit.list(action="preserve")
        assert len(preserved) == 1 and preserved[0].details["days"] == 90
        # the delivery job was queued once; run it: the receiver gets one signed message
        from safehold.actions.webhooks import Webhooks

        assert Webhooks(db, None).deliver(delivery.id).status == "delivered"
        [got] = receiver.received
        assert got.signed
        data = got.json()["data"]
        assert data["event_id"] == out.event_id and data["case_id"] == case.id
        assert data["decision"] == "block" and data["matches"] == [MATCH]
        assert ruleset_id
    finally:
        receiver.stop()


def test_account_signals_come_from_the_server(
    db: Database, parts: tuple[Policy, JobContext]
) -> None:
    policy, ctx = parts
    use_rules(ctx, ALL_ACTIONS.replace("URL", "http://127.0.0.1:9/"))
    first = policy.decide(context(account_id="u5", matches=[MATCH]))
    assert first.shadow == []  # no earlier matches yet
    assert policy.decide(context(account_id="u5")).shadow == ["repeat-offender-trial"]
    policy.decide(context(account_id="other", matches=[MATCH]))
    spoofed = context(account_id="u5", account={"prior_matches": 0, "age_days": 3})
    out = policy.decide(spoofed)
    assert spoofed.account == {
        "age_days": 3,
        "prior_events": 2,
        "prior_matches": 1,
        "prior_cases": 0,
    }
    assert out.decision == "allow" and out.shadow == ["repeat-offender-trial"]
    with db.session() as s:
        hit = s.scalars(select(RuleHit).where(RuleHit.rule == "repeat-offender-trial")).one()
        assert hit.shadow and hit.hits == 2
    assert policy.account_signals("acme", "nobody") == {
        "prior_events": 0,
        "prior_matches": 0,
        "prior_cases": 0,
    }


def test_reports_alone_hold(db: Database, parts: tuple[Policy, JobContext]) -> None:
    policy, ctx = parts
    use_rules(ctx, ALL_ACTIONS.replace("URL", "http://127.0.0.1:9/"))
    assert policy.decide(context(reports=3)).decision == "hold"
    assert policy.decide(context(reports=2)).decision == "allow"
    # another tenant still has the built-in rules
    assert policy.decide(context(tenant="other", matches=[MATCH])).decision == "block"


# --------------------------------------------------------------------------- robustness


def test_a_failing_action_is_retried_without_repeating_the_others(
    db: Database, parts: tuple[Policy, JobContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    policy, ctx = parts
    use_rules(ctx, ALL_ACTIONS.replace("URL", "http://127.0.0.1:9/"))
    out = policy.decide(context(content_id="c2", matches=[MATCH]))  # no upload: no media
    calls: list[int] = []
    real = ctx.cases.open_or_attach

    def broken(**kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("the database went away")
        return real(**kw)

    monkeypatch.setattr(ctx.cases, "open_or_attach", broken)
    with pytest.raises(RuntimeError, match="to retry"):
        run_actions(ctx, out.event_id)
    with db.session() as s:
        states = {a["kind"]: a["state"] for a in s.get_one(Event, out.event_id).actions}
    assert states == {"review": "failed", "preserve": "error", "notify": "done", "webhook": "done"}
    report = run_actions(ctx, out.event_id)  # the queue's retry
    assert report.done == ["review"] and len(calls) == 2
    assert count(db, Notification) == 1 and count(db, WebhookDelivery) == 1
    assert count(db, CaseItem) == 1


def test_a_stale_claim_is_taken_over_but_a_fresh_one_is_not(
    db: Database, parts: tuple[Policy, JobContext]
) -> None:
    from datetime import timedelta

    from safehold.store.models import utcnow

    policy, ctx = parts
    out = policy.decide(context(matches=[MATCH]))
    with db.session() as s:
        ev = s.get_one(Event, out.event_id)
        ev.actions = [{**ev.actions[0], "state": "running", "claimed_at": utcnow().isoformat()}]
    assert run_actions(ctx, out.event_id).done == []  # another worker is on it
    with db.session() as s:
        ev = s.get_one(Event, out.event_id)
        old = (utcnow() - timedelta(hours=1)).isoformat()
        ev.actions = [{**ev.actions[0], "claimed_at": old}]
    assert run_actions(ctx, out.event_id).done == ["review"]
    assert count(db, CaseItem) == 1


def test_notify_an_unknown_user_is_an_error_not_a_retry(
    db: Database, parts: tuple[Policy, JobContext]
) -> None:
    policy, ctx = parts
    use_rules(
        ctx,
        """
mode: first-match
rules:
  - name: tell-someone
    when: {no_match: true}
    actions:
      - allow
      - notify: {to: "user:nobody"}
      - notify: {to: "user:ana", message: "{decision} {event_id} {unknown}"}
""",
    )
    from safehold.access.users import Users

    Users(db, ctx.audit).create("ana", "correct horse battery", "lead", tenant="acme")
    out = policy.decide(context())
    report = run_actions(ctx, out.event_id)
    assert report.errors and "nobody" in report.errors[0]
    with db.session() as s:
        note = s.scalars(select(Notification)).one()
        ana = s.scalars(select(User).where(User.name == "ana")).one()
        assert note.to_user_id == ana.id
        assert note.message == f"allow {out.event_id} {{unknown}}"
    assert run_actions(ctx, out.event_id).done == []  # nothing left to do
    assert run_actions(ctx, 10**9).done == []  # an event that does not exist


def test_render_message_only_fills_known_names() -> None:
    assert render_message("{a} {b.__class__} {c}", {"a": 1, "c": None}) == "1 {b.__class__} {c}"


def test_case_decided_webhook_is_sent_once_per_decision(
    db: Database, parts: tuple[Policy, JobContext]
) -> None:
    from safehold.access.users import Users
    from safehold.actions.run import case_decided, decided_listener

    policy, ctx = parts
    use_rules(
        ctx,
        """
mode: first-match
rules:
  - name: known
    when: {match: {labels: [A1]}}
    actions:
      - block
      - review: {queue: default}
      - webhook: {url: "http://127.0.0.1:9/hook", secret_env: X_SECRET, events: [case.decided]}
""",
    )
    out = policy.decide(context(content_id="c1", account_id="u1", matches=[MATCH]))
    run_actions(ctx, out.event_id)
    assert count(db, WebhookDelivery) == 0  # only case.decided was asked for
    [case] = ctx.cases.list_cases("acme").cases
    ctx.jobs.flush()
    ctx.cases.decided_listeners.append(decided_listener(ctx.jobs))
    reviewer = Users(db, ctx.audit).create(
        "rev", "correct horse battery", "reviewer", tenant="acme"
    )
    decision = ctx.cases.decide(case.id, reviewer, label="A1", action="remove", reason="seen")
    assert ctx.jobs.pending() == 1  # the listener queued case_decided
    created = case_decided(ctx, case.id, decision.id)
    assert len(created) == 1
    assert case_decided(ctx, case.id, decision.id) == []  # once per decision
    with db.session() as s:
        row = s.get_one(WebhookDelivery, created[0])
        import json

        msg = json.loads(row.payload)
        assert msg["type"] == "case.decided" and row.secret_ref == "X_SECRET"
        assert msg["data"]["decision_id"] == decision.id and msg["data"]["action"] == "remove"
        assert msg["data"]["label"] == "A1" and msg["data"]["event_ids"] == [out.event_id]
        assert "reason" not in msg["data"]


def test_actions_whose_job_was_lost_are_queued_again(
    db: Database, parts: tuple[Policy, JobContext]
) -> None:
    """The queue lost run_actions (down, restarted without persistence, a killed
    worker): the once-a-minute sweep queues it again, and the case opens."""
    from datetime import timedelta

    from safehold.actions.run import sweep_events, unfinished_events
    from safehold.store.models import utcnow

    policy, ctx = parts
    out = policy.decide(context(matches=[MATCH], account_id="lost"))
    done = policy.decide(context(matches=[MATCH], account_id="fine"))
    run_actions(ctx, done.event_id)
    ctx.jobs.flush()  # the job of the first event is lost
    assert unfinished_events(db) == []  # too recent: its job may still be queued
    with db.session() as s:
        for event_id in (out.event_id, done.event_id):
            s.get_one(Event, event_id).at = utcnow() - timedelta(minutes=5)
    assert unfinished_events(db) == [out.event_id]
    sweep_events(ctx)
    assert ctx.jobs.pending() == 1
    assert run_actions(ctx, out.event_id).done == ["review"]
    assert unfinished_events(db) == []
    assert {c.account_id for c in ctx.cases.list_cases("acme").cases} == {"lost", "fine"}

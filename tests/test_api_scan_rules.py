"""``POST /v1/scan`` with the rules: decision, fired rules, queued actions and the event,
end to end through ``create_app`` with the in-process worker (a case opens, a webhook
reaches a real receiver), the split deployment (``worker=False`` + a separate worker),
and the new ``reports`` / ``account`` fields, hostile values included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api_helpers import assert_problem, bearer, cheap_argon2, new_key, picture_bytes, serve
from job_helpers import Receiver, wait_for
from safehold.actions.worker import worker_context
from safehold.audit import AuditLog
from safehold.cases.service import Cases
from safehold.hashing import hash_image_bytes
from safehold.jobs import Jobs
from safehold.rules.store import RuleSets
from safehold.store import Database
from safehold.store.models import Event, Media, WebhookDelivery

SEED = 21


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cheap_argon2(monkeypatch)
    monkeypatch.setenv("SAFEHOLD_MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("SAFEHOLD_TMPDIR", str(tmp_path))


def scan(c: TestClient, key: str, upload: bytes, /, **kw: Any) -> Any:
    return c.post(
        "/v1/scan", files={"file": ("u.png", upload, "image/png")}, headers=bearer(key), **kw
    )


def add_bank(c: TestClient, db: Database, labels: list[str]) -> bytes:
    """A block bank holding the PDQ of a synthetic picture; the picture's bytes."""
    writer = bearer(new_key(db, "banks:write", tenant="acme"))
    png = picture_bytes(SEED)
    pdq = hash_image_bytes(png).pdq
    assert c.post("/v1/banks", json={"name": "known"}, headers=writer).status_code == 201
    r = c.post(
        "/v1/banks/known/entries",
        json={"entries": [{"signal_type": "pdq", "value": pdq, "labels": labels}]},
        headers=writer,
    )
    assert r.status_code == 201, r.text
    return png


@pytest.fixture()
def queue(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.jobs'}"


def test_scan_blocks_a_match_and_the_worker_opens_a_case(
    db: Database, queue: str, tmp_path: Path
) -> None:
    key = new_key(db, "scan", tenant="acme")
    with serve(db, queue_url=queue) as c:
        png = add_bank(c, db, ["A1"])
        r = scan(c, key, png, data={"content_id": "post-1", "account_id": "acct-1"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["decision"] == "block"
        assert body["rules"] == ["block-bank-match"] and body["actions"] == ["review"]
        assert isinstance(body["event_id"], int) and body["matches"][0]["labels"] == ["A1"]
        cases = Cases(db, AuditLog(db))
        page = wait_for(lambda: cases.list_cases("acme").cases)
        [case] = page
        assert case.account_id == "acct-1" and case.labels == ("A1",)
        [item] = cases.get(case.id, "acme").items
        assert item.event_id == body["event_id"] and item.content_id == "post-1"
        assert item.media_id is not None and item.media_kind == "image"
        assert (tmp_path / "media").is_dir()

        other = scan(c, key, picture_bytes(SEED + 5))
        assert other.json()["decision"] == "allow"
        assert other.json()["rules"] == [] and other.json()["actions"] == []
        metrics = c.get("/metrics").text
        assert 'safehold_scans_total{decision="block"} 1.0' in metrics
        assert 'safehold_scans_total{decision="allow"} 1.0' in metrics
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 2
        assert s.scalar(select(func.count()).select_from(Media)) == 1  # only the match kept
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("safehold-upload")] == []


def test_rules_use_reports_and_account_fields(db: Database, queue: str) -> None:
    RuleSets(db).save(
        """
mode: first-match
rules:
  - name: reported
    when: {reports: {min: 3}}
    actions: [hold]
  - name: new-account-with-reports
    priority: 5
    when:
      all:
        - reports: {min: 1}
        - account: {age_days: {lt: 7}, verified: {eq: false}}
    actions: [block]
""",
        tenant="acme",
    )
    key = new_key(db, "scan", tenant="acme")
    png = picture_bytes(3)
    young = json.dumps({"age_days": 2, "verified": False})
    with serve(db, queue_url=queue) as c:
        assert scan(c, key, png).json()["decision"] == "allow"
        assert scan(c, key, png, data={"reports": "3"}).json()["decision"] == "hold"
        assert scan(c, key, png, params={"reports": 4}).json()["rules"] == ["reported"]
        both = scan(c, key, png, data={"reports": "1", "account": young})
        assert both.json()["decision"] == "block", both.text
        old = json.dumps({"age_days": 30, "verified": False})
        assert scan(c, key, png, params={"reports": 1, "account": old}).json()["decision"] == (
            "allow"
        )
    with db.session() as s:
        last = s.scalars(select(Event).order_by(Event.id.desc())).first()
        assert last is not None and last.context["account"]["age_days"] == 30
        assert "prior_events" not in last.context["account"]  # no account_id given


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reports", "-1"),
        ("reports", "many"),
        ("reports", "1e3"),
        ("reports", str(10**12)),
        ("account", "[1, 2]"),
        ("account", "not json"),
        ("account", '"text"'),
        ("account", '{"x": NaN}'),
        ("account", json.dumps({"k" * 65: 1})),
        ("account", json.dumps({"blob": "x" * 17000})),
        ("account", "[" * 5000 + "]" * 5000),
    ],
)
def test_hostile_fields_are_refused(db: Database, queue: str, field: str, value: str) -> None:
    key = new_key(db, "scan", tenant="acme")
    with serve(db, queue_url=queue, worker=False) as c:
        r = scan(c, key, picture_bytes(1), data={field: value})
        assert_problem(r, 422)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 0


def test_split_deployment_a_separate_worker_runs_the_actions(
    db: Database, queue: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``safehold serve --no-worker`` queues; a worker elsewhere (same queue) acts: a
    case opens and a signed webhook reaches the receiver."""
    receiver = Receiver().start()
    monkeypatch.setenv("HOOK_SECRET", receiver.secret)
    RuleSets(db).save(
        f"""
mode: all-match
rules:
  - name: known
    when:
      match: {{labels: [csam]}}
    actions:
      - block
      - review: {{queue: urgent}}
      - webhook: {{url: "{receiver.url}", secret_env: HOOK_SECRET}}
""",
        tenant="acme",
    )
    key = new_key(db, "scan", tenant="acme")
    try:
        with serve(db, queue_url=queue, worker=False) as c:
            png = add_bank(c, db, ["A1"])  # A1 implies csam
            body = scan(c, key, png, data={"content_id": "c-7"}).json()
            assert body["decision"] == "block" and body["actions"] == ["review", "webhook"]
        worker = Jobs.from_url(queue, db.url)
        assert worker.pending() == 1
        ctx = worker_context(db, worker)
        ctx.media.root = tmp_path / "media"
        worker.start_worker(ctx, workers=1)
        try:
            cases = Cases(db, AuditLog(db))
            [case] = wait_for(lambda: cases.list_cases("acme", queue="urgent").cases)
            [got] = wait_for(lambda: receiver.received)
            assert got.signed
            msg = got.json()
            assert msg["type"] == "event.actioned"
            assert msg["data"]["event_id"] == body["event_id"]
            assert msg["data"]["case_id"] == case.id and msg["data"]["content_id"] == "c-7"
            with db.session() as s:
                wait_for(
                    lambda: (
                        s.scalar(select(WebhookDelivery.status)) == "delivered" or s.expire_all()
                    )
                )
        finally:
            worker.close()
    finally:
        receiver.stop()


def test_app_from_env_honours_safehold_worker(
    db: Database, monkeypatch: pytest.MonkeyPatch, queue: str
) -> None:
    from safehold.web.app import app_from_env

    monkeypatch.setenv("SAFEHOLD_DATABASE_URL", db.url)
    monkeypatch.setenv("SAFEHOLD_QUEUE_URL", queue)
    for value, running in (("0", False), ("1", True)):
        monkeypatch.setenv("SAFEHOLD_WORKER", value)
        app = app_from_env()
        with TestClient(app):
            assert app.state.service.jobs.running is running
        assert not app.state.service.jobs.running

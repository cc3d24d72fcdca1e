"""Webhooks: signatures, delivery through a real worker to a real HTTP receiver on
127.0.0.1 (SQLite and Redis queues), retries with backoff, dead letters, replay (library,
CLI and HTTP), timeouts, redirects, missing secrets and the sweep of lost jobs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from api_helpers import assert_problem, bearer, cheap_argon2, new_key, serve
from job_helpers import Receiver, queue_urls, wait_for
from safehold.actions.webhooks import (
    DEFAULT_DELAYS,
    Webhooks,
    retry_delays,
    sign,
    verify_signature,
)
from safehold.actions.worker import worker_context
from safehold.audit import AuditLog
from safehold.cli import app as cli
from safehold.errors import Conflict, InvalidValue, NotFound
from safehold.jobs import Jobs
from safehold.store import Database
from safehold.store.models import WebhookDelivery, utcnow

SECRET_ENV = "SAFEHOLD_TEST_HOOK_SECRET"


@pytest.fixture()
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    r = Receiver().start()
    monkeypatch.setenv(SECRET_ENV, r.secret)
    yield r
    r.stop()


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from queue_urls(request.param, tmp_path)


@pytest.fixture()
def worker(db: Database, queue_url: str, tmp_path: Path) -> Iterator[Jobs]:
    """A queue with its worker running in this process."""
    jobs = Jobs.from_url(queue_url, db.url)
    ctx = worker_context(db, jobs)
    ctx.media.root = tmp_path / "media"
    jobs.start_worker(ctx, workers=2)
    yield jobs
    jobs.close()


def hooks_for(db: Database, jobs: Jobs | None, **kw: Any) -> Webhooks:
    return Webhooks(db, jobs, AuditLog(db), **kw)


def create(hooks: Webhooks, url: str, **kw: Any) -> int:
    return hooks.create(
        url=url,
        type_="event.actioned",
        data={"event_id": 7, "decision": "block"},
        secret_env=SECRET_ENV,
        rule="r1",
        **kw,
    )


# --------------------------------------------------------------------------- signatures


def test_signature_verifies_and_refuses_tampering() -> None:
    body = b'{"id":"msg_1","type":"event.actioned","data":{}}'
    header = sign("k", body)
    assert verify_signature("k", header, body)
    assert verify_signature("k", header, body.decode())
    assert not verify_signature("other", header, body)
    assert not verify_signature("k", header, body + b" ")
    assert not verify_signature("k", None, body)
    assert not verify_signature("k", "garbage", body)
    assert not verify_signature("k", "t=abc,v1=00", body)
    old = sign("k", body, timestamp=int(time.time()) - 600)
    assert not verify_signature("k", old, body)  # a replay of an old message
    assert verify_signature("k", old, body, tolerance=900)
    # the documented recipe: HMAC-SHA256 over f"{t}.{body}"
    import hashlib
    import hmac

    t = 1_700_000_000
    expected = hmac.new(b"k", f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert sign("k", body, t) == f"t={t},v1={expected}"
    assert verify_signature("k", f"t={t},v1={expected}", body, now=t + 10)


def test_retry_schedule_is_configurable() -> None:
    assert retry_delays("") == DEFAULT_DELAYS
    assert retry_delays("2") == DEFAULT_DELAYS[:2]
    assert retry_delays("8") == (*DEFAULT_DELAYS, DEFAULT_DELAYS[-1], DEFAULT_DELAYS[-1])
    assert retry_delays("0") == ()
    assert retry_delays("10s, 2m,1h,0.5") == (10.0, 120.0, 3600.0, 0.5)
    for bad in ("soon", "1x", "101"):
        with pytest.raises(InvalidValue):
            retry_delays(bad)


def test_only_http_urls_and_known_types(db: Database) -> None:
    hooks = hooks_for(db, None)
    for url in ("file:///etc/passwd", "gopher://x/", "http:///nohost", "javascript:alert(1)"):
        with pytest.raises(InvalidValue):
            create(hooks, url)
    with pytest.raises(InvalidValue):
        hooks.create(url="http://127.0.0.1/", type_="other", data={})


# --------------------------------------------------------------------------- delivery


def test_delivery_retries_until_the_receiver_accepts(
    db: Database, worker: Jobs, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver fails twice, then answers 200: three attempts, one delivery, every
    request signed, same message id each time."""
    receiver.fail_first = 2
    monkeypatch.setenv("SAFEHOLD_WEBHOOK_RETRIES", "0.2,0.2,0.2")  # the worker's schedule
    hooks = hooks_for(db, worker)
    delivery_id = create(hooks, receiver.url, tenant="acme")
    wait_for(lambda: hooks.get(delivery_id).status == "delivered", timeout=30)
    info = hooks.get(delivery_id)
    assert info.attempts == 3 and info.last_status == 200 and info.last_error is None
    assert len(receiver.received) == 3
    assert all(r.signed for r in receiver.received)
    ids = {r.json()["id"] for r in receiver.received}
    assert len(ids) == 1
    first = receiver.received[0]
    assert first.headers["Safehold-Delivery"] == str(delivery_id)
    assert first.headers["Content-Type"] == "application/json"
    msg = first.json()
    assert msg["type"] == "event.actioned" and msg["data"] == {"event_id": 7, "decision": "block"}
    assert info.to_dict()["type"] == "event.actioned"


def test_dead_letter_then_replay(
    db: Database, worker: Jobs, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.fail_first = 10**6
    monkeypatch.setenv("SAFEHOLD_WEBHOOK_RETRIES", "0.1")
    hooks = hooks_for(db, worker)
    delivery_id = create(hooks, receiver.url)
    wait_for(lambda: hooks.get(delivery_id).status == "dead", timeout=30)
    dead = hooks.get(delivery_id)
    assert dead.attempts == 2 and dead.last_status == 500 and dead.last_error == "HTTP 500"
    assert [d.id for d in hooks.list(status="dead")] == [delivery_id]

    receiver.fail_first = 0
    receiver.attempts = 0
    receiver.received.clear()
    info = hooks.replay(delivery_id, by="tester")
    assert info.status == "pending" and info.attempts == 0
    wait_for(lambda: hooks.get(delivery_id).status == "delivered", timeout=30)
    assert len(receiver.received) == 1 and receiver.received[0].signed
    [entry] = AuditLog(db).list(action="webhook_replay")
    assert entry.actor == "tester" and entry.object_id == str(delivery_id)
    assert entry.details["previous_status"] == "dead"


def test_attempts_record_errors_without_a_worker(
    db: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``deliver`` directly: timeouts, redirects (not followed), a missing secret and a
    refused connection are failures with a reason; a delivered one is not sent twice."""
    hooks = hooks_for(db, None, delays=(60.0,), timeout=0.5)

    receiver.delay = 1.5
    slow = create(hooks, receiver.url)
    result = hooks.deliver(slow)
    assert result.status == "retrying" and result.error and "timeout" in result.error
    assert hooks.deliver(slow).status == "skipped"  # not due yet
    receiver.delay = 0

    receiver.redirect = True
    moved = create(hooks, receiver.url)
    result = hooks.deliver(moved)
    assert result.status == "retrying" and result.http_status == 302
    assert len([r for r in receiver.received if r.path == "/elsewhere"]) == 0
    receiver.redirect = False

    monkeypatch.delenv(SECRET_ENV)
    unsigned = create(hooks, receiver.url)
    result = hooks.deliver(unsigned)
    assert result.status == "retrying" and SECRET_ENV in (result.error or "")
    monkeypatch.setenv(SECRET_ENV, receiver.secret)

    refused = create(hooks, "http://127.0.0.1:9/closed")
    assert hooks.deliver(refused).status == "retrying"

    good = create(hooks, receiver.url)
    assert hooks.deliver(good).status == "delivered"
    assert hooks.deliver(good).status == "skipped"
    assert hooks.get(good).attempts == 1


def test_second_failure_after_the_last_retry_is_dead(db: Database, receiver: Receiver) -> None:
    receiver.fail_first = 10
    hooks = hooks_for(db, None, delays=())
    delivery_id = create(hooks, receiver.url)
    assert hooks.deliver(delivery_id).status == "dead"
    with pytest.raises(NotFound):
        hooks.replay(delivery_id, tenant="someone-else")
    with pytest.raises(NotFound):
        hooks.get(10**9)


def test_sweep_requeues_lost_and_stuck_deliveries(db: Database, receiver: Receiver) -> None:
    jobs = Jobs.from_url("memory://", db.url)
    hooks = hooks_for(db, jobs)
    lost = create(hooks, receiver.url, enqueue=False)
    stuck = create(hooks, receiver.url, enqueue=False)
    fresh = create(hooks, receiver.url, enqueue=False)
    long_ago = utcnow() - timedelta(minutes=10)
    with db.session() as s:
        s.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == lost).values(created_at=long_ago)
        )
        s.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == stuck)
            .values(status="sending", next_attempt_at=long_ago)
        )
    with pytest.raises(Conflict):
        hooks.replay(stuck)
    assert hooks.sweep() == [lost, stuck]
    assert jobs.pending() == 2
    assert hooks.get(stuck).status == "retrying"
    assert hooks.get(fresh).status == "pending"


# --------------------------------------------------------------------------- CLI and HTTP


def test_cli_lists_and_replays_dead_deliveries(db: Database, receiver: Receiver) -> None:
    receiver.fail_first = 10
    hooks = hooks_for(db, None, delays=())
    ids = [create(hooks, receiver.url) for _ in range(2)]
    for delivery_id in ids:
        hooks.deliver(delivery_id)
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(cli, ["--db", db.url, *args])
        assert "Traceback" not in result.output, result.output
        return result

    listed = run("webhooks", "list", "--status", "dead", "--json")
    assert listed.exit_code == 0, listed.output
    assert [d["id"] for d in json.loads(listed.output)["deliveries"]] == ids[::-1]
    table = run("webhooks", "list")
    assert table.exit_code == 0 and "dead" in table.output and "HTTP 500" in table.output
    one = run("webhooks", "replay", str(ids[0]), "--json")
    assert one.exit_code == 0 and json.loads(one.output)["replayed"] == [ids[0]]
    rest = run("webhooks", "replay", "--dead", "--json")
    assert json.loads(rest.output)["replayed"] == [ids[1]]
    assert run("webhooks", "replay").exit_code == 2
    assert run("webhooks", "replay", "1", "--dead").exit_code == 2
    assert run("webhooks", "replay", "999999").exit_code == 2
    assert run("webhooks", "list", "--status", "lost").exit_code == 2
    assert {hooks.get(i).status for i in ids} == {"pending"}
    actors = {e.actor for e in AuditLog(db).list(action="webhook_replay")}
    assert len(actors) == 1 and actors.pop().startswith("cli:")


def test_http_deliveries_are_tenant_scoped(
    db: Database, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cheap_argon2(monkeypatch)
    monkeypatch.setenv("SAFEHOLD_MEDIA_DIR", str(tmp_path / "media"))
    receiver.fail_first = 10
    hooks = hooks_for(db, None, delays=())
    mine = create(hooks, receiver.url, tenant="acme")
    theirs = create(hooks, receiver.url, tenant="other")
    for delivery_id in (mine, theirs):
        hooks.deliver(delivery_id)
    admin = bearer(new_key(db, "admin", tenant="acme"))
    scan_only = bearer(new_key(db, "scan", tenant="acme"))
    with serve(db, queue_url=f"sqlite:///{tmp_path / 'q.jobs'}", worker=False) as c:
        r = c.get("/v1/webhooks/deliveries", headers=admin)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [d["id"] for d in body["deliveries"]] == [mine]
        assert body["counts"]["dead"] == 1
        assert "payload" not in body["deliveries"][0]
        assert c.get("/v1/webhooks/deliveries?status=dead", headers=admin).json()["deliveries"]
        assert not c.get("/v1/webhooks/deliveries?status=delivered", headers=admin).json()[
            "deliveries"
        ]
        assert_problem(c.get("/v1/webhooks/deliveries?status=x", headers=admin), 422)
        assert_problem(c.get("/v1/webhooks/deliveries", headers=scan_only), 403, "forbidden")
        assert_problem(
            c.post(f"/v1/webhooks/deliveries/{theirs}/replay", headers=admin), 404, "not_found"
        )
        r = c.post(f"/v1/webhooks/deliveries/{mine}/replay", headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["delivery"]["status"] == "pending"
    assert hooks.get(theirs).status == "dead"
    [entry] = AuditLog(db).list(action="webhook_replay")
    assert entry.actor.startswith("key:") and entry.tenant == "acme"

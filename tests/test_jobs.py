"""The job queue on huey: queue modes, JSON messages, workers that survive failing jobs,
retries, delays, graceful stop, and ``safehold worker`` as a process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from job_helpers import queue_urls, wait_for
from safehold.errors import InvalidValue
from safehold.jobs import HANDLERS, JobContext, Jobs, JsonSerializer, default_queue_url, job

CALLS: list[tuple[str, Any]] = []
LOCK = threading.Lock()
FAILS: dict[str, int] = {}


def record(tag: str, value: Any) -> None:
    with LOCK:
        CALLS.append((tag, value))


def calls(tag: str) -> list[Any]:
    with LOCK:
        return [v for t, v in CALLS if t == tag]


@job("test_echo", retries=0)
def echo(ctx: Any, value: Any) -> None:
    record("echo", value)


@job("test_flaky", retries=3, retry_delay=0.1)
def flaky(ctx: Any, key: str, failures: int) -> None:
    """Fails ``failures`` times for ``key``, then succeeds."""
    with LOCK:
        FAILS[key] = FAILS.get(key, 0) + 1
        n = FAILS[key]
    record("flaky", (key, n))
    if n <= failures:
        raise RuntimeError(f"attempt {n} of {key} fails on purpose")


@job("test_hostile", retries=0)
def hostile(ctx: Any, how: str) -> None:
    record("hostile", how)
    if how == "exit":
        raise SystemExit(3)
    if how == "error":
        raise ValueError("a job that fails")


@job("test_slow", retries=0)
def slow(ctx: Any, seconds: float) -> None:
    record("slow-start", seconds)
    time.sleep(seconds)
    record("slow-end", seconds)


@job("test_context", retries=0)
def uses_context(ctx: Any) -> None:
    record("context", ctx.extra.get("marker"))


@pytest.fixture(autouse=True)
def _reset() -> None:
    with LOCK:
        CALLS.clear()
        FAILS.clear()


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from queue_urls(request.param, tmp_path)


def context(jobs: Jobs, marker: str = "m") -> JobContext:
    return JobContext(
        db=None,  # type: ignore[arg-type]
        jobs=jobs,
        rulesets=None,  # type: ignore[arg-type]
        cases=None,  # type: ignore[arg-type]
        audit=None,  # type: ignore[arg-type]
        media=None,  # type: ignore[arg-type]
        extra={"marker": marker},
    )


@pytest.fixture()
def jobs(queue_url: str) -> Iterator[Jobs]:
    q = Jobs.from_url(queue_url, "sqlite://")
    yield q
    q.close()


# --------------------------------------------------------------------------- configuration


def test_queue_urls_choose_the_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db_file = tmp_path / "data" / "safehold.db"
    assert default_queue_url(f"sqlite:///{db_file}") == f"sqlite:///{db_file}.jobs"
    assert default_queue_url("sqlite://") == "memory://"
    pg = default_queue_url("postgresql+psycopg://u@127.0.0.1/db")
    assert pg == f"sqlite:///{tmp_path / 'safehold-jobs.db'}"

    q = Jobs.from_url(None, f"sqlite:///{db_file}")
    assert q.kind == "sqlite" and Path(f"{db_file}.jobs").exists()
    # the default queue is named after its database: two databases never share jobs
    a = Jobs.from_url(None, "postgresql+psycopg://u@127.0.0.1/one")
    b = Jobs.from_url(None, "postgresql+psycopg://u@127.0.0.1/two")
    assert a.huey.name != b.huey.name
    assert Jobs.from_url("memory://?queue=x", "sqlite://").huey.name == "x"
    assert Jobs.from_url("memory://", "sqlite://", immediate=True).immediate
    assert Jobs.from_url("memory://?immediate=1", "sqlite://").immediate
    r = Jobs.from_url("redis://:pw@127.0.0.1:6379/3?queue=q1", "sqlite://")
    assert r.kind == "redis" and "pw" not in r.url and r.huey.name == "q1"
    for bad in ("amqp://127.0.0.1/", "ftp://x/", "sqlite://"):
        with pytest.raises(InvalidValue):
            Jobs.from_url(bad, "sqlite://")
    for each in (q, a, b):
        each.close()


def test_messages_are_json_not_pickle() -> None:
    from datetime import datetime

    from huey.registry import Message

    ser = JsonSerializer()
    msg = Message(
        "id1", "safehold.jobs.x", datetime(2026, 1, 2, 3, 4, 5), 2, 0.5, None, (1, "a"), {}
    )
    raw = ser.serialize(msg)
    assert raw.startswith(b"{") and b"pickle" not in raw
    back = ser.deserialize(raw)
    assert back.name == msg.name and back.eta == msg.eta and list(back.args) == [1, "a"]
    with pytest.raises(ValueError):
        ser.deserialize(b'{"$evil": 1}')
    q = Jobs.from_url("memory://", "sqlite://")
    with pytest.raises(TypeError):
        q.enqueue("test_echo", object())
    with pytest.raises(InvalidValue):
        q.enqueue("no_such_job", 1)


def test_immediate_mode_runs_jobs_inside_enqueue() -> None:
    q = Jobs.from_url("memory://", "sqlite://", immediate=True)
    q.bind(context(q, "now"))
    q.enqueue("test_echo", {"a": [1, 2]})
    q.enqueue("test_context")
    assert calls("echo") == [{"a": [1, 2]}] and calls("context") == ["now"]


# --------------------------------------------------------------------------- workers


def test_worker_runs_jobs_and_survives_failing_ones(jobs: Jobs) -> None:
    """A job that raises, or even calls sys.exit, is logged; the worker goes on."""
    jobs.start_worker(context(jobs), workers=2)
    for how in ("error", "exit", "error", "exit"):
        jobs.enqueue("test_hostile", how)
    for i in range(10):
        jobs.enqueue("test_echo", i)
    wait_for(lambda: len(calls("echo")) == 10)
    assert sorted(calls("echo")) == list(range(10))
    assert sorted(calls("hostile")) == ["error", "error", "exit", "exit"]
    # still alive: both worker threads
    jobs.enqueue("test_echo", "after")
    wait_for(lambda: "after" in calls("echo"))
    assert all(t.is_alive() for _, t in jobs._consumer.worker_threads)


def test_failing_jobs_are_retried_with_backoff(jobs: Jobs) -> None:
    jobs.start_worker(context(jobs), workers=1)
    jobs.enqueue("test_flaky", "k", 2)
    wait_for(lambda: ("k", 3) in calls("flaky"))
    assert [n for key, n in calls("flaky") if key == "k"] == [1, 2, 3]


def test_delayed_jobs_wait_for_their_time(jobs: Jobs) -> None:
    jobs.start_worker(context(jobs), workers=1)
    t0 = time.monotonic()
    jobs.enqueue("test_echo", "later", delay=1.5)
    jobs.enqueue("test_echo", "now")
    wait_for(lambda: "later" in calls("echo"))
    assert time.monotonic() - t0 >= 1.4
    assert calls("echo") == ["now", "later"]


def test_jobs_queued_before_the_worker_starts_are_run(queue_url: str) -> None:
    """Another process (an API replica) queues; a worker started later runs them."""
    producer = Jobs.from_url(queue_url, "sqlite://")
    for i in range(3):
        producer.enqueue("test_echo", f"queued-{i}")
    assert producer.pending() == 3
    producer.close()
    worker = Jobs.from_url(queue_url, "sqlite://")
    try:
        worker.start_worker(context(worker), workers=1)
        wait_for(lambda: len(calls("echo")) == 3)
        wait_for(lambda: worker.pending() == 0)  # periodic sweeps may come and go
    finally:
        worker.close()


def test_stop_lets_the_running_job_finish(jobs: Jobs) -> None:
    jobs.start_worker(context(jobs), workers=1)
    jobs.enqueue("test_slow", 1.0)
    wait_for(lambda: calls("slow-start"))
    jobs.stop()
    assert calls("slow-end") == [1.0]
    assert not jobs.running


def test_a_dead_worker_thread_is_replaced(jobs: Jobs) -> None:
    jobs.start_worker(context(jobs), workers=1)
    consumer = jobs._consumer
    worker, thread = consumer.worker_threads[0]
    worker.loop = lambda now=None: (_ for _ in ()).throw(RuntimeError("worker crashed"))
    wait_for(lambda: not thread.is_alive(), timeout=10)
    wait_for(lambda: consumer.worker_threads[0][1] is not thread, timeout=10)
    jobs.enqueue("test_echo", "revived")
    wait_for(lambda: "revived" in calls("echo"))


def test_every_builtin_job_is_registered() -> None:
    q = Jobs.from_url("memory://", "sqlite://")
    q._register_all()
    assert {"run_actions", "deliver_webhook", "sweep_webhooks"} <= set(HANDLERS)


# --------------------------------------------------------------------------- safehold worker


def test_safehold_worker_process_delivers_and_stops_on_sigterm(tmp_path: Path) -> None:
    """``safehold worker`` in a process of its own: it runs a webhook delivery queued by
    this process, and SIGTERM stops it with exit code 0."""
    from job_helpers import Receiver
    from safehold.actions.webhooks import Webhooks
    from safehold.store import Database

    db_url = f"sqlite:///{tmp_path / 'w.db'}"
    queue = f"sqlite:///{tmp_path / 'w.jobs'}"
    receiver = Receiver().start()
    env = {
        **os.environ,
        "SAFEHOLD_DATABASE_URL": db_url,
        "SAFEHOLD_QUEUE_URL": queue,
        "HOOK_SECRET": receiver.secret,
        "SAFEHOLD_MEDIA_DIR": str(tmp_path / "media"),
    }
    db = Database(db_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "safehold.cli", "worker", "--workers", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        producer = Jobs.from_url(queue, db_url)
        hooks = Webhooks(db, producer)
        delivery = hooks.create(
            url=receiver.url,
            type_="event.actioned",
            data={"hello": "worker"},
            secret_env="HOOK_SECRET",
        )
        wait_for(lambda: receiver.received, timeout=30)
        wait_for(lambda: hooks.get(delivery).status == "delivered", timeout=10)
        assert receiver.received[0].signed
        assert receiver.received[0].json()["data"] == {"hello": "worker"}
        producer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=30)
        finally:
            receiver.stop()
            db.close()
    assert proc.returncode == 0, stderr
    assert "worker stopped" in stderr


def test_safehold_worker_refuses_an_in_memory_queue(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from safehold.cli import app

    result = CliRunner().invoke(
        app, ["--db", f"sqlite:///{tmp_path / 'x.db'}", "worker", "--queue", "memory://"]
    )
    assert result.exit_code == 2
    assert "shared queue" in result.output

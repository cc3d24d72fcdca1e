"""Helpers for the job, webhook and policy tests: queue URLs for both queue modes, a
webhook receiver, polling.

:class:`Receiver` is a real HTTP server on 127.0.0.1 (in a thread). It answers
``fail_first`` requests with ``fail_status`` (or sleeps ``delay`` seconds, or
redirects), then 200; it records every request and whether its signature verified
with ``secret``.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from safehold.actions.webhooks import verify_signature
from safehold.jobs import Jobs

REDIS = os.environ.get("SAFEHOLD_TEST_REDIS_QUEUE", "redis://127.0.0.1:6379/14")


def redis_available() -> None:
    """Skip (or fail when ``SAFEHOLD_REQUIRE_REDIS=1``) without the Redis server."""
    import redis

    client = redis.Redis.from_url(REDIS, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as e:
        if os.environ.get("SAFEHOLD_REQUIRE_REDIS") == "1":
            pytest.fail(f"Redis at {REDIS} is required but unreachable: {e}")
        pytest.skip(f"Redis at {REDIS} unreachable: {e}")
    finally:
        client.close()


def queue_urls(mode: str, tmp_path: Path) -> Iterator[str]:
    """A fresh queue: a SQLite file in ``tmp_path`` or Redis with a unique queue name
    (flushed afterwards)."""
    if mode == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.jobs'}"
        return
    redis_available()
    url = f"{REDIS}?queue=test_{secrets.token_hex(6)}"
    try:
        yield url
    finally:
        jobs = Jobs.from_url(url, "sqlite://")
        jobs.flush()
        jobs.close()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    signed: bool

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    secret: str = "s3cret-for-tests"
    fail_first: int = 0
    fail_status: int = 500
    delay: float = 0.0
    redirect: bool = False
    received: list[Received] = field(default_factory=list)
    attempts: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.attempts += 1
                    n = receiver.attempts
                    signed = verify_signature(
                        receiver.secret, self.headers.get("Safehold-Signature"), body
                    )
                    receiver.received.append(
                        Received(self.path, {k: v for k, v in self.headers.items()}, body, signed)
                    )
                if receiver.delay:
                    time.sleep(receiver.delay)
                if receiver.redirect:
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = receiver.fail_status if n <= receiver.fail_first else 200
                payload = b"no" if status >= 300 else b"ok"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def ok(self) -> list[Received]:
        """The requests that were answered 200."""
        with self._lock:
            return self.received[self.fail_first :] if not self.redirect else []


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (or fail after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)

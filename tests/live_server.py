"""Real uvicorn servers on free loopback ports, for the API tests that need one.

:func:`serve` starts the command-line entry point (``safehold serve``) in a
subprocess, exactly as an operator would, so its memory can be read from /proc and
its survival checked; :func:`serve_app` runs an app in a uvicorn server on a thread of
the test process (so the test can patch it). Both listen on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

START_TIMEOUT = 60.0
"""Seconds to wait for ``/readyz`` (the index loads in the background)."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def memory(self) -> dict[str, int]:
        """``VmRSS`` (resident now) and ``VmHWM`` (peak resident) in bytes, from /proc."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                number, unit = value.split()
                assert unit == "kB", line
                out[name] = int(number) * 1024
        return out

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=35)  # in-flight requests get 30 s to finish
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _wait_ready(server: LiveServer, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            return False
        try:
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"safehold serve not ready in {timeout:g} s:\n{server.log_text()[-3000:]}")


@contextmanager
def serve(
    db_url: str, log: Path, *, env: Mapping[str, str] | None = None, attempts: int = 3
) -> Iterator[LiveServer]:
    """``safehold --db DB_URL serve --port P`` until the block ends (then SIGTERM).

    Waits for ``/readyz``. ``env`` adds environment variables (limits, for example).
    A port taken between choosing and binding it is retried with another one.
    """
    environ = {**os.environ, "SAFEHOLD_LOG_FORMAT": "json", **(env or {})}
    environ.pop("SAFEHOLD_REDIS_URL", None)
    command = [sys.executable, "-c", "from safehold.cli import main; main()", "--db", db_url]
    server = None
    for _ in range(attempts):
        port = free_port()
        with log.open("ab") as out:
            process = subprocess.Popen(
                [*command, "serve", "--host", "127.0.0.1", "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environ,
            )
        server = LiveServer(process, port, log)
        if _wait_ready(server, START_TIMEOUT):
            break
        server.stop()
        server = None
    if server is None:
        raise AssertionError(f"safehold serve did not start:\n{log.read_text()[-3000:]}")
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """``app`` (lifespan included) in a uvicorn server on a thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("the uvicorn server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=35)
        sock.close()

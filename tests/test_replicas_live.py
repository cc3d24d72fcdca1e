"""Two real ``safehold serve`` processes against one PostgreSQL database.

Each test gets a fresh database, makes an admin key with the CLI, starts two server
processes (replicas A and B) on free loopback ports and talks to them over HTTP:

* an entry added or removed through A is matched (or no longer) on B within 1 s of
  A's answer; a bank created on B is usable on A; a key revoked on A is refused on B
  within 1 s (the measured times are printed: ``replica propagation ...``);
* ``kill -9`` of A right after it acknowledged writes loses none of them: they are
  in the database, B matches them, and A loads them again when it restarts;
* SIGTERM lets a request in flight finish with 200, then the process exits.

The children's output (JSON logs) goes to a file per process, printed when a test fails.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from safehold.banks import Banks
from safehold.demo import synthetic_picture
from safehold.store import Database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

START_SECONDS = 30.0
"""How long a replica may take to start and load its index."""
PROPAGATION_SECONDS = 1.0
"""The promise: a change made through one replica is visible on the others this soon."""
GRACE_SECONDS = 30.0
"""``safehold serve`` drains in-flight requests for this long after SIGTERM."""

TENANT = "acme"


def safehold_command() -> list[str]:
    script = Path(sys.executable).with_name("safehold")
    return [str(script)] if script.exists() else [sys.executable, "-m", "safehold.cli"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("SAFEHOLD_DATABASE_URL", "SAFEHOLD_REDIS_URL"):
        env.pop(name, None)
    env["SAFEHOLD_LOG_FORMAT"] = "json"
    return env


def pdq_value(n: int) -> str:
    """A distinct PDQ hash per ``n`` (far apart from each other: random-looking bits)."""
    import hashlib

    return hashlib.sha256(f"live-{n}-{time.time_ns()}".encode()).hexdigest()


def until(cond: Callable[[], bool], what: str, timeout: float) -> float:
    """Poll ``cond`` until it holds; returns the seconds it took."""
    started = time.perf_counter()
    while not cond():
        if time.perf_counter() - started > timeout:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.002)
    return time.perf_counter() - started


class Replica:
    """One ``safehold serve`` child process."""

    def __init__(self, name: str, url: str, workdir: Path, key: str) -> None:
        self.name = name
        self.url = url
        self.workdir = workdir
        self.key = key
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30.0,
            trust_env=False,
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Replica:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = self.workdir / f"{self.name}-{len(self.logs) + 1}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    *safehold_command(),
                    "--db",
                    self.url,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=child_env(),
                start_new_session=True,
            )
        return self

    def wait_ready(self, timeout: float = START_SECONDS) -> None:
        assert self.proc is not None
        started = time.monotonic()
        last = ""
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"replica {self.name} exited with {self.proc.returncode} while starting:\n"
                    + self.log_text()
                )
            try:
                r = httpx.get(f"{self.base}/readyz", timeout=2.0, trust_env=False)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:300]}"
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError(f"replica {self.name} not ready in {timeout:g} s ({last})")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def log_text(self) -> str:
        return "".join(
            f"----- {p.name}\n{p.read_text(errors='replace')}" for p in self.logs if p.exists()
        )

    def readyz(self) -> dict[str, Any]:
        r = self.client.get("/readyz")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def lookup(self, values: list[str], **extra: Any) -> httpx.Response:
        return self.client.post(
            "/v1/lookup", json={"signal_type": "pdq", "values": values, **extra}
        )

    def matches(self, value: str) -> list[int]:
        """Entry ids a PDQ value matches on this replica."""
        r = self.lookup([value])
        assert r.status_code == 200, r.text
        return [m["entry_id"] for m in r.json()["results"][0]["matches"]]

    def add(self, bank: str, value: str) -> int:
        r = self.client.post(
            f"/v1/banks/{bank}/entries", json={"signal_type": "pdq", "value": value}
        )
        assert r.status_code == 201, r.text
        (entry_id,) = r.json()["ids"]
        return int(entry_id)

    def stop(self) -> None:
        self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait(timeout=30)


class Cluster:
    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.workdir = workdir
        self.replicas: list[Replica] = []
        self.admin_key = self.cli_key("admin")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*safehold_command(), "--db", self.url, *args],
            capture_output=True,
            text=True,
            cwd=self.workdir,
            env=child_env(),
            timeout=120,
            check=False,
        )

    def cli_key(self, scopes: str) -> str:
        done = self.cli(
            "key", "create", "--scopes", scopes, "--tenant", TENANT, "--rate", "0", "--json"
        )
        assert done.returncode == 0, done.stderr
        return str(json.loads(done.stdout)["key"])

    def start(self, *names: str) -> list[Replica]:
        started = [Replica(n, self.url, self.workdir, self.admin_key).start() for n in names]
        self.replicas.extend(started)
        for r in started:
            r.wait_ready()
            # the first use of a key costs an argon2 verification: not part of any measurement
            assert r.client.get("/v1/banks").status_code == 200
        return started


@pytest.fixture()
def cluster(pg_url: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(pg_url, tmp_path)
    try:
        yield c
    finally:
        for r in c.replicas:
            r.stop()
        for r in c.replicas:  # shown by pytest when the test failed
            print(r.log_text()[-20_000:])


@pytest.fixture()
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    """Print a measurement where it is seen even when output is captured."""

    def say(line: str) -> None:
        with capsys.disabled():
            print(f"\n{line}", flush=True)

    return say


def summary(times: list[float]) -> str:
    return (
        f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms "
        f"over {len(times)}"
    )


# --------------------------------------------------------------------------- tests


def test_entries_added_and_removed_on_a_are_matched_on_b_within_a_second(
    cluster: Cluster, report: Callable[[str], None]
) -> None:
    a, b = cluster.start("a", "b")
    r = a.client.post("/v1/banks", json={"name": "known"})
    assert r.status_code == 201, r.text
    adds: list[float] = []
    removes: list[float] = []
    for n in range(5):
        value = pdq_value(n)
        assert b.matches(value) == []
        entry_id = a.add("known", value)  # 201: committed and applied on A
        acked = time.perf_counter()
        until(lambda v=value, e=entry_id: b.matches(v) == [e], "B matches the new entry", 10.0)
        adds.append(time.perf_counter() - acked)
        assert a.matches(value) == [entry_id]  # A reads its own write at once

        held = b.readyz()["index"]["entries"]
        r = a.client.delete(f"/v1/banks/known/entries/{entry_id}")
        assert r.status_code == 200, r.text
        acked = time.perf_counter()
        # B's index drops the entry (what its lookups see follows from the database)
        until(
            lambda v=value, n=held - 1: b.readyz()["index"]["entries"] == n and b.matches(v) == [],
            "B's index drops the removed entry",
            10.0,
        )
        removes.append(time.perf_counter() - acked)
        assert a.matches(value) == []
    report(f"replica propagation A -> B, add: {summary(adds)}")
    report(f"replica propagation A -> B, remove: {summary(removes)}")
    assert max(adds) < PROPAGATION_SECONDS, adds
    assert max(removes) < PROPAGATION_SECONDS, removes
    for replica in (a, b):
        st = replica.readyz()["index"]
        assert st["entries"] == 0 and st["lag_changes"] == 0 and st["error"] is None


def test_a_bank_created_on_b_is_usable_on_a(
    cluster: Cluster, report: Callable[[str], None]
) -> None:
    a, b = cluster.start("a", "b")
    r = b.client.post("/v1/banks", json={"name": "from-b", "thresholds": {"pdq": 20}})
    assert r.status_code == 201, r.text
    acked = time.perf_counter()
    value = pdq_value(0)
    until(
        lambda: a.lookup([value], banks=["from-b"]).status_code == 200,
        "A knows the bank created on B",
        10.0,
    )
    took = time.perf_counter() - acked
    report(f"replica propagation B -> A, bank created: {took * 1000:.1f} ms")
    assert took < PROPAGATION_SECONDS

    listed = a.client.get("/v1/banks").json()["banks"]
    assert [x["name"] for x in listed] == ["from-b"]
    assert listed[0]["thresholds"]["pdq"] == 20
    entry_id = a.add("from-b", value)
    assert [m["bank"] for m in a.lookup([value]).json()["results"][0]["matches"]] == ["from-b"]
    until(lambda: b.matches(value) == [entry_id], "B matches the entry added on A", 10.0)

    r = a.client.patch("/v1/banks/from-b", json={"description": "changed on A"})
    assert r.status_code == 200, r.text
    assert b.client.get("/v1/banks/from-b").json()["description"] == "changed on A"


def test_kill_9_right_after_writes_loses_none_of_them(
    cluster: Cluster, report: Callable[[str], None]
) -> None:
    a, b = cluster.start("a", "b")
    assert a.client.post("/v1/banks", json={"name": "known"}).status_code == 201
    acked: dict[str, int] = {}  # value -> entry id, for every 201 A sent
    enough = threading.Event()
    stopped: list[BaseException] = []

    def write() -> None:
        with httpx.Client(
            base_url=a.base,
            headers={"Authorization": f"Bearer {cluster.admin_key}"},
            timeout=10.0,
            trust_env=False,
        ) as client:
            n = 0
            while True:
                value = pdq_value(n)
                n += 1
                try:
                    r = client.post(
                        "/v1/banks/known/entries", json={"signal_type": "pdq", "value": value}
                    )
                except httpx.HTTPError as e:  # A is gone: this write was never acknowledged
                    stopped.append(e)
                    return
                assert r.status_code == 201, r.text
                acked[value] = int(r.json()["ids"][0])
                if len(acked) >= 25:
                    enough.set()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert enough.wait(60), "the writer did not get 25 writes through"
        a.signal(signal.SIGKILL)
    finally:
        writer.join(30)
    assert a.proc is not None and a.proc.wait(10) == -signal.SIGKILL
    assert stopped, "the writer should have lost its connection"
    killed = time.perf_counter()
    values = list(acked)

    # every acknowledged write is in the database
    db = Database(cluster.url)
    try:
        in_db = {e.value: e.id for e in Banks(db).iter_entries("known")}
    finally:
        db.close()
    assert {v: in_db.get(v) for v in values} == acked

    # B matches all of them
    def b_matches_all() -> bool:
        results = b.lookup(values).json()["results"]
        return all(
            [m["entry_id"] for m in res["matches"]] == [acked[res["value"]]] for res in results
        )

    until(b_matches_all, "B matches every acknowledged entry", 10.0)

    # A starts again and loads them from the database
    a.start()
    a.wait_ready()
    restarted = time.perf_counter() - killed
    results = a.lookup(values).json()["results"]
    assert [[m["entry_id"] for m in res["matches"]] for res in results] == [
        [acked[v]] for v in values
    ]
    assert a.readyz()["index"]["entries"] == len(in_db)
    assert '"index loaded"' in a.logs[-1].read_text()
    report(
        f"kill -9 after {len(acked)} acknowledged writes: all in the database and matched "
        f"on B; A back and loaded {len(in_db)} entries {restarted:.1f} s after the kill"
    )


def _read_response(sock: socket.socket) -> tuple[int, dict[str, Any]]:
    """Read one HTTP/1.1 response to EOF (the server closes after it); skips 1xx."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    while data.startswith(b"HTTP/1.1 1"):
        data = data.split(b"\r\n\r\n", 1)[1]
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def test_sigterm_lets_the_request_in_flight_finish(
    cluster: Cluster, report: Callable[[str], None]
) -> None:
    a, b = cluster.start("a", "b")
    buf = io.BytesIO()
    synthetic_picture(4, size=(2400, 1800)).save(buf, "PNG")
    body = buf.getvalue()
    assert a.proc is not None
    sock = socket.create_connection(("127.0.0.1", a.port), timeout=GRACE_SECONDS + 10)
    try:
        sock.sendall(
            (
                f"POST /v1/scan?content_id=slow-1 HTTP/1.1\r\nHost: 127.0.0.1:{a.port}\r\n"
                f"Authorization: Bearer {cluster.admin_key}\r\nContent-Type: image/png\r\n"
                f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
        )
        # the server answers 100 Continue when the scan route starts reading the upload:
        # from here on the request is in flight
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += sock.recv(1)
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(body[: len(body) // 2])

        a.signal(signal.SIGTERM)
        term = time.monotonic()
        until(
            lambda: b"Waiting for connections to close" in a.logs[-1].read_bytes(),
            "A to start draining",
            10.0,
        )
        with pytest.raises(httpx.ConnectError):  # no new connections while draining
            httpx.get(f"{a.base}/healthz", timeout=5.0, trust_env=False)
        assert b.client.get("/healthz").status_code == 200  # the other replica carries on

        sock.sendall(body[len(body) // 2 :])
        status, answer = _read_response(sock)
    finally:
        sock.close()
    assert status == 200, answer
    assert answer["content_id"] == "slow-1"
    assert answer["media"]["width"] == 2400 and answer["media"]["height"] == 1800
    assert len(answer["signals"]["pdq"]) == 64

    rc = a.proc.wait(timeout=GRACE_SECONDS + 10)
    exited = time.monotonic() - term
    report(f"SIGTERM with a scan in flight: 200, then exit {rc} after {exited:.1f} s")
    assert exited < GRACE_SECONDS
    assert "Application shutdown complete" in a.logs[-1].read_text()
    assert rc == 0


def test_a_key_revoked_on_a_is_refused_on_b_within_a_second(
    cluster: Cluster, report: Callable[[str], None]
) -> None:
    a, b = cluster.start("a", "b")
    r = a.client.post("/v1/keys", json={"scopes": ["scan"], "rate": 0})
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]
    headers = {"Authorization": f"Bearer {key}"}
    lookup = {"signal_type": "pdq", "values": [pdq_value(0)]}
    for replica in (a, b):  # accepted (and now in each replica's verification cache)
        assert replica.client.post("/v1/lookup", json=lookup, headers=headers).status_code == 200

    r = a.client.delete(f"/v1/keys/{key_id}")
    assert r.status_code == 200, r.text
    assert r.json()["revoked_at"]
    acked = time.perf_counter()
    until(
        lambda: b.client.post("/v1/lookup", json=lookup, headers=headers).status_code == 401,
        "B refuses the revoked key",
        10.0,
    )
    took = time.perf_counter() - acked
    report(f"replica propagation A -> B, key revoked: {took * 1000:.1f} ms")
    assert took < PROPAGATION_SECONDS
    assert a.client.post("/v1/lookup", json=lookup, headers=headers).status_code == 401
    refused = b.client.post("/v1/lookup", json=lookup, headers=headers)
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.headers.get("www-authenticate", "").lower().startswith("bearer")

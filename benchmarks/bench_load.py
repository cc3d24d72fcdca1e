"""The scanning service under load: lookups/s and scans/s over HTTP, 1 and 2 replicas.

Bounded and loopback only. The parent process:

1. creates a fresh PostgreSQL database (dropped at the end) and fills one bank with
   N random PDQ entries by one ``COPY`` (:func:`benchmarks.bench_startup.copy_pdq_entries`,
   the rows ``Banks.add`` would write), then adds a handful of *known* entries through
   ``Banks.add`` (100 random hashes, and the PDQ of half of the test pictures);
2. creates an API key with scope ``scan`` and rate 0 (no rate limit) through ``ApiKeys``;
3. starts ``safehold --db URL serve`` on a free port and waits for ``/readyz`` = 200,
   runs the load generator, then starts a second replica and runs it again;
4. in a fresh child, measures python-threatexchange's in-process call path over the
   same hashes — ``PDQIndex.query(hash)`` for lookups, ``PdqSignal.hash_from_file`` +
   ``query`` for scans — the floor an HMA-style service (which wraps the same calls
   in HTTP) cannot beat.

The load generator (``python -m benchmarks.bench_load --client SPEC``) is a separate
process with a fixed number of keep-alive connections (default 8), spread round-robin
over the replicas, each in a thread sending a request and waiting for the answer
(closed loop): raw HTTP/1.1 over sockets with pre-built requests, so the client's own
CPU cost stays small — but it runs on the same 2 cores as the replicas and PostgreSQL,
and its CPU use is reported. Every response is checked (status 200 and the expected
number of ``match`` decisions). Scenarios, each a warm-up and then a fixed window:

* ``lookup``: ``POST /v1/lookup`` with one PDQ value per call;
* ``lookup-batch``: ``POST /v1/lookup`` with 100 values per call (values/s reported);
* ``scan``: ``POST /v1/scan`` of a 640×480 synthetic JPEG (multipart ``file``).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_startup import SEED, copy_pdq_entries, create_bank, pdq_chunks
from benchmarks.common import (
    CACHE_DIR,
    REPO_ROOT,
    CpuWatch,
    fmt_load,
    fmt_num,
    fmt_ratio,
    machine_busy_seconds,
    markdown_table,
    percentile_ms,
    process_cpu_seconds,
    wait_for_idle,
)

SCENARIOS: dict[str, str] = {
    "lookup": "lookup, 1 PDQ per call",
    "lookup-batch": "lookup, 100 PDQ per call",
    "scan": "scan, 640×480 JPEG",
}
BANK = "bench"
WARMUP_REQUESTS = 3
"""Answers every connection must have had before the measured window opens."""
HOST = "127.0.0.1"


@dataclass(frozen=True)
class LoadConfig:
    entries: int = 1_000_000
    known: int = 100
    """Entries added through ``Banks.add`` that lookups hit (besides the pictures)."""
    replicas: Sequence[int] = (1, 2)
    scenarios: Sequence[str] = ("lookup", "lookup-batch", "scan")
    duration_s: float = 10.0
    warmup_s: float = 2.0
    concurrency: int = 8
    batch: int = 100
    n_queries: int = 2000
    hit_fraction: float = 0.1
    """Share of lookup values that are (near-)copies of known entries: they match."""
    pictures: int = 8
    """Distinct test JPEGs scanned in rotation; the first half are in the bank."""
    picture_size: tuple[int, int] = (640, 480)
    pytx: bool = True
    pytx_threads: Sequence[int] = (1, 2)
    pytx_budget_s: float = 5.0
    seed: int = SEED
    wait_idle: float = 0.0
    ready_timeout_s: float = 900.0
    cache_dir: Path = CACHE_DIR


@dataclass
class LoadResults:
    config: dict[str, Any]
    entries: int = 0
    fill_s: float = 0.0
    ready_s: list[float] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    pytx: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _matched(body: bytes) -> int:
    """Matched items in an answer: lookups say ``match`` per value; a scan's decision
    comes from the rules, and the built-in rules block a match in a block bank."""
    return body.count(b'"decision":"match"') + body.count(b'"decision":"block"')


# --------------------------------------------------------------------------- inputs


def make_queries(
    known: np.ndarray, n: int, hit_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(queries, expected matches per query): near-copies of known hashes, else random.

    A hit flips 0-16 random bits of a known hash (within every bank's default PDQ
    threshold, 31); a random 256-bit value is never within 31 bits of a random entry.
    """
    rng = np.random.default_rng(seed + 101)
    queries = np.frombuffer(rng.bytes(n * 32), dtype=np.uint8).reshape(n, 32).copy()
    hits = rng.random(n) < hit_fraction
    for q in np.flatnonzero(hits):
        bits = np.unpackbits(known[rng.integers(0, len(known))])
        flip = rng.choice(256, size=int(rng.integers(0, 17)), replace=False)
        bits[flip] ^= 1
        queries[q] = np.packbits(bits)
    return queries, hits.astype(np.int64)


def make_pictures(
    directory: Path, count: int, size: tuple[int, int], seed: int
) -> list[tuple[Path, str]]:
    """``count`` synthetic JPEGs and their PDQ; pictures whose PDQ quality is below the
    matching floor (50, in safehold and pytx alike) are skipped."""
    from safehold.demo import synthetic_picture
    from safehold.hashing import hash_file
    from safehold.signals.pdq import MIN_QUALITY

    directory.mkdir(parents=True, exist_ok=True)
    out: list[tuple[Path, str]] = []
    i = 0
    while len(out) < count:
        path = directory / f"picture-{size[0]}x{size[1]}-{seed + i}.jpg"
        if not path.exists():
            synthetic_picture(seed + i, size).save(path, "JPEG", quality=90)
        hashes = hash_file(path)
        if hashes.pdq and (hashes.pdq_quality or 0) >= MIN_QUALITY:
            out.append((path, hashes.pdq))
        i += 1
    return out


def _lookup_request(port: int, key: str, values: Sequence[str]) -> bytes:
    body = json.dumps({"signal_type": "pdq", "values": list(values)}).encode()
    head = (
        f"POST /v1/lookup HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _scan_request(port: int, key: str, picture: bytes, name: str) -> bytes:
    boundary = "safeholdbench" + secrets.token_hex(8)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + picture
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /v1/scan HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


# --------------------------------------------------------------------------- client


class Connection:
    """One keep-alive HTTP/1.1 connection: send a pre-built request, read the answer."""

    def __init__(self, host: str, port: int) -> None:
        self.addr = (host, port)
        self.sock = self._connect()
        self.buf = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.addr, timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    def request(self, data: bytes) -> tuple[int, bytes]:
        self.sock.sendall(data)
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = self.buf[:end].lower()
        self.buf = self.buf[end + 4 :]
        status = int(head[9:12])
        pos = head.find(b"\r\ncontent-length:")
        if pos >= 0:
            stop = head.find(b"\r\n", pos + 2)
            length = int(head[pos + 17 : stop if stop >= 0 else len(head)])
            while len(self.buf) < length:
                self._fill()
            body, self.buf = self.buf[:length], self.buf[length:]
        elif b"transfer-encoding: chunked" in head:
            body = self._chunked()
        else:
            raise ValueError("response without a length")
        if b"\r\nconnection: close" in head:
            self.sock.close()
            self.sock, self.buf = self._connect(), b""
        return status, body

    def _chunked(self) -> bytes:
        parts = []
        while True:
            while (end := self.buf.find(b"\r\n")) < 0:
                self._fill()
            size = int(self.buf[:end].split(b";")[0], 16)
            self.buf = self.buf[end + 2 :]
            while len(self.buf) < size + 2:
                self._fill()
            parts.append(self.buf[:size])
            self.buf = self.buf[size + 2 :]
            if size == 0:
                return b"".join(parts)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def drive(
    targets: Sequence[tuple[str, int, int]],
    requests: Sequence[Sequence[bytes]],
    expected: Sequence[int],
    values_per_request: int,
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    server_pids: Sequence[int],
) -> dict[str, Any]:
    """Closed-loop load: ``concurrency`` connections, round-robin over ``targets``.

    ``requests[r][k]``: request ``k`` built for target ``r`` (its Host header);
    ``expected[k]``: how many ``match`` decisions its answer must hold.
    """
    n_req = len(expected)
    inf = float("inf")
    window = [inf, inf]  # measured window [start, stop): set once every connection is warm
    done = [0] * concurrency
    lat: list[list[int]] = [[] for _ in range(concurrency)]
    bad: list[dict[str, int]] = [{} for _ in range(concurrency)]
    warm_bad = [0] * concurrency
    wrong = [0] * concurrency
    failures: list[str] = []

    def worker(t: int) -> None:
        r = t % len(targets)
        conn = Connection(targets[r][0], targets[r][1])
        mine = requests[r]
        k = (t * 7919) % n_req
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= window[1]:
                    return
                status, body = conn.request(mine[k])
                t1 = time.perf_counter()
                done[t] += 1
                if window[0] <= t1 < window[1]:
                    lat[t].append(int((t1 - t0) * 1e9))
                    if status != 200:
                        bad[t][str(status)] = bad[t].get(str(status), 0) + 1
                    elif _matched(body) != expected[k]:
                        wrong[t] += 1
                elif status != 200 and t1 < window[0]:
                    warm_bad[t] += 1
                k = (k + 1) % n_req
        except Exception as e:  # reported, and the run is marked failed
            failures.append(f"{type(e).__name__}: {e}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(concurrency)]
    began = time.perf_counter()
    for th in threads:
        th.start()
    # warm-up: at least warmup_s, and until every connection has had a few answers
    # (first requests pay key verification, first-use kernel loading, cold caches)
    time.sleep(warmup_s)
    give_up = time.perf_counter() + 120
    while min(done) < WARMUP_REQUESTS and time.perf_counter() < give_up and not failures:
        time.sleep(0.05)
    warmup = time.perf_counter() - began
    window[1] = time.perf_counter() + duration_s + 0.05
    window[0] = window[1] - duration_s
    time.sleep(max(0.0, window[0] - time.perf_counter()))
    busy0, own0 = machine_busy_seconds(), _own_cpu()
    srv0 = sum(process_cpu_seconds(p) for p in server_pids)
    time.sleep(max(0.0, window[1] - time.perf_counter()))
    busy1, own1 = machine_busy_seconds(), _own_cpu()
    srv1 = sum(process_cpu_seconds(p) for p in server_pids)
    for th in threads:
        th.join(timeout=120)
    samples = np.array([x for per in lat for x in per], dtype=np.int64)
    statuses: dict[str, int] = {}
    for per in bad:
        for code, count in per.items():
            statuses[code] = statuses.get(code, 0) + count
    n = len(samples)
    server = srv1 - srv0
    client = own1 - own0
    return {
        "requests": n,
        "values": n * values_per_request,
        "rps": n / duration_s,
        "values_per_s": n * values_per_request / duration_s,
        "p50_ms": percentile_ms(samples, 50),
        "p99_ms": percentile_ms(samples, 99),
        "max_ms": float(samples.max()) / 1e6 if n else float("nan"),
        "errors": statuses,
        "warmup_s": round(warmup, 2),
        "warmup_errors": sum(warm_bad),
        "wrong_matches": sum(wrong),
        "failures": failures[:5],
        "server_cores": round(server / duration_s, 2),
        "client_cores": round(client / duration_s, 2),
        "other_cores": round(max(0.0, busy1 - busy0 - server - client) / duration_s, 2),
    }


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def client_main(spec: dict[str, Any]) -> dict[str, Any]:
    """Run every scenario against the replicas in ``spec``; results by scenario."""
    targets = [(HOST, int(p), int(pid)) for p, pid in spec["targets"]]
    key = spec["key"]
    queries = np.load(spec["queries"])
    hexes = [q.tobytes().hex() for q in queries["codes"]]
    hits = [int(x) for x in queries["hits"]]
    pictures = [(Path(p).read_bytes(), Path(p).name) for p in spec["pictures"]]
    picture_hits = [int(x) for x in spec["picture_hits"]]
    batch = int(spec["batch"])
    out: dict[str, Any] = {}
    for scenario in spec["scenarios"]:
        if scenario == "lookup":
            per = 1
            reqs = [[_lookup_request(p, key, [h]) for h in hexes] for _, p, _ in targets]
            expected = hits
        elif scenario == "lookup-batch":
            per = batch
            starts = range(0, len(hexes) - batch + 1, batch)
            reqs = [
                [_lookup_request(p, key, hexes[s : s + batch]) for s in starts]
                for _, p, _ in targets
            ]
            expected = [sum(hits[s : s + batch]) for s in starts]
        elif scenario == "scan":
            per = 1
            reqs = [
                [_scan_request(p, key, data, name) for data, name in pictures]
                for _, p, _ in targets
            ]
            expected = picture_hits
        else:
            raise ValueError(f"unknown scenario {scenario!r}")
        out[scenario] = drive(
            [(h, p, pid) for h, p, pid in targets],
            reqs,
            expected,
            per,
            concurrency=int(spec["concurrency"]),
            warmup_s=float(spec["warmup_s"]),
            duration_s=float(spec["duration_s"]),
            server_pids=[pid for _, _, pid in targets],
        )
    return out


# --------------------------------------------------------------------------- pytx floor


def pytx_main(spec: dict[str, Any]) -> dict[str, Any]:
    """python-threatexchange in process: build its PDQ index, time query and hash + query."""
    import faiss
    from threatexchange.signal_type.pdq.signal import PdqSignal

    faiss.omp_set_num_threads(1)  # as in bench_index: parallelism comes from threads
    n, seed = int(spec["entries"]), int(spec["seed"])
    known = np.load(spec["known"])
    queries = np.load(spec["queries"])
    hexes = [q.tobytes().hex() for q in queries["codes"]]
    hits = [int(x) for x in queries["hits"]]
    pictures = [Path(p) for p in spec["pictures"]]
    picture_hits = [int(x) for x in spec["picture_hits"]]
    budget = float(spec["budget_s"])

    cls = PdqSignal.get_index_cls()
    entries: list[tuple[str, int]] = []
    for codes in pdq_chunks(n, seed):
        h = codes.tobytes().hex()
        base = len(entries)
        entries.extend((h[i * 64 : (i + 1) * 64], base + i) for i in range(len(codes)))
    entries.extend((k.tobytes().hex(), n + i) for i, k in enumerate(known))
    banked = [h for h, hit in zip(spec["picture_pdqs"], picture_hits, strict=True) if hit]
    entries.extend((h, n + len(known) + i) for i, h in enumerate(banked))
    t0 = time.perf_counter()
    index = cls.build(entries)
    out: dict[str, Any] = {"build_s": time.perf_counter() - t0, "entries": len(entries)}
    del entries

    def lookup(i: int) -> int:
        return len(index.query(hexes[i % len(hexes)]))

    def scan(i: int) -> int:
        value = PdqSignal.hash_from_file(pictures[i % len(pictures)])
        return len(index.query(value)) if value else 0  # "": quality too low to match

    for name, fn, expect, count in (
        ("lookup", lookup, hits, len(hexes)),
        ("scan", scan, picture_hits, len(pictures)),
    ):
        # warm-up pass, and the same answers as the service must give
        agree = all((fn(i) > 0) == bool(expect[i]) for i in range(min(count, 200)))
        res: dict[str, Any] = {"agrees": agree}
        for threads in spec["threads"]:
            res[f"{threads}t"] = _timed_calls(fn, int(threads), budget)
        out[name] = res
    return out


def _timed_calls(fn: Callable[[int], int], threads: int, budget: float) -> dict[str, float | None]:
    lat: list[list[int]] = [[] for _ in range(threads)]
    stop_at = time.perf_counter() + budget

    def work(t: int) -> None:
        i = t * 7919
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter_ns()
            fn(i)
            lat[t].append(time.perf_counter_ns() - t0)
            i += 1

    with CpuWatch() as watch:
        started = time.perf_counter()
        pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        wall = time.perf_counter() - started
    samples = np.array([x for per in lat for x in per], dtype=np.int64)
    return {
        "calls": len(samples),
        "per_s": len(samples) / wall,
        "p50_ms": percentile_ms(samples, 50),
        "p99_ms": percentile_ms(samples, 99),
        "other_cores": watch.other_cores,
    }


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _safehold_command() -> list[str]:
    script = Path(sys.executable).parent / "safehold"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from safehold.cli import main; main()"]


class Replica:
    """One ``safehold --db URL serve`` process on a free loopback port."""

    def __init__(self, url: str, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = dict(os.environ)
        env.pop("SAFEHOLD_REDIS_URL", None)  # in-process rate limiter (the key is unlimited)
        cmd = [*_safehold_command(), "--db", url, "serve", "--host", HOST, "--port", str(self.port)]
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env=env,
            start_new_session=True,
        )
        self.started = time.perf_counter()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float) -> float:
        """Seconds from start until ``GET /readyz`` answered 200."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica exited with {self.proc.returncode}: {self._tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
                conn.request("GET", "/readyz")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"replica not ready after {timeout:.0f} s: {self._tail()}")

    def _tail(self) -> str:
        try:
            return " / ".join(self.log_path.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


@contextlib.contextmanager
def replicas_running() -> Iterator[list[Replica]]:
    """A list to start replicas into; every one is stopped on the way out."""
    started: list[Replica] = []
    try:
        yield started
    finally:
        for r in started:
            r.stop()


def _run_child(flag: str, spec: dict[str, Any], out: Path, timeout: float) -> dict[str, Any]:
    spec = {**spec, "out": str(out)}
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.bench_load", flag, json.dumps(spec)]
    try:
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"status": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return {"status": f"failed (exit {proc.returncode}): " + " / ".join(tail)}
    result: dict[str, Any] = json.loads(out.read_text())
    result["status"] = "ok"
    return result


# --------------------------------------------------------------------------- parent


def _prepare(url: str, config: LoadConfig, work: Path) -> dict[str, Any]:
    """Known entries, pictures, queries and the key; returns the shared spec."""
    from safehold.access.keys import ApiKeys
    from safehold.banks import Banks, make_entry
    from safehold.store import Database

    rng = np.random.default_rng(config.seed + 5)
    known = np.frombuffer(rng.bytes(config.known * 32), dtype=np.uint8).reshape(-1, 32)
    made = make_pictures(work / "pictures", config.pictures, config.picture_size, config.seed)
    pictures = [p for p, _ in made]
    picture_pdqs = [h for _, h in made]
    banked = len(pictures) // 2
    picture_hits = [1 if i < banked else 0 for i in range(len(pictures))]
    queries, hits = make_queries(known, config.n_queries, config.hit_fraction, config.seed)
    with Database(url) as db:
        banks = Banks(db)
        entries = [
            make_entry("pdq", k.tobytes().hex(), ["A1"], "ncmec", f"known-{i}")
            for i, k in enumerate(known)
        ]
        entries += [
            make_entry("pdq", picture_pdqs[i], ["A1"], "local", f"picture-{i}")
            for i in range(banked)
        ]
        banks.add(BANK, entries, added_by="benchmark")
        key, _info = ApiKeys(db).create(scopes="scan", name="load benchmark", rate=0)
    np.save(work / "known.npy", known)
    qpath = work / "queries.npz"
    np.savez(qpath, codes=queries, hits=hits)
    return {
        "key": key,
        "known": str(work / "known.npy"),
        "queries": str(qpath),
        "pictures": [str(p) for p in pictures],
        "picture_pdqs": picture_pdqs,
        "picture_hits": picture_hits,
    }


def run(config: LoadConfig, log: Callable[[str], None] = print) -> LoadResults:
    from benchmarks.bench_store import PG_ADMIN, _pg_database

    results = LoadResults(
        config={
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in asdict(config).items()
            if k != "cache_dir"
        }
    )
    work = config.cache_dir / "load"
    work.mkdir(parents=True, exist_ok=True)
    with _pg_database() as url:
        if url is None:
            results.note = f"skipped: {PG_ADMIN} unreachable"
            return results
        bank_id = create_bank(url, BANK)
        log(f"[load] filling {config.entries:,} PDQ entries by COPY ...")
        results.fill_s = copy_pdq_entries(url, bank_id, config.entries, config.seed, log=log)
        shared = _prepare(url, config, work)
        results.entries = config.entries + config.known + len(shared["pictures"]) // 2
        log(f"[load] {results.entries:,} entries in {results.fill_s:.1f} s")
        with replicas_running() as running:
            for count in config.replicas:
                try:
                    while len(running) < count:
                        replica = Replica(url, work / f"replica-{len(running)}.log")
                        running.append(replica)
                        ready = replica.wait_ready(config.ready_timeout_s)
                        results.ready_s.append(ready)
                        log(
                            f"[load] replica {len(running)} on port {replica.port} ready in "
                            f"{ready:.1f} s"
                        )
                except (RuntimeError, TimeoutError, OSError) as e:
                    results.runs.append({"replicas": count, "status": f"failed: {e}"})
                    log(f"[load] {count} replica(s): {e}")
                    break
                wait_for_idle(config.wait_idle, log)
                spec = {
                    **shared,
                    "targets": [(r.port, r.pid) for r in running[:count]],
                    "scenarios": list(config.scenarios),
                    "batch": config.batch,
                    "concurrency": config.concurrency,
                    "warmup_s": config.warmup_s,
                    "duration_s": config.duration_s,
                }
                budget = 60 + len(config.scenarios) * (config.warmup_s + config.duration_s + 30)
                res = _run_child("--client", spec, work / f"client-{count}.json", budget)
                if res.get("status") != "ok":
                    results.runs.append({"replicas": count, "status": res["status"]})
                    log(f"[load] {count} replica(s): {res['status']}")
                    continue
                for scenario in config.scenarios:
                    r = {"replicas": count, "scenario": scenario, "status": "ok", **res[scenario]}
                    results.runs.append(r)
                    log(
                        f"[load] {count} replica(s) {scenario:12s}: {r['rps']:,.0f} req/s "
                        f"({r['values_per_s']:,.0f} values/s), p50 {r['p50_ms']:.1f} ms, "
                        f"p99 {r['p99_ms']:.1f} ms, errors {r['errors'] or 0}, "
                        f"wrong {r['wrong_matches']}, server {r['server_cores']} cores, "
                        f"client {r['client_cores']} cores"
                    )
        if config.pytx:
            wait_for_idle(config.wait_idle, log)
            log("[load] python-threatexchange in process over the same hashes ...")
            spec = {
                **shared,
                "entries": config.entries,
                "seed": config.seed,
                "threads": list(config.pytx_threads),
                "budget_s": config.pytx_budget_s,
            }
            results.pytx = _run_child("--pytx", spec, work / "pytx.json", 1800)
            if results.pytx.get("status") == "ok":
                p = results.pytx
                log(
                    f"[load] pytx: build {p['build_s']:.1f} s, query "
                    f"{p['lookup']['1t']['per_s']:,.0f}/s, hash + query "
                    f"{p['scan']['1t']['per_s']:,.0f}/s (1 thread)"
                )
            else:
                log(f"[load] pytx: {results.pytx['status']}")
    return results


# --------------------------------------------------------------------------- report


def _pytx_rate(results: LoadResults, scenario: str, threads: int) -> dict[str, float] | None:
    p = results.pytx
    if p.get("status") != "ok":
        return None
    name = "scan" if scenario == "scan" else "lookup"
    got: dict[str, float] | None = p.get(name, {}).get(f"{threads}t")
    return got


def render(results: LoadResults) -> str:
    cfg = results.config
    if results.note:
        return results.note + "\n"
    head = [
        "scenario",
        "replicas",
        "requests/s",
        "values/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "× pytx in-process (same threads)",
        "server cores",
        "client cores",
        "other load",
    ]
    rows: list[list[str]] = []
    for r in results.runs:
        if r.get("status") != "ok":
            rows.append(["—", str(r["replicas"]), r["status"], *[""] * (len(head) - 3)])
    for scenario in cfg["scenarios"]:
        for r in results.runs:
            if r.get("status") != "ok" or r.get("scenario") != scenario:
                continue
            floor = _pytx_rate(results, scenario, int(r["replicas"]))
            ratio = r["values_per_s"] / floor["per_s"] if floor and floor["per_s"] else None
            errors = sum(r["errors"].values()) + r["wrong_matches"] + len(r["failures"])
            rows.append(
                [
                    SCENARIOS.get(scenario, scenario),
                    str(r["replicas"]),
                    fmt_num(r["rps"]),
                    fmt_num(r["values_per_s"]),
                    f"{r['p50_ms']:.1f}",
                    f"{r['p99_ms']:.1f}",
                    str(errors),
                    fmt_ratio(ratio),
                    f"{r['server_cores']:.2f}",
                    f"{r['client_cores']:.2f}",
                    fmt_load(r["other_cores"]),
                ]
            )
    out = [markdown_table(head, rows)]
    p = results.pytx
    if p.get("status") == "ok":
        prow = []
        for name, label in (
            ("lookup", "`PDQIndex.query(hash)`"),
            ("scan", "`PdqSignal.hash_from_file(jpeg)` + `query`"),
        ):
            for threads in cfg["pytx_threads"]:
                x = p[name][f"{threads}t"]
                prow.append(
                    [
                        label,
                        str(threads),
                        fmt_num(x["per_s"]),
                        f"{x['p50_ms']:.2f}",
                        f"{x['p99_ms']:.2f}",
                        "yes" if p[name]["agrees"] else "no",
                        fmt_load(x.get("other_cores")),
                    ]
                )
        out.append("\n#### The floor: python-threatexchange in process, same hashes\n")
        out.append(
            markdown_table(
                ["call", "threads", "calls/s", "p50 ms", "p99 ms", "same matches", "other load"],
                prow,
            )
        )
        out.append(
            f"\npytx's `PdqSignal.get_index_cls()` index built over the same "
            f"{p['entries']:,} hashes in {p['build_s']:.1f} s (FAISS with one OpenMP "
            "thread); its only lookup API takes one hash per call, so the batch scenario "
            "is compared with its single-call rate.\n"
        )
    elif p:
        out.append(f"\npython-threatexchange floor: {p.get('status')}\n")
    ready = ", ".join(f"{s:.1f} s" for s in results.ready_s)
    hits = cfg["hit_fraction"]
    out.append(
        f"\n{results.entries:,} PDQ entries in one bank on PostgreSQL 127.0.0.1 (filled by "
        f"`COPY` in {results.fill_s:.0f} s, plus {cfg['known']} known hashes and half of "
        f"the {cfg['pictures']} test pictures through `Banks.add`); each `safehold serve` "
        f"replica was ready (`/readyz` 200) {ready} after it started. Load: "
        f"{cfg['concurrency']} keep-alive connections from one separate process (closed "
        f"loop, round-robin over the replicas), {cfg['warmup_s']:g} s warm-up, then "
        f"{cfg['duration_s']:g} s measured per row. Lookup values: {cfg['n_queries']:,} "
        f"PDQ hashes in rotation, {hits:.0%} of them 0–16 bits from a known entry (they "
        "match, which costs a database read for the match details), the rest random; "
        f"scans: {cfg['pictures']} synthetic {cfg['picture_size'][0]}×"
        f"{cfg['picture_size'][1]} JPEGs in rotation, half of them banked. *errors*: "
        "non-200 answers plus answers with the wrong number of matches. *× pytx*: the "
        "service's values/s (or scans/s) over pytx's calls/s in process with as many "
        "threads as there are replicas. *server cores*: CPU used by the replica processes; "
        "*client cores*: the load generator, which shares the machine's 2 cores; *other "
        "load*: everything else, including PostgreSQL's work for these requests.\n"
    )
    return "\n".join(out)


# --------------------------------------------------------------------------- entry


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="load benchmark child processes")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--client", help="JSON spec (internal): run the load generator")
    group.add_argument("--pytx", help="JSON spec (internal): python-threatexchange floor")
    args = parser.parse_args(argv)
    spec = json.loads(args.client or args.pytx)
    result = client_main(spec) if args.client else pytx_main(spec)
    out = Path(spec["out"])
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(out)
    return 0


if __name__ == "__main__":
    sys.exit(_main())

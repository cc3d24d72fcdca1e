"""Replica start-up: loading N PDQ entries from PostgreSQL into an index replica.

The goal (issue 4): "start-up of a replica loads the index from the database in bulk
(10M PDQ entries well under a minute)". For each size the parent creates a fresh
PostgreSQL database (dropped afterwards), fills ``entries`` with N random PDQ hashes
through one ``COPY`` straight into the table (:func:`copy_pdq_entries`: the same
columns ``Banks.add`` writes, with ``value_digest = sha256("pdq:" + value)``; far
faster than the import path for 10M rows), then runs two fresh child processes
(``python -m benchmarks.bench_startup --child …``):

1. **load**: ``IndexReplica(db).load()``, timed, as ``safehold serve`` does at start-up;
   resident memory before, after and at peak;
2. **breakdown**: the same steps ``load()`` takes, timed one by one — reading the
   rows (``Banks.signals``), decoding the hex values, the entry → bank map, building
   ``PdqIndex`` — plus two references for the database read alone: the same query
   through psycopg without SQLAlchemy, and ``COPY … TO STDOUT (FORMAT binary)`` with
   the hex decoded by PostgreSQL and the rows parsed by NumPy (the floor of the read).

No peer: python-threatexchange keeps its index in files (HMA pickles it); the numbers
stand alone against the goal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    REPO_ROOT,
    fmt_load,
    fmt_mib,
    fmt_num,
    machine_busy_seconds,
    markdown_table,
    peak_rss_bytes,
    process_cpu_seconds,
    reset_peak_rss,
    rss_bytes,
    wait_for_idle,
)

GOAL_SECONDS = 60.0
"""10M PDQ entries loaded "well under a minute"."""
SEED = 20240611
FILL_CHUNK = 250_000


# --------------------------------------------------------------------------- filling


def conninfo(url: str) -> str:
    """A psycopg connection string from a SQLAlchemy URL."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def pdq_chunks(n: int, seed: int, chunk: int = FILL_CHUNK) -> Iterator[np.ndarray]:
    """The (n, 32) uint8 random hashes for (n, seed) in slices of ``chunk`` rows.

    Concatenated, the same bytes as ``bench_index.make_codes(n, seed)`` (one generator
    stream), so 10M rows never need 320 MB at once in the filler.
    """
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        yield np.frombuffer(rng.bytes(m * 32), dtype=np.uint8).reshape(m, 32)


def _copy_text(bank_id: int, codes: np.ndarray, added_at: str) -> str:
    hexes = codes.tobytes().hex()
    sha = hashlib.sha256
    lines = []
    for i in range(len(codes)):
        h = hexes[i * 64 : (i + 1) * 64]
        d = sha(b"pdq:" + h.encode()).hexdigest()
        lines.append(f"{bank_id}\tpdq\t{h}\t{d}\t[]\tlocal\t{added_at}\n")
    return "".join(lines)


def copy_pdq_entries(
    url: str,
    bank_id: int,
    n: int,
    seed: int = SEED,
    *,
    rebuild_indexes: bool = True,
    log: Callable[[str], None] = print,
) -> float:
    """Fill ``entries`` with ``n`` random PDQ rows of one bank by COPY; returns seconds.

    Rows look exactly like ``Banks.add``'s: signal type ``pdq``, lower-case hex value,
    ``value_digest`` = sha256 of ``"pdq:" + value`` (hex), labels ``[]``, source
    ``local``, ``added_at`` now. They bypass the change log, like rows that were there
    before the replica started. With ``rebuild_indexes`` the unique constraint and the
    (bank, signal type) index are dropped during the COPY and rebuilt afterwards (one
    sort instead of ten million random B-tree inserts), inside the same transaction.
    """
    import psycopg

    t0 = time.perf_counter()
    added_at = datetime.now(UTC).isoformat()
    with psycopg.connect(conninfo(url)) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '512MB'")
        if rebuild_indexes:
            conn.execute("ALTER TABLE entries DROP CONSTRAINT uq_entries_bank_value")
            conn.execute("DROP INDEX ix_entries_bank_signal")
        cols = "bank_id, signal_type, value, value_digest, labels, source, added_at"
        with conn.cursor() as cur, cur.copy(f"COPY entries ({cols}) FROM STDIN") as copy:
            done = 0
            for codes in pdq_chunks(n, seed):
                copy.write(_copy_text(bank_id, codes, added_at))
                done += len(codes)
                if done % 2_000_000 == 0 and n >= 4_000_000:
                    log(f"[startup] {done:,} of {n:,} rows sent ({time.perf_counter() - t0:.0f} s)")
        if rebuild_indexes:
            conn.execute(
                "ALTER TABLE entries ADD CONSTRAINT uq_entries_bank_value "
                "UNIQUE (bank_id, value_digest)"
            )
            conn.execute("CREATE INDEX ix_entries_bank_signal ON entries (bank_id, signal_type)")
        conn.commit()
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) entries")  # visibility map + statistics, as autovacuum would
    return time.perf_counter() - t0


def create_bank(url: str, name: str = "bench") -> int:
    from safehold.banks import Banks
    from safehold.store import Database

    with Database(url) as db:
        return int(Banks(db).create(name).id)


# --------------------------------------------------------------------------- child


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _backend_cpu(url: str) -> dict[int, float]:
    """CPU seconds so far of the PostgreSQL server processes serving this database."""
    import psycopg

    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        pids = [
            int(r[0])
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ]
    return {pid: process_cpu_seconds(pid) for pid in pids}


class LoadWatch:
    """Wall time, this process's CPU, PostgreSQL's CPU for this database, and the rest."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.out: dict[str, float] = {}

    def __enter__(self) -> LoadWatch:
        self._pg = _backend_cpu(self.url)
        self._busy = machine_busy_seconds()
        self._own = process_cpu_seconds(os.getpid())
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t0
        own = process_cpu_seconds(os.getpid()) - self._own
        busy = machine_busy_seconds() - self._busy
        after = _backend_cpu(self.url)
        pg = sum(after.values()) - sum(self._pg.get(pid, 0.0) for pid in after)
        self.out = {
            "own_cores": round(own / wall, 2),
            "postgres_cores": round(pg / wall, 2),
            "other_cores": round(max(0.0, busy - own - pg) / wall, 2),
        }


def child_load(url: str) -> dict[str, Any]:
    """``IndexReplica(db).load()`` in this fresh process, timed, with memory."""
    from safehold.banks.replica import IndexReplica
    from safehold.store import Database

    out: dict[str, Any] = {"rss_imports": rss_bytes()}
    db = Database(url, upgrade=False)
    with db.engine.connect():  # the pool's first connection, outside the clock
        pass
    replica = IndexReplica(db)
    out["rss_baseline"] = rss_bytes()
    reset_peak_rss()
    with LoadWatch(url) as watch:
        seconds, matcher = _time(replica.load)
    out.update(
        load_s=seconds,
        entries=len(matcher),
        rss_after=rss_bytes(),
        rss_peak=peak_rss_bytes(),
        cpu_s=time.process_time(),
        **watch.out,
    )
    db.close()
    return out


def _binary_copy_rows(url: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ids, bank ids and codes via COPY (FORMAT binary), hex decoded by PostgreSQL."""
    import psycopg

    row = np.dtype(
        [
            ("nf", ">i2"),
            ("l1", ">i4"),
            ("id", ">i8"),
            ("l2", ">i4"),
            ("bank", ">i8"),
            ("l3", ">i4"),
            ("code", "u1", (32,)),
        ]
    )
    query = (
        "COPY (SELECT id, bank_id, decode(value, 'hex') FROM entries "
        "WHERE signal_type = 'pdq' ORDER BY id) TO STDOUT (FORMAT binary)"
    )
    buf = bytearray()
    with psycopg.connect(conninfo(url)) as conn, conn.cursor() as cur, cur.copy(query) as copy:
        for block in copy:
            buf += block
    body = memoryview(buf)[19:-2]  # 11-byte signature + flags + extension length; trailer
    rows = np.frombuffer(body, dtype=row)
    if len(rows) and not (rows["l3"] == 32).all():
        raise ValueError("a PDQ value did not decode to 32 bytes")
    return rows["id"].astype(np.int64), rows["bank"].astype(np.int64), rows["code"].copy()


def _timed_batches(batches: Iterator[Any]) -> Iterator[tuple[float, Any]]:
    """Each batch with the seconds spent producing it (the generator's own work)."""
    while True:
        t0 = time.perf_counter()
        try:
            item = next(batches)
        except StopIteration:
            return
        yield time.perf_counter() - t0, item


def child_breakdown(url: str) -> dict[str, Any]:
    """The steps of ``IndexReplica.load()`` timed one by one, plus read references.

    Follows whichever path the matcher has: ``Banks.pdq_codes`` (arrays straight from
    the database) when it exists, else ``Banks.signals`` (text rows) + hex decoding.
    Batches are processed as they arrive, as the matcher does (holding every row as
    Python objects would add garbage-collector time the real load does not have).
    """
    import psycopg

    from safehold.banks import Banks
    from safehold.banks.matcher import _EntryBanks
    from safehold.index import PdqIndex
    from safehold.store import Database

    out: dict[str, Any] = {}
    # 0. the compiled search kernels (numba's disk cache), which load() pays on first use
    t0 = time.perf_counter()
    warm = np.random.default_rng(1).integers(0, 256, (3000, 32), dtype=np.uint8)
    small = PdqIndex.build(np.arange(3000, dtype=np.int64), warm, mih_cutoff=1000)
    small.search(warm[:2], 31)
    small.close()
    out["kernels_s"] = time.perf_counter() - t0
    db = Database(url, upgrade=False)
    repo = Banks(db)
    names = [b.name for b in repo.list()]

    def text_rows() -> tuple[
        list[np.ndarray], list[np.ndarray], list[np.ndarray], dict[str, float]
    ]:
        t = {"fetch_s": 0.0, "arrays_s": 0.0, "decode_s": 0.0}
        ids, banks, codes = [], [], []
        for took, (b_ids, b_banks, values) in _timed_batches(
            iter(repo.signals("pdq", banks=names))
        ):
            t["fetch_s"] += took
            t0 = time.perf_counter()
            ids.append(np.asarray(b_ids, dtype=np.int64))
            banks.append(np.asarray(b_banks, dtype=np.int64))
            t1 = time.perf_counter()
            codes.append(
                np.frombuffer(bytes.fromhex("".join(values)), dtype=np.uint8).reshape(-1, 32)
            )
            t["arrays_s"] += t1 - t0
            t["decode_s"] += time.perf_counter() - t1
            del b_ids, b_banks, values
        return ids, banks, codes, t

    # 1. the database read (+ decoding) as the matcher does it
    with LoadWatch(url) as watch:
        if hasattr(repo, "pdq_codes"):
            out["path"] = "Banks.pdq_codes"
            t0 = time.perf_counter()
            ids, banks, codes = [], [], []
            for i, b, c in repo.pdq_codes(banks=names):
                ids.append(i)
                banks.append(b)
                codes.append(c)
            out["fetch_s"] = time.perf_counter() - t0
        else:
            out["path"] = "Banks.signals"
            ids, banks, codes, times = text_rows()
            out.update(times)
    out["fetch_cores"] = watch.out
    out["rows"] = int(sum(len(i) for i in ids))

    # 2. entry -> bank map, 3. the index
    t0 = time.perf_counter()
    all_ids = np.concatenate(ids)
    entry_banks = _EntryBanks()
    entry_banks.bulk(all_ids, np.concatenate(banks))
    out["entry_banks_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = PdqIndex.build(all_ids, np.concatenate(codes))
    out["build_s"] = time.perf_counter() - t0
    assert len(index) == out["rows"]
    index.close()
    del index, codes, ids, banks, entry_banks, all_ids

    # references for the read alone
    if out["path"] != "Banks.signals":  # the text-row path, for comparison
        t0 = time.perf_counter()
        ids, banks, codes, times = text_rows()
        out["signals_s"] = time.perf_counter() - t0
        out["signals_parts"] = times
        del ids, banks, codes
    query = "SELECT id, bank_id, value FROM entries WHERE signal_type = 'pdq' ORDER BY id"
    rows = 0
    with psycopg.connect(conninfo(url)) as conn, conn.cursor() as cur:
        t0 = time.perf_counter()
        cur.execute(query)
        while batch := cur.fetchmany(200_000):
            rows += len(batch)
        out["raw_fetch_s"] = time.perf_counter() - t0
    assert rows == out["rows"]
    t0 = time.perf_counter()
    b_ids, _b_banks, b_codes = _binary_copy_rows(url)
    out["binary_copy_s"] = time.perf_counter() - t0
    assert len(b_ids) == out["rows"] and b_codes.shape == (out["rows"], 32)
    db.close()
    return out


# --------------------------------------------------------------------------- parent


@dataclass
class StartupRow:
    n: int
    fill_s: float = 0.0
    load: dict[str, Any] = field(default_factory=dict)
    breakdown: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class StartupResults:
    rows: list[StartupRow] = field(default_factory=list)

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.rows]


def _run_child(mode: str, url: str, out: Path, timeout: float) -> dict[str, Any]:
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.bench_startup", "--child", mode, url, str(out)]
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


def run(
    sizes: Sequence[int] = (1_000_000,),
    *,
    breakdown: bool = True,
    cache_dir: Path = Path(".bench"),
    wait_idle: float = 0.0,
    timeout_s: float = 1800.0,
    log: Callable[[str], None] = print,
) -> StartupResults:
    from benchmarks.bench_store import PG_ADMIN, _pg_database

    results = StartupResults()
    work = cache_dir / "startup"
    work.mkdir(parents=True, exist_ok=True)
    for n in sizes:
        with _pg_database() as url:
            if url is None:
                results.rows.append(StartupRow(n, note=f"skipped: {PG_ADMIN} unreachable"))
                continue
            row = StartupRow(n)
            bank_id = create_bank(url)
            log(f"[startup] filling {n:,} PDQ entries by COPY ...")
            row.fill_s = copy_pdq_entries(url, bank_id, n, log=log)
            log(f"[startup] filled in {row.fill_s:.1f} s; loading a replica ...")
            wait_for_idle(wait_idle, log)
            row.load = _run_child("load", url, work / f"load-{n}.json", timeout_s)
            if row.load.get("status") == "ok":
                log(
                    f"[startup] n={n:,}: load {row.load['load_s']:.1f} s, "
                    f"RSS {row.load['rss_after'] / 2**20:.0f} MiB "
                    f"(peak {row.load['rss_peak'] / 2**20:.0f} MiB)"
                )
            else:
                log(f"[startup] n={n:,}: load {row.load['status']}")
            if breakdown:
                wait_for_idle(wait_idle, log)
                row.breakdown = _run_child("breakdown", url, work / f"parts-{n}.json", timeout_s)
                if row.breakdown.get("status") == "ok":
                    b = row.breakdown
                    log(
                        f"[startup] n={n:,}: read ({b['path']}) {b['fetch_s']:.1f} s, "
                        f"build {b['build_s']:.1f} s (refs: psycopg {b['raw_fetch_s']:.1f} s, "
                        f"binary COPY {b['binary_copy_s']:.1f} s)"
                    )
            results.rows.append(row)
    return results


# --------------------------------------------------------------------------- report


def _size(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n:,}"


def render(results: StartupResults) -> str:
    head = [
        "PDQ entries",
        "fill (COPY) s",
        "`load()` s",
        "entries/s",
        "RSS before MiB",
        "RSS after MiB",
        "peak RSS MiB",
        "replica cores",
        "PostgreSQL cores",
        "other load",
        "goal: 10M < 60 s",
    ]
    rows: list[list[str]] = []
    parts: list[list[str]] = []
    for r in results.rows:
        if r.note:
            rows.append([_size(r.n), r.note, *[""] * (len(head) - 2)])
            continue
        ld = r.load
        if ld.get("status") != "ok":
            rows.append([_size(r.n), fmt_num(r.fill_s, 1), ld.get("status", "—")] + [""] * 8)
        else:
            goal = ("yes" if ld["load_s"] < GOAL_SECONDS else "no") if r.n >= 10_000_000 else "—"
            rows.append(
                [
                    _size(r.n),
                    fmt_num(r.fill_s, 1),
                    fmt_num(ld["load_s"], 1),
                    fmt_num(ld["entries"] / ld["load_s"] if ld["load_s"] else None),
                    fmt_mib(ld["rss_baseline"]),
                    fmt_mib(ld["rss_after"]),
                    fmt_mib(ld["rss_peak"]),
                    fmt_num(ld.get("own_cores"), 2),
                    fmt_num(ld.get("postgres_cores"), 2),
                    fmt_load(ld.get("other_cores")),
                    goal,
                ]
            )
        b = r.breakdown
        if b.get("status") == "ok":
            steps = ("kernels_s", "fetch_s", "arrays_s", "decode_s", "entry_banks_s", "build_s")
            total = sum(b.get(k, 0.0) for k in steps)
            parts.append(
                [
                    _size(r.n),
                    f"`{b.get('path', 'Banks.signals')}`",
                    fmt_num(b["kernels_s"], 2),
                    fmt_num(b["fetch_s"], 1),
                    fmt_num(b.get("arrays_s"), 2),
                    fmt_num(b.get("decode_s"), 2),
                    fmt_num(b["entry_banks_s"], 2),
                    fmt_num(b["build_s"], 2),
                    fmt_num(total, 1),
                    fmt_num(b.get("signals_s"), 1),
                    fmt_num(b["raw_fetch_s"], 1),
                    fmt_num(b["binary_copy_s"], 1),
                ]
            )
        elif b:
            parts.append([_size(r.n), b.get("status", "—"), *[""] * 10])
    out = [markdown_table(head, rows)]
    out.append(
        "\n*fill*: one `COPY` of synthetic rows straight into `entries` (indexes rebuilt "
        "after), not part of start-up. *`load()`*: `IndexReplica(db).load()` in a fresh "
        "process after imports (what `safehold serve` does before `/readyz` turns 200): "
        "read every entry, decode, build the indexes, catch up with the change log. "
        "*RSS before*: the process after imports and opening the database; *after*: "
        "with the index loaded; *peak*: high-water mark during the load. *replica cores* "
        "and *PostgreSQL cores*: CPU time of the loading process and of the database "
        "server processes serving it, over the load's wall time; *other load*: the rest "
        "of the machine.\n"
    )
    if parts:
        out.append("#### Where the start-up time goes\n")
        out.append(
            markdown_table(
                [
                    "PDQ entries",
                    "read path",
                    "load search kernels s",
                    "read rows s",
                    "ids → arrays s",
                    "hex decode s",
                    "entry → bank map s",
                    "`PdqIndex.build` s",
                    "sum s",
                    "ref: `Banks.signals` + decode s",
                    "ref: psycopg rows s",
                    "ref: binary `COPY` + NumPy s",
                ],
                parts,
            )
        )
        out.append(
            "\nThe same steps as `load()`, timed one by one in a second fresh process, "
            "on the path the matcher takes (*read path*): `Banks.pdq_codes` (ids, bank ids "
            "and codes as arrays straight from the database; *read rows* includes the "
            "decoding) or `Banks.signals` (text rows, then *ids → arrays* and *hex decode*). "
            "*load search kernels*: the first `PdqIndex` use loads numba's compiled kernels "
            "from its disk cache (`load()` pays it inside the build). References for the "
            "read alone: the text-row path `Banks.signals` + hex decode (when the matcher no "
            "longer uses it); plain psycopg `SELECT id, bank_id, value … ORDER BY id` "
            "fetched in batches of 200,000 rows (no SQLAlchemy); and "
            "`COPY (SELECT id, bank_id, decode(value, 'hex') …) TO STDOUT (FORMAT binary)` "
            "parsed by NumPy as fixed-size rows (no Python object per row).\n"
        )
    return "\n".join(out)


# --------------------------------------------------------------------------- entry


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="replica start-up benchmark child process")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "URL", "OUT"), required=True)
    args = parser.parse_args(argv)
    mode, url, out = args.child
    result = child_load(url) if mode == "load" else child_breakdown(url)
    path = Path(out)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(_main())

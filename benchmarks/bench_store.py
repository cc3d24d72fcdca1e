"""Bank storage: bulk import of PDQ entries, re-import, and loading them back.

Measured on the embedded SQLite default (a file under the cache directory) and on
the PostgreSQL server at ``SAFEHOLD_TEST_POSTGRES`` (a fresh database, dropped
afterwards; skipped when unreachable). The goal is "1M PDQ entries in well under a
minute"; there is no peer in python-threatexchange for this (it keeps signals in
files), so the numbers stand alone against the goal.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import fmt_num, markdown_table

PG_ADMIN = os.environ.get(
    "SAFEHOLD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
GOAL_SECONDS = 60.0


@dataclass
class StoreRow:
    backend: str
    n: int
    validate_s: float = 0.0
    add_s: float = 0.0
    readd_s: float = 0.0
    load_s: float = 0.0
    index_s: float = 0.0
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class StoreResults:
    rows: list[StoreRow] = field(default_factory=list)

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.rows]


@contextmanager
def _pg_database() -> Iterator[str | None]:
    import psycopg

    admin = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    name = f"safehold_bench_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(admin, connect_timeout=3, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        yield None
        return
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _measure(backend: str, url: str, n: int) -> StoreRow:
    from safehold.banks import Banks, make_entry
    from safehold.index import PdqIndex
    from safehold.store import Database

    row = StoreRow(backend, n)
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    values = bytes(raw).hex()
    hexes = [values[i * 64 : (i + 1) * 64] for i in range(n)]
    with Database(url) as db:
        banks = Banks(db)
        banks.create("bench")
        t = time.perf_counter()
        entries = [make_entry("pdq", h, ["A1"], "ncmec", str(i)) for i, h in enumerate(hexes)]
        row.validate_s = time.perf_counter() - t
        t = time.perf_counter()
        added = banks.add("bench", entries)
        row.add_s = time.perf_counter() - t
        assert added.added == n, added
        t = time.perf_counter()
        again = banks.add("bench", entries)
        row.readd_s = time.perf_counter() - t
        assert again.unchanged == n, again
        del entries
        t = time.perf_counter()
        ids, codes = [], []
        for batch_ids, _banks, batch_values in banks.signals("pdq"):
            ids.extend(batch_ids)
            codes.append(np.frombuffer(bytes.fromhex("".join(batch_values)), dtype=np.uint8))
        row.load_s = time.perf_counter() - t
        t = time.perf_counter()
        index = PdqIndex.build(np.asarray(ids), np.concatenate(codes).reshape(-1, 32))
        row.index_s = time.perf_counter() - t
        assert len(index) == n
        index.close()
    return row


def run(
    sizes: tuple[int, ...] = (1_000_000,),
    cache_dir: Path = Path(".bench"),
    log: Callable[[str], None] = print,
) -> StoreResults:
    results = StoreResults()
    for n in sizes:
        path = cache_dir / f"store-{n}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        log(f"store: SQLite, {n:,} PDQ entries ...")
        results.rows.append(_measure("SQLite (file)", f"sqlite:///{path}", n))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        log(f"store: PostgreSQL, {n:,} PDQ entries ...")
        with _pg_database() as url:
            if url is None:
                results.rows.append(
                    StoreRow("PostgreSQL", n, note=f"skipped: {PG_ADMIN} unreachable")
                )
            else:
                results.rows.append(_measure("PostgreSQL 127.0.0.1", url, n))
    return results


def render(results: StoreResults) -> str:
    headers = [
        "database",
        "entries",
        "validate s",
        "import s",
        "import + validate s",
        "re-import s",
        "load s",
        "index build s",
        "goal: import < 60 s",
    ]
    rows = []
    for r in results.rows:
        if r.note:
            rows.append([r.backend, f"{r.n:,}", r.note, "", "", "", "", "", ""])
            continue
        total = r.validate_s + r.add_s
        rows.append(
            [
                r.backend,
                f"{r.n:,}",
                fmt_num(r.validate_s, 1),
                fmt_num(r.add_s, 1),
                fmt_num(total, 1),
                fmt_num(r.readd_s, 1),
                fmt_num(r.load_s, 1),
                fmt_num(r.index_s, 1),
                "yes" if total < GOAL_SECONDS else "no",
            ]
        )
    note = (
        "*validate*: `make_entry` on every row (hex, labels, source); *import*: "
        "`Banks.add` in one transaction (COPY / executemany into a staging table, then "
        "two set-based statements); *re-import*: the same entries again (nothing "
        "changes); *load*: reading every PDQ entry back (`Banks.signals`), as a "
        "matcher does at start-up; *index build*: `PdqIndex.build` on them."
    )
    return markdown_table(headers, rows) + "\n\n" + note + "\n"

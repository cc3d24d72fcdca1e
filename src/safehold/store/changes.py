"""The change log: an append-only table that index replicas follow.

Every write that changes what matches (an entry added or removed, a bank created,
changed, shared or deleted, an API key revoked) appends rows to ``changes`` in the
same transaction. A replica remembers the id of the last change it applied and
reads on from there; on PostgreSQL a ``NOTIFY`` wakes it the moment the writing
transaction commits, so a change made through one replica is matchable on every
other one within milliseconds.

Ids must become visible in order, or a replica reading ``id > cursor`` could pass
over a change whose transaction commits late. On PostgreSQL writers therefore take
a transaction-level advisory lock before appending (so sequence values are handed
out and committed one transaction at a time); SQLite serialises writers anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text

from safehold.store.models import Change, Entry, UTCDateTime, utcnow

CHANNEL = "safehold_changes"
_LOCK_KEY = 0x5AFE_C4A6  # pg_advisory_xact_lock key for change-log writers

ADD, REMOVE, BANK, KEY = "add", "remove", "bank", "key"


@dataclass(frozen=True)
class ChangeRow:
    id: int
    op: str
    bank_id: int | None
    entry_id: int | None
    key_id: str | None
    at: datetime


def record(
    conn: Connection,
    op: str,
    *,
    bank_id: int | None = None,
    entry_ids: Sequence[int] = (),
    key_id: str | None = None,
) -> None:
    """Append changes inside the caller's transaction (one row per entry id, or one row)."""
    now = utcnow()
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    if entry_ids:
        if postgres:
            conn.execute(
                text(
                    "INSERT INTO changes (op, bank_id, entry_id, at) "
                    "SELECT :op, :bank, e, :at FROM unnest(CAST(:ids AS bigint[])) AS e"
                ).bindparams(bindparam("at", type_=UTCDateTime())),
                {"op": op, "bank": bank_id, "ids": list(entry_ids), "at": now},
            )
        else:
            proc = Change.__table__.c.at.type._cached_bind_processor(conn.dialect)
            at = proc(now) if proc else now
            conn.exec_driver_sql(
                "INSERT INTO changes (op, bank_id, entry_id, at) VALUES (?, ?, ?, ?)",
                [(op, bank_id, int(i), at) for i in entry_ids],
            )
    else:
        conn.execute(
            insert(Change),
            {"op": op, "bank_id": bank_id, "key_id": key_id, "at": now},
        )
    if postgres:
        conn.execute(text("SELECT pg_notify(:ch, '')"), {"ch": CHANNEL})


def latest(conn: Connection) -> int:
    """The id of the newest change (0 when there is none)."""
    return int(conn.execute(select(func.coalesce(func.max(Change.id), 0))).scalar_one())


def since(conn: Connection, after: int, limit: int = 50_000) -> list[ChangeRow]:
    """Changes with id greater than ``after``, oldest first."""
    rows = conn.execute(
        select(Change.id, Change.op, Change.bank_id, Change.entry_id, Change.key_id, Change.at)
        .where(Change.id > after)
        .order_by(Change.id)
        .limit(limit)
    )
    return [ChangeRow(*r) for r in rows]


def added_entries(conn: Connection, after: int, upto: int) -> list[tuple[int, int, str, str]]:
    """(entry id, bank id, signal type, value) of the entries added by the ``add`` changes
    with ids in ``(after, upto]`` that still exist (one range join, for bulk imports)."""
    rows = conn.execute(
        select(Entry.id, Entry.bank_id, Entry.signal_type, Entry.value)
        .join(Change, Change.entry_id == Entry.id)
        .where(Change.id > after, Change.id <= upto, Change.op == ADD)
    )
    return [(int(a), int(b), str(c), str(d)) for a, b, c, d in rows]


def prune(conn: Connection, before: datetime) -> int:
    """Delete changes older than ``before`` (replicas that start later load from the tables).

    The newest change is always kept: SQLite numbers a new row max(id) + 1, so an empty
    table would hand out ids again below the cursors running replicas hold, and they
    would pass over every change until the ids caught up."""
    newest = latest(conn)
    result = conn.execute(delete(Change).where(Change.at < before, Change.id < newest))
    return int(result.rowcount or 0)

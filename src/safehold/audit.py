"""The audit log: append-only, every entry chained to the one before it by SHA-256.

Each entry's ``hash`` is ``sha256(prev_hash + "\\n" + canonical_json(entry))`` where the
canonical JSON holds the entry's ``id``, ``at`` (ISO-8601 UTC with microseconds),
``tenant``, ``actor``, ``action``, ``object_type``, ``object_id``, ``details`` and
``prev_hash`` with sorted keys and no whitespace. The first entry's ``prev_hash`` is 64
zeros. Changing any field of any entry, deleting or inserting an entry, or cutting
entries off the end (the one-row ``audit_head`` table remembers the last id, hash and
count) makes :meth:`AuditLog.verify` fail and name the first bad entry.

Appending starts with an ``UPDATE`` of ``audit_head``: a row lock on PostgreSQL and the
write lock on SQLite, so concurrent writers append one at a time and ids are handed out
without gaps (``id = last_id + 1``). When ``session`` is given the entry is written in
the caller's transaction: it exists exactly when the change it records does.

Actors are ``user:NAME``, ``key:KEY_ID``, ``cli:LOGIN`` or ``system``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from safehold.errors import InvalidValue
from safehold.store.db import Database
from safehold.store.models import AuditEntry, AuditHead, utcnow

GENESIS = "0" * 64

ACTIONS: tuple[str, ...] = (
    "login",
    "logout",
    "login_failed",
    "view_case",
    "view_media",
    "decide",
    "confirm",
    "reject",
    "comment",
    "assign",
    "reopen",
    "close",
    "export",
    "user_create",
    "role_change",
    "user_disable",
    "password_change",
    "settings_change",
    "rules_change",
    "preserve",
    "webhook_replay",
    "key_create",
    "key_revoke",
)
"""The actions safehold records (others are accepted: later issues add their own)."""

_VERIFY_BATCH = 5000


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: the same text for the same value."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _plain(details: Any) -> dict[str, Any]:
    """``details`` as it reads back from a JSON column (tuples → lists, keys → text)."""
    if details is None:
        return {}
    if not isinstance(details, dict):
        raise InvalidValue("audit details must be a JSON object")
    out = json.loads(json.dumps(details, default=str, ensure_ascii=False))
    assert isinstance(out, dict)
    return out


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    *,
    id: int,
    at: datetime,
    tenant: str,
    actor: str,
    action: str,
    object_type: str | None,
    object_id: str | None,
    details: dict[str, Any],
    prev_hash: str,
) -> str:
    body = canonical_json(
        {
            "id": id,
            "at": _iso(at),
            "tenant": tenant,
            "actor": actor,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "details": details,
            "prev_hash": prev_hash,
        }
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntryInfo:
    id: int
    at: datetime
    tenant: str
    actor: str
    action: str
    object_type: str | None
    object_id: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def object(self) -> str | None:
        """``TYPE:ID`` (e.g. ``case:12``), or ``None``."""
        if self.object_type is None:
            return None
        return f"{self.object_type}:{self.object_id}" if self.object_id else self.object_type

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": _iso(self.at),
            "tenant": self.tenant,
            "actor": self.actor,
            "action": self.action,
            "object_type": self.object_type,
            "object_id": self.object_id,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    bad_id: int | None = None
    reason: str | None = None
    last_id: int = 0
    last_hash: str = GENESIS

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bad_id": self.bad_id,
            "reason": self.reason,
            "last_id": self.last_id,
            "last_hash": self.last_hash,
        }


def entry_info(row: AuditEntry) -> AuditEntryInfo:
    return AuditEntryInfo(
        id=int(row.id),
        at=row.at,
        tenant=row.tenant,
        actor=row.actor,
        action=row.action,
        object_type=row.object_type,
        object_id=row.object_id,
        details=dict(row.details or {}),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _text(value: object, limit: int, what: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidValue(f"audit {what} must be non-empty text without NUL")
    return value[:limit]


class AuditLog:
    """Append to, list and verify the tamper-evident audit log."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def _session(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.db.session() as s:
                yield s

    def append(
        self,
        actor: str,
        action: str,
        *,
        object_type: str | None = None,
        object_id: str | int | None = None,
        details: dict[str, Any] | None = None,
        tenant: str = "default",
        session: Session | None = None,
    ) -> AuditEntryInfo:
        """Append one entry (in ``session``'s transaction when given) and return it."""
        actor = _text(actor, 128, "actor")
        action = _text(action, 64, "action")
        tenant = _text(tenant, 64, "tenant")
        otype = None if object_type is None else _text(object_type, 32, "object type")
        oid = None if object_id is None else _text(str(object_id), 64, "object id")
        plain = _plain(details)
        with self._session(session) as s:
            last_id, last_hash = self._lock_head(s)
            new_id = last_id + 1
            at = utcnow()
            fields: dict[str, Any] = {
                "id": new_id,
                "at": at,
                "tenant": tenant,
                "actor": actor,
                "action": action,
                "object_type": otype,
                "object_id": oid,
                "details": plain,
                "prev_hash": last_hash,
            }
            digest = entry_hash(**fields)
            s.execute(insert(AuditEntry).values(**fields, hash=digest))
            s.execute(
                update(AuditHead).where(AuditHead.id == 1).values(last_id=new_id, last_hash=digest)
            )
        return AuditEntryInfo(
            id=new_id,
            at=at,
            tenant=tenant,
            actor=actor,
            action=action,
            object_type=otype,
            object_id=oid,
            details=plain,
            prev_hash=last_hash,
            hash=digest,
        )

    @staticmethod
    def _lock_head(s: Session) -> tuple[int, str]:
        """Lock the head row (creating it on first use) and return (last id, last hash)."""
        stmt = (
            update(AuditHead)
            .where(AuditHead.id == 1)
            .values(count=AuditHead.count + 1)
            .returning(AuditHead.last_id, AuditHead.last_hash)
        )
        row = s.execute(stmt).first()
        if row is None:
            dialect = s.get_bind().dialect.name
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as dialect_insert
            else:
                from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
            s.execute(
                dialect_insert(AuditHead)
                .values(id=1, last_id=0, last_hash=GENESIS, count=0)
                .on_conflict_do_nothing(index_elements=["id"])
            )
            row = s.execute(stmt).first()
            assert row is not None
        return int(row[0]), str(row[1])

    def head(self) -> tuple[int, str, int]:
        """(last id, last hash, count) as the head row records them."""
        with self.db.session() as s:
            row = s.execute(select(AuditHead.last_id, AuditHead.last_hash, AuditHead.count)).first()
        if row is None:
            return 0, GENESIS, 0
        return int(row[0]), str(row[1]), int(row[2])

    def list(
        self,
        tenant: str | None = None,
        object_type: str | None = None,
        object_id: str | int | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[AuditEntryInfo]:
        """Entries newest first, filtered; page on with ``before_id`` = the last id seen."""
        limit = max(1, min(int(limit), 1000))
        q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if tenant is not None:
            q = q.where(AuditEntry.tenant == tenant)
        if object_type is not None:
            q = q.where(AuditEntry.object_type == object_type)
        if object_id is not None:
            q = q.where(AuditEntry.object_id == str(object_id))
        if actor is not None:
            q = q.where(AuditEntry.actor == actor)
        if action is not None:
            q = q.where(AuditEntry.action == action)
        if before_id is not None:
            q = q.where(AuditEntry.id < int(before_id))
        with self.db.session() as s:
            return [entry_info(r) for r in s.scalars(q)]

    def verify(self) -> VerifyResult:
        """Recompute the whole chain; the first entry that does not check out is ``bad_id``.

        Entries appended while this runs are followed up to the head as it is read at the
        end, so a busy log verifies too."""
        checked = 0
        prev_id, prev_hash = 0, GENESIS

        def bad(bad_id: int, reason: str) -> VerifyResult:
            return VerifyResult(False, checked, bad_id, reason, prev_id, prev_hash)

        head_id, head_hash, head_count = self.head()
        while True:
            with self.db.session() as s:
                rows = list(
                    s.scalars(
                        select(AuditEntry)
                        .where(AuditEntry.id > prev_id, AuditEntry.id <= head_id)
                        .order_by(AuditEntry.id)
                        .limit(_VERIFY_BATCH)
                    )
                )
            for row in rows:
                rid = int(row.id)
                if rid != prev_id + 1:
                    return bad(prev_id + 1, f"entry {prev_id + 1} is missing (deleted)")
                if row.prev_hash != prev_hash:
                    return bad(
                        rid,
                        f"entry {rid} does not follow entry {prev_id}: its prev_hash is not "
                        "that entry's hash (an entry was changed, deleted or inserted)",
                    )
                details = row.details if isinstance(row.details, dict) else {}
                digest = entry_hash(
                    id=rid,
                    at=row.at,
                    tenant=row.tenant,
                    actor=row.actor,
                    action=row.action,
                    object_type=row.object_type,
                    object_id=row.object_id,
                    details=details,
                    prev_hash=row.prev_hash,
                )
                if digest != row.hash or not isinstance(row.details, dict):
                    return bad(rid, f"entry {rid} was changed: its hash does not match its fields")
                prev_id, prev_hash = rid, row.hash
                checked += 1
            if len(rows) == _VERIFY_BATCH:
                continue
            if prev_id < head_id:
                return bad(
                    prev_id + 1,
                    f"entries {prev_id + 1}..{head_id} are missing: the log was cut "
                    f"after entry {prev_id} (the head records {head_id})",
                )
            if prev_hash != head_hash:
                return bad(prev_id, f"entry {prev_id} is not the entry the head records")
            # entries appended meanwhile: follow them to the new head
            new_head = self.head()
            if new_head[0] != head_id:
                head_id, head_hash, head_count = new_head
                continue
            with self.db.session() as s:
                beyond = s.scalar(select(func.min(AuditEntry.id)).where(AuditEntry.id > head_id))
                total = int(s.scalar(select(func.count()).select_from(AuditEntry)) or 0)
            if beyond is not None:
                new_head = self.head()
                if new_head[0] != head_id:
                    head_id, head_hash, head_count = new_head
                    continue
                return bad(
                    int(beyond),
                    f"entry {beyond} is after the head (entry {head_id}): it was inserted "
                    "outside the audit log",
                )
            if total != checked or head_count != checked:
                new_head = self.head()
                if new_head[0] != head_id:
                    head_id, head_hash, head_count = new_head
                    continue
                return bad(
                    head_id,
                    f"the log holds {total} entries and the head counts {head_count}, "
                    f"but the chain has {checked}",
                )
            return VerifyResult(True, checked, None, None, prev_id, prev_hash)


def check_exported(entries: Iterable[Any]) -> list[str]:
    """Problems with audit entries exported as dicts (``AuditEntryInfo.to_dict()``, as in
    custody records): each entry's hash must match its fields, and an entry that follows
    another by id must chain to it. An empty list means they hold."""
    problems: list[str] = []
    prev: dict[str, Any] | None = None
    for e in entries:
        if not isinstance(e, dict):
            problems.append("custody entry: not an object")
            continue
        try:
            digest = entry_hash(
                id=int(e["id"]),
                at=datetime.fromisoformat(str(e["at"])),
                tenant=e["tenant"],
                actor=e["actor"],
                action=e["action"],
                object_type=e.get("object_type"),
                object_id=e.get("object_id"),
                details=e.get("details") or {},
                prev_hash=e["prev_hash"],
            )
        except (KeyError, TypeError, ValueError):
            problems.append(f"custody entry {e.get('id')}: malformed")
            continue
        if digest != e.get("hash"):
            problems.append(f"custody entry {e['id']}: its hash does not match its fields")
        if (
            prev is not None
            and int(e["id"]) == int(prev["id"]) + 1
            and e["prev_hash"] != prev["hash"]
        ):
            problems.append(f"custody entry {e['id']}: does not follow entry {prev['id']}")
        prev = e
    return problems


def actor_of(who: object) -> str:
    """The audit actor for a user (``user:NAME``) or a ready-made actor string."""
    name = getattr(who, "name", None)
    if isinstance(name, str) and hasattr(who, "role"):
        return f"user:{name}"
    if isinstance(who, str) and who:
        return who
    return "system"


__all__ = [
    "ACTIONS",
    "GENESIS",
    "AuditEntryInfo",
    "AuditLog",
    "VerifyResult",
    "actor_of",
    "canonical_json",
    "check_exported",
    "entry_hash",
    "entry_info",
]

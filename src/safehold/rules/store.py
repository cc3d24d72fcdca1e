"""Stored, versioned rule sets: one active version per tenant, hit counters per rule.

Every save makes a new version (``last + 1``) and, by default, activates it; an older
version can be activated again. :meth:`RuleSets.active` is what the scan path calls: it
caches the active version per process and re-checks the database at most once a second,
so every replica picks up a new version within about a second. A tenant without stored
rules gets :data:`DEFAULT_RULES` (``id=None``, ``version=0``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from safehold.audit import AuditLog
from safehold.errors import InvalidValue, NotFound
from safehold.rules.language import parse_rules
from safehold.rules.model import RuleSet
from safehold.store.db import Database
from safehold.store.models import RuleHit, utcnow
from safehold.store.models import RuleSet as RuleSetRow

DEFAULT_SOURCE = (resources.files("safehold.rules") / "default.yaml").read_text("utf-8")
DEFAULT_RULES: RuleSet = parse_rules(DEFAULT_SOURCE, filename="default.yaml")
"""The built-in rules: a match in a block bank -> block + review in queue ``default``."""

RECHECK_SECONDS = 1.0
_LOCK_KEY = 0x5AFE_0005  # pg_advisory_xact_lock(key, hashtext(tenant)) for rule-set writers
MAX_NOTE = 2000


@dataclass(frozen=True)
class StoredRules:
    id: int | None
    version: int
    rules: RuleSet
    source: str
    created_at: datetime | None
    created_by: str | None
    active: bool
    tenant: str = "default"
    note: str | None = None

    def to_dict(self, *, source: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "version": self.version,
            "tenant": self.tenant,
            "active": self.active,
            "builtin": self.id is None,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "created_by": self.created_by,
            "note": self.note,
            **self.rules.summary(),
        }
        if source:
            out["source"] = self.source
        return out


@dataclass(frozen=True)
class RuleHitInfo:
    rule: str
    shadow: bool
    hits: int
    last_hit_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "shadow": self.shadow,
            "hits": self.hits,
            "last_hit_at": self.last_hit_at.isoformat() if self.last_hit_at else None,
        }


def builtin(tenant: str = "default", *, active: bool = True) -> StoredRules:
    return StoredRules(
        id=None,
        version=0,
        rules=DEFAULT_RULES,
        source=DEFAULT_SOURCE,
        created_at=None,
        created_by=None,
        active=active,
        tenant=tenant,
        note="built-in default rules",
    )


class RuleSets:
    """The rule-set versions of every tenant in one database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, StoredRules]] = {}

    # ----------------------------------------------------------------- reading

    def active(self, tenant: str = "default") -> StoredRules:
        """The tenant's active version (the built-in rules when none is stored)."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(tenant)
        if cached is not None and now - cached[0] < RECHECK_SECONDS:
            return cached[1]
        with self.db.session() as s:
            current = s.execute(
                select(RuleSetRow.id)
                .where(RuleSetRow.tenant == tenant, RuleSetRow.active.is_(True))
                .order_by(RuleSetRow.version.desc())
                .limit(1)
            ).scalar_one_or_none()
            if cached is not None and cached[1].id == current:
                stored = cached[1]
            elif current is None:
                stored = builtin(tenant)
            else:
                stored = _stored(s.get_one(RuleSetRow, current))
        with self._lock:
            self._cache[tenant] = (now, stored)
        return stored

    def forget(self, tenant: str | None = None) -> None:
        """Drop the cached active version (all tenants when ``None``)."""
        with self._lock:
            if tenant is None:
                self._cache.clear()
            else:
                self._cache.pop(tenant, None)

    def versions(self, tenant: str = "default") -> list[StoredRules]:
        """Every stored version of the tenant, newest first."""
        with self.db.session() as s:
            rows = s.scalars(
                select(RuleSetRow)
                .where(RuleSetRow.tenant == tenant)
                .order_by(RuleSetRow.version.desc())
            ).all()
            return [_stored(r) for r in rows]

    def get(self, version: int, tenant: str = "default") -> StoredRules:
        """One version; 0 is the built-in rules. Raises NotFound naming the versions."""
        if version == 0:
            with self.db.session() as s:
                stored_active = s.scalar(
                    select(RuleSetRow.id).where(
                        RuleSetRow.tenant == tenant, RuleSetRow.active.is_(True)
                    )
                )
            return builtin(tenant, active=stored_active is None)
        with self.db.session() as s:
            row = s.scalars(
                select(RuleSetRow).where(RuleSetRow.tenant == tenant, RuleSetRow.version == version)
            ).one_or_none()
            if row is not None:
                return _stored(row)
            have = s.scalars(
                select(RuleSetRow.version)
                .where(RuleSetRow.tenant == tenant)
                .order_by(RuleSetRow.version)
            ).all()
        listed = ", ".join(str(v) for v in have) if have else "none stored yet"
        raise NotFound(
            f"no rules version {version} for tenant {tenant!r}; versions: {listed} "
            "(0 is the built-in rules)"
        )

    # ----------------------------------------------------------------- writing

    def save(
        self,
        text_: str,
        *,
        tenant: str = "default",
        created_by: str | None = None,
        note: str | None = None,
        activate: bool = True,
        filename: str = "<rules>",
    ) -> StoredRules:
        """Validate ``text_`` and store it as the next version (active unless told not)."""
        parse_rules(text_, filename=filename)  # raises RulesError with every problem
        if note is not None and len(note) > MAX_NOTE:
            raise InvalidValue(f"the note is longer than {MAX_NOTE} characters")
        with self.db.session() as s:
            self._serialise(s, tenant)
            if activate:
                s.execute(
                    update(RuleSetRow)
                    .where(RuleSetRow.tenant == tenant, RuleSetRow.active.is_(True))
                    .values(active=False)
                )
            last = s.scalar(select(func.max(RuleSetRow.version)).where(RuleSetRow.tenant == tenant))
            row = RuleSetRow(
                tenant=tenant,
                version=(last or 0) + 1,
                source=text_,
                active=activate,
                created_at=utcnow(),
                created_by=created_by,
                note=note,
            )
            s.add(row)
            s.flush()
            _audit(
                self.db,
                s,
                created_by,
                tenant,
                row.id,
                {"version": row.version, "activated": activate, "note": note},
            )
            stored = _stored(row)
        self.forget(tenant)
        return stored

    def activate(
        self, version: int, tenant: str = "default", *, by: str | None = None
    ) -> StoredRules:
        """Make a stored version the active one."""
        if version != 0:
            self.get(version, tenant)  # NotFound naming the versions
        with self.db.session() as s:
            self._serialise(s, tenant)
            s.execute(
                update(RuleSetRow)
                .where(RuleSetRow.tenant == tenant, RuleSetRow.active.is_(True))
                .values(active=False)
            )
            if version == 0:  # back to the built-in rules
                _audit(self.db, s, by, tenant, None, {"version": 0, "activated": True})
                stored = builtin(tenant)
            else:
                row = s.scalars(
                    select(RuleSetRow).where(
                        RuleSetRow.tenant == tenant, RuleSetRow.version == version
                    )
                ).one()
                row.active = True
                s.flush()
                _audit(self.db, s, by, tenant, row.id, {"version": version, "activated": True})
                stored = _stored(row)
        self.forget(tenant)
        return stored

    def _serialise(self, s: Session, tenant: str) -> None:
        if s.get_bind().dialect.name == "postgresql":
            s.execute(
                text("SELECT pg_advisory_xact_lock(:k, hashtext(:t))"),
                {"k": _LOCK_KEY, "t": tenant},
            )

    # ----------------------------------------------------------------- hit counters

    def record_hits(
        self,
        ruleset_id: int | None,
        fired: Iterable[str],
        shadow: Iterable[str] = (),
        *,
        session: Session | None = None,
    ) -> None:
        """Count one hit for each fired and each shadow rule (in ``session``'s
        transaction when given). The built-in rules (``ruleset_id=None``) are not counted."""
        if ruleset_id is None:
            return
        keys = sorted({(name, False) for name in fired} | {(name, True) for name in shadow})
        if not keys:
            return
        if session is not None:
            _upsert_hits(session, ruleset_id, keys)
            return
        with self.db.session() as s:
            _upsert_hits(s, ruleset_id, keys)

    def hits(self, ruleset_id: int | None) -> list[RuleHitInfo]:
        """The hit counters of a version, by rule name (shadow counters after acting ones)."""
        if ruleset_id is None:
            return []
        with self.db.session() as s:
            rows = s.scalars(
                select(RuleHit)
                .where(RuleHit.ruleset_id == ruleset_id)
                .order_by(RuleHit.rule, RuleHit.shadow)
            ).all()
            return [RuleHitInfo(r.rule, r.shadow, r.hits, r.last_hit_at) for r in rows]

    def hit_table(self, stored: StoredRules) -> list[dict[str, Any]]:
        """Every rule of a version in evaluation order with its counters (zeros included)."""
        counts = {(h.rule, h.shadow): h for h in self.hits(stored.id)}
        out = []
        for rule in stored.rules.ordered():
            h = counts.get((rule.name, rule.shadow))
            out.append(
                {
                    **rule.summary(),
                    "hits": h.hits if h else 0,
                    "last_hit_at": h.last_hit_at.isoformat() if h and h.last_hit_at else None,
                }
            )
        return out


def _upsert_hits(s: Session, ruleset_id: int, keys: list[tuple[str, bool]]) -> None:
    now = utcnow()
    dialect = s.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for name, is_shadow in keys:
        stmt = insert(RuleHit).values(
            ruleset_id=ruleset_id, rule=name[:100], shadow=is_shadow, hits=1, last_hit_at=now
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["ruleset_id", "rule", "shadow"],
            set_={"hits": RuleHit.hits + 1, "last_hit_at": now},
        )
        s.execute(stmt)


def _stored(row: RuleSetRow) -> StoredRules:
    return StoredRules(
        id=row.id,
        version=row.version,
        rules=parse_rules(row.source, filename=f"rules v{row.version}"),
        source=row.source,
        created_at=row.created_at,
        created_by=row.created_by,
        active=row.active,
        tenant=row.tenant,
        note=row.note,
    )


def _audit(
    db: Database,
    s: Session,
    actor: str | None,
    tenant: str,
    ruleset_id: int | None,
    details: dict[str, Any],
) -> None:
    """A ``rules_change`` audit entry in the same transaction."""
    AuditLog(db).append(
        actor or "system",
        "rules_change",
        object_type="ruleset",
        object_id=ruleset_id,
        details=details,
        tenant=tenant,
        session=s,
    )

"""Preservation requests from law enforcement, and freezing an account's data.

A police force (or another authority) asks a platform to **preserve** an account's data
until legal process arrives (in the US a request under 18 U.S.C. 2703(f); elsewhere
its local equivalent). :class:`Preservations` records such a request — its reference,
the authority, the account, the **scope** (which kinds of data, which dates) and the
deadline — and tracks it until it is fulfilled (a law-enforcement package was given,
:mod:`safehold.refer.package`) or withdrawn:

``record``
    checks and stores the request (status ``open``); the deadline must be in the
    future, the scope's keys known, the reference and authority are cleaned text.
``preserve``
    freezes what the scope covers: every stored upload of the account's events in the
    date range goes into the evidence vault (origin ``preservation:<id>:media:<media
    id>``: once per request and upload; an upload the rules preserved already is not
    stored twice), with the event's context; the account's event
    records in the range are kept as a JSON evidence item of their own (origin
    ``preservation:<id>:events:<sha256>``: a new snapshot only when they changed); and
    every vault item of those events — including what the rules preserved before — is
    put on a **legal hold** with the request's reference, which keeps it past its
    retention for as long as the request is open (status ``preserved``).
``fulfil``
    closes the request as answered, with the package made for it (its directory,
    export id and manifest hash); the holds stay unless ``release_holds`` (the
    authority may still need the originals).
``withdraw``
    closes the request as withdrawn and releases its holds (a hold another open
    request with the same reference also needs is kept).

Deadlines: :meth:`Preservations.overdue` lists open requests past their deadline,
:meth:`Preservations.due_soon` those due within ``SAFEHOLD_PRESERVATION_DUE_DAYS``
(default 7) days. Nothing is released automatically when a deadline passes: a person
decides (fulfil, withdraw, or ask the authority for an extension).

Every step is in the audit log (object ``preservation``, the request id):
``preservation_record``, ``preservation_preserve``, ``preservation_fulfil``,
``preservation_withdraw``, ``preservation_release``; the vault adds its own
``vault_preserve`` and ``vault_hold`` / ``vault_release`` entries for each item.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from safehold.audit import AuditEntryInfo, AuditLog
from safehold.banks.entries import check_tenant
from safehold.errors import Conflict, InvalidValue, NotFound, UnknownLabel, preview
from safehold.media_store import MediaStore
from safehold.refer.vault import EvidenceVault, HoldInfo, ItemInfo, VaultNotConfigured
from safehold.store.db import Database
from safehold.store.models import (
    AuditEntry,
    Case,
    CaseItem,
    Event,
    Media,
    PreservationRequest,
    utcnow,
)
from safehold.taxonomy import normalize_label

AUDIT_OBJECT = "preservation"
ACTIONS = (
    "preservation_record",
    "preservation_preserve",
    "preservation_fulfil",
    "preservation_withdraw",
    "preservation_release",
)
"""The audit actions of preservation requests."""

SCOPE_KINDS: dict[str, str] = {
    "content": "the account's stored uploads (the content itself) and their context",
    "account": "the account signals the platform sent (IP addresses, devices, linked ids)",
    "events": "the account's event records: when, what was scanned, matches, decisions",
    "decisions": "reviewers' decisions on the account's cases",
    "reports": "reports from the public or partners about the account's content",
}
"""The kinds of data a request's scope can name (``True`` / ``False`` each)."""
DEFAULT_KINDS: tuple[str, ...] = ("content", "account", "events")
SCOPE_KEYS: tuple[str, ...] = (*SCOPE_KINDS, "since", "until")

STATUSES: tuple[str, ...] = ("open", "preserved", "fulfilled", "withdrawn")
OPEN_STATUSES: tuple[str, ...] = ("open", "preserved")

DUE_DAYS_ENV = "SAFEHOLD_PRESERVATION_DUE_DAYS"
DEFAULT_DUE_DAYS = 7
MAX_DEADLINE_DAYS = 3650
MAX_REFERENCE = 128
MAX_AUTHORITY = 200
MAX_ACCOUNT = 256
MAX_NOTES = 4000
MAX_EVENTS = 50_000
"""Most event records one preservation keeps (the newest, when an account has more)."""

_HIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)
"""Control, zero-width and bidi-override characters: never kept in short fields."""


# --------------------------------------------------------------------------- text


def clean_field(value: object, what: str, limit: int, *, required: bool = True) -> str:
    """One line of text from outside: NFC, without control, zero-width or bidi-override
    characters, whitespace collapsed, at most ``limit`` characters."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidValue(f"{what} must be text")
    if "\x00" in value:
        raise InvalidValue(f"{what} must not contain NUL")
    text = " ".join(_HIDDEN.sub(" ", unicodedata.normalize("NFC", value)).split())
    if required and not text:
        raise InvalidValue(f"{what} is required")
    if len(text) > limit:
        raise InvalidValue(f"{what} is longer than {limit} characters ({len(text)})")
    return text


def clean_notes(value: object, what: str = "the notes", limit: int = MAX_NOTES) -> str:
    """Free text: line breaks kept, other control and bidi-override characters removed."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidValue(f"{what} must be text")
    if "\x00" in value:
        raise InvalidValue(f"{what} must not contain NUL")
    text = unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
    lines = [" ".join(_HIDDEN.sub(" ", line).split()) for line in text.split("\n")]
    text = "\n".join(lines).strip()
    if len(text) > limit:
        raise InvalidValue(f"{what} is longer than {limit} characters ({len(text)})")
    return text


def clean_account(value: object) -> str:
    """An account id as the platform sends it (compared exactly with the events')."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue("the account id is required (the platform's id of the account)")
    text = value.strip()
    if len(text) > MAX_ACCOUNT or _HIDDEN.search(text):
        raise InvalidValue(
            f"the account id must be at most {MAX_ACCOUNT} characters without control characters"
        )
    return text


def _actor(by: object) -> str:
    return clean_field(by, "who (the actor)", 128)


# --------------------------------------------------------------------------- times


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_when(value: object, what: str, *, end_of_day: bool = False) -> datetime | None:
    """A datetime from a ``datetime``, a ``date`` (its start, or its end with
    ``end_of_day``) or ISO-8601 text (a date, or a date and time; UTC when no zone)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, date):
        day = value
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > 40:
            raise InvalidValue(f"{what}: {preview(text)} is not a date")
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
            else:
                return _aware(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError:
            raise InvalidValue(
                f"{what}: {preview(text)} is not a date (YYYY-MM-DD) or an ISO-8601 time"
            ) from None
    else:
        raise InvalidValue(f"{what} must be a date or a time")
    if end_of_day:
        return datetime.combine(day, time.max, tzinfo=UTC)
    return datetime.combine(day, time.min, tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return _aware(value).isoformat() if value is not None else None


def due_days(environ: Mapping[str, str] | None = None) -> int:
    """``SAFEHOLD_PRESERVATION_DUE_DAYS``: how many days before its deadline a request
    counts as due soon (default 7)."""
    env = os.environ if environ is None else environ
    raw = env.get(DUE_DAYS_ENV, "").strip()
    if not raw:
        return DEFAULT_DUE_DAYS
    try:
        days = int(raw)
    except ValueError:
        raise InvalidValue(f"{DUE_DAYS_ENV}: {preview(raw)} is not a whole number") from None
    if not 0 <= days <= 365:
        raise InvalidValue(f"{DUE_DAYS_ENV}: {days} is not between 0 and 365")
    return days


# --------------------------------------------------------------------------- scope


@dataclass(frozen=True)
class Scope:
    """What a request covers: kinds of data and an optional date range (inclusive)."""

    kinds: tuple[str, ...] = DEFAULT_KINDS
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, value: Mapping[str, Any] | Scope | None) -> Scope:
        """From JSON: ``{"content": true, "account": true, "events": false, "since":
        "2026-01-01", "until": "2026-03-31"}``. Kinds left out are not covered (all of
        ``content``, ``account`` and ``events`` when no kind is named); unknown keys are
        refused."""
        if isinstance(value, Scope):
            return value
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise InvalidValue("the scope must be a JSON object")
        unknown = [str(k) for k in value if k not in SCOPE_KEYS]
        if unknown:
            raise InvalidValue(
                f"the scope has unknown keys ({', '.join(preview(k, 30) for k in unknown)}): "
                f"use {', '.join(SCOPE_KEYS)}"
            )
        named = {k: value[k] for k in SCOPE_KINDS if k in value}
        for k, v in named.items():
            if not isinstance(v, bool):
                raise InvalidValue(f"the scope's {k} must be true or false")
        kinds = tuple(k for k in SCOPE_KINDS if named.get(k)) if named else DEFAULT_KINDS
        if not kinds:
            raise InvalidValue(
                f"the scope covers nothing: name at least one of {', '.join(SCOPE_KINDS)}"
            )
        since = parse_when(value.get("since"), "the scope's since")
        until = parse_when(value.get("until"), "the scope's until", end_of_day=True)
        if since is not None and until is not None and since > until:
            raise InvalidValue("the scope's since is after its until")
        return cls(kinds, since, until)

    @classmethod
    def from_options(
        cls, kinds: Iterable[str] | None = None, since: object = None, until: object = None
    ) -> Scope:
        """From command-line or form values: kind names (``content,account``) and dates."""
        value: dict[str, Any] = {}
        for k in kinds or ():
            for part in str(k).split(","):
                name = part.strip().lower()
                if not name:
                    continue
                if name not in SCOPE_KINDS:
                    raise InvalidValue(
                        f"unknown kind of data {preview(name, 30)}: use {', '.join(SCOPE_KINDS)}"
                    )
                value[name] = True
        if since not in (None, ""):
            value["since"] = since
        if until not in (None, ""):
            value["until"] = until
        return cls.parse(value)

    def covers(self, at: datetime | None) -> bool:
        """Whether a moment is in the date range (no moment: only without a range)."""
        if at is None:
            return self.since is None and self.until is None
        at = _aware(at)
        if self.since is not None and at < self.since:
            return False
        return not (self.until is not None and at > self.until)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: k in self.kinds for k in SCOPE_KINDS}
        out["since"] = _iso(self.since)
        out["until"] = _iso(self.until)
        return out

    def describe(self) -> str:
        if not self.kinds:
            return "nothing (the stored scope is not valid: record the request again)"
        when = "any date"
        if self.since is not None or self.until is not None:
            start = self.since.date().isoformat() if self.since else "the beginning"
            end = self.until.date().isoformat() if self.until else "now"
            when = f"{start} to {end}"
        return f"{', '.join(self.kinds)}; {when}"


# --------------------------------------------------------------------------- views


@dataclass(frozen=True)
class RequestInfo:
    id: int
    tenant: str
    reference: str
    authority: str
    account_id: str
    scope: Scope
    status: str
    received_at: datetime
    deadline_at: datetime | None
    case_id: int | None
    vault_items: list[int]
    notes: str
    created_by: str
    closed_at: datetime | None

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    def overdue(self, now: datetime | None = None) -> bool:
        """Open and past its deadline."""
        return (
            self.open
            and self.deadline_at is not None
            and _aware(self.deadline_at) < (now or utcnow())
        )

    def due_soon(self, days: int | None = None, now: datetime | None = None) -> bool:
        """Open, not yet overdue, due within ``days`` (``SAFEHOLD_PRESERVATION_DUE_DAYS``)."""
        now = now or utcnow()
        if not self.open or self.deadline_at is None or self.overdue(now):
            return False
        window = timedelta(days=due_days() if days is None else days)
        return _aware(self.deadline_at) <= now + window

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "reference": self.reference,
            "authority": self.authority,
            "account_id": self.account_id,
            "scope": self.scope.to_json(),
            "status": self.status,
            "received_at": _iso(self.received_at),
            "deadline_at": _iso(self.deadline_at),
            "overdue": self.overdue(),
            "case_id": self.case_id,
            "vault_items": list(self.vault_items),
            "notes": self.notes,
            "created_by": self.created_by,
            "closed_at": _iso(self.closed_at),
        }


def _scope_of(raw: Any) -> Scope:
    try:
        return Scope.parse(raw if isinstance(raw, Mapping) else None)
    except InvalidValue:  # a row edited outside safehold: it covers nothing
        return Scope(kinds=())


def request_info(row: PreservationRequest) -> RequestInfo:
    return RequestInfo(
        id=int(row.id),
        tenant=row.tenant,
        reference=row.reference,
        authority=row.authority,
        account_id=row.account_id,
        scope=_scope_of(row.scope),
        status=row.status,
        received_at=row.received_at,
        deadline_at=row.deadline_at,
        case_id=row.case_id,
        vault_items=[int(i) for i in row.vault_items or [] if isinstance(i, int)],
        notes=row.notes or "",
        created_by=row.created_by,
        closed_at=row.closed_at,
    )


@dataclass(frozen=True)
class PreserveResult:
    request: RequestInfo
    items: list[int]
    """Every vault item the request holds now."""
    new_items: list[int]
    """Items this call stored in the vault."""
    held: list[int]
    """Items this call put on hold (those already held by the request are not counted)."""
    events: int
    """Event records of the account within the scope."""
    skipped: list[str] = field(default_factory=list)
    """What could not be preserved, and why (e.g. an upload whose file is gone)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": self.request.to_dict(),
            "items": self.items,
            "new_items": self.new_items,
            "held": self.held,
            "events": self.events,
            "skipped": self.skipped,
        }


def _labels_of(matches: Iterable[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for m in matches:
        if not isinstance(m, dict):
            continue
        for label in m.get("labels") or []:
            try:
                seen[normalize_label(str(label))] = None
            except UnknownLabel:
                continue
    return list(seen)


def event_record(ev: Event, kinds: Sequence[str]) -> dict[str, Any]:
    """What a preservation keeps of one event: its id, time, content id and decision;
    with ``events`` the rules, actions and the rules' input without the account
    signals; with ``account`` the account signals the platform sent."""
    ctx = ev.context if isinstance(ev.context, dict) else {}
    out: dict[str, Any] = {
        "id": int(ev.id),
        "at": _iso(ev.at),
        "kind": ev.kind,
        "content_id": ev.content_id,
        "account_id": ev.account_id,
        "decision": ev.decision,
    }
    if "events" in kinds:
        out["rules"] = list(ev.rules or [])
        out["actions"] = [a.get("kind") for a in ev.actions or [] if isinstance(a, dict)]
        out["media_id"] = ev.media_id
        for key in ("matches", "signals", "media", "classifications", "reports"):
            if key in ctx:
                out[key] = ctx[key]
    if "account" in kinds:
        account = ctx.get("account")
        out["account"] = dict(account) if isinstance(account, dict) else {}
    return out


# --------------------------------------------------------------------------- the service


class Preservations:
    """Record, preserve, track, fulfil and withdraw preservation requests."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog | None = None,
        *,
        vault: EvidenceVault | None = None,
        media: MediaStore | None = None,
    ) -> None:
        self.db = db
        self.audit = audit or AuditLog(db)
        self.vault = vault
        self.media = media

    # -- recording

    def record(
        self,
        tenant: str,
        reference: str,
        authority: str,
        account_id: str,
        scope: Mapping[str, Any] | Scope | None,
        deadline: datetime | date | str | None,
        by: str,
        notes: str = "",
        *,
        received_at: datetime | None = None,
        case_id: int | None = None,
        now: datetime | None = None,
    ) -> RequestInfo:
        """Check and store a request (status ``open``); audited ``preservation_record``."""
        check_tenant(tenant)
        by = _actor(by)
        reference = clean_field(reference, "the reference (the authority's case number)", 128)
        authority = clean_field(authority, "the authority (who asked)", MAX_AUTHORITY)
        account_id = clean_account(account_id)
        parsed = Scope.parse(scope)
        notes = clean_notes(notes)
        now = now or utcnow()
        when = parse_when(deadline, "the deadline", end_of_day=True)
        if when is not None:
            if when <= now:
                raise InvalidValue(
                    f"the deadline ({when.date().isoformat()}) is not in the future: give the "
                    "date by which the data must be kept"
                )
            if when > now + timedelta(days=MAX_DEADLINE_DAYS):
                raise InvalidValue(f"the deadline is more than {MAX_DEADLINE_DAYS} days away")
        received = _aware(received_at) if received_at is not None else now
        if received > now + timedelta(minutes=5):
            raise InvalidValue("the request cannot have been received in the future")
        with self.db.session() as s:
            if case_id is not None:
                found = s.get(Case, int(case_id))
                if found is None or found.tenant != tenant:
                    raise NotFound(f"no case {preview(case_id)}")
            duplicate = s.scalar(
                select(PreservationRequest.id).where(
                    PreservationRequest.tenant == tenant,
                    PreservationRequest.reference == reference,
                    PreservationRequest.account_id == account_id,
                    PreservationRequest.status.in_(OPEN_STATUSES),
                )
            )
            if duplicate is not None:
                raise Conflict(
                    f"preservation request {duplicate} with reference {preview(reference)} for "
                    "this account is already open"
                )
            row = PreservationRequest(
                tenant=tenant,
                reference=reference,
                authority=authority,
                account_id=account_id,
                scope=parsed.to_json(),
                status="open",
                received_at=received,
                deadline_at=when,
                case_id=int(case_id) if case_id is not None else None,
                vault_items=[],
                notes=notes,
                created_by=by,
            )
            s.add(row)
            s.flush()
            self.audit.append(
                by,
                "preservation_record",
                object_type=AUDIT_OBJECT,
                object_id=int(row.id),
                details={
                    "reference": reference,
                    "authority": authority,
                    "account_id": account_id,
                    "scope": parsed.to_json(),
                    "deadline_at": _iso(when),
                    "received_at": _iso(received),
                    "case_id": row.case_id,
                },
                tenant=tenant,
                session=s,
            )
            return request_info(row)

    # -- reading

    def _row(
        self, s: Session, request_id: int, tenant: str | None, *, lock: bool = False
    ) -> PreservationRequest:
        try:
            rid = int(request_id)
        except (TypeError, ValueError):
            raise NotFound(f"no preservation request {preview(request_id)}") from None
        if lock:  # a row lock on PostgreSQL, the write lock on SQLite
            s.execute(
                update(PreservationRequest)
                .where(PreservationRequest.id == rid)
                .values(status=PreservationRequest.status)
            )
        row = s.get(PreservationRequest, rid, populate_existing=lock)
        if row is None or (tenant is not None and row.tenant != tenant):
            raise NotFound(f"no preservation request {rid}")
        return row

    def get(self, request_id: int, tenant: str | None = None) -> RequestInfo:
        with self.db.session() as s:
            return request_info(self._row(s, request_id, tenant))

    def open(self, tenant: str | None = None) -> list[RequestInfo]:
        """Open requests, soonest deadline first (those without one last)."""
        with self.db.session() as s:
            q = select(PreservationRequest).where(PreservationRequest.status.in_(OPEN_STATUSES))
            if tenant is not None:
                q = q.where(PreservationRequest.tenant == tenant)
            rows = [request_info(r) for r in s.scalars(q)]
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(rows, key=lambda r: (_aware(r.deadline_at) if r.deadline_at else far, r.id))

    def overdue(self, tenant: str | None = None, now: datetime | None = None) -> list[RequestInfo]:
        now = now or utcnow()
        return [r for r in self.open(tenant) if r.overdue(now)]

    def due_soon(
        self, tenant: str | None = None, days: int | None = None, now: datetime | None = None
    ) -> list[RequestInfo]:
        now = now or utcnow()
        days = due_days() if days is None else days
        return [r for r in self.open(tenant) if r.due_soon(days, now)]

    def history(self, request_id: int, tenant: str | None = None) -> list[AuditEntryInfo]:
        """The request's audit entries, oldest first."""
        from safehold.audit import entry_info

        with self.db.session() as s:
            self._row(s, request_id, tenant)
            rows = s.scalars(
                select(AuditEntry)
                .where(
                    AuditEntry.object_type == AUDIT_OBJECT,
                    AuditEntry.object_id == str(int(request_id)),
                )
                .order_by(AuditEntry.id)
            ).all()
            return [entry_info(r) for r in rows]

    def package(self, request_id: int, tenant: str | None = None) -> dict[str, Any] | None:
        """The package a request was fulfilled with (from its ``preservation_fulfil``
        entry), or ``None``."""
        for entry in reversed(self.history(request_id, tenant)):
            if entry.action == "preservation_fulfil":
                found = entry.details.get("package")
                return dict(found) if isinstance(found, dict) else None
        return None

    # -- preserving

    def _need_vault(self) -> EvidenceVault:
        if self.vault is None:
            raise VaultNotConfigured(
                "preserving an account needs the evidence vault: set SAFEHOLD_VAULT_KEY or "
                "SAFEHOLD_VAULT_KEY_FILE (see docs/vault.md)"
            )
        return self.vault

    def _events(self, req: RequestInfo) -> list[Event]:
        q = (
            select(Event)
            .where(Event.tenant == req.tenant, Event.account_id == req.account_id)
            .order_by(Event.id.desc())
            .limit(MAX_EVENTS)
        )
        if req.scope.since is not None:
            q = q.where(Event.at >= req.scope.since)
        if req.scope.until is not None:
            q = q.where(Event.at <= req.scope.until)
        with self.db.session() as s:
            rows = list(s.scalars(q))
            for r in rows:
                s.expunge(r)
        return sorted(rows, key=lambda e: int(e.id))

    def _cases_of(self, event_ids: Sequence[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        with self.db.session() as s:
            for start in range(0, len(event_ids), 500):
                chunk = list(event_ids[start : start + 500])
                for ev_id, case_id in s.execute(
                    select(CaseItem.event_id, CaseItem.case_id)
                    .where(CaseItem.event_id.in_(chunk))
                    .order_by(CaseItem.id)
                ):
                    if ev_id is not None:
                        out.setdefault(int(ev_id), int(case_id))
        return out

    def preserve(self, request_id: int, by: str, tenant: str | None = None) -> PreserveResult:
        """Preserve what the request covers into the vault and put it on legal hold
        (idempotent: running it again adds only what is new). Audited
        ``preservation_preserve``."""
        by = _actor(by)
        vault = self._need_vault()
        req = self.get(request_id, tenant)
        if not req.open:
            raise Conflict(f"preservation request {req.id} is {req.status}: nothing to preserve")
        kinds = req.scope.kinds
        events = self._events(req)
        case_of = self._cases_of([int(e.id) for e in events])
        items: dict[int, None] = dict.fromkeys(req.vault_items)
        new: list[int] = []
        skipped: list[str] = []
        why = f"preservation request {req.reference} ({req.authority})"
        if "content" in kinds:
            for found in self._preserve_media(vault, req, events, case_of, by, why, skipped):
                if found.created:
                    new.append(found.id)
                items[found.id] = None
            # what the rules (or anyone) preserved of these events before
            for ev in events:
                for existing in vault.list_items(tenant=req.tenant, event_id=int(ev.id)):
                    items[existing.id] = None
        if "events" in kinds or "account" in kinds:
            record = self._preserve_events(vault, req, events, by, why)
            if record is not None:
                if record.created:
                    new.append(record.id)
                items[record.id] = None
        held: list[int] = []
        gone: set[int] = set()
        for item_id in items:
            try:
                before = vault.holds(item_id, tenant=req.tenant)
            except NotFound:  # expired or deleted since: nothing to hold
                skipped.append(f"vault item {item_id} no longer exists")
                gone.add(item_id)
                continue
            if any(h.active and h.reference == req.reference for h in before):
                continue
            vault.hold(
                item_id,
                by=by,
                reason=f"{why}: preserve until fulfilled or withdrawn",
                reference=req.reference,
                tenant=req.tenant,
            )
            held.append(item_id)
        all_items = [i for i in items if i not in gone]
        with self.db.session() as s:
            row = self._row(s, req.id, req.tenant, lock=True)
            if row.status not in OPEN_STATUSES:
                raise Conflict(f"preservation request {row.id} was {row.status} meanwhile")
            merged = [
                i for i in dict.fromkeys([*(row.vault_items or []), *all_items]) if i not in gone
            ]
            row.vault_items = [int(i) for i in merged]
            row.status = "preserved"
            if row.case_id is None:
                cases = sorted(set(case_of.values()))
                if len(cases) == 1:
                    row.case_id = cases[0]
            self.audit.append(
                by,
                "preservation_preserve",
                object_type=AUDIT_OBJECT,
                object_id=int(row.id),
                details={
                    "reference": row.reference,
                    "account_id": row.account_id,
                    "scope": req.scope.to_json(),
                    "events": len(events),
                    "items": row.vault_items,
                    "new_items": new,
                    "held": held,
                    "skipped": skipped,
                },
                tenant=row.tenant,
                session=s,
            )
            info = request_info(row)
        return PreserveResult(info, info.vault_items, new, held, len(events), skipped)

    def _preserve_media(
        self,
        vault: EvidenceVault,
        req: RequestInfo,
        events: Sequence[Event],
        case_of: Mapping[int, int],
        by: str,
        why: str,
        skipped: list[str],
    ) -> list[ItemInfo]:
        out: list[ItemInfo] = []
        seen: set[int] = set()
        for ev in events:
            if ev.media_id is None or int(ev.media_id) in seen:
                continue
            seen.add(int(ev.media_id))
            with self.db.session() as s:
                media = s.get(Media, int(ev.media_id))
                if media is not None:
                    s.expunge(media)
            if media is None or media.tenant != req.tenant:
                skipped.append(f"event {ev.id}: its stored upload {ev.media_id} no longer exists")
                continue
            existing = [
                i
                for i in vault.list_items(tenant=req.tenant, event_id=int(ev.id))
                if i.sha256 == media.sha256
            ]
            if existing:  # the rules (or another request) preserved it already: hold that
                out.append(existing[-1])
                continue
            if self.media is None:
                skipped.append(f"event {ev.id}: no media directory configured")
                continue
            try:
                path: Path = self.media.path(int(media.id))
            except NotFound:
                skipped.append(f"event {ev.id}: the file of its stored upload {media.id} is gone")
                continue
            ctx = ev.context if isinstance(ev.context, dict) else {}
            context = {
                "preservation": {
                    "request_id": req.id,
                    "reference": req.reference,
                    "authority": req.authority,
                    "account_id": req.account_id,
                },
                "event": event_record(ev, ("events",)),
                "account_id": ev.account_id,
                "content_id": ev.content_id,
                "input": {
                    k: v for k, v in ctx.items() if k != "account" or "account" in req.scope.kinds
                },
                "upload": {
                    "media_id": int(media.id),
                    "sha256": media.sha256,
                    "kind": media.kind,
                    "format": media.format,
                    "size": int(media.size),
                    "width": media.width,
                    "height": media.height,
                    "kept_at": _iso(media.created_at),
                },
            }
            item = vault.preserve(
                path,
                by=by,
                context=context,
                tenant=req.tenant,
                labels=_labels_of(ctx.get("matches") or []),
                event_id=int(ev.id),
                case_id=case_of.get(int(ev.id)),
                content_id=ev.content_id,
                sha256=media.sha256,
                origin=f"preservation:{req.id}:media:{int(media.id)}",
                reason=why,
            )
            out.append(item)
        return out

    def _preserve_events(
        self, vault: EvidenceVault, req: RequestInfo, events: Sequence[Event], by: str, why: str
    ) -> ItemInfo | None:
        if not events:
            return None
        records = [event_record(ev, req.scope.kinds) for ev in events]
        body = {
            "format": "safehold-account-events",
            "version": 1,
            "tenant": req.tenant,
            "account_id": req.account_id,
            "request": {"id": req.id, "reference": req.reference, "authority": req.authority},
            "scope": req.scope.to_json(),
            "events": records,
        }
        data = (json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        digest = hashlib.sha256(data).hexdigest()
        return vault.preserve(
            data,
            by=by,
            context={
                "preservation": {
                    "request_id": req.id,
                    "reference": req.reference,
                    "authority": req.authority,
                    "account_id": req.account_id,
                },
                "kind": "account_events",
                "events": len(records),
                "upload": {"format": "json", "kind": "record"},
            },
            tenant=req.tenant,
            content_id=f"account-events:{req.account_id}"[:256],
            sha256=digest,
            origin=f"preservation:{req.id}:events:{digest[:32]}",
            reason=why,
        )

    # -- closing

    def _release(self, req: RequestInfo, by: str, reason: str) -> tuple[list[int], list[int]]:
        """Release the request's holds, except those another open request with the same
        reference also covers: (released, kept). Each release is its own transaction
        (and its own ``vault_release`` entry)."""
        vault = self.vault
        if vault is None or not req.vault_items:
            return [], []
        with self.db.session() as s:
            others = s.scalars(
                select(PreservationRequest.vault_items).where(
                    PreservationRequest.tenant == req.tenant,
                    PreservationRequest.reference == req.reference,
                    PreservationRequest.status.in_(OPEN_STATUSES),
                    PreservationRequest.id != req.id,
                )
            ).all()
        shared = {int(i) for items in others for i in items or [] if isinstance(i, int)}
        released: list[int] = []
        kept: list[int] = []
        for item_id in req.vault_items:
            if item_id in shared:
                kept.append(item_id)
                continue
            try:
                holds = vault.holds(item_id, tenant=req.tenant)
            except NotFound:  # expired since
                continue
            if not any(h.active and h.reference == req.reference for h in holds):
                continue
            vault.release(
                item_id, by=by, reason=reason[:2000], reference=req.reference, tenant=req.tenant
            )
            released.append(item_id)
        return released, kept

    def _close(
        self,
        req: RequestInfo,
        by: str,
        *,
        status: str | None,
        action: str,
        details: dict[str, Any],
        case_id: int | None = None,
    ) -> RequestInfo:
        with self.db.session() as s:
            row = self._row(s, req.id, req.tenant, lock=True)
            if status is not None:
                if row.status not in OPEN_STATUSES:
                    raise Conflict(f"preservation request {row.id} is {row.status} already")
                row.status = status
                row.closed_at = utcnow()
            if row.case_id is None and case_id is not None:
                row.case_id = case_id
            self.audit.append(
                by,
                action,
                object_type=AUDIT_OBJECT,
                object_id=int(row.id),
                details={"reference": row.reference, **details},
                tenant=row.tenant,
                session=s,
            )
            return request_info(row)

    def fulfil(
        self,
        request_id: int,
        by: str,
        package_dir: str | os.PathLike[str] | None = None,
        *,
        tenant: str | None = None,
        release_holds: bool = False,
        note: str = "",
    ) -> RequestInfo:
        """Close the request as answered; with ``package_dir`` the package made for it
        (its export id, case and manifest SHA-256 are recorded). The holds stay unless
        ``release_holds``. Audited ``preservation_fulfil``."""
        by = _actor(by)
        note = clean_notes(note, "the note")
        req = self.get(request_id, tenant)
        if not req.open:
            raise Conflict(f"preservation request {req.id} is {req.status} already")
        package = _package_facts(package_dir) if package_dir is not None else None
        case_id: int | None = None
        if package is not None:
            if package.get("tenant") != req.tenant:
                raise InvalidValue(f"the package is not one of tenant {req.tenant}")
            answers = package.get("request_id")
            if answers is not None and answers != req.id:
                raise InvalidValue(
                    f"the package answers preservation request {answers}, not {req.id}"
                )
            found = package.get("case_id")
            case_id = found if isinstance(found, int) else None
        released: list[int] = []
        kept: list[int] = []
        if release_holds:
            released, kept = self._release(
                req, by, f"preservation request {req.reference} fulfilled"
            )
        return self._close(
            req,
            by,
            status="fulfilled",
            action="preservation_fulfil",
            details={
                "package": package,
                "released": released,
                "kept": kept,
                "holds_kept": not release_holds,
                "note": note,
            },
            case_id=case_id,
        )

    def withdraw(
        self, request_id: int, by: str, reason: str, *, tenant: str | None = None
    ) -> RequestInfo:
        """Close the request as withdrawn and release its legal holds. Audited
        ``preservation_withdraw``."""
        by = _actor(by)
        reason = clean_notes(reason, "the reason")
        if not reason:
            raise InvalidValue("a reason is required to withdraw a preservation request")
        req = self.get(request_id, tenant)
        if not req.open:
            raise Conflict(f"preservation request {req.id} is {req.status} already")
        released, kept = self._release(
            req, by, f"preservation request {req.reference} withdrawn: {reason}"
        )
        return self._close(
            req,
            by,
            status="withdrawn",
            action="preservation_withdraw",
            details={"reason": reason, "released": released, "kept": kept},
        )

    def release_holds(
        self, request_id: int, by: str, reason: str, *, tenant: str | None = None
    ) -> list[int]:
        """Release the holds of a fulfilled request (when the authority no longer needs
        the originals). Audited ``preservation_release``."""
        by = _actor(by)
        reason = clean_notes(reason, "the reason")
        if not reason:
            raise InvalidValue("a reason is required to release the holds")
        req = self.get(request_id, tenant)
        if req.status != "fulfilled":
            raise Conflict(
                f"preservation request {req.id} is {req.status}: release the holds of a "
                "fulfilled request only (withdraw an open one)"
            )
        released, kept = self._release(req, by, f"preservation request {req.reference}: {reason}")
        self._close(
            req,
            by,
            status=None,
            action="preservation_release",
            details={"reason": reason, "released": released, "kept": kept},
        )
        return released

    def active_holds(self, request_id: int, tenant: str | None = None) -> list[HoldInfo]:
        """The active vault holds of the request's items (with its reference)."""
        req = self.get(request_id, tenant)
        if self.vault is None:
            return []
        out: list[HoldInfo] = []
        for item_id in req.vault_items:
            try:
                holds = self.vault.holds(item_id, tenant=req.tenant)
            except NotFound:
                continue
            out.extend(h for h in holds if h.active and h.reference == req.reference)
        return out

    def list(
        self,
        tenant: str | None = None,
        *,
        status: str | None = None,
        account_id: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[RequestInfo]:
        """Requests, newest first; ``status`` is one of :data:`STATUSES` or ``open``
        (open and preserved); page on with ``before`` (a request id)."""
        limit = max(1, min(int(limit), 1000))
        q = select(PreservationRequest).order_by(PreservationRequest.id.desc()).limit(limit)
        if tenant is not None:
            q = q.where(PreservationRequest.tenant == tenant)
        if status is not None:
            if status == "open":
                q = q.where(PreservationRequest.status.in_(OPEN_STATUSES))
            elif status in STATUSES:
                q = q.where(PreservationRequest.status == status)
            else:
                raise InvalidValue(
                    f"unknown status {preview(status, 30)}: use {', '.join(STATUSES)}"
                )
        if account_id is not None:
            q = q.where(PreservationRequest.account_id == account_id)
        if before is not None:
            q = q.where(PreservationRequest.id < int(before))
        with self.db.session() as s:
            return [request_info(r) for r in s.scalars(q)]


def _package_facts(package_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """What a fulfilment records of a package: from its manifest."""
    root = Path(package_dir)
    manifest = root / "manifest.json"
    try:
        data = manifest.read_bytes()
        parsed = json.loads(data)
    except (OSError, ValueError) as e:
        raise InvalidValue(
            f"{root} is not a package: its manifest.json cannot be read ({e})"
        ) from None
    if not isinstance(parsed, dict) or parsed.get("format") != "safehold-le-package":
        raise InvalidValue(f"{root} is not a law-enforcement package (see its manifest.json)")
    request = parsed.get("request") if isinstance(parsed.get("request"), dict) else {}
    return {
        "path": str(root.resolve()),
        "export_id": parsed.get("export_id"),
        "case_id": parsed.get("case", {}).get("id")
        if isinstance(parsed.get("case"), dict)
        else None,
        "tenant": parsed.get("tenant"),
        "request_id": request.get("id") if isinstance(request, dict) else None,
        "manifest_sha256": hashlib.sha256(data).hexdigest(),
        "files": len(parsed.get("files") or []),
    }


__all__ = [
    "ACTIONS",
    "DEFAULT_KINDS",
    "DUE_DAYS_ENV",
    "OPEN_STATUSES",
    "SCOPE_KEYS",
    "SCOPE_KINDS",
    "STATUSES",
    "Preservations",
    "PreserveResult",
    "RequestInfo",
    "Scope",
    "clean_account",
    "clean_field",
    "clean_notes",
    "due_days",
    "event_record",
    "parse_when",
    "request_info",
]

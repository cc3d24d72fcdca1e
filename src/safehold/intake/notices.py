"""Takedown and blocking notices: drafted from templates, sent to the host, tracked.

A notice is for one URL of a complaint. It is drafted from the template of its kind,
jurisdiction and language (:mod:`safehold.intake.templates`) and addressed to the host's
contact (:mod:`safehold.intake.contacts`) — a ``block`` request to the network operators'
address in ``SAFEHOLD_BLOCK_NOTICE_TO``, if any, since the block list is what they
load — then goes draft → sent (by e-mail through a
job, or marked as sent by hand) → removed (confirmed) or cancelled. A sent notice is
rechecked on a schedule (``SAFEHOLD_RECHECK_HOURS``, default 24, doubling after each
check up to a week): by a person in the console, or — with ``SAFEHOLD_RECHECK=http`` —
by a job that sends a ``HEAD`` request (it never downloads the content) and confirms
removal on 404, 410 or 451. Sent ``block`` notices make up the URL block list
(:mod:`safehold.intake.blocklist`) until they are closed.
"""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safehold.access.users import UserInfo
from safehold.audit import AuditLog
from safehold.cases.model import iso
from safehold.cases.service import Cases
from safehold.errors import Conflict, InvalidValue, NotFound, preview
from safehold.intake.categories import CATEGORIES
from safehold.intake.contacts import HostContacts
from safehold.intake.fields import clean_email, clean_line, clean_text
from safehold.intake.mail import mail_configured
from safehold.intake.templates import (
    _LEGAL,
    MAX_BODY,
    MAX_SUBJECT,
    NoticeTemplates,
    check_jurisdiction,
    check_kind,
    check_language,
    default_jurisdiction,
    operator_context,
    render,
)
from safehold.settings import env_float
from safehold.signals.url import canonicalize
from safehold.store.db import Database
from safehold.store.models import Notice, Report, ReportUrl, utcnow

SCOPES: tuple[str, ...] = ("url", "host")
STATUSES: tuple[str, ...] = ("draft", "queued", "sent", "removed", "cancelled")
OPEN_STATUSES: tuple[str, ...] = ("draft", "queued", "sent")
MAX_WEEK_HOURS = 168.0
GONE_STATUSES = frozenset({404, 410, 451})


@dataclass(frozen=True)
class NoticeInfo:
    id: int
    tenant: str
    case_id: int | None
    kind: str
    scope: str
    url: str
    host: str
    domain: str
    jurisdiction: str
    language: str
    recipient_name: str
    recipient_email: str
    recipient_guessed: bool
    subject: str
    body: str
    status: str
    created_at: datetime
    created_by: str | None
    sent_at: datetime | None
    sent_via: str | None
    email_error: str | None
    closed_at: datetime | None
    closed_by: str | None
    next_check_at: datetime | None
    checks: int
    last_check_at: datetime | None
    last_check_result: str | None

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def check_due(self) -> bool:
        return (
            self.status == "sent"
            and self.next_check_at is not None
            and self.next_check_at <= utcnow()
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "kind": self.kind,
            "scope": self.scope,
            "url": self.url,
            "host": self.host,
            "domain": self.domain,
            "jurisdiction": self.jurisdiction,
            "language": self.language,
            "recipient_name": self.recipient_name,
            "recipient_email": self.recipient_email,
            "recipient_guessed": self.recipient_guessed,
            "subject": self.subject,
            "body": self.body,
            "status": self.status,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "sent_at": iso(self.sent_at),
            "sent_via": self.sent_via,
            "email_error": self.email_error,
            "closed_at": iso(self.closed_at),
            "closed_by": self.closed_by,
            "next_check_at": iso(self.next_check_at),
            "checks": self.checks,
            "last_check_at": iso(self.last_check_at),
            "last_check_result": self.last_check_result,
        }


def notice_info(row: Notice) -> NoticeInfo:
    return NoticeInfo(
        id=int(row.id),
        tenant=row.tenant,
        case_id=row.case_id,
        kind=row.kind,
        scope=row.scope,
        url=row.url,
        host=row.host,
        domain=row.domain,
        jurisdiction=row.jurisdiction,
        language=row.language,
        recipient_name=row.recipient_name,
        recipient_email=row.recipient_email,
        recipient_guessed=row.recipient_email == f"abuse@{row.domain}" and not row.recipient_name,
        subject=row.subject,
        body=row.body,
        status=row.status,
        created_at=row.created_at,
        created_by=row.created_by,
        sent_at=row.sent_at,
        sent_via=row.sent_via,
        email_error=row.email_error,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        next_check_at=row.next_check_at,
        checks=int(row.checks or 0),
        last_check_at=row.last_check_at,
        last_check_result=row.last_check_result,
    )


def recheck_delay(checks: int) -> timedelta:
    """The wait before recheck number ``checks + 1``: doubling, at most a week."""
    base = env_float("SAFEHOLD_RECHECK_HOURS", 24.0)
    return timedelta(hours=min(base * (2 ** min(checks, 10)), max(base, MAX_WEEK_HOURS)))


class Notices:
    """Draft, send, recheck and close notices for the URLs of complaints."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        cases: Cases,
        *,
        templates: NoticeTemplates | None = None,
        contacts: HostContacts | None = None,
        jobs: Any = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.cases = cases
        self.templates = templates or NoticeTemplates(db, audit)
        self.contacts = contacts or HostContacts(db, audit)
        self.jobs = jobs

    def _audit(self, s: Session, actor: str, action: str, row: Notice, **details: Any) -> None:
        self.audit.append(
            actor,
            action,
            object_type="notice",
            object_id=str(row.id),
            details={"case_id": row.case_id, "kind": row.kind, **details},
            tenant=row.tenant,
            session=s,
        )

    def _row(self, s: Session, notice_id: int, tenant: str, *, lock: bool = False) -> Notice:
        try:
            nid = int(notice_id)
        except (TypeError, ValueError):
            raise NotFound(f"no notice {preview(notice_id)}") from None
        row = s.get(Notice, nid, with_for_update=lock)
        if row is None or row.tenant != tenant:
            raise NotFound(f"no notice {nid}")
        return row

    def get(self, notice_id: int, tenant: str) -> NoticeInfo:
        with self.db.session() as s:
            return notice_info(self._row(s, notice_id, tenant))

    def for_case(self, case_id: int, tenant: str) -> builtins.list[NoticeInfo]:
        with self.db.session() as s:
            rows = s.scalars(
                select(Notice)
                .where(Notice.case_id == int(case_id), Notice.tenant == tenant)
                .order_by(Notice.id)
            )
            return [notice_info(r) for r in rows]

    def list(
        self,
        tenant: str,
        *,
        kind: str | None = None,
        status: str | None = None,
        due: bool = False,
        limit: int = 100,
        before: int | None = None,
    ) -> tuple[builtins.list[NoticeInfo], int | None]:
        """Newest first (``due``: sent notices whose recheck is due, oldest due first)."""
        limit = max(1, min(int(limit), 500))
        q = select(Notice).where(Notice.tenant == tenant)
        if kind is not None:
            q = q.where(Notice.kind == check_kind(kind))
        if status is not None:
            if status not in STATUSES:
                raise InvalidValue(f"unknown status {preview(status)}: use {', '.join(STATUSES)}")
            q = q.where(Notice.status == status)
        if due:
            q = q.where(Notice.status == "sent", Notice.next_check_at <= utcnow())
            q = q.order_by(Notice.next_check_at, Notice.id)
        else:
            if before is not None:
                q = q.where(Notice.id < int(before))
            q = q.order_by(Notice.id.desc())
        with self.db.session() as s:
            rows = list(s.scalars(q.limit(limit + 1)))
        more = len(rows) > limit
        infos = [notice_info(r) for r in rows[:limit]]
        return infos, (infos[-1].id if more and not due and infos else None)

    def draft(
        self,
        case_id: int,
        user: UserInfo,
        *,
        kind: str,
        url: str | None = None,
        url_id: int | None = None,
        scope: str = "url",
        jurisdiction: str | None = None,
        language: str | None = None,
    ) -> NoticeInfo:
        """A draft notice for one URL of a complaint, filled in from the template and
        addressed to the host's contact (or ``abuse@`` its registrable domain)."""
        kind = check_kind(kind)
        if scope not in SCOPES:
            raise InvalidValue(f"unknown scope {preview(scope)}: use url or host")
        if kind == "takedown" and scope != "url":
            raise InvalidValue("a takedown notice is for one URL (scope url)")
        with self.db.session() as s:
            me = self.cases._person(s, user, "review")
            case = self.cases._case(s, case_id, me.tenant)
            if url_id is not None:
                given = s.get(ReportUrl, int(url_id))
                if given is None or given.case_id != case.id:
                    raise NotFound(f"case {case.id} has no URL {preview(url_id)}")
                raw_url = given.canonical
            elif url:
                raw_url = clean_line(url, "the URL", 2048)
            else:
                raise InvalidValue("name the URL the notice is about")
            category = CATEGORIES.get(
                s.scalar(select(Report.category).where(Report.case_id == case.id).limit(1)) or "",
            )
            tenant = case.tenant
        try:
            canon = canonicalize(raw_url)
        except InvalidValue as e:
            raise InvalidValue(f"not a URL a notice can name: {e.message}") from None
        contact = self.contacts.lookup(tenant, canon.host)
        jur = check_jurisdiction(
            jurisdiction or (contact.jurisdiction if contact else None) or default_jurisdiction()
        )
        lang = check_language(language or "en")
        template = self.templates.get(tenant, kind, jur, lang)
        context = {
            "reference": f"SH-{case.id}",
            "url": canon.url,
            "host": canon.host,
            "domain": canon.domain,
            "scope": scope,
            "category": category.title if category else "content that may be illegal",
            "date": utcnow().date().isoformat(),
            "jurisdiction": jur,
            "recipient_name": contact.name if contact else "",
            "legal_basis": _LEGAL.get(jur, "") if template.builtin else "",
            **operator_context(),
        }
        subject, body = render(template.subject, template.body, context)
        if kind == "block":  # to the network operators, not to the host
            email = os.environ.get("SAFEHOLD_BLOCK_NOTICE_TO", "").strip()
        else:
            email = contact.email if contact and contact.email else f"abuse@{canon.domain}"
        with self.db.session() as s:
            row = Notice(
                tenant=tenant,
                case_id=case.id,
                kind=kind,
                scope=scope,
                url=canon.url,
                host=canon.host[:255],
                domain=canon.domain[:255],
                jurisdiction=jur,
                language=lang,
                recipient_name=contact.name if contact and kind == "takedown" else "",
                recipient_email=email,
                subject=subject,
                body=body,
                status="draft",
                created_at=utcnow(),
                created_by=me.actor,
            )
            s.add(row)
            s.flush()
            self._audit(s, me.actor, "notice_draft", row, url=canon.url)
            return notice_info(row)

    def edit(
        self,
        notice_id: int,
        user: UserInfo,
        *,
        subject: str | None = None,
        body: str | None = None,
        recipient_email: str | None = None,
        recipient_name: str | None = None,
    ) -> NoticeInfo:
        with self.db.session() as s:
            me = self.cases._person(s, user, "review")
            row = self._row(s, notice_id, me.tenant, lock=True)
            if row.status != "draft":
                raise Conflict(f"notice {row.id} is {row.status}: only drafts are edited")
            if subject is not None:
                row.subject = clean_line(subject, "the subject", MAX_SUBJECT)
            if body is not None:
                row.body = clean_text(body, MAX_BODY, "the body")
            if recipient_email is not None:
                row.recipient_email = clean_email(recipient_email)
            if recipient_name is not None:
                row.recipient_name = clean_line(recipient_name, "the recipient's name")
            self._audit(s, me.actor, "notice_edit", row)
            return notice_info(row)

    def send(self, notice_id: int, user: UserInfo, *, via: str = "email") -> NoticeInfo:
        """Send a draft: ``email`` queues it to the recipient (needs
        ``SAFEHOLD_SMTP_URL``); ``manual`` records that it was sent another way (a web
        form, a letter). Either way its rechecks are scheduled once it is sent."""
        if via not in ("email", "manual"):
            raise InvalidValue("send a notice by email or record it as sent manually")
        with self.db.session() as s:
            me = self.cases._person(s, user, "review")
            row = self._row(s, notice_id, me.tenant, lock=True)
            if row.status != "draft" and not (row.status == "queued" and via == "manual"):
                raise Conflict(f"notice {row.id} is {row.status}, not a draft")
            if not row.subject.strip() or not row.body.strip():
                raise InvalidValue("the notice needs a subject and a body")
            if via == "email":
                if not mail_configured() or self.jobs is None:
                    raise Conflict(
                        "e-mail is not configured (SAFEHOLD_SMTP_URL): send the notice another "
                        "way and record it as sent manually"
                    )
                if not row.recipient_email:
                    raise InvalidValue("the notice has no recipient e-mail address")
                row.status = "queued"
            else:
                mark_sent(row, "manual")
            row.sent_via = via
            self._audit(s, me.actor, "notice_sent", row, via=via, to=row.recipient_email)
            info = notice_info(row)
        if via == "email" and self.jobs is not None:
            self.jobs.enqueue("send_notice", info.id)
        return info

    def close(
        self, notice_id: int, user: UserInfo | str, *, status: str, note: str = ""
    ) -> NoticeInfo:
        """``removed`` (removal confirmed; a block is lifted) or ``cancelled``."""
        if status not in ("removed", "cancelled"):
            raise InvalidValue("close a notice as removed or cancelled")
        note = clean_text(note, 2000, "the note")
        with self.db.session() as s:
            if isinstance(user, str):
                actor, tenant = user, None
            else:
                me = self.cases._person(s, user, "review")
                actor, tenant = me.actor, me.tenant
            row = s.get(Notice, int(notice_id), with_for_update=True)
            if row is None or (tenant is not None and row.tenant != tenant):
                raise NotFound(f"no notice {notice_id}")
            if row.status not in OPEN_STATUSES:
                raise Conflict(f"notice {row.id} is already {row.status}")
            row.status = status
            row.closed_at = utcnow()
            row.closed_by = actor
            row.next_check_at = None
            self._audit(s, actor, "notice_closed", row, status=status, note=note)
            return notice_info(row)

    def record_check(
        self, notice_id: int, user: UserInfo | str, *, result: str, tenant: str | None = None
    ) -> NoticeInfo:
        """The URL was checked: ``up`` (schedules the next check), ``gone`` (confirms
        removal) or another short result (an error; checked again later)."""
        result = clean_line(result, "the check result", 200) or "error"
        with self.db.session() as s:
            if isinstance(user, str):
                actor = user
            else:
                me = self.cases._person(s, user, "review")
                actor, tenant = me.actor, me.tenant
            row = s.get(Notice, int(notice_id), with_for_update=True)
            if row is None or (tenant is not None and row.tenant != tenant):
                raise NotFound(f"no notice {notice_id}")
            if row.status != "sent":
                raise Conflict(f"notice {row.id} is {row.status}: only sent notices are rechecked")
            now = utcnow()
            row.checks = int(row.checks or 0) + 1
            row.last_check_at = now
            row.last_check_result = result
            if result == "gone":
                row.status = "removed"
                row.closed_at = now
                row.closed_by = actor
                row.next_check_at = None
            else:
                row.next_check_at = now + recheck_delay(row.checks)
            self._audit(s, actor, "notice_check", row, result=result)
            return notice_info(row)

    def due(self, limit: int = 100) -> builtins.list[NoticeInfo]:
        """Sent notices of every tenant whose recheck is due (for the recheck job)."""
        with self.db.session() as s:
            rows = s.scalars(
                select(Notice)
                .where(Notice.status == "sent", Notice.next_check_at <= utcnow())
                .order_by(Notice.next_check_at)
                .limit(limit)
            )
            return [notice_info(r) for r in rows]


def mark_sent(row: Notice, via: str) -> None:
    now = utcnow()
    row.status = "sent"
    row.sent_at = now
    row.sent_via = via
    row.email_error = None
    row.next_check_at = now + recheck_delay(0)


def check_url(url: str, *, timeout: float = 10.0) -> str:
    """``HEAD`` the URL (no body is downloaded; redirects are not followed): ``gone``
    for 404/410/451, ``up`` for other 2xx/3xx answers, else ``error: ...``."""
    import httpx

    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.head(url, headers={"User-Agent": "safehold-recheck"})
    except httpx.HTTPError as e:
        return f"error: {type(e).__name__}"[:200]
    if response.status_code in GONE_STATUSES:
        return "gone"
    if response.status_code < 400:
        return "up"
    return f"error: HTTP {response.status_code}"

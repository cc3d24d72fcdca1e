"""Reports from the public (or a partner): receive, check, add to, withdraw, answer.

:meth:`Reports.submit` takes a :class:`NewReport` — a category, where it happened
(URLs, platform, user name), an optional description, optional files, optional
demographics and optional contact details — and returns a :class:`Receipt`: the report
number and a secret shown once. Nothing identifies the reporter unless they chose to
leave contact details: no IP address, no user agent, no account.

Every report becomes or joins a complaint case (:mod:`safehold.intake.triage`). Files
are hashed, matched against the tenant's banks (an ``A1`` match makes the complaint
urgent) and kept in the media store, blurred for reviewers like any other case item.

With the receipt, the reporter reads the status and the hotline's messages
(:meth:`Reports.status`), adds information (:meth:`Reports.add_info`) or withdraws the
report (:meth:`Reports.withdraw`: the contact details are erased; a complaint nobody
else reported and nobody has started investigating is resolved with no action).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safehold import taxonomy
from safehold.access.users import UserInfo
from safehold.audit import AuditLog
from safehold.banks.entries import DEFAULT_TENANT, check_source, check_tenant
from safehold.cases.service import Cases, _by_severity, default_sla
from safehold.errors import Conflict, InvalidValue, NotFound, Unauthorized
from safehold.hashing import ContentHashes, hash_file
from safehold.intake import complaints, receipts, triage
from safehold.intake.categories import Category, check_demographics, get_category
from safehold.intake.fields import (
    MAX_DESCRIPTION,
    MAX_MESSAGE,
    GivenUrl,
    clean_email,
    clean_line,
    clean_phone,
    clean_text,
    clean_urls,
)
from safehold.intake.model import (
    MessageInfo,
    ReportInfo,
    ReportStatus,
    message_info,
    report_info,
    url_info,
)
from safehold.intake.receipts import Receipt
from safehold.media import Limits
from safehold.media_store import MediaStore
from safehold.store.db import Database
from safehold.store.models import (
    Case,
    CaseItem,
    Report,
    ReportHash,
    ReportMessage,
    ReportUrl,
    utcnow,
)

if TYPE_CHECKING:
    from safehold.jobs import Jobs

log = logging.getLogger("safehold.intake")

MAX_FILES = 10
LANGUAGE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_-ABCDEFGHIJKLMNOPQRSTUVWXYZ")
PUBLIC_ACTOR = "public"
"""The audit actor of everything a reporter does: never who they are."""

MatchFn = Callable[[ContentHashes, str], list[dict[str, Any]]]
"""``match(hashes, tenant)`` → the bank matches of a file (``Match.to_dict()`` each)."""


@dataclass(frozen=True)
class ReportFile:
    """A file that came with a report, already on disk (a bounded temporary file)."""

    path: Path
    name: str = ""


@dataclass
class NewReport:
    category: str
    urls: Any = None
    """Text (one per line) or a list of URLs."""
    platform: str = ""
    username: str = ""
    description: str = ""
    demographics: dict[str, str] | None = None
    contact: dict[str, str] | None = None
    """``name``, ``email`` and/or ``phone``; ``None`` (or all empty): anonymous."""
    language: str = "en"
    files: Sequence[ReportFile] = field(default_factory=list)
    source: str = "public_report"


@dataclass(frozen=True)
class _HashedFile:
    hashes: ContentHashes
    matches: list[dict[str, Any]]
    media_id: int | None


def check_contact(raw: object) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidValue("contact must be an object with name, email and/or phone")
    unknown = set(raw) - {"name", "email", "phone"}
    if unknown:
        raise InvalidValue(f"unknown contact fields: {', '.join(sorted(map(str, unknown)))}")
    contact = {
        "name": clean_line(raw.get("name"), "your name"),
        "email": clean_email(raw.get("email")),
        "phone": clean_phone(raw.get("phone")),
    }
    contact = {k: v for k, v in contact.items() if v}
    return contact or None


def check_language(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 16 or not set(value) <= LANGUAGE_CHARS:
        return "en"
    return value


def description_digest(text: str) -> str | None:
    words = " ".join(text.lower().split())
    return hashlib.sha256(words.encode("utf-8")).hexdigest() if words else None


def open_receipt(s: Session, number: object, secret: object, *, lock: bool = False) -> Report:
    """The report a receipt stands for; one answer for every wrong receipt."""
    stored = receipts.normalize_number(number)
    row = s.scalar(select(Report).where(Report.number == stored)) if stored else None
    if not receipts.check_secret(row.secret_hash if row else None, secret) or row is None:
        raise Unauthorized(
            "the report number or the secret is wrong: check both on your receipt "
            "(letters and digits; dashes and spaces do not matter)"
        )
    if lock:
        s.execute(update(Report).where(Report.id == row.id).values(updated_at=utcnow()))
        s.refresh(row)
    return row


def report_status(s: Session, row: Report) -> ReportStatus:
    case = s.get(Case, row.case_id) if row.case_id is not None else None
    hashes = int(
        s.scalar(
            select(func.count())
            .select_from(ReportHash)
            .where(ReportHash.report_id == row.id, ReportHash.active.is_(True))
        )
        or 0
    )
    if row.withdrawn_at is not None:
        state = "withdrawn"
    elif row.kind == "hashes":
        state = "active"
    elif case is None or case.stage == "resolved":
        state = "resolved"
    elif case.stage == "investigate":
        state = "in_progress"
    else:
        state = "received"
    outcome = case.outcome if case is not None and state == "resolved" else None
    messages = [
        message_info(m)
        for m in s.scalars(
            select(ReportMessage)
            .where(ReportMessage.report_id == row.id)
            .order_by(ReportMessage.id)
        )
    ]
    return ReportStatus(
        number=row.number,
        kind=row.kind,
        category=row.category,
        state=state,
        outcome=outcome,
        received_at=row.created_at,
        updated_at=row.updated_at,
        urls=int(
            s.scalar(
                select(func.count()).select_from(ReportUrl).where(ReportUrl.report_id == row.id)
            )
            or 0
        ),
        files=int(
            s.scalar(select(func.count()).select_from(CaseItem).where(CaseItem.report_id == row.id))
            or 0
        ),
        hashes=hashes,
        messages=messages,
        has_contact=bool(row.contact),
    )


class Reports:
    """Receive and work reports (the library behind ``/report`` and the console)."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        cases: Cases,
        media: MediaStore,
        *,
        match: MatchFn | None = None,
        limits: Limits | None = None,
        jobs: Jobs | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.cases = cases
        self.media = media
        self.match = match
        self.limits = limits
        self.jobs = jobs

    # ================================================================ receiving

    def submit(self, report: NewReport, *, tenant: str = DEFAULT_TENANT) -> Receipt:
        """Check, triage and store a report in one transaction; returns its receipt."""
        check_tenant(tenant)
        category = get_category(report.category)
        urls = clean_urls(report.urls)
        platform = clean_line(report.platform, "the platform or service")
        username = clean_line(report.username, "the user name")
        description = clean_text(report.description, MAX_DESCRIPTION, "the description")
        demographics = check_demographics(report.demographics)
        contact = check_contact(report.contact)
        language = check_language(report.language)
        source = check_source(report.source)
        if len(report.files) > MAX_FILES:
            raise InvalidValue(f"{len(report.files)} files were given: send at most {MAX_FILES}")
        if not (urls or report.files or description or platform or username):
            raise InvalidValue(
                "the report is empty: say where it happened (a web address, the platform or "
                "a user name), describe it, or add a file"
            )
        hashed = self._hash_all(report.files, tenant)
        matched = [m for h in hashed for m in h.matches]
        labels = triage.labels_for(
            category, demographics, (label for m in matched for label in m.get("labels", []))
        )
        digest = description_digest(description)
        secret = receipts.new_secret()
        secret_hash = receipts.hash_secret(secret)
        for attempt in range(3):
            number = receipts.new_number("report")
            try:
                report_id, case_id = self._store(
                    tenant,
                    number,
                    secret_hash,
                    category,
                    labels,
                    urls,
                    hashed,
                    platform=platform,
                    username=username,
                    description=description,
                    digest=digest,
                    demographics=demographics,
                    contact=contact,
                    language=language,
                    source=source,
                )
                break
            except IntegrityError:  # the random number was taken (about 1 in 10^12)
                if attempt == 2:
                    raise
        log.info("report received", extra={"case_id": case_id, "category": category.key})
        return Receipt(number, secret, report_id, case_id, "report")

    def _store(
        self,
        tenant: str,
        number: str,
        secret_hash: str,
        category: Category,
        labels: list[str],
        urls: list[GivenUrl],
        hashed: list[_HashedFile],
        *,
        platform: str,
        username: str,
        description: str,
        digest: str | None,
        demographics: dict[str, str],
        contact: dict[str, str] | None,
        language: str,
        source: str,
    ) -> tuple[int, int]:
        with self.db.session() as s:
            self.cases._serialise(s, f"intake:{tenant}")
            flags = triage.spam_reasons(
                s, tenant, urls=len(urls), files=len(hashed), description=description, digest=digest
            )
            case, join_flags = triage.find_case(
                s,
                tenant,
                url_digests=[u.canonical.sha256 for u in urls],
                sha256s=[h.hashes.sha256 for h in hashed],
                pdqs=[h.hashes.pdq for h in hashed if h.hashes.pdq],
            )
            flags = join_flags + flags
            case = self._file_under(s, tenant, case, category.title, labels, category, flags)
            row = Report(
                tenant=tenant,
                number=number,
                secret_hash=secret_hash,
                kind="report",
                category=category.key,
                status="received",
                case_id=case.id,
                source=source,
                description=description,
                description_digest=digest,
                platform=platform,
                username=username,
                demographics=demographics,
                contact=contact,
                language=language,
                flags=flags,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            s.add(row)
            s.flush()
            self._add_urls(s, row, case, urls)
            self._add_files(s, row, case, hashed)
            self.audit.append(
                PUBLIC_ACTOR,
                "report_received",
                object_type="report",
                object_id=receipts.display_number(number),
                details={
                    "case_id": int(case.id),
                    "category": category.key,
                    "source": source,
                    "urls": len(urls),
                    "files": len(hashed),
                    "flags": flags,
                },
                tenant=tenant,
                session=s,
            )
            return int(row.id), int(case.id)

    def _hash_all(self, files: Sequence[ReportFile], tenant: str) -> list[_HashedFile]:
        """Hash every file first, then keep them: a file that cannot be decoded leaves
        no stored copy of the others behind (nothing half-written)."""
        hashes = [hash_file(f.path, limits=self.limits) for f in files]
        out = []
        for f, h in zip(files, hashes, strict=True):
            matches = self.match(h, tenant) if self.match is not None else []
            out.append(_HashedFile(h, matches, self.media.keep(f.path, h, tenant=tenant)))
        return out

    def _file_under(
        self,
        s: Session,
        tenant: str,
        case: Case | None,
        title: str,
        labels: list[str],
        category: Category,
        flags: list[str],
    ) -> Case:
        priority = taxonomy.severity(labels)
        if case is None:
            spam = triage.spam_queue_priority(flags)
            return complaints.open_complaint(
                s,
                tenant=tenant,
                queue=triage.SPAM_QUEUE if spam else triage.queue_for(category, labels),
                labels=labels,
                priority=0 if spam else priority,
                title=title,
            )
        now = utcnow()
        case.labels = _by_severity([*(case.labels or []), *labels])
        if not triage.spam_queue_priority(flags) and priority > int(case.priority):
            case.priority = priority
            due = case.created_at + default_sla(priority)
            if case.stage == "assess" and (case.sla_due_at is None or due < case.sla_due_at):
                case.sla_due_at = due
        case.updated_at = now
        return case

    def _add_urls(self, s: Session, report: Report, case: Case, urls: list[GivenUrl]) -> None:
        for u in urls:
            s.add(
                ReportUrl(
                    report_id=report.id,
                    case_id=case.id,
                    url=u.given,
                    canonical=u.canonical.url,
                    digest=u.canonical.sha256,
                    host=u.canonical.host[:255],
                    domain=u.canonical.domain[:255],
                )
            )

    def _add_files(self, s: Session, report: Report, case: Case, hashed: list[_HashedFile]) -> None:
        start = int(
            s.scalar(
                select(func.count()).select_from(CaseItem).where(CaseItem.report_id == report.id)
            )
            or 0
        )
        for n, h in enumerate(hashed, start + 1):
            signals: dict[str, Any] = {"md5": h.hashes.md5, "sha256": h.hashes.sha256}
            if h.hashes.pdq is not None:
                signals["pdq"] = h.hashes.pdq
                signals["pdq_quality"] = h.hashes.pdq_quality
            if h.hashes.vpdq is not None:
                signals["vpdq_frames"] = len(h.hashes.vpdq)
            s.add(
                CaseItem(
                    case_id=case.id,
                    content_id=f"{receipts.display_number(report.number)}/{n}",
                    media_id=h.media_id,
                    sha256=h.hashes.sha256,
                    pdq=h.hashes.pdq,
                    signals=signals,
                    matches=h.matches,
                    reports=1,
                    report_id=report.id,
                    added_at=utcnow(),
                )
            )

    # ================================================================ the reporter

    def verify(self, number: object, secret: object) -> ReportInfo:
        """The report for a receipt (raises :class:`Unauthorized` for a wrong one)."""
        with self.db.session() as s:
            return report_info(open_receipt(s, number, secret))

    def status(self, number: object, secret: object) -> ReportStatus:
        with self.db.session() as s:
            return report_status(s, open_receipt(s, number, secret))

    def add_info(
        self,
        number: object,
        secret: object,
        *,
        text: str = "",
        urls: Any = None,
        files: Sequence[ReportFile] = (),
    ) -> ReportStatus:
        """Add information to a report: a message, more URLs and/or more files."""
        text = clean_text(text, MAX_MESSAGE, "the information")
        new_urls = clean_urls(urls)
        if len(files) > MAX_FILES:
            raise InvalidValue(f"{len(files)} files were given: send at most {MAX_FILES}")
        if not (text or new_urls or files):
            raise InvalidValue("nothing to add: write something, add a web address or a file")
        with self.db.session() as s:
            row = open_receipt(s, number, secret)
            if row.kind != "report":
                raise Conflict("information is added to reports, not to hashes")
            if row.withdrawn_at is not None:
                raise Conflict("this report was withdrawn: make a new report instead")
            tenant = row.tenant
        hashed = self._hash_all(files, tenant)
        with self.db.session() as s:
            row = open_receipt(s, number, secret, lock=True)
            if row.withdrawn_at is not None:
                raise Conflict("this report was withdrawn: make a new report instead")
            case = s.get(Case, row.case_id) if row.case_id is not None else None
            if case is None:
                raise Conflict("this report has no case any more: make a new report instead")
            known = set(s.scalars(select(ReportUrl.digest).where(ReportUrl.report_id == row.id)))
            self._add_urls(s, row, case, [u for u in new_urls if u.canonical.sha256 not in known])
            self._add_files(s, row, case, hashed)
            matched = [label for h in hashed for m in h.matches for label in m.get("labels", [])]
            if matched:
                case.labels = _by_severity([*(case.labels or []), *matched])
                case.priority = max(int(case.priority), taxonomy.severity(case.labels))
            if text:
                s.add(
                    ReportMessage(
                        report_id=row.id, direction="from_reporter", body=text, at=utcnow()
                    )
                )
            row.updated_at = case.updated_at = utcnow()
            self.audit.append(
                PUBLIC_ACTOR,
                "report_updated",
                object_type="report",
                object_id=receipts.display_number(row.number),
                details={
                    "case_id": int(case.id),
                    "text": bool(text),
                    "urls": len(new_urls),
                    "files": len(hashed),
                },
                tenant=row.tenant,
                session=s,
            )
            s.flush()
            return report_status(s, row)

    def withdraw(self, number: object, secret: object) -> ReportStatus:
        """Withdraw a report: contact details are erased at once. A complaint that only
        this report made, still waiting for assessment, is resolved with no action.
        Hashes made on a device are removed from the consent bank (see
        :class:`~safehold.intake.consent.ConsentHashes`, which this delegates to)."""
        with self.db.session() as s:
            row = open_receipt(s, number, secret, lock=True)
            if row.kind == "hashes":
                kind = "hashes"
            else:
                kind = "report"
                self._withdraw_report(s, row)
                return report_status(s, row)
        assert kind == "hashes"
        from safehold.intake.consent import ConsentHashes

        return ConsentHashes(self.db, self.audit).withdraw(number, secret)

    def _withdraw_report(self, s: Session, row: Report) -> None:
        if row.withdrawn_at is not None:
            return
        now = utcnow()
        row.withdrawn_at = now
        row.status = "withdrawn"
        row.contact = None
        row.updated_at = now
        case = s.get(Case, row.case_id) if row.case_id is not None else None
        resolved = False
        if case is not None and case.stage == "assess":
            others = s.scalar(
                select(func.count())
                .select_from(Report)
                .where(
                    Report.case_id == case.id,
                    Report.id != row.id,
                    Report.withdrawn_at.is_(None),
                )
            )
            if not others:
                complaints.resolve_case(s, case, "no_action", "withdrawn by the reporter", None)
                resolved = True
        self.audit.append(
            PUBLIC_ACTOR,
            "report_withdrawn",
            object_type="report",
            object_id=receipts.display_number(row.number),
            details={"case_id": row.case_id, "case_resolved": resolved},
            tenant=row.tenant,
            session=s,
        )

    # ================================================================ the hotline

    def _info(self, s: Session, row: Report) -> ReportInfo:
        urls = [
            url_info(u)
            for u in s.scalars(
                select(ReportUrl).where(ReportUrl.report_id == row.id).order_by(ReportUrl.id)
            )
        ]
        msgs = list(
            s.scalars(
                select(ReportMessage)
                .where(ReportMessage.report_id == row.id)
                .order_by(ReportMessage.id)
            )
        )
        names = self.cases._names(s, [m.user_id for m in msgs])
        files = int(
            s.scalar(select(func.count()).select_from(CaseItem).where(CaseItem.report_id == row.id))
            or 0
        )
        hashes = int(
            s.scalar(
                select(func.count())
                .select_from(ReportHash)
                .where(ReportHash.report_id == row.id, ReportHash.active.is_(True))
            )
            or 0
        )
        return report_info(
            row,
            urls=urls,
            messages=[message_info(m, names) for m in msgs],
            files=files,
            hashes=hashes,
        )

    def get(self, report_id: int, tenant: str) -> ReportInfo:
        with self.db.session() as s:
            row = s.get(Report, int(report_id))
            if row is None or row.tenant != tenant:
                raise NotFound(f"no report {report_id}")
            return self._info(s, row)

    def by_number(self, number: str, tenant: str) -> ReportInfo:
        stored = receipts.normalize_number(number)
        with self.db.session() as s:
            row = s.scalar(select(Report).where(Report.number == stored)) if stored else None
            if row is None or row.tenant != tenant:
                raise NotFound(f"no report {number!r}")
            return self._info(s, row)

    def for_case(self, case_id: int, tenant: str) -> list[ReportInfo]:
        with self.db.session() as s:
            rows = s.scalars(
                select(Report)
                .where(Report.case_id == int(case_id), Report.tenant == tenant)
                .order_by(Report.id)
            )
            return [self._info(s, r) for r in rows]

    def list(
        self,
        tenant: str,
        *,
        kind: str | None = None,
        category: str | None = None,
        flag: str | None = None,
        limit: int = 50,
        before: int | None = None,
    ) -> tuple[list[ReportInfo], int | None]:
        """Newest first; page on with ``before`` = the returned cursor (a report id)."""
        limit = max(1, min(int(limit), 500))
        q = select(Report).where(Report.tenant == tenant)
        if kind is not None:
            q = q.where(Report.kind == kind)
        if category is not None:
            q = q.where(Report.category == get_category(category).key)
        if before is not None:
            q = q.where(Report.id < int(before))
        with self.db.session() as s:
            rows = list(
                s.scalars(q.order_by(Report.id.desc()).limit(limit * 4 if flag else limit + 1))
            )
            if flag is not None:
                rows = [
                    r
                    for r in rows
                    if any(f == flag or f.startswith(flag + ":") for f in r.flags or [])
                ]
            more = len(rows) > limit
            rows = rows[:limit]
            infos = [self._info(s, r) for r in rows]
        return infos, (infos[-1].id if more and infos else None)

    def message(self, report_id: int, user: UserInfo, body: str) -> MessageInfo:
        """A message to the reporter, read with their receipt; e-mailed as a notice (not
        the message itself) when they left an address and e-mail is configured."""
        body = clean_text(body, MAX_MESSAGE, "the message")
        if not body:
            raise InvalidValue("the message is empty")
        from safehold.intake.mail import mail_configured

        with self.db.session() as s:
            me = self.cases._person(s, user, "review")
            row = s.get(Report, int(report_id))
            if row is None or row.tenant != me.tenant:
                raise NotFound(f"no report {report_id}")
            if row.withdrawn_at is not None:
                raise Conflict("the report was withdrawn: the reporter no longer reads it")
            email = (row.contact or {}).get("email")
            msg = ReportMessage(
                report_id=row.id,
                direction="to_reporter",
                body=body,
                user_id=me.id,
                at=utcnow(),
                email_status="queued" if email and mail_configured() and self.jobs else None,
            )
            s.add(msg)
            row.updated_at = utcnow()
            s.flush()
            self.audit.append(
                me.actor,
                "reporter_message",
                object_type="report",
                object_id=receipts.display_number(row.number),
                details={"case_id": row.case_id, "message_id": int(msg.id)},
                tenant=row.tenant,
                session=s,
            )
            info = message_info(msg, {me.id: me.name})
        if info.email_status == "queued" and self.jobs is not None:
            self.jobs.enqueue("email_reporter", info.id)
        return info

"""Referrals of cases to NCMEC's CyberTipline: proposed, approved by a second person, sent.

::

    proposed ──► approved ──► sending ──► sent (NCMEC's report id on the case)
        │            ▲            ├──► failed   (nothing open at NCMEC, or retracted): send again
        └► rejected  │            └──► unknown  (the submit's answer was lost: a person checks
                     └──────────────────────── with NCMEC and records what it says)

* **Two-person rule.** One reviewer proposes the referral (incident type, annotations,
  notes); a *different* reviewer approves it. Only then is it sent — by the job
  ``send_referral`` (the worker of ``safehold serve``, or ``safehold worker``).
* **Preserved first.** On approval every file of the case is preserved in the evidence
  vault (:mod:`safehold.refer.vault`; origin ``referral:<id>:item:<item id>``), and the
  report is built from the vault: what NCMEC receives is exactly what is preserved.
  Without a configured vault a referral is refused.
* **Never twice.** The CyberTipline client's journal (:mod:`safehold.refer.ncmec.journal`)
  is stored on the referral after every step, so a retried or resumed job continues
  where the last one stopped and a submit whose answer was lost is never repeated
  blindly (status ``unknown`` until :meth:`Referrals.resolve_unknown`).
* **What is sent** comes from the case: the reporting company from
  ``SAFEHOLD_NCMEC_COMPANY`` and ``SAFEHOLD_NCMEC_EMAIL`` (with
  ``SAFEHOLD_NCMEC_CONTACT_NAME``, ``SAFEHOLD_NCMEC_PHONE``, ``SAFEHOLD_NCMEC_TOS_URL``);
  the reported user from the case's account and the account signals the platform sent
  with its uploads (``screen_name``/``username``, ``email``, ``display_name``,
  ``profile_url``, ``ip``/``upload_ip``); each file with its hashes, whether the company
  viewed it (a reviewer revealed it in the console), its industry classification (the
  decision's label, else the worst ``A1``…``B2`` label of its matches), the upload IP and
  time; reported URLs of complaint cases as web-page incidents.

Every step is audited (``referral_proposed``, ``referral_approved``,
``referral_rejected``, ``referral_sent``, ``referral_failed``, ``referral_resolved``).
"""

from __future__ import annotations

import builtins
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safehold import taxonomy
from safehold.access.users import UserInfo
from safehold.audit import AuditLog
from safehold.cases.model import iso
from safehold.cases.service import Cases
from safehold.errors import Conflict, InvalidValue, NotFound, preview
from safehold.intake.fields import clean_text
from safehold.jobs import JobContext, job
from safehold.store.db import Database
from safehold.store.models import (
    Case,
    CaseDecision,
    CaseItem,
    Event,
    Exposure,
    Media,
    Referral,
    ReportUrl,
    utcnow,
)

if TYPE_CHECKING:
    from safehold.refer.ncmec import CyberTiplineClient, CyberTiplineReport
    from safehold.refer.vault import EvidenceVault

log = logging.getLogger("safehold.refer")

STATUSES: tuple[str, ...] = (
    "proposed",
    "approved",
    "sending",
    "sent",
    "rejected",
    "failed",
    "unknown",
    "retracted",
)
OPEN: tuple[str, ...] = ("proposed", "approved", "sending", "sent", "unknown")
"""A case has at most one referral in these states."""
SENDABLE: tuple[str, ...] = ("approved", "sending", "failed")
MAX_NOTES = 4000
INDUSTRY = ("A1", "A2", "B1", "B2")
ACCOUNT_KEYS = {
    "screen_name": ("screen_name", "username"),
    "email": ("email",),
    "display_name": ("display_name",),
    "profile_url": ("profile_url",),
    "ip": ("upload_ip", "ip"),
}


@dataclass(frozen=True)
class ReferralInfo:
    id: int
    tenant: str
    case_id: int
    kind: str
    status: str
    details: dict[str, Any]
    external_id: str | None
    environment: str | None
    error: str | None
    phase: str | None
    """The journal's phase (``new``, ``open``, ``finished``, ``submit_unknown``, ...)."""
    created_at: datetime
    created_by: str
    decided_at: datetime | None
    decided_by: str | None
    sent_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "kind": self.kind,
            "status": self.status,
            "details": dict(self.details),
            "external_id": self.external_id,
            "environment": self.environment,
            "error": self.error,
            "phase": self.phase,
            "created_at": iso(self.created_at),
            "created_by": self.created_by,
            "decided_at": iso(self.decided_at),
            "decided_by": self.decided_by,
            "sent_at": iso(self.sent_at),
        }


def _info(row: Referral) -> ReferralInfo:
    journal = row.journal if isinstance(row.journal, dict) else {}
    phase = journal.get("phase")
    return ReferralInfo(
        id=int(row.id),
        tenant=row.tenant,
        case_id=int(row.case_id),
        kind=row.kind,
        status=row.status,
        details=dict(row.details or {}),
        external_id=row.external_id,
        environment=row.environment,
        error=row.error,
        phase=str(phase) if isinstance(phase, str) else None,
        created_at=row.created_at,
        created_by=row.created_by,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        sent_at=row.sent_at,
    )


def _enum_values(values: Iterable[str], enum: Any, what: str) -> list[str]:
    names = {a.value.lower(): a for a in enum}
    chosen = []
    for a in values:
        found = names.get(str(a).strip().lower())
        if found is None:
            raise InvalidValue(
                f"unknown {what} {preview(a)}: use " + ", ".join(x.value for x in enum)
            )
        chosen.append(found.value)
    return sorted(set(chosen))


def check_details(
    incident_type: str,
    annotations: Iterable[str],
    escalate: str | None,
    notes: str,
    file_annotations: Iterable[str] = (),
) -> dict[str, Any]:
    """The proposer's choices, checked against the CyberTipline's enumerations."""
    from safehold.refer.ncmec import FileAnnotation, IncidentType, ReportAnnotation

    by_name = {t.name.lower(): t for t in IncidentType} | {t.value: t for t in IncidentType}
    kind = by_name.get(str(incident_type).strip().lower()) or by_name.get(str(incident_type))
    if kind is None:
        raise InvalidValue(
            f"unknown incident type {preview(incident_type)}: use one of "
            + ", ".join(t.name.lower() for t in IncidentType)
        )
    escalate = clean_text(escalate, 300, "the escalation reason", multiline=False) or None
    return {
        "incident_type": kind.name.lower(),
        "annotations": _enum_values(annotations, ReportAnnotation, "report annotation"),
        "file_annotations": _enum_values(file_annotations, FileAnnotation, "file annotation"),
        "escalate": escalate,
        "notes": clean_text(notes, MAX_NOTES, "the notes"),
    }


def reporter_from_env() -> Any:
    """The reporting company, from ``SAFEHOLD_NCMEC_*`` settings (checked before a
    referral is proposed, so nobody approves one that cannot be sent)."""
    from safehold.refer.ncmec import Email, Person, Phone, Reporter

    company = os.environ.get("SAFEHOLD_NCMEC_COMPANY", "").strip()
    email = os.environ.get("SAFEHOLD_NCMEC_EMAIL", "").strip()
    if not company or not email:
        raise InvalidValue(
            "CyberTipline referrals need the reporting company: set SAFEHOLD_NCMEC_COMPANY "
            "(its name) and SAFEHOLD_NCMEC_EMAIL (whom NCMEC contacts)"
        )
    name = os.environ.get("SAFEHOLD_NCMEC_CONTACT_NAME", "").strip().split(None, 1)
    phone = os.environ.get("SAFEHOLD_NCMEC_PHONE", "").strip()
    person = Person(
        first_name=name[0] if name else None,
        last_name=name[1] if len(name) > 1 else None,
        emails=[Email(address=email)],
        phones=[Phone(number=phone)] if phone else [],
    )
    return Reporter(
        company_name=company,
        reporting_person=person,
        terms_of_service=os.environ.get("SAFEHOLD_NCMEC_TOS_URL", "").strip() or None,
    )


class Referrals:
    """Propose, approve and send referrals of cases."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        cases: Cases,
        *,
        vault: EvidenceVault | None = None,
        jobs: Any = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.cases = cases
        self.vault = vault
        self.jobs = jobs

    # ------------------------------------------------------------------ helpers

    def _row(
        self, s: Session, referral_id: int, tenant: str | None, *, lock: bool = False
    ) -> Referral:
        try:
            rid = int(referral_id)
        except (TypeError, ValueError):
            raise NotFound(f"no referral {preview(referral_id)}") from None
        row = s.get(Referral, rid, with_for_update=lock)
        if row is None or (tenant is not None and row.tenant != tenant):
            raise NotFound(f"no referral {rid}")
        return row

    def _audit(self, s: Session, actor: str, action: str, row: Referral, **details: Any) -> None:
        self.audit.append(
            actor,
            action,
            object_type="case",
            object_id=str(row.case_id),
            details={"referral_id": int(row.id), "kind": row.kind, **details},
            tenant=row.tenant,
            session=s,
        )

    def _need_vault(self) -> EvidenceVault:
        if self.vault is None:
            raise Conflict(
                "the evidence vault is not configured (SAFEHOLD_VAULT_KEY or "
                "SAFEHOLD_VAULT_KEY_FILE): reported content must be preserved before it is "
                "referred"
            )
        return self.vault

    # ------------------------------------------------------------------ reading

    def get(self, referral_id: int, tenant: str | None = None) -> ReferralInfo:
        with self.db.session() as s:
            return _info(self._row(s, referral_id, tenant))

    def for_case(self, case_id: int, tenant: str) -> builtins.list[ReferralInfo]:
        with self.db.session() as s:
            rows = s.scalars(
                select(Referral)
                .where(Referral.case_id == int(case_id), Referral.tenant == tenant)
                .order_by(Referral.id)
            )
            return [_info(r) for r in rows]

    def list(
        self, tenant: str, *, status: str | None = None, limit: int = 100
    ) -> builtins.list[ReferralInfo]:
        q = select(Referral).where(Referral.tenant == tenant)
        if status is not None:
            if status not in STATUSES:
                raise InvalidValue(f"unknown status {preview(status)}: use {', '.join(STATUSES)}")
            q = q.where(Referral.status == status)
        with self.db.session() as s:
            rows = s.scalars(q.order_by(Referral.id.desc()).limit(max(1, min(int(limit), 500))))
            return [_info(r) for r in rows]

    # ------------------------------------------------------------------ two-person rule

    def propose(
        self,
        case_id: int,
        user: UserInfo,
        *,
        incident_type: str = "child_pornography",
        annotations: Iterable[str] = (),
        escalate: str | None = None,
        notes: str = "",
        file_annotations: Iterable[str] = (),
    ) -> ReferralInfo:
        """Propose a CyberTipline referral of a case; a second person approves it.
        ``file_annotations`` (``generativeAi``, ``possibleSelfProduction``, ...) apply to
        every file; ``generativeAi`` is added by itself to files labelled synthetic
        (``csam:ai-generated``, ``ncii:synthetic``)."""
        details = check_details(incident_type, annotations, escalate, notes, file_annotations)
        reporter_from_env()
        self._need_vault()
        with self.db.session() as s:
            me = self.cases._person(s, user, "review")
            case = self.cases._case(s, case_id, me.tenant, lock=True)
            existing = s.scalar(
                select(Referral.id).where(
                    Referral.case_id == case.id, Referral.kind == "ncmec", Referral.status.in_(OPEN)
                )
            )
            if existing is not None:
                raise Conflict(f"case {case.id} already has referral {existing} to NCMEC")
            if not s.scalar(
                select(CaseItem.id)
                .where(CaseItem.case_id == case.id, CaseItem.media_id.is_not(None))
                .limit(1)
            ):
                raise InvalidValue(f"case {case.id} has no stored file to report")
            row = Referral(
                tenant=case.tenant,
                case_id=case.id,
                kind="ncmec",
                status="proposed",
                details=details,
                created_at=utcnow(),
                created_by=me.actor,
            )
            s.add(row)
            s.flush()
            self._audit(
                s, me.actor, "referral_proposed", row, incident_type=details["incident_type"]
            )
            return _info(row)

    def approve(self, referral_id: int, user: UserInfo) -> ReferralInfo:
        """The second person's approval: the case's files are preserved in the vault and
        the referral is queued for sending."""
        vault = self._need_vault()
        with self.db.session() as s:
            me = self.cases._person(s, user, "review")
            row = self._row(s, referral_id, me.tenant, lock=True)
            if row.status != "proposed":
                raise Conflict(f"referral {row.id} is {row.status}, not awaiting approval")
            if row.created_by == me.actor:
                raise Conflict(
                    "a referral needs a second person: someone other than its proposer approves it"
                )
            case_id, tenant = int(row.case_id), row.tenant
        self._preserve(vault, referral_id, case_id, tenant, me.actor)
        with self.db.session() as s:
            row = self._row(s, referral_id, tenant, lock=True)
            if row.status != "proposed":
                raise Conflict(f"referral {row.id} is {row.status}, not awaiting approval")
            row.status = "approved"
            row.decided_at = utcnow()
            row.decided_by = me.actor
            self._audit(s, me.actor, "referral_approved", row)
            info = _info(row)
        if self.jobs is not None:
            self.jobs.enqueue("send_referral", info.id)
        return info

    def reject(self, referral_id: int, user: UserInfo, reason: str) -> ReferralInfo:
        reason = clean_text(reason, 2000, "the reason")
        if not reason:
            raise InvalidValue("say why the referral is rejected")
        with self.db.session() as s:
            me = self.cases._person(s, user, "review")
            row = self._row(s, referral_id, me.tenant, lock=True)
            if row.status != "proposed":
                raise Conflict(f"referral {row.id} is {row.status}, not awaiting approval")
            row.status = "rejected"
            row.decided_at = utcnow()
            row.decided_by = me.actor
            row.error = reason
            self._audit(s, me.actor, "referral_rejected", row, reason=reason)
            return _info(row)

    def _preserve(
        self, vault: EvidenceVault, referral_id: int, case_id: int, tenant: str, by: str
    ) -> None:
        """Every stored file of the case into the vault (idempotent per referral and item)."""
        from safehold.media_store import MediaStore

        with self.db.session() as s:
            rows = list(
                s.execute(
                    select(CaseItem, Media)
                    .join(Media, Media.id == CaseItem.media_id)
                    .where(CaseItem.case_id == case_id)
                    .order_by(CaseItem.id)
                )
            )
            labels = list((s.get(Case, case_id) or Case()).labels or [])
        store = MediaStore(self.db, _media_root(self.db))
        for item, media in rows:
            vault.preserve(
                store.path(int(media.id)),
                by=by,
                context={
                    "referral_id": referral_id,
                    "case_item": int(item.id),
                    "content_id": item.content_id,
                    "signals": dict(item.signals or {}),
                    "matches": list(item.matches or []),
                },
                tenant=tenant,
                labels=[x for x in labels if x in taxonomy.LABELS],
                event_id=item.event_id,
                case_id=case_id,
                content_id=item.content_id,
                sha256=media.sha256,
                origin=f"referral:{referral_id}:item:{item.id}",
                reason=f"NCMEC referral {referral_id}",
            )

    # ------------------------------------------------------------------ the report

    def build_report(self, referral_id: int, *, by: str = "system") -> CyberTiplineReport:
        """The CyberTipline report of an approved referral, from the case and the vault
        (each evidence read is audited with the referral as its reason)."""
        from safehold.refer import ncmec

        vault = self._need_vault()
        with self.db.session() as s:
            row = self._row(s, referral_id, None)
            case = s.get(Case, row.case_id)
            if case is None:
                raise NotFound(f"referral {row.id}: its case is gone")
            details = dict(row.details or {})
            items = list(
                s.scalars(
                    select(CaseItem)
                    .where(CaseItem.case_id == case.id, CaseItem.media_id.is_not(None))
                    .order_by(CaseItem.id)
                )
            )
            events = {
                int(e.id): e
                for e in s.scalars(
                    select(Event).where(Event.id.in_([i.event_id for i in items if i.event_id]))
                )
            }
            viewed = set(
                s.scalars(
                    select(Exposure.item_id).where(Exposure.item_id.in_([int(i.id) for i in items]))
                )
            )
            label = s.scalar(
                select(CaseDecision.label)
                .where(CaseDecision.case_id == case.id, CaseDecision.status == "confirmed")
                .order_by(CaseDecision.id.desc())
                .limit(1)
            )
            urls = list(
                dict.fromkeys(
                    s.scalars(select(ReportUrl.canonical).where(ReportUrl.case_id == case.id))
                )
            )
            account_id, tenant, case_id = case.account_id, case.tenant, int(case.id)
        held = {
            (v.content_id, v.sha256): v
            for v in vault.list_items(tenant=tenant, case_id=case_id, limit=1000)
            if v.origin and v.origin.startswith(f"referral:{referral_id}:")
        }
        files = []
        signals: dict[str, list[str]] = {k: [] for k in ACCOUNT_KEYS}
        captures = []
        for item in items:
            entry = held.get((item.content_id, item.sha256 or ""))
            if entry is None:
                raise Conflict(f"case item {item.id} was not preserved for referral {referral_id}")
            evidence = vault.read(
                entry.id, by=by, reason=f"NCMEC referral {referral_id}", tenant=tenant
            )
            ev = events.get(int(item.event_id)) if item.event_id else None
            account = (ev.context or {}).get("account", {}) if ev is not None else {}
            account = account if isinstance(account, dict) else {}
            for key, names in ACCOUNT_KEYS.items():
                for name in names:
                    value = account.get(name)
                    if isinstance(value, str) and value.strip() and value not in signals[key]:
                        signals[key].append(value.strip()[:300])
            ip = next(
                (account[k] for k in ACCOUNT_KEYS["ip"] if isinstance(account.get(k), str)), None
            )
            if ip and ev is not None:
                captures.append(
                    ncmec.IpCapture(ip_address=ip, event=ncmec.EventName.UPLOAD, at=ev.at)
                )
            files.append(
                ncmec.ReportedFile(
                    content=evidence.content,
                    file_name=f"case{case_id}-item{item.id}{_suffix(evidence.record)}",
                    viewed_by_esp=int(item.id) in viewed,
                    original_file_name=(item.content_id or None),
                    industry_classification=_classification(label, item.matches or []),
                    annotations=_file_annotations(details, label, item.matches or []),
                    upload_ip=ip,
                    uploaded_at=ev.at if ev is not None else item.added_at,
                    additional_info=tuple(
                        f"matched bank {m.get('bank')} ({', '.join(m.get('labels') or [])}), "
                        f"distance {m.get('distance')}"
                        for m in (item.matches or [])[:5]
                        if isinstance(m, dict)
                    ),
                )
            )
        reported = None
        if account_id:
            reported = ncmec.ReportedUser(
                esp_identifier=account_id[:300],
                screen_name=signals["screen_name"][0] if signals["screen_name"] else None,
                display_names=tuple(signals["display_name"][:5]),
                profile_urls=tuple(signals["profile_url"][:5]),
                person=ncmec.Person(emails=[ncmec.Email(address=e) for e in signals["email"][:5]])
                if signals["email"]
                else None,
                ip_captures=tuple(captures[:50]),
            )
        incident_at = min((f.uploaded_at for f in files if f.uploaded_at), default=utcnow())
        return ncmec.CyberTiplineReport(
            incident=ncmec.IncidentSummary(
                incident_type=ncmec.IncidentType[
                    str(details.get("incident_type", "child_pornography")).upper()
                ],
                incident_at=incident_at,
                escalate_to_high_priority=details.get("escalate") or None,
                annotations=frozenset(
                    ncmec.ReportAnnotation(a) for a in details.get("annotations", [])
                ),
            ),
            reporter=reporter_from_env(),
            internet_details=(ncmec.WebPageIncident(urls=tuple(urls[:20])),) if urls else (),
            reported_user=reported,
            additional_info=details.get("notes") or None,
            files=files,
        )

    # ------------------------------------------------------------------ sending

    def send(self, referral_id: int, *, client: CyberTiplineClient | None = None) -> ReferralInfo:
        """Send an approved referral (resuming from its journal); the job runs this."""
        from safehold.refer import ncmec

        with self.db.session() as s:
            row = self._row(s, referral_id, None, lock=True)
            if row.status == "sent":
                return _info(row)
            if row.status not in SENDABLE:
                raise Conflict(f"referral {row.id} is {row.status}: only approved ones are sent")
            row.status = "sending"
            journal = ncmec.Journal.from_dict(row.journal) if row.journal else ncmec.Journal()
        report = self.build_report(referral_id)

        def save(j: ncmec.Journal) -> None:
            with self.db.session() as s2:
                r = self._row(s2, referral_id, None)
                r.journal = j.to_dict()

        own = client is None
        client = client or ncmec.CyberTiplineClient.from_env()
        try:
            report_id = client.send(report, journal, save=save)
        except ncmec.SubmitOutcomeUnknown as e:
            return self._failed(referral_id, journal, "unknown", str(e))
        except ncmec.CyberTiplineError as e:
            status = "retracted" if journal.phase == ncmec.Phase.RETRACTED else "failed"
            return self._failed(referral_id, journal, status, str(e))
        finally:
            if own:
                client.close()
        with self.db.session() as s:
            row = self._row(s, referral_id, None, lock=True)
            row.journal = journal.to_dict()
            row.status = "sent"
            row.external_id = str(report_id)
            row.environment = _environment(journal.base_url)
            row.sent_at = utcnow()
            row.error = None
            case = s.get(Case, row.case_id)
            if case is not None:
                case.ncmec_report_id = str(report_id)
                case.updated_at = utcnow()
            self._audit(s, "system", "referral_sent", row, report_id=str(report_id))
            return _info(row)

    def _failed(self, referral_id: int, journal: Any, status: str, message: str) -> ReferralInfo:
        with self.db.session() as s:
            row = self._row(s, referral_id, None, lock=True)
            row.journal = journal.to_dict()
            row.status = status
            row.error = message[:2000]
            self._audit(s, "system", "referral_failed", row, status=status, error=message[:300])
            log.warning("referral %s %s: %s", referral_id, status, message)
            return _info(row)

    def retry(self, referral_id: int, user: UserInfo) -> ReferralInfo:
        """Queue a failed referral for sending again (it resumes from its journal)."""
        with self.db.session() as s:
            me = self.cases._person(s, user, "review")
            row = self._row(s, referral_id, me.tenant, lock=True)
            if row.status not in ("failed", "retracted"):
                raise Conflict(f"referral {row.id} is {row.status}: only failed ones are retried")
            phase = (row.journal or {}).get("phase")
            if row.status == "retracted" or phase in ("retracted", "expired"):
                row.journal = None  # nothing is open at NCMEC: the next run files a new report
            row.status = "approved"
            self._audit(s, me.actor, "referral_retry", row)
            info = _info(row)
        if self.jobs is not None:
            self.jobs.enqueue("send_referral", info.id)
        return info

    def resolve_unknown(
        self, referral_id: int, user: UserInfo, report_id: int | None
    ) -> ReferralInfo:
        """After a lost submit answer, record what NCMEC says: the report id it opened
        (sending continues with it) or ``None`` (none was opened: it is submitted again)."""
        from safehold.refer import ncmec

        with self.db.session() as s:
            me = self.cases._person(s, user, "lead")
            row = self._row(s, referral_id, me.tenant, lock=True)
            if row.status != "unknown":
                raise Conflict(f"referral {row.id} is {row.status}, not waiting for a check")
            journal = ncmec.Journal.from_dict(row.journal or {})
            journal.resolve_unknown_submit(report_id, by=me.actor)
            row.journal = journal.to_dict()
            row.status = "approved"
            self._audit(s, me.actor, "referral_resolved", row, report_id=report_id)
            info = _info(row)
        if self.jobs is not None:
            self.jobs.enqueue("send_referral", info.id)
        return info


def _classification(label: str | None, matches: Iterable[Any]) -> Any:
    from safehold.refer.ncmec import IndustryClassification

    if label in INDUSTRY:
        return IndustryClassification(label)
    found = [
        x for m in matches if isinstance(m, dict) for x in m.get("labels") or [] if x in INDUSTRY
    ]
    worst = taxonomy.worst_of(found)
    return IndustryClassification(worst) if worst else None


SYNTHETIC = frozenset({"csam:ai-generated", "ncii:synthetic"})


def _file_annotations(details: dict[str, Any], label: str | None, matches: Iterable[Any]) -> Any:
    from safehold.refer.ncmec import FileAnnotation

    chosen = {FileAnnotation(a) for a in details.get("file_annotations") or []}
    labels = {x for m in matches if isinstance(m, dict) for x in m.get("labels") or []}
    if label in SYNTHETIC or labels & SYNTHETIC:
        chosen.add(FileAnnotation.GENERATIVE_AI)
    return frozenset(chosen)


def _suffix(record: dict[str, Any]) -> str:
    fmt = ""
    context = record.get("context") if isinstance(record, dict) else None
    upload = context.get("upload") if isinstance(context, dict) else None
    if isinstance(upload, dict):
        fmt = str(upload.get("format") or "")
    return {"jpeg": ".jpg", "png": ".png", "gif": ".gif", "webp": ".webp", "mp4": ".mp4"}.get(
        fmt.lower(), ""
    )


def _environment(base_url: str | None) -> str | None:
    from safehold.refer.ncmec import PRODUCTION_URL, TEST_URL

    return {TEST_URL: "test", PRODUCTION_URL: "production"}.get(base_url or "", "other")


def _media_root(db: Database) -> str:
    from safehold.media_store import default_media_root

    return os.environ.get("SAFEHOLD_MEDIA_DIR") or str(default_media_root(db))


@job("send_referral", retries=3, retry_delay=60.0)
def send_referral(ctx: JobContext, referral_id: int) -> None:
    """Job: send an approved referral (resumes from its journal; never submits twice)."""
    referrals = Referrals(ctx.db, ctx.audit, ctx.cases, vault=ctx.vault, jobs=ctx.jobs)
    try:
        referrals.send(int(referral_id))
    except Conflict as e:
        log.info("referral %s not sent: %s", referral_id, e.message)

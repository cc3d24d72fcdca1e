"""Jobs of the intake side, run by the job worker (:mod:`safehold.jobs`).

* ``send_notice(notice_id)`` — e-mail a queued notice to its recipient; on success it
  is ``sent`` and its rechecks are scheduled. Retried with backoff; the last error is
  kept on the notice for the console.
* ``email_reporter(message_id)`` — tell a reporter who left an e-mail address that
  there is a message for them. The e-mail does not contain the message: whoever reads
  their mailbox learns only that a report exists, and the message is read with the
  receipt.
* ``recheck_notices`` — once a minute, with ``SAFEHOLD_RECHECK=http``: ``HEAD`` the URL
  of every sent notice whose recheck is due (see :func:`safehold.intake.notices.check_url`).
* ``sweep_consent`` — once a minute: remove from the consent bank hashes whose every
  submission was withdrawn, should a withdrawal have stopped half-way.
"""

from __future__ import annotations

import logging
import os

from sqlalchemy import select

from safehold.audit import AuditLog
from safehold.intake.mail import mail_configured, send_mail
from safehold.intake.receipts import display_number
from safehold.jobs import JobContext, job
from safehold.store.models import Notice, Report, ReportHash, ReportMessage

log = logging.getLogger("safehold.intake")

_REPORTER_MAIL = {
    "en": (
        "A message about your report {number}",
        "There is a new message about your report {number}.\n\n"
        "Read it at {url} with your report number and secret.\n"
        "For your privacy this e-mail does not contain the message.\n",
    ),
    "ms": (
        "Mesej tentang laporan anda {number}",
        "Terdapat mesej baharu tentang laporan anda {number}.\n\n"
        "Bacanya di {url} dengan nombor laporan dan kod rahsia anda.\n"
        "Demi privasi anda, e-mel ini tidak mengandungi mesej tersebut.\n",
    ),
}


@job("send_notice", retries=5, retry_delay=30.0)
def send_notice(ctx: JobContext, notice_id: int) -> None:
    from safehold.intake.notices import mark_sent

    with ctx.db.session() as s:
        row = s.get(Notice, int(notice_id))
        if row is None or row.status != "queued":
            return  # sent, cancelled or marked as sent by hand meanwhile
        to, subject, body = row.recipient_email, row.subject, row.body
    try:
        send_mail(to, subject, body)
    except Exception as e:
        with ctx.db.session() as s:
            row = s.get(Notice, int(notice_id))
            if row is not None:
                row.email_error = f"{type(e).__name__}: {e}"[:500]
        raise
    with ctx.db.session() as s:
        row = s.get(Notice, int(notice_id), with_for_update=True)
        if row is not None and row.status == "queued":
            mark_sent(row, "email")
            AuditLog(ctx.db).append(
                "system",
                "notice_delivered",
                object_type="notice",
                object_id=str(row.id),
                details={"case_id": row.case_id, "to": to},
                tenant=row.tenant,
                session=s,
            )


@job("email_reporter", retries=5, retry_delay=30.0)
def email_reporter(ctx: JobContext, message_id: int) -> None:
    with ctx.db.session() as s:
        msg = s.get(ReportMessage, int(message_id))
        report = s.get(Report, msg.report_id) if msg is not None else None
        if msg is None or report is None or msg.email_status != "queued":
            return
        email = (report.contact or {}).get("email")
        if not email or not mail_configured():
            msg.email_status = None
            return
        subject, body = _REPORTER_MAIL.get(report.language, _REPORTER_MAIL["en"])
        base = os.environ.get("SAFEHOLD_PUBLIC_URL", "").rstrip("/")
        number = display_number(report.number)
        url = f"{base}/report/status" if base else "the report page"
    try:
        send_mail(email, subject.format(number=number), body.format(number=number, url=url))
    except Exception as e:
        with ctx.db.session() as s:
            row = s.get(ReportMessage, int(message_id))
            if row is not None:
                row.email_error = f"{type(e).__name__}"[:200]
        raise
    with ctx.db.session() as s:
        row = s.get(ReportMessage, int(message_id))
        if row is not None:
            row.email_status, row.email_error = "sent", None


@job("recheck_notices", retries=0, periodic=True)
def recheck_notices(ctx: JobContext) -> None:
    if os.environ.get("SAFEHOLD_RECHECK", "").strip().lower() != "http":
        return
    from safehold.intake.notices import Notices, check_url

    notices = Notices(ctx.db, ctx.audit, ctx.cases)
    for notice in notices.due(limit=50):
        result = check_url(notice.url)
        try:
            notices.record_check(notice.id, "system:recheck", result=result, tenant=notice.tenant)
        except Exception:  # closed by a person meanwhile
            log.info("recheck of notice %s skipped", notice.id)


@job("sweep_consent", retries=0, periodic=True)
def sweep_consent(ctx: JobContext) -> None:
    from safehold.intake.consent import ConsentHashes

    with ctx.db.session() as s:
        tenants = set(
            s.scalars(
                select(Report.tenant)
                .join(ReportHash, ReportHash.report_id == Report.id)
                .where(ReportHash.active.is_(False))
                .distinct()
            )
        )
    consent = ConsentHashes(ctx.db, ctx.audit)
    for tenant in tenants:
        removed = consent.sweep(tenant)
        if removed:
            log.warning("removed %s withdrawn hashes left in the consent bank", removed)

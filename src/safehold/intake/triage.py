"""Triage: which case a report joins, which queue it waits in, and what is flagged.

* **Same URL or same hash → same case.** A report naming a URL (canonical form) or
  carrying a file (SHA-256 or exact PDQ) that an open complaint already has joins that
  complaint and is flagged ``duplicate``. When only resolved complaints have it, a new
  case opens flagged ``reported_before``.
* **Queue and priority** come from the category (its taxonomy labels' severity); intimate
  images of someone under 18 are child sexual abuse material and go to the CSAM queue;
  files that match a bank add the bank entry's labels (an ``A1`` match is urgent).
* **Spam** is flagged, never dropped: an empty report, a description stuffed with links,
  or the same text sent three or more times in a day. A new case for a report flagged
  as spam waits in ``reports-spam`` at priority 0, so people see real reports first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safehold import taxonomy
from safehold.intake.categories import CSAM_QUEUE, MINOR_AGE_BANDS, Category
from safehold.store.models import Case, CaseItem, Report, ReportUrl, utcnow

SPAM_QUEUE = "reports-spam"
MAX_LINKS_IN_TEXT = 10
REPEATS_PER_DAY = 3
_LINK = re.compile(r"(?:https?://|www\.)", re.IGNORECASE)


def labels_for(
    category: Category, demographics: dict[str, str], matched: Iterable[str]
) -> list[str]:
    labels = list(category.labels)
    if category.intimate and demographics.get("age_band") in MINOR_AGE_BANDS:
        labels.append("csam")
    labels.extend(matched)
    return taxonomy.validate_labels(labels)


def queue_for(category: Category, labels: list[str]) -> str:
    if category.queue != CSAM_QUEUE and any(
        taxonomy.LABELS[label].scheme in ("industry", "iwf", "interpol", "csam") for label in labels
    ):
        return CSAM_QUEUE
    return category.queue


def spam_reasons(
    s: Session,
    tenant: str,
    *,
    urls: int,
    files: int,
    description: str,
    digest: str | None,
) -> list[str]:
    reasons: list[str] = []
    if urls == 0 and files == 0 and len(description) < 15:
        reasons.append("spam:empty")
    if len(_LINK.findall(description)) > MAX_LINKS_IN_TEXT:
        reasons.append("spam:many_links")
    if digest is not None and len(description) >= 15:
        since = utcnow() - timedelta(days=1)
        same = s.scalar(
            select(func.count())
            .select_from(Report)
            .where(
                Report.tenant == tenant,
                Report.description_digest == digest,
                Report.created_at >= since,
            )
        )
        if int(same or 0) + 1 >= REPEATS_PER_DAY:
            reasons.append("spam:repeated_text")
    return reasons


def find_case(
    s: Session,
    tenant: str,
    *,
    url_digests: list[str],
    sha256s: list[str],
    pdqs: list[str],
) -> tuple[Case | None, list[str]]:
    """The open complaint that has one of these URLs or files (the oldest), and the
    flags for the report: ``duplicate`` or ``reported_before``."""
    ids: set[int] = set()
    if url_digests:
        ids.update(
            int(i)
            for i in s.scalars(select(ReportUrl.case_id).where(ReportUrl.digest.in_(url_digests)))
            if i is not None
        )
    conds = []
    if sha256s:
        conds.append(CaseItem.sha256.in_(sha256s))
    if pdqs:
        conds.append(CaseItem.pdq.in_(pdqs))
    for cond in conds:
        ids.update(
            int(i)
            for i in s.scalars(
                select(CaseItem.case_id).where(cond, CaseItem.report_id.is_not(None))
            )
        )
    if not ids:
        return None, []
    cases = list(
        s.scalars(
            select(Case)
            .where(Case.id.in_(ids), Case.tenant == tenant, Case.kind == "complaint")
            .order_by(Case.id)
        )
    )
    for case in cases:
        if case.stage != "resolved":
            return case, ["duplicate"]
    return None, (["reported_before"] if cases else [])


def spam_queue_priority(flags: list[str]) -> bool:
    return any(f.startswith("spam:") for f in flags)

"""Intake: reports from the public and partners, on-device hashes, complaint handling.

* :mod:`~safehold.intake.reports` — receive a report, give a receipt, let its holder
  check the status, add information or withdraw it; messages to the reporter.
* :mod:`~safehold.intake.consent` — hashes people make of their own images on their
  device, in a consent-based bank, removed everywhere when withdrawn.
* :mod:`~safehold.intake.triage` — same URL or hash → same case; queues; spam flags.
* :mod:`~safehold.intake.complaints` — assess → investigate → resolve, with clocks.
* :mod:`~safehold.intake.notices`, :mod:`~safehold.intake.templates`,
  :mod:`~safehold.intake.contacts` — takedown and blocking notices to hosts.
* :mod:`~safehold.intake.blocklist` — the URL block list (plain and RPZ).
"""

from safehold.intake.categories import CATEGORIES, Category, get_category
from safehold.intake.complaints import Complaints
from safehold.intake.consent import ConsentHashes, HashReceipt
from safehold.intake.contacts import HostContacts
from safehold.intake.model import OUTCOMES, ReportInfo, ReportStatus
from safehold.intake.notices import Notices
from safehold.intake.receipts import Receipt
from safehold.intake.reports import NewReport, ReportFile, Reports
from safehold.intake.templates import NoticeTemplates

__all__ = [
    "CATEGORIES",
    "OUTCOMES",
    "Category",
    "Complaints",
    "ConsentHashes",
    "HashReceipt",
    "HostContacts",
    "NewReport",
    "NoticeTemplates",
    "Notices",
    "Receipt",
    "ReportFile",
    "ReportInfo",
    "ReportStatus",
    "Reports",
    "get_category",
]

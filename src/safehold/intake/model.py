"""Plain, frozen views of reports, their URLs and messages, for the console, API and portal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from safehold.cases.model import iso
from safehold.intake.categories import N_
from safehold.intake.receipts import display_number
from safehold.store.models import Report, ReportMessage, ReportUrl

OUTCOMES: dict[str, str] = {
    "advice_given": N_("Advice given"),
    "removed_by_host": N_("Content removed by the host"),
    "takedown_notice_sent": N_("Takedown notice sent"),
    "url_block_requested": N_("URL block requested"),
    "referred_to_police": N_("Referred to police"),
    "no_action": N_("No action"),
}
"""How a complaint ends (the console's words)."""

PUBLIC_OUTCOMES: dict[str, str] = {
    "advice_given": N_("We have given advice."),
    "removed_by_host": N_("The content has been removed."),
    "takedown_notice_sent": N_("We have asked the website or service to remove the content."),
    "url_block_requested": N_("We have asked for access to the content to be blocked."),
    "referred_to_police": N_("We have passed your report to the relevant authorities."),
    "no_action": N_("We looked at your report but could not take action on it."),
}
"""What a reporter reads about the outcome: never more than they need to know."""

PUBLIC_STATES: dict[str, str] = {
    "received": N_("Received: we will look at your report soon."),
    "in_progress": N_("In progress: we are looking into your report."),
    "resolved": N_("Resolved."),
    "withdrawn": N_("Withdrawn: you withdrew this report."),
    "active": N_("Active: your hashes are in the list that services check uploads against."),
}


@dataclass(frozen=True)
class UrlInfo:
    id: int
    report_id: int
    case_id: int | None
    url: str
    canonical: str
    host: str
    domain: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "report_id": self.report_id,
            "case_id": self.case_id,
            "url": self.url,
            "canonical": self.canonical,
            "host": self.host,
            "domain": self.domain,
        }


@dataclass(frozen=True)
class MessageInfo:
    id: int
    report_id: int
    direction: str
    body: str
    at: datetime
    user_id: int | None = None
    user: str | None = None
    email_status: str | None = None
    email_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "report_id": self.report_id,
            "direction": self.direction,
            "body": self.body,
            "at": iso(self.at),
            "user": self.user,
            "email_status": self.email_status,
            "email_error": self.email_error,
        }

    def public(self) -> dict[str, Any]:
        """What the reporter sees: no staff names."""
        return {"direction": self.direction, "body": self.body, "at": iso(self.at)}


@dataclass(frozen=True)
class ReportInfo:
    id: int
    tenant: str
    number: str
    kind: str
    category: str
    status: str
    case_id: int | None
    source: str
    description: str
    platform: str
    username: str
    demographics: dict[str, str]
    contact: dict[str, str] | None
    language: str
    flags: list[str]
    created_at: datetime
    updated_at: datetime
    withdrawn_at: datetime | None
    urls: list[UrlInfo] = field(default_factory=list)
    messages: list[MessageInfo] = field(default_factory=list)
    files: int = 0
    hashes: int = 0
    """Hashes of a ``hashes`` report still in the consent bank."""

    @property
    def display_number(self) -> str:
        return display_number(self.number)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "number": self.display_number,
            "kind": self.kind,
            "category": self.category,
            "status": self.status,
            "case_id": self.case_id,
            "source": self.source,
            "description": self.description,
            "platform": self.platform,
            "username": self.username,
            "demographics": dict(self.demographics),
            "contact": dict(self.contact) if self.contact else None,
            "language": self.language,
            "flags": list(self.flags),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "withdrawn_at": iso(self.withdrawn_at),
            "urls": [u.to_dict() for u in self.urls],
            "messages": [m.to_dict() for m in self.messages],
            "files": self.files,
            "hashes": self.hashes,
        }


@dataclass(frozen=True)
class ReportStatus:
    """What the holder of a receipt may see about their report."""

    number: str
    kind: str
    category: str
    state: str
    """``received``, ``in_progress``, ``resolved``, ``withdrawn`` or (hashes) ``active``."""
    outcome: str | None
    received_at: datetime
    updated_at: datetime
    urls: int
    files: int
    hashes: int
    messages: list[MessageInfo]
    has_contact: bool

    @property
    def display_number(self) -> str:
        return display_number(self.number)

    @property
    def can_add(self) -> bool:
        return self.kind == "report" and self.state != "withdrawn"

    @property
    def can_withdraw(self) -> bool:
        return self.state != "withdrawn"

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.display_number,
            "kind": self.kind,
            "category": self.category,
            "state": self.state,
            "outcome": self.outcome,
            "received_at": iso(self.received_at),
            "updated_at": iso(self.updated_at),
            "urls": self.urls,
            "files": self.files,
            "hashes": self.hashes,
            "messages": [m.public() for m in self.messages],
            "can_add": self.can_add,
            "can_withdraw": self.can_withdraw,
        }


def url_info(row: ReportUrl) -> UrlInfo:
    return UrlInfo(
        id=int(row.id),
        report_id=int(row.report_id),
        case_id=row.case_id,
        url=row.url,
        canonical=row.canonical,
        host=row.host,
        domain=row.domain,
    )


def message_info(row: ReportMessage, names: dict[int, str] | None = None) -> MessageInfo:
    return MessageInfo(
        id=int(row.id),
        report_id=int(row.report_id),
        direction=row.direction,
        body=row.body,
        at=row.at,
        user_id=row.user_id,
        user=(names or {}).get(row.user_id) if row.user_id is not None else None,
        email_status=row.email_status,
        email_error=row.email_error,
    )


def report_info(
    row: Report,
    *,
    urls: list[UrlInfo] | None = None,
    messages: list[MessageInfo] | None = None,
    files: int = 0,
    hashes: int = 0,
) -> ReportInfo:
    return ReportInfo(
        id=int(row.id),
        tenant=row.tenant,
        number=row.number,
        kind=row.kind,
        category=row.category,
        status=row.status,
        case_id=row.case_id,
        source=row.source,
        description=row.description,
        platform=row.platform,
        username=row.username,
        demographics=dict(row.demographics or {}),
        contact=dict(row.contact) if row.contact else None,
        language=row.language,
        flags=list(row.flags or []),
        created_at=row.created_at,
        updated_at=row.updated_at,
        withdrawn_at=row.withdrawn_at,
        urls=urls or [],
        messages=messages or [],
        files=files,
        hashes=hashes,
    )

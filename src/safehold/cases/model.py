"""What the case service hands out: plain, frozen views of cases and their parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from safehold.store.models import Case, CaseComment, CaseDecision, CaseItem, Event, utcnow

STATES: tuple[str, ...] = ("new", "in_review", "decided", "actioned", "referred", "closed")
OPEN_STATES: tuple[str, ...] = ("new", "in_review")
"""Cases new items attach to and reviewers are assigned from."""
PENDING_STATES: tuple[str, ...] = ("new", "in_review", "decided")
"""Cases still waiting for someone (``decided``: a proposal awaits its second person)."""
FINAL_STATES: tuple[str, ...] = ("actioned", "referred", "closed")

DECISION_ACTIONS: dict[str, str] = {
    "no_violation": "closed",
    "remove": "actioned",
    "restrict": "actioned",
    "refer": "referred",
    "escalate": "in_review",
}
"""Decision action → the state the case moves to once the decision stands."""

ESCALATION_QUEUE = "escalations"


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text of a datetime, ``None`` stays ``None`` (for the views' JSON)."""
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class CaseRef:
    case_id: int
    item_id: int
    created: bool

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "item_id": self.item_id, "created": self.created}


@dataclass(frozen=True)
class CaseInfo:
    id: int
    tenant: str
    queue: str
    state: str
    priority: int
    labels: tuple[str, ...]
    account_id: str | None
    title: str
    assignee_id: int | None
    assignee: str | None
    sla_due_at: datetime | None
    created_at: datetime
    updated_at: datetime
    decided_at: datetime | None
    closed_at: datetime | None
    items: int = 0
    related_by: tuple[str, ...] = ()
    """Only from :meth:`Cases.related`: ``sha256``, ``pdq`` and/or ``account``."""
    kind: str = "content"
    """``content`` (opened by the rules) or ``complaint`` (opened by a report)."""
    stage: str | None = None
    """Complaints: ``assess``, ``investigate`` or ``resolved``."""
    outcome: str | None = None
    outcome_reason: str | None = None

    @property
    def overdue(self) -> bool:
        return (
            self.state in PENDING_STATES
            and self.sla_due_at is not None
            and self.sla_due_at < utcnow()
        )

    @property
    def open(self) -> bool:
        return self.state in PENDING_STATES

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "tenant": self.tenant,
            "queue": self.queue,
            "state": self.state,
            "priority": self.priority,
            "labels": list(self.labels),
            "account_id": self.account_id,
            "title": self.title,
            "assignee_id": self.assignee_id,
            "assignee": self.assignee,
            "sla_due_at": iso(self.sla_due_at),
            "overdue": self.overdue,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "decided_at": iso(self.decided_at),
            "closed_at": iso(self.closed_at),
            "items": self.items,
            "kind": self.kind,
        }
        if self.kind == "complaint":
            out.update(stage=self.stage, outcome=self.outcome, outcome_reason=self.outcome_reason)
        if self.related_by:
            out["related_by"] = list(self.related_by)
        return out


@dataclass(frozen=True)
class ItemInfo:
    id: int
    case_id: int
    content_id: str | None
    event_id: int | None
    media_id: int | None
    media_kind: str | None
    """``image`` or ``video`` when the content is stored, else ``None``."""
    sha256: str | None
    pdq: str | None
    signals: dict[str, Any]
    matches: list[dict[str, Any]]
    reports: int
    added_at: datetime
    report_id: int | None = None
    """The report the file came with (complaint cases)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "content_id": self.content_id,
            "event_id": self.event_id,
            "media_id": self.media_id,
            "media_kind": self.media_kind,
            "sha256": self.sha256,
            "pdq": self.pdq,
            "signals": self.signals,
            "matches": self.matches,
            "reports": self.reports,
            "added_at": iso(self.added_at),
            "report_id": self.report_id,
        }


@dataclass(frozen=True)
class DecisionInfo:
    id: int
    case_id: int
    user_id: int | None
    user: str | None
    label: str | None
    action: str
    reason: str
    status: str
    """``confirmed`` (stands), ``proposed`` (awaits a second person) or ``rejected``."""
    at: datetime
    confirmed_by_id: int | None
    confirmed_by: str | None
    confirmed_at: datetime | None
    case_state: str = ""
    """The case's state after this call."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "user_id": self.user_id,
            "user": self.user,
            "label": self.label,
            "action": self.action,
            "reason": self.reason,
            "status": self.status,
            "at": iso(self.at),
            "confirmed_by_id": self.confirmed_by_id,
            "confirmed_by": self.confirmed_by,
            "confirmed_at": iso(self.confirmed_at),
            "case_state": self.case_state,
        }


@dataclass(frozen=True)
class CommentInfo:
    id: int
    case_id: int
    user_id: int | None
    user: str | None
    body: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "case_id": self.case_id,
            "user_id": self.user_id,
            "user": self.user,
            "body": self.body,
            "at": iso(self.at),
        }


@dataclass(frozen=True)
class CaseView:
    case: CaseInfo
    items: list[ItemInfo]
    decisions: list[DecisionInfo]
    comments: list[CommentInfo]

    @property
    def id(self) -> int:
        return self.case.id

    @property
    def pending(self) -> DecisionInfo | None:
        """The proposed decision awaiting a second person, if any."""
        return next((d for d in self.decisions if d.status == "proposed"), None)

    @property
    def matches(self) -> list[dict[str, Any]]:
        return [m for item in self.items for m in item.matches]

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case.to_dict(),
            "items": [i.to_dict() for i in self.items],
            "decisions": [d.to_dict() for d in self.decisions],
            "comments": [c.to_dict() for c in self.comments],
        }


@dataclass(frozen=True)
class Page:
    cases: list[CaseInfo]
    next_cursor: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"cases": [c.to_dict() for c in self.cases], "next_cursor": self.next_cursor}


@dataclass(frozen=True)
class QueueCount:
    queue: str
    new: int = 0
    in_review: int = 0
    decided: int = 0
    open: int = 0
    overdue: int = 0
    next_due: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "new": self.new,
            "in_review": self.in_review,
            "decided": self.decided,
            "open": self.open,
            "overdue": self.overdue,
            "next_due": iso(self.next_due),
        }


@dataclass(frozen=True)
class EventSummary:
    id: int
    at: datetime
    kind: str
    content_id: str | None
    decision: str
    rules: list[str]
    actions: list[str]
    media_id: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": iso(self.at),
            "kind": self.kind,
            "content_id": self.content_id,
            "decision": self.decision,
            "rules": self.rules,
            "actions": self.actions,
            "media_id": self.media_id,
        }


@dataclass(frozen=True)
class AccountHistory:
    tenant: str
    account_id: str
    events: list[EventSummary] = field(default_factory=list)
    cases: list[CaseInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "account_id": self.account_id,
            "events": [e.to_dict() for e in self.events],
            "cases": [c.to_dict() for c in self.cases],
        }


def case_info(
    row: Case, *, assignee: str | None = None, items: int = 0, related_by: tuple[str, ...] = ()
) -> CaseInfo:
    return CaseInfo(
        id=int(row.id),
        tenant=row.tenant,
        queue=row.queue,
        state=row.state,
        priority=int(row.priority),
        labels=tuple(row.labels or ()),
        account_id=row.account_id,
        title=row.title,
        assignee_id=row.assignee_id,
        assignee=assignee,
        sla_due_at=row.sla_due_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        decided_at=row.decided_at,
        closed_at=row.closed_at,
        items=items,
        related_by=related_by,
        kind=row.kind or "content",
        stage=row.stage,
        outcome=row.outcome,
        outcome_reason=row.outcome_reason,
    )


def item_info(row: CaseItem, media_kind: str | None) -> ItemInfo:
    return ItemInfo(
        id=int(row.id),
        case_id=int(row.case_id),
        content_id=row.content_id,
        event_id=row.event_id,
        media_id=row.media_id,
        media_kind=media_kind,
        sha256=row.sha256,
        pdq=row.pdq,
        signals=dict(row.signals or {}),
        matches=list(row.matches or []),
        reports=int(row.reports or 0),
        added_at=row.added_at,
        report_id=row.report_id,
    )


def decision_info(row: CaseDecision, names: dict[int, str], case_state: str = "") -> DecisionInfo:
    return DecisionInfo(
        id=int(row.id),
        case_id=int(row.case_id),
        user_id=row.user_id,
        user=names.get(row.user_id) if row.user_id is not None else None,
        label=row.label,
        action=row.action,
        reason=row.reason,
        status=row.status,
        at=row.at,
        confirmed_by_id=row.confirmed_by,
        confirmed_by=names.get(row.confirmed_by) if row.confirmed_by is not None else None,
        confirmed_at=row.confirmed_at,
        case_state=case_state,
    )


def comment_info(row: CaseComment, names: dict[int, str]) -> CommentInfo:
    return CommentInfo(
        id=int(row.id),
        case_id=int(row.case_id),
        user_id=row.user_id,
        user=names.get(row.user_id) if row.user_id is not None else None,
        body=row.body,
        at=row.at,
    )


def event_summary(row: Event) -> EventSummary:
    kinds: list[str] = []
    for a in row.actions or []:
        kind = a.get("kind") if isinstance(a, dict) else a
        if isinstance(kind, str) and kind not in kinds:
            kinds.append(kind)
    return EventSummary(
        id=int(row.id),
        at=row.at,
        kind=row.kind,
        content_id=row.content_id,
        decision=row.decision,
        rules=list(row.rules or []),
        actions=kinds,
        media_id=row.media_id,
    )

"""Complaint handling: assess → investigate → resolve, with response-time clocks.

A report from the public opens (or joins) a *complaint* case (``Case.kind ==
"complaint"``) in the ``assess`` stage. A hotline analyst assesses it, may start an
investigation, and resolves it with one of :data:`~safehold.intake.model.OUTCOMES`::

    assess ──► investigate ──► resolved (outcome + reason)
       └───────────────────────►┘        └─► reopen (a lead) ──► investigate

Every stage is a row of ``case_stages`` (started, ended, by whom), so the time each
complaint spent in each stage — the response-time clocks — is measured, not guessed.
Each stage has a target: assessment within the case's SLA (4 h for the most severe
categories, 24 h otherwise; ``SAFEHOLD_SLA_URGENT_HOURS``/``SAFEHOLD_SLA_HOURS``),
investigation within ``SAFEHOLD_INVESTIGATE_HOURS`` (default 72).

The case state follows the stage, so queues, counts and the console work as for any
case: ``assess`` is ``new`` (or ``in_review`` once someone took it), ``investigate`` is
``in_review``, and a resolved complaint is ``referred`` (to police), ``actioned``
(removed, takedown notice, block request) or ``closed`` (advice, no action).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from safehold import taxonomy
from safehold.access.users import UserInfo
from safehold.audit import AuditLog
from safehold.cases.model import CaseInfo
from safehold.cases.service import Cases, _by_severity, default_sla
from safehold.errors import Conflict, InvalidValue, preview
from safehold.intake.categories import CATEGORIES, get_category
from safehold.intake.fields import clean_text
from safehold.intake.model import OUTCOMES
from safehold.settings import env_float
from safehold.store.models import Case, CaseComment, CaseStage, Report, utcnow

STAGES: tuple[str, ...] = ("assess", "investigate", "resolved")
OUTCOME_STATES: dict[str, str] = {
    "advice_given": "closed",
    "removed_by_host": "actioned",
    "takedown_notice_sent": "actioned",
    "url_block_requested": "actioned",
    "referred_to_police": "referred",
    "no_action": "closed",
}
MAX_REASON = 2000


def investigate_target() -> timedelta:
    return timedelta(hours=env_float("SAFEHOLD_INVESTIGATE_HOURS", 72.0))


@dataclass(frozen=True)
class StageClock:
    stage: str
    started_at: datetime
    ended_at: datetime | None
    user: str | None
    target: timedelta | None

    @property
    def seconds(self) -> float:
        end = self.ended_at or utcnow()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def overdue(self) -> bool:
        return self.target is not None and self.seconds > self.target.total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "seconds": round(self.seconds, 1),
            "target_seconds": self.target.total_seconds() if self.target else None,
            "overdue": self.overdue,
            "user": self.user,
        }


@dataclass(frozen=True)
class StageSummary:
    """Complaints of a tenant per stage, and how long finished stages took (median)."""

    open_by_stage: dict[str, int]
    overdue: int
    median_seconds: dict[str, float | None]
    resolved_by_outcome: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "open_by_stage": dict(self.open_by_stage),
            "overdue": self.overdue,
            "median_seconds": dict(self.median_seconds),
            "resolved_by_outcome": dict(self.resolved_by_outcome),
        }


# --------------------------------------------------------------------------- in a session


def open_complaint(
    s: Session,
    *,
    tenant: str,
    queue: str,
    labels: list[str],
    priority: int,
    title: str,
) -> Case:
    """A new complaint case in the ``assess`` stage (in the caller's transaction)."""
    now = utcnow()
    case = Case(
        tenant=tenant,
        queue=queue,
        state="new",
        priority=priority,
        labels=_by_severity(labels),
        title=title[:256],
        sla_due_at=now + default_sla(priority),
        created_at=now,
        updated_at=now,
        kind="complaint",
        stage="assess",
    )
    s.add(case)
    s.flush()
    s.add(CaseStage(case_id=case.id, stage="assess", started_at=now))
    return case


def _current_stage(s: Session, case_id: int) -> CaseStage | None:
    return s.scalar(
        select(CaseStage)
        .where(CaseStage.case_id == case_id, CaseStage.ended_at.is_(None))
        .order_by(CaseStage.id.desc())
        .limit(1)
    )


def move_stage(s: Session, case: Case, stage: str, user_id: int | None) -> None:
    """End the running stage and start ``stage`` (``resolved`` ends at once)."""
    now = utcnow()
    current = _current_stage(s, int(case.id))
    if current is not None:
        current.ended_at = now
    s.add(
        CaseStage(
            case_id=case.id,
            stage=stage,
            started_at=now,
            ended_at=now if stage == "resolved" else None,
            user_id=user_id,
        )
    )
    case.stage = stage
    case.updated_at = now


def resolve_case(s: Session, case: Case, outcome: str, reason: str, user_id: int | None) -> None:
    """Resolve a complaint in the caller's transaction (checks done by the caller)."""
    now = utcnow()
    move_stage(s, case, "resolved", user_id)
    case.outcome = outcome
    case.outcome_reason = reason or None
    case.state = OUTCOME_STATES[outcome]
    case.decided_at = now
    case.closed_at = now


def check_outcome(outcome: object, reason: str) -> str:
    if not isinstance(outcome, str) or outcome not in OUTCOMES:
        raise InvalidValue(f"unknown outcome {preview(outcome)}: use one of {', '.join(OUTCOMES)}")
    if outcome == "no_action" and not reason:
        raise InvalidValue("say why no action is taken (the reason is recorded and audited)")
    return outcome


# --------------------------------------------------------------------------- the service


class Complaints:
    """The hotline side of reports: move complaints through their stages."""

    def __init__(self, cases: Cases, audit: AuditLog) -> None:
        self.cases = cases
        self.db = cases.db
        self.audit = audit

    def _complaint(self, s: Session, case_id: int, me: UserInfo) -> Case:
        case = self.cases._case(s, case_id, me.tenant, lock=True)
        if case.kind != "complaint":
            raise Conflict(f"case {case.id} is not a complaint (it was opened by a scan)")
        return case

    def _audit(self, s: Session, me: UserInfo, action: str, case: Case, **details: Any) -> None:
        self.audit.append(
            me.actor,
            action,
            object_type="case",
            object_id=str(case.id),
            details=details,
            tenant=case.tenant,
            session=s,
        )

    def start_investigation(self, case_id: int, user: UserInfo, note: str = "") -> CaseInfo:
        """assess → investigate; the case is assigned to ``user`` if nobody has it."""
        note = clean_text(note, MAX_REASON, "the note")
        with self.db.session() as s:
            me = self.cases._person(s, user, "review")
            case = self._complaint(s, case_id, me)
            if case.stage != "assess":
                raise Conflict(f"case {case.id} is {case.stage}, not waiting for assessment")
            move_stage(s, case, "investigate", me.id)
            case.state = "in_review"
            if case.assignee_id is None:
                case.assignee_id = me.id
            case.sla_due_at = utcnow() + investigate_target()
            if note:
                s.add(CaseComment(case_id=case.id, user_id=me.id, body=note, at=utcnow()))
            self._audit(s, me, "complaint_stage", case, stage="investigate")
            s.flush()
            return self.cases._info(s, case)

    def resolve(
        self,
        case_id: int,
        user: UserInfo,
        *,
        outcome: str,
        reason: str = "",
        label: str | None = None,
    ) -> CaseInfo:
        """Resolve a complaint (from assess or investigate) with its outcome; ``label``
        (a taxonomy label) is added to the case's labels when given."""
        reason = clean_text(reason, MAX_REASON, "the reason")
        check_outcome(outcome, reason)
        extra = taxonomy.validate_labels([label]) if label else []
        with self.db.session() as s:
            me = self.cases._person(s, user, "review")
            case = self._complaint(s, case_id, me)
            if case.stage == "resolved":
                raise Conflict(f"case {case.id} is already resolved: reopen it first")
            if case.assignee_id not in (None, me.id) and not me.can("lead"):
                raise Conflict(f"case {case.id} is assigned to someone else")
            if extra:
                case.labels = _by_severity([*(case.labels or []), *extra])
            resolve_case(s, case, outcome, reason, me.id)
            self._audit(
                s, me, "complaint_resolved", case, outcome=outcome, reason=reason, label=label
            )
            s.flush()
            return self.cases._info(s, case)

    def reopen(self, case_id: int, user: UserInfo, reason: str) -> CaseInfo:
        """resolved → investigate (a lead; the reason is audited)."""
        reason = clean_text(reason, MAX_REASON, "the reason")
        if not reason:
            raise InvalidValue("say why the complaint is reopened")
        with self.db.session() as s:
            me = self.cases._person(s, user, "lead")
            case = self._complaint(s, case_id, me)
            if case.stage != "resolved":
                raise Conflict(f"case {case.id} is {case.stage}: only resolved ones are reopened")
            previous = case.outcome
            move_stage(s, case, "investigate", me.id)
            case.state = "in_review"
            case.outcome = None
            case.outcome_reason = None
            case.closed_at = None
            case.sla_due_at = utcnow() + investigate_target()
            self._audit(s, me, "reopen", case, reason=reason, previous_outcome=previous)
            s.flush()
            return self.cases._info(s, case)

    def recategorise(self, case_id: int, user: UserInfo, category: str) -> CaseInfo:
        """Triage again: the category's queue, labels and priority replace the case's
        own (labels that came from bank matches are kept)."""
        cat = get_category(category)
        with self.db.session() as s:
            me = self.cases._person(s, user, "review")
            case = self._complaint(s, case_id, me)
            if case.stage == "resolved":
                raise Conflict(f"case {case.id} is resolved: reopen it first")
            category_labels = {label for c in CATEGORIES.values() for label in c.labels}
            kept = [label for label in case.labels or [] if label not in category_labels]
            case.labels = _by_severity([*kept, *cat.labels])
            case.queue = cat.queue
            case.priority = taxonomy.severity(case.labels)
            for report in s.scalars(select(Report).where(Report.case_id == case.id)):
                report.category = cat.key
            case.updated_at = utcnow()
            self._audit(s, me, "complaint_triage", case, category=cat.key, queue=cat.queue)
            s.flush()
            return self.cases._info(s, case)

    def clocks(self, case_id: int, tenant: str) -> list[StageClock]:
        """The stages of a complaint, oldest first, with their targets."""
        with self.db.session() as s:
            case = self.cases._case(s, case_id, tenant)
            rows = list(
                s.scalars(
                    select(CaseStage).where(CaseStage.case_id == case.id).order_by(CaseStage.id)
                )
            )
            names = self.cases._names(s, [r.user_id for r in rows])
            return [
                StageClock(
                    stage=r.stage,
                    started_at=r.started_at,
                    ended_at=r.ended_at,
                    user=names.get(r.user_id) if r.user_id is not None else None,
                    target=_target(r.stage, int(case.priority)),
                )
                for r in rows
            ]

    def summary(self, tenant: str, *, since: datetime | None = None) -> StageSummary:
        """Open complaints per stage, overdue ones, median time per finished stage and
        resolved complaints per outcome (since ``since`` when given)."""
        with self.db.session() as s:
            complaint = (Case.tenant == tenant, Case.kind == "complaint")
            open_by_stage = {stage: 0 for stage in STAGES[:2]}
            for stage, n in s.execute(
                select(Case.stage, func.count())
                .where(*complaint, Case.stage.in_(STAGES[:2]))
                .group_by(Case.stage)
            ):
                open_by_stage[str(stage)] = int(n)
            overdue = int(
                s.scalar(
                    select(func.count())
                    .select_from(Case)
                    .where(*complaint, Case.stage.in_(STAGES[:2]), Case.sla_due_at < utcnow())
                )
                or 0
            )
            q = (
                select(CaseStage.stage, CaseStage.started_at, CaseStage.ended_at)
                .join(Case, Case.id == CaseStage.case_id)
                .where(*complaint, CaseStage.ended_at.is_not(None), CaseStage.stage != "resolved")
            )
            if since is not None:
                q = q.where(CaseStage.ended_at >= since)
            durations: dict[str, list[float]] = {stage: [] for stage in STAGES[:2]}
            for stage, started, ended in s.execute(q):
                if ended is None:
                    continue
                durations.setdefault(str(stage), []).append((ended - started).total_seconds())
            outcomes = {o: 0 for o in OUTCOMES}
            oq = (
                select(Case.outcome, func.count())
                .where(*complaint, Case.stage == "resolved")
                .group_by(Case.outcome)
            )
            if since is not None:
                oq = oq.where(Case.closed_at >= since)
            for outcome, n in s.execute(oq):
                if outcome in outcomes:
                    outcomes[str(outcome)] = int(n)
        return StageSummary(
            open_by_stage=open_by_stage,
            overdue=overdue,
            median_seconds={k: _median(v) for k, v in durations.items()},
            resolved_by_outcome=outcomes,
        )


def _target(stage: str, priority: int) -> timedelta | None:
    if stage == "assess":
        return default_sla(priority)
    if stage == "investigate":
        return investigate_target()
    return None


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return round(ordered[mid], 1)
    return round((ordered[mid - 1] + ordered[mid]) / 2, 1)

"""Cases: review queues, the case state machine, decisions and comments.

States::

    new ──► in_review ──► decided ──► actioned | referred | closed
                 ▲           │ (two-person rule: a proposal awaits confirmation)
                 └── reopen ◄┘ (from actioned, referred or closed; a lead)

A decision is a taxonomy label, an action and a reason. ``no_violation`` closes the case,
``remove`` and ``restrict`` action it, ``refer`` refers it and ``escalate`` keeps it in
review in the ``escalations`` queue one priority higher. Actions named in
``SAFEHOLD_TWO_PERSON`` (comma-separated; default ``refer``) are only *proposed*: the case
waits in ``decided`` until a different user who may review confirms it (the case moves on)
or rejects it (back to ``in_review``).

Priority is the taxonomy severity of the worst label (A1 100 ... B2 75) unless a rule
gives one; the SLA due time is ``SAFEHOLD_SLA_HOURS`` (default 24) after the case opened,
``SAFEHOLD_SLA_URGENT_HOURS`` (default 4) for priority of A1's severity or more, unless a
rule gives ``sla_seconds``.

Every change made by a person writes an audit entry in the same transaction. Auditors
and disabled users can read but not act (:class:`~safehold.errors.Forbidden`).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, cast, func, or_, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from safehold import taxonomy
from safehold.access.users import UserInfo, user_info
from safehold.audit import AuditLog
from safehold.banks.entries import check_tenant
from safehold.cases.model import (
    DECISION_ACTIONS,
    ESCALATION_QUEUE,
    FINAL_STATES,
    OPEN_STATES,
    PENDING_STATES,
    STATES,
    AccountHistory,
    CaseInfo,
    CaseRef,
    CaseView,
    DecisionInfo,
    ItemInfo,
    Page,
    QueueCount,
    case_info,
    comment_info,
    decision_info,
    event_summary,
    item_info,
)
from safehold.cases.wellness import Wellness
from safehold.errors import Conflict, Forbidden, InvalidValue, NotFound, preview
from safehold.settings import env_float
from safehold.store.db import Database
from safehold.store.models import (
    Case,
    CaseComment,
    CaseDecision,
    CaseItem,
    Event,
    Media,
    User,
    utcnow,
)

MAX_REASON = 2000
MAX_COMMENT = 5000
MAX_TITLE = 256
QUEUE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")
URGENT_SEVERITY = taxonomy.LABELS["A1"].severity

DecidedListener = Callable[[CaseInfo, DecisionInfo], None]


def default_sla(priority: int) -> timedelta:
    """The SLA for a priority: urgent (A1's severity or more) or normal."""
    if priority >= URGENT_SEVERITY:
        return timedelta(hours=env_float("SAFEHOLD_SLA_URGENT_HOURS", 4.0))
    return timedelta(hours=env_float("SAFEHOLD_SLA_HOURS", 24.0))


def two_person_actions() -> frozenset[str]:
    """Decision actions that need a second person (``SAFEHOLD_TWO_PERSON``; default refer)."""
    raw = os.environ.get("SAFEHOLD_TWO_PERSON")
    if raw is None:
        return frozenset({"refer"})
    return frozenset(a.strip() for a in raw.split(",") if a.strip() in DECISION_ACTIONS)


def check_queue(queue: object) -> str:
    if not isinstance(queue, str) or not 1 <= len(queue) <= 64 or not set(queue) <= QUEUE_CHARS:
        raise InvalidValue(
            f"invalid queue name {preview(queue)}: use 1-64 lower-case letters, digits, "
            "'_', '-' or '.'"
        )
    return queue


def _clean_text(value: object, limit: int, what: str, *, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidValue(f"the {what} must be text without NUL")
    value = value.strip()
    if required and not value:
        raise InvalidValue(f"the {what} is empty")
    if len(value) > limit:
        raise InvalidValue(f"the {what} is too long: at most {limit} characters")
    return value


def _encode_cursor(row: CaseInfo) -> str:
    due = row.sla_due_at.isoformat() if row.sla_due_at else None
    raw = json.dumps([row.priority, due, row.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, datetime | None, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        prio, due, cid = json.loads(raw)
        return int(prio), (datetime.fromisoformat(due) if due else None), int(cid)
    except (ValueError, TypeError):
        raise InvalidValue("invalid cursor: use the next_cursor of the previous page") from None


class Cases:
    """Open, list, work and decide cases."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit
        self.wellness = Wellness(db)
        self.decided_listeners: list[DecidedListener] = []
        """Called after a decision stands (committed): ``listener(case, decision)``."""

    # ================================================================ opening

    def open_or_attach(
        self,
        *,
        tenant: str,
        queue: str,
        labels: Iterable[str],
        account_id: str | None,
        content_id: str | None,
        event_id: int | None,
        media_id: int | None,
        signals: dict[str, Any] | None,
        matches: Sequence[dict[str, Any]] | None,
        reports: int = 0,
        priority: int | None = None,
        sla_seconds: int | None = None,
        title: str = "",
    ) -> CaseRef:
        """Add an item to the open case (new or in review) of the same queue and account
        (or, without an account, the same SHA-256), or open a new case for it.

        Idempotent per ``event_id``: the same event added twice to a queue is one item."""
        check_tenant(tenant)
        check_queue(queue)
        labels = taxonomy.validate_labels(labels or [])
        signals = dict(signals or {})
        match_list = [dict(m) for m in matches or []]
        if isinstance(reports, bool) or not isinstance(reports, int) or reports < 0:
            raise InvalidValue("reports must be a whole number of 0 or more")
        if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
            raise InvalidValue("priority must be a whole number")
        if sla_seconds is not None and (
            isinstance(sla_seconds, bool) or not isinstance(sla_seconds, int) or sla_seconds <= 0
        ):
            raise InvalidValue("sla_seconds must be a positive whole number")
        title = _clean_text(title, MAX_TITLE, "title")
        prio = priority if priority is not None else taxonomy.severity(labels)
        sha = signals.get("sha256") if isinstance(signals.get("sha256"), str) else None
        pdq = signals.get("pdq") if isinstance(signals.get("pdq"), str) else None
        now = utcnow()
        due = now + (timedelta(seconds=sla_seconds) if sla_seconds else default_sla(prio))
        with self.db.session() as s:
            self._serialise(s, f"open:{tenant}:{queue}:{account_id or sha or ''}")
            if event_id is not None:
                found = s.execute(
                    select(CaseItem.case_id, CaseItem.id)
                    .join(Case, Case.id == CaseItem.case_id)
                    .where(
                        CaseItem.event_id == event_id,
                        Case.tenant == tenant,
                        Case.queue == queue,
                    )
                    .limit(1)
                ).first()
                if found is not None:
                    return CaseRef(int(found[0]), int(found[1]), False)
            case = self._open_case(s, tenant, queue, account_id, sha)
            created = case is None
            if case is None:
                case = Case(
                    tenant=tenant,
                    queue=queue,
                    state="new",
                    priority=prio,
                    labels=_by_severity(labels),
                    account_id=account_id,
                    title=title or _title(labels, account_id, content_id),
                    sla_due_at=due,
                    created_at=now,
                    updated_at=now,
                )
                s.add(case)
                s.flush()
            else:
                old_worst = taxonomy.worst_of(case.labels or []) or "review"
                case.labels = _by_severity([*(case.labels or []), *labels])
                new_worst = taxonomy.worst_of(case.labels) or "review"
                if new_worst != old_worst and case.title.startswith(f"{old_worst} · "):
                    # an automatic title names the worst label: keep it true
                    case.title = (new_worst + case.title[len(old_worst) :])[:MAX_TITLE]
                case.priority = max(int(case.priority), prio)
                if case.sla_due_at is None or due < case.sla_due_at:
                    case.sla_due_at = due
                case.updated_at = now
            item = CaseItem(
                case_id=case.id,
                content_id=content_id,
                event_id=event_id,
                media_id=media_id,
                sha256=sha,
                pdq=pdq,
                signals=signals,
                matches=match_list,
                reports=reports,
                added_at=now,
            )
            s.add(item)
            s.flush()
            return CaseRef(int(case.id), int(item.id), created)

    @staticmethod
    def _not_a_complaint(case: Case) -> None:
        """Complaints are decided through their own workflow (assess, investigate, resolve)."""
        if case.kind == "complaint":
            raise Conflict(
                f"case {case.id} is a complaint: resolve it with an outcome "
                "(safehold.intake.Complaints, or the complaint panel in the console)"
            )

    @staticmethod
    def _serialise(s: Session, key: str) -> None:
        """Take a lock for ``key`` until the transaction ends (PostgreSQL: an advisory
        lock; SQLite: the database write lock, taken by a write that changes nothing)."""
        if s.get_bind().dialect.name == "postgresql":
            s.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))
        else:
            s.execute(update(Case).where(Case.id == -1).values(updated_at=Case.updated_at))

    @staticmethod
    def _open_case(
        s: Session, tenant: str, queue: str, account_id: str | None, sha: str | None
    ) -> Case | None:
        q = (
            select(Case)
            .where(Case.tenant == tenant, Case.queue == queue, Case.state.in_(OPEN_STATES))
            .order_by(Case.id)
            .limit(1)
        )
        if account_id is not None:
            q = q.where(Case.account_id == account_id)
        elif sha is not None:
            q = q.where(
                Case.account_id.is_(None),
                Case.id.in_(select(CaseItem.case_id).where(CaseItem.sha256 == sha)),
            )
        else:
            return None
        return s.scalar(q)

    # ================================================================ reading

    def get(self, case_id: int, tenant: str | None = None) -> CaseView:
        """A case with its items, decisions and comments (NotFound in another tenant)."""
        with self.db.session() as s:
            return self._view(s, self._case(s, case_id, tenant))

    def view(self, case_id: int, user: UserInfo) -> CaseView:
        """:meth:`get` for a person: checks they may read cases and records ``view_case``."""
        with self.db.session() as s:
            me = self._person(s, user, "read")
            case = self._case(s, case_id, me.tenant)
            view = self._view(s, case)
            self._audit(s, me, "view_case", case)
            return view

    def _case(self, s: Session, case_id: int, tenant: str | None, *, lock: bool = False) -> Case:
        try:
            cid = int(case_id)
        except (TypeError, ValueError):
            raise NotFound(f"no case {preview(case_id)}") from None
        if lock:  # a row lock on PostgreSQL, the write lock on SQLite
            s.execute(update(Case).where(Case.id == cid).values(updated_at=Case.updated_at))
        case = s.get(Case, cid, populate_existing=lock)
        if case is None or (tenant is not None and case.tenant != tenant):
            raise NotFound(f"no case {cid}")
        return case

    def _names(self, s: Session, ids: Iterable[int | None]) -> dict[int, str]:
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return {}
        return {
            int(i): n for i, n in s.execute(select(User.id, User.name).where(User.id.in_(wanted)))
        }

    def _info(self, s: Session, case: Case, **kw: Any) -> CaseInfo:
        names = self._names(s, [case.assignee_id])
        items = int(
            s.scalar(select(func.count()).select_from(CaseItem).where(CaseItem.case_id == case.id))
            or 0
        )
        return case_info(
            case,
            assignee=names.get(case.assignee_id) if case.assignee_id else None,
            items=items,
            **kw,
        )

    def _view(self, s: Session, case: Case) -> CaseView:
        items = s.execute(
            select(CaseItem, Media.kind)
            .outerjoin(Media, Media.id == CaseItem.media_id)
            .where(CaseItem.case_id == case.id)
            .order_by(CaseItem.id)
        ).all()
        decisions = list(
            s.scalars(
                select(CaseDecision)
                .where(CaseDecision.case_id == case.id)
                .order_by(CaseDecision.id)
            )
        )
        comments = list(
            s.scalars(
                select(CaseComment).where(CaseComment.case_id == case.id).order_by(CaseComment.id)
            )
        )
        names = self._names(
            s,
            [
                case.assignee_id,
                *(d.user_id for d in decisions),
                *(d.confirmed_by for d in decisions),
                *(c.user_id for c in comments),
            ],
        )
        info = case_info(
            case,
            assignee=names.get(case.assignee_id) if case.assignee_id else None,
            items=len(items),
        )
        return CaseView(
            case=info,
            items=[item_info(i, kind) for i, kind in items],
            decisions=[decision_info(d, names) for d in decisions],
            comments=[comment_info(c, names) for c in comments],
        )

    def item(self, item_id: int, tenant: str | None = None) -> ItemInfo:
        """One item (NotFound in another tenant)."""
        with self.db.session() as s:
            found = s.execute(
                select(CaseItem, Media.kind, Case.tenant)
                .join(Case, Case.id == CaseItem.case_id)
                .outerjoin(Media, Media.id == CaseItem.media_id)
                .where(CaseItem.id == int(item_id))
            ).first()
            if found is None or (tenant is not None and found[2] != tenant):
                raise NotFound(f"no case item {preview(item_id)}")
            return item_info(found[0], found[1])

    def list_cases(
        self,
        tenant: str,
        *,
        queue: str | None = None,
        state: str | None = None,
        assignee_id: int | None = None,
        label: str | None = None,
        overdue: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Cases by priority (highest first), then SLA due time, then id.

        ``state`` is one of the states or ``open`` (new, in_review or decided); ``label``
        matches cases carrying that label; ``overdue`` keeps pending cases past their SLA
        (``False``: the others). Page on with ``cursor=page.next_cursor``."""
        limit = max(1, min(int(limit), 500))
        conds: list[ColumnElement[bool]] = [Case.tenant == tenant]
        if queue is not None:
            conds.append(Case.queue == queue)
        if state is not None:
            if state == "open":
                conds.append(Case.state.in_(PENDING_STATES))
            elif state in STATES:
                conds.append(Case.state == state)
            else:
                raise InvalidValue(
                    f"unknown state {preview(state)}: use open or one of {', '.join(STATES)}"
                )
        if assignee_id is not None:
            conds.append(Case.assignee_id == int(assignee_id))
        if label is not None:
            name = taxonomy.normalize_label(label)
            pattern = (
                '%"' + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + '"%'
            )
            conds.append(cast(Case.labels, String).like(pattern, escape="\\"))
        now = utcnow()
        is_overdue = and_(
            Case.state.in_(PENDING_STATES), Case.sla_due_at.is_not(None), Case.sla_due_at < now
        )
        if overdue is True:
            conds.append(is_overdue)
        elif overdue is False:
            conds.append(~is_overdue)
        if cursor:
            prio, due, cid = _decode_cursor(cursor)
            if due is None:
                after = and_(Case.sla_due_at.is_(None), Case.id > cid)
            else:
                after = or_(
                    Case.sla_due_at > due,
                    Case.sla_due_at.is_(None),
                    and_(Case.sla_due_at == due, Case.id > cid),
                )
            conds.append(or_(Case.priority < prio, and_(Case.priority == prio, after)))
        q = (
            select(Case)
            .where(*conds)
            .order_by(Case.priority.desc(), Case.sla_due_at.asc().nulls_last(), Case.id.asc())
            .limit(limit + 1)
        )
        with self.db.session() as s:
            rows = list(s.scalars(q))
            more = len(rows) > limit
            rows = rows[:limit]
            names = self._names(s, [r.assignee_id for r in rows])
            counts = self._item_counts(s, [int(r.id) for r in rows])
            cases = [
                case_info(
                    r,
                    assignee=names.get(r.assignee_id) if r.assignee_id else None,
                    items=counts.get(int(r.id), 0),
                )
                for r in rows
            ]
        return Page(cases, _encode_cursor(cases[-1]) if more and cases else None)

    @staticmethod
    def _item_counts(s: Session, ids: list[int]) -> dict[int, int]:
        if not ids:
            return {}
        return {
            int(c): int(n)
            for c, n in s.execute(
                select(CaseItem.case_id, func.count())
                .where(CaseItem.case_id.in_(ids))
                .group_by(CaseItem.case_id)
            )
        }

    def queue_counts(self, tenant: str) -> list[QueueCount]:
        """Per queue: cases new, in review, decided (awaiting), open, overdue, next due."""
        now = utcnow()
        with self.db.session() as s:
            rows = s.execute(
                select(
                    Case.queue,
                    Case.state,
                    func.count(),
                    func.min(Case.sla_due_at),
                    func.sum(
                        sql_case(
                            (and_(Case.sla_due_at.is_not(None), Case.sla_due_at < now), 1),
                            else_=0,
                        )
                    ),
                )
                .where(Case.tenant == tenant, Case.state.in_(PENDING_STATES))
                .group_by(Case.queue, Case.state)
            ).all()
            queues = sorted(
                set(s.scalars(select(Case.queue).where(Case.tenant == tenant).distinct()))
            )
        acc: dict[str, dict[str, Any]] = {
            q: {"new": 0, "in_review": 0, "decided": 0, "overdue": 0, "next_due": None}
            for q in queues
        }
        for queue, state, n, due, late in rows:
            a = acc.setdefault(
                queue, {"new": 0, "in_review": 0, "decided": 0, "overdue": 0, "next_due": None}
            )
            a[state] = int(n)
            a["overdue"] += int(late or 0)
            if due is not None:
                due = _aware(due)
                if a["next_due"] is None or due < a["next_due"]:
                    a["next_due"] = due
        return [
            QueueCount(
                queue=q,
                new=a["new"],
                in_review=a["in_review"],
                decided=a["decided"],
                open=a["new"] + a["in_review"] + a["decided"],
                overdue=a["overdue"],
                next_due=a["next_due"],
            )
            for q, a in sorted(acc.items())
        ]

    def related(self, case_id: int, tenant: str) -> list[CaseInfo]:
        """Other cases of the tenant sharing an item's SHA-256 or PDQ, or the account
        (``related_by`` says which), newest first."""
        with self.db.session() as s:
            case = self._case(s, case_id, tenant)
            shas = {
                x
                for x in s.scalars(select(CaseItem.sha256).where(CaseItem.case_id == case.id))
                if x
            }
            pdqs = {
                x for x in s.scalars(select(CaseItem.pdq).where(CaseItem.case_id == case.id)) if x
            }
            why: dict[int, list[str]] = {}

            def add(ids: Iterable[int], reason: str) -> None:
                for i in ids:
                    if int(i) != case.id:
                        why.setdefault(int(i), [])
                        if reason not in why[int(i)]:
                            why[int(i)].append(reason)

            base = (
                select(CaseItem.case_id)
                .join(Case, Case.id == CaseItem.case_id)
                .where(Case.tenant == tenant)
            )
            if shas:
                add(s.scalars(base.where(CaseItem.sha256.in_(shas)).limit(500)), "sha256")
            if pdqs:
                add(s.scalars(base.where(CaseItem.pdq.in_(pdqs)).limit(500)), "pdq")
            if case.account_id is not None:
                add(
                    s.scalars(
                        select(Case.id)
                        .where(Case.tenant == tenant, Case.account_id == case.account_id)
                        .limit(500)
                    ),
                    "account",
                )
            if not why:
                return []
            rows = list(
                s.scalars(
                    select(Case).where(Case.id.in_(list(why))).order_by(Case.id.desc()).limit(100)
                )
            )
            names = self._names(s, [r.assignee_id for r in rows])
            counts = self._item_counts(s, [int(r.id) for r in rows])
            return [
                case_info(
                    r,
                    assignee=names.get(r.assignee_id) if r.assignee_id else None,
                    items=counts.get(int(r.id), 0),
                    related_by=tuple(why[int(r.id)]),
                )
                for r in rows
            ]

    def account_history(self, tenant: str, account_id: str, limit: int = 50) -> AccountHistory:
        """The account's most recent events and cases (newest first)."""
        limit = max(1, min(int(limit), 500))
        with self.db.session() as s:
            events = [
                event_summary(e)
                for e in s.scalars(
                    select(Event)
                    .where(Event.tenant == tenant, Event.account_id == account_id)
                    .order_by(Event.id.desc())
                    .limit(limit)
                )
            ]
            rows = list(
                s.scalars(
                    select(Case)
                    .where(Case.tenant == tenant, Case.account_id == account_id)
                    .order_by(Case.id.desc())
                    .limit(limit)
                )
            )
            names = self._names(s, [r.assignee_id for r in rows])
            counts = self._item_counts(s, [int(r.id) for r in rows])
            cases = [
                case_info(
                    r,
                    assignee=names.get(r.assignee_id) if r.assignee_id else None,
                    items=counts.get(int(r.id), 0),
                )
                for r in rows
            ]
        return AccountHistory(tenant=tenant, account_id=account_id, events=events, cases=cases)

    # ================================================================ people

    def _person(self, s: Session, user: UserInfo, permission: str) -> UserInfo:
        """The user as stored now (role changes and disabling apply at once)."""
        row = s.get(User, int(user.id))
        if row is None:
            raise Forbidden("unknown user")
        me = user_info(row)
        if me.disabled:
            raise Forbidden(f"user {me.name} is disabled")
        if not me.can(permission):
            what = {
                "read": "read cases",
                "review": "review cases (reveal, decide, comment)",
                "lead": "do this: it needs a lead or an admin",
            }.get(permission, permission)
            raise Forbidden(f"{me.role} {me.name} may not {what}")
        return me

    def _audit(
        self,
        s: Session,
        me: UserInfo,
        action: str,
        case: Case,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.audit.append(
            me.actor,
            action,
            object_type="case",
            object_id=str(case.id),
            details=details,
            tenant=case.tenant,
            session=s,
        )

    def next_case(self, user: UserInfo, queue: str | None = None) -> CaseView | None:
        """Assign the user the most urgent open case that is unassigned or theirs (state
        in_review). ``None`` when there is none, or when the user has reached today's
        reveal limit (wellness pause)."""
        with self.db.session() as s:
            me = self._person(s, user, "review")
            if self.wellness.today(me.id, session=s).paused:
                return None
        for _ in range(20):
            with self.db.session() as s:
                me = self._person(s, user, "review")
                conds = [
                    Case.tenant == me.tenant,
                    Case.state.in_(OPEN_STATES),
                    or_(Case.assignee_id.is_(None), Case.assignee_id == me.id),
                ]
                if queue is not None:
                    conds.append(Case.queue == queue)
                cid = s.scalar(
                    select(Case.id)
                    .where(*conds)
                    .order_by(
                        Case.priority.desc(), Case.sla_due_at.asc().nulls_last(), Case.id.asc()
                    )
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                if cid is None:
                    return None
                now = utcnow()
                taken = s.execute(
                    update(Case)
                    .where(
                        Case.id == cid,
                        Case.state.in_(OPEN_STATES),
                        or_(Case.assignee_id.is_(None), Case.assignee_id == me.id),
                    )
                    .values(assignee_id=me.id, state="in_review", updated_at=now)
                )
                if not getattr(taken, "rowcount", 0):
                    continue  # somebody else took it first: try the next one
                case = self._case(s, cid, me.tenant)
                s.refresh(case)
                self._audit(s, me, "assign", case, {"to": me.name, "via": "next"})
                return self._view(s, case)
        return None

    def assign(self, case_id: int, user_id: int | None, *, by: UserInfo) -> CaseInfo:
        """Assign an open case to a reviewer (``None``: unassign). Leads assign anyone;
        a reviewer may only take an unassigned case for themself."""
        with self.db.session() as s:
            me = self._person(s, by, "review")
            case = self._case(s, case_id, me.tenant, lock=True)
            if case.state not in OPEN_STATES:
                raise Conflict(
                    f"case {case.id} is {case.state}: only new or in-review cases are assigned"
                )
            target: UserInfo | None = None
            if user_id is not None:
                row = s.get(User, int(user_id))
                if row is None or row.tenant != case.tenant:
                    raise NotFound(f"no user with id {preview(user_id)}")
                target = user_info(row)
                if not target.can("review"):
                    raise InvalidValue(f"{target.role} {target.name} cannot review cases")
            if not me.can("lead") and not (
                target is not None and target.id == me.id and case.assignee_id in (None, me.id)
            ):
                raise Forbidden("only a lead assigns cases to others or takes them away")
            case.assignee_id = target.id if target else None
            if target is not None:
                case.state = "in_review"
            case.updated_at = utcnow()
            s.flush()
            self._audit(s, me, "assign", case, {"to": target.name if target else None})
            return self._info(s, case)

    def reveal(
        self, case_id: int, item_id: int, user: UserInfo, *, seconds: float = 0.0
    ) -> ItemInfo:
        """Record that ``user`` reveals one item unblurred: checks they may review,
        writes ``view_media`` and the exposure in one transaction; returns the item."""
        with self.db.session() as s:
            me = self._person(s, user, "review")
            case = self._case(s, case_id, me.tenant)
            found = s.execute(
                select(CaseItem, Media.kind)
                .outerjoin(Media, Media.id == CaseItem.media_id)
                .where(CaseItem.id == int(item_id), CaseItem.case_id == case.id)
            ).first()
            if found is None:
                raise NotFound(f"case {case.id} has no item {preview(item_id)}")
            item = item_info(found[0], found[1])
            self.wellness.record(me.id, case.id, item.id, seconds, session=s)
            self._audit(s, me, "view_media", case, {"item_id": item.id, "media_id": item.media_id})
            return item

    # ================================================================ decisions

    def decide(
        self,
        case_id: int,
        user: UserInfo,
        *,
        label: str | None,
        action: str,
        reason: str = "",
    ) -> DecisionInfo:
        """Decide a case. Two-person actions are proposed and wait for :meth:`confirm`."""
        if action not in DECISION_ACTIONS:
            raise InvalidValue(
                f"unknown decision action {preview(action)}: use one of "
                f"{', '.join(DECISION_ACTIONS)}"
            )
        canonical = taxonomy.normalize_label(label) if label not in (None, "") else None
        if canonical is None and action in ("remove", "restrict", "refer"):
            raise InvalidValue(f"a {action} decision needs a label from the taxonomy")
        reason = _clean_text(reason, MAX_REASON, "reason")
        two_person = action in two_person_actions()
        with self.db.session() as s:
            me = self._person(s, user, "review")
            case = self._case(s, case_id, me.tenant, lock=True)
            self._not_a_complaint(case)
            if case.state == "decided":
                raise Conflict(
                    f"case {case.id} has a proposed decision awaiting a second person: "
                    "confirm or reject it first"
                )
            if case.state not in OPEN_STATES:
                raise Conflict(f"case {case.id} is {case.state}: reopen it before deciding again")
            if case.assignee_id not in (None, me.id) and not me.can("lead"):
                raise Forbidden(f"case {case.id} is assigned to someone else")
            now = utcnow()
            row = CaseDecision(
                case_id=case.id,
                user_id=me.id,
                label=canonical,
                action=action,
                reason=reason,
                status="proposed" if two_person else "confirmed",
                at=now,
            )
            s.add(row)
            if case.assignee_id is None:
                case.assignee_id = me.id
            if two_person:
                case.state = "decided"
                case.decided_at = now
            else:
                self._apply(case, action, now)
            case.updated_at = now
            s.flush()
            self._audit(
                s,
                me,
                "decide",
                case,
                {
                    "decision_id": int(row.id),
                    "label": canonical,
                    "action": action,
                    "reason": reason,
                    "status": row.status,
                },
            )
            info = decision_info(row, {me.id: me.name}, case.state)
            case_after = self._info(s, case)
        if not two_person:
            self._notify(case_after, info)
        return info

    @staticmethod
    def _apply(case: Case, action: str, now: datetime) -> None:
        """Move the case on for a decision that stands."""
        target = DECISION_ACTIONS[action]
        if action == "escalate":
            case.state = "in_review"
            case.priority = int(case.priority) + 1
            case.queue = ESCALATION_QUEUE
            case.assignee_id = None
            return
        case.state = target
        case.decided_at = case.decided_at or now
        if target in FINAL_STATES:
            case.closed_at = now if target == "closed" else case.closed_at

    def _pending(self, s: Session, decision_id: int, me: UserInfo) -> tuple[CaseDecision, Case]:
        row = s.get(CaseDecision, int(decision_id))
        if row is None:
            raise NotFound(f"no decision {preview(decision_id)}")
        case = self._case(s, row.case_id, me.tenant, lock=True)
        s.refresh(row)
        if row.status != "proposed":
            raise Conflict(f"decision {row.id} is {row.status}, not awaiting confirmation")
        if row.user_id == me.id:
            raise Forbidden("the two-person rule needs a different person to confirm or reject")
        return row, case

    def confirm(self, decision_id: int, user: UserInfo, reason: str = "") -> DecisionInfo:
        """A second person confirms a proposed decision: the case moves on."""
        info, case_after = self._settle(decision_id, user, reason, "confirmed")
        self._notify(case_after, info)
        return info

    def reject(self, decision_id: int, user: UserInfo, reason: str = "") -> DecisionInfo:
        """A second person rejects a proposed decision: the case goes back to review."""
        return self._settle(decision_id, user, reason, "rejected")[0]

    def _settle(
        self, decision_id: int, user: UserInfo, reason: str, status: str
    ) -> tuple[DecisionInfo, CaseInfo]:
        """The second person's answer to a proposed decision (``confirmed``: the case
        moves on with the decision's action; ``rejected``: back to review), audited."""
        reason = _clean_text(reason, MAX_REASON, "reason")
        with self.db.session() as s:
            me = self._person(s, user, "review")
            row, case = self._pending(s, decision_id, me)
            now = utcnow()
            row.status = status
            row.confirmed_by = me.id
            row.confirmed_at = now
            if status == "confirmed":
                self._apply(case, row.action, now)
            else:
                case.state = "in_review"
                case.decided_at = None
            case.updated_at = now
            s.flush()
            self._audit(
                s,
                me,
                "confirm" if status == "confirmed" else "reject",
                case,
                {
                    "decision_id": int(row.id),
                    "action": row.action,
                    "label": row.label,
                    "reason": reason,
                },
            )
            info = decision_info(row, self._names(s, [row.user_id, me.id]), case.state)
            return info, self._info(s, case)

    def _notify(self, case: CaseInfo, decision: DecisionInfo) -> None:
        for listener in list(self.decided_listeners):
            listener(case, decision)

    # ================================================================ comments, reopen, close

    def comment(self, case_id: int, user: UserInfo, body: str) -> int:
        """Add a comment; returns its id."""
        body = _clean_text(body, MAX_COMMENT, "comment", required=True)
        with self.db.session() as s:
            me = self._person(s, user, "review")
            case = self._case(s, case_id, me.tenant)
            row = CaseComment(case_id=case.id, user_id=me.id, body=body, at=utcnow())
            s.add(row)
            s.flush()
            self._audit(s, me, "comment", case, {"comment_id": int(row.id), "length": len(body)})
            return int(row.id)

    def reopen(self, case_id: int, user: UserInfo, reason: str) -> CaseInfo:
        """A lead reopens an actioned, referred or closed case: back to in_review,
        unassigned (the next reviewer to ask for a case may get it)."""
        reason = _clean_text(reason, MAX_REASON, "reason", required=True)
        with self.db.session() as s:
            me = self._person(s, user, "lead")
            case = self._case(s, case_id, me.tenant, lock=True)
            self._not_a_complaint(case)
            if case.state not in FINAL_STATES:
                raise Conflict(
                    f"case {case.id} is {case.state}: only actioned, referred or closed "
                    "cases are reopened"
                )
            old = case.state
            case.state = "in_review"
            case.assignee_id = None  # back in the queue for whoever takes it next
            case.closed_at = None
            case.decided_at = None
            case.updated_at = utcnow()
            s.flush()
            self._audit(s, me, "reopen", case, {"from": old, "reason": reason})
            return self._info(s, case)

    def close(self, case_id: int, user: UserInfo, reason: str) -> CaseInfo:
        """A lead closes a new or in-review case without a decision (e.g. a duplicate)."""
        reason = _clean_text(reason, MAX_REASON, "reason", required=True)
        with self.db.session() as s:
            me = self._person(s, user, "lead")
            case = self._case(s, case_id, me.tenant, lock=True)
            self._not_a_complaint(case)
            if case.state not in OPEN_STATES:
                raise Conflict(
                    f"case {case.id} is {case.state}: only new or in-review cases are closed"
                )
            old = case.state
            now = utcnow()
            case.state = "closed"
            case.closed_at = now
            case.updated_at = now
            s.flush()
            self._audit(s, me, "close", case, {"from": old, "reason": reason})
            return self._info(s, case)


def _by_severity(labels: Iterable[str]) -> list[str]:
    unique = list(dict.fromkeys(labels))
    return sorted(unique, key=lambda n: -taxonomy.LABELS[n].severity)


def _title(labels: list[str], account_id: str | None, content_id: str | None) -> str:
    worst = taxonomy.worst_of(labels)
    head = worst or "review"
    if account_id:
        return f"{head} · account {account_id}"[:MAX_TITLE]
    if content_id:
        return f"{head} · content {content_id}"[:MAX_TITLE]
    return head


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value

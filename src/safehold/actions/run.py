"""The job ``run_actions(event_id)``: carry out the side effects a verdict asked for.

``review`` opens or attaches to a case; ``preserve`` stores the media and the event's
context in the evidence vault (:mod:`safehold.refer.vault`, when a master key is
configured) and marks the stored media as evidence (audited); ``notify`` leaves a
notification for a role or a user; ``webhook`` stores a delivery and queues
``deliver_webhook``. Reviews run first, so the other actions can
name the case.

Idempotent: each action of the event row carries its state (``running``, ``done``,
``error``); a second run skips what is done or being done, and every action also checks
for its own result (a case item, a delivery, a notification of this event) before acting,
so a crash between acting and recording never acts twice. Transient failures are retried
by the queue; an action that cannot succeed (a user that does not exist) is ``error``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from safehold.actions.webhooks import Webhooks, webhooks_for
from safehold.errors import InvalidValue, NotFound, SafeholdError
from safehold.jobs import JobContext, job
from safehold.rules.context import Context
from safehold.store.models import (
    Case,
    CaseItem,
    Event,
    Media,
    Notification,
    User,
    WebhookDelivery,
)

log = logging.getLogger("safehold.actions")

ORDER = {"review": 0, "preserve": 1, "notify": 2, "webhook": 3}
CLAIM_STALE = timedelta(minutes=10)
"""A ``running`` action older than this was abandoned (its worker died) and is taken again."""
ROLES = ("reviewer", "lead", "admin", "auditor")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Permanent(SafeholdError):
    """An action that cannot succeed by retrying (recorded as ``error``)."""

    code = "action_failed"
    status = 422


@dataclass
class RunReport:
    event_id: int
    done: list[str]
    skipped: list[str]
    errors: list[str]
    retry: list[str]


def _lock_event(s: Session, event_id: int) -> Event | None:
    """The event row, locked for this transaction (a row lock on PostgreSQL, the write
    lock on SQLite) so that two runs of the same event take turns."""
    s.execute(
        update(Event)
        .where(Event.id == event_id)
        .values(kind=Event.kind)
        .execution_options(synchronize_session=False)
    )
    return s.get(Event, event_id, populate_existing=True)


def _set_state(s: Session, event_id: int, index: int, **state: Any) -> None:
    ev = _lock_event(s, event_id)
    if ev is None:
        return
    actions = [dict(a) for a in ev.actions or []]
    if index < len(actions):
        actions[index].update(state)
        ev.actions = actions


def _claim(db: Any, event_id: int) -> tuple[Event | None, list[tuple[int, dict[str, Any]]]]:
    now = utcnow()
    with db.session() as s:
        ev = _lock_event(s, event_id)
        if ev is None:
            return None, []
        actions = [dict(a) for a in ev.actions or [] if isinstance(a, dict)]
        claimed: list[tuple[int, dict[str, Any]]] = []
        for i, action in enumerate(actions):
            state = action.get("state")
            if state in ("done", "error"):
                continue
            if state == "running":
                try:
                    since = datetime.fromisoformat(str(action.get("claimed_at")))
                except ValueError:
                    since = now - CLAIM_STALE
                if now - since < CLAIM_STALE:
                    continue
            action["state"] = "running"
            action["claimed_at"] = now.isoformat()
            claimed.append((i, dict(action)))
        if claimed:
            ev.actions = actions
            s.flush()
        s.expunge(ev)
        return ev, sorted(claimed, key=lambda p: (ORDER.get(str(p[1].get("kind")), 9), p[0]))


def run_actions(ctx: JobContext, event_id: int) -> RunReport:
    """Carry out the pending side effects of event ``event_id`` (see the module doc)."""
    event_id = int(event_id)
    ev, claimed = _claim(ctx.db, event_id)
    report = RunReport(event_id, [], [], [], [])
    if ev is None:
        log.warning("run_actions: no event %s", event_id)
        return report
    context = Context.from_json(ev.context)
    case_id = _existing_case(ctx, event_id)
    webhooks = webhooks_for(ctx)
    for index, action in claimed:
        kind = str(action.get("kind"))
        params = action.get("params") or {}
        try:
            result: dict[str, Any]
            if kind == "review":
                try:
                    result = _review(ctx, ev, context, params, action.get("rule"))
                except (InvalidValue, NotFound) as e:  # bad data: retrying cannot help
                    raise Permanent(e.message) from e
                case_id = result.get("case_id", case_id)
                with ctx.db.session() as s:
                    _set_state(s, event_id, index, state="done", result=result)
            elif kind == "preserve":
                _preserve(ctx, ev, params, index, action.get("rule"), case_id)
            elif kind == "notify":
                _notify(ctx, ev, context, params, index, action.get("rule"), case_id)
            elif kind == "webhook":
                _webhook(ctx, webhooks, ev, context, params, index, action, case_id)
            else:
                raise Permanent(f"unknown action {kind!r}")
            report.done.append(kind)
        except Permanent as e:
            report.errors.append(f"{kind}: {e.message}")
            log.warning("event %s: %s action failed: %s", event_id, kind, e.message)
            with ctx.db.session() as s:
                _set_state(s, event_id, index, state="error", error=e.message[:500])
        except Exception as e:
            report.retry.append(f"{kind}: {type(e).__name__}: {e}")
            log.exception("event %s: %s action failed (will retry)", event_id, kind)
            try:
                with ctx.db.session() as s:
                    _set_state(s, event_id, index, state="failed", error=str(e)[:500])
            except Exception:
                log.exception("event %s: could not record the failure", event_id)
    if report.retry:
        raise RuntimeError(
            f"event {event_id}: {len(report.retry)} action(s) to retry: {report.retry}"
        )
    return report


SWEEP_AFTER = timedelta(minutes=2)
"""An event whose actions are still not carried out this long after it was recorded
(its job was lost: the queue was down, restarted without persistence, or a worker was
killed) is queued again by :func:`sweep_events`."""
SWEEP_WINDOW = timedelta(days=1)
SWEEP_LIMIT = 5000


def unfinished_events(db: Any, *, now: datetime | None = None) -> list[int]:
    """Ids of events recorded between a day and two minutes ago whose side effects are
    not all ``done`` or ``error`` (and not claimed by a live worker)."""
    now = now or utcnow()
    with db.session() as s:
        rows = s.execute(
            select(Event.id, Event.actions)
            .where(
                Event.at >= now - SWEEP_WINDOW,
                Event.at <= now - SWEEP_AFTER,
                func.json_array_length(Event.actions) > 0,
            )
            .order_by(Event.id.desc())
            .limit(SWEEP_LIMIT)
        ).all()
    out = []
    for event_id, actions in rows:
        for action in actions or []:
            if not isinstance(action, dict):
                continue
            state = action.get("state")
            if state in ("done", "error"):
                continue
            if state == "running":
                try:
                    since = datetime.fromisoformat(str(action.get("claimed_at")))
                except ValueError:
                    since = now - CLAIM_STALE
                if now - since < CLAIM_STALE:
                    continue
            out.append(int(event_id))
            break
    return sorted(out)


@job("sweep_events", retries=0, periodic=True)
def sweep_events(ctx: JobContext) -> None:
    """Job, once a minute: queue again the actions of events whose job was lost."""
    ids = unfinished_events(ctx.db)
    for event_id in ids:
        ctx.jobs.enqueue("run_actions", event_id)
    if ids:
        log.warning("re-queued the actions of %s events whose job was lost", len(ids))


@job("run_actions", retries=5, retry_delay=5.0)
def run_actions_job(ctx: JobContext, event_id: int) -> None:
    run_actions(ctx, int(event_id))


# --------------------------------------------------------------------------- review


def _existing_case(ctx: JobContext, event_id: int, queue: str | None = None) -> int | None:
    stmt = select(CaseItem.case_id).where(CaseItem.event_id == event_id)
    if queue is not None:
        stmt = stmt.join(Case, Case.id == CaseItem.case_id).where(Case.queue == queue)
    with ctx.db.session() as s:
        found = s.scalars(stmt.order_by(CaseItem.id).limit(1)).first()
    return int(found) if found is not None else None


def _labels(context: Context) -> list[str]:
    seen: dict[str, None] = {}
    for m in context.matches:
        for label in m.get("labels") or []:
            seen[str(label)] = None
    return list(seen)


def _review(
    ctx: JobContext, ev: Event, context: Context, params: dict[str, Any], rule: Any
) -> dict[str, Any]:
    queue = str(params.get("queue") or "default")
    existing = _existing_case(ctx, int(ev.id), queue)
    if existing is not None:
        return {"case_id": existing, "created": False}
    title = str(rule or "review")
    if context.content_id:
        title = f"{title} · {context.content_id}"
    ref = ctx.cases.open_or_attach(
        tenant=ev.tenant,
        queue=queue,
        labels=_labels(context),
        account_id=ev.account_id,
        content_id=ev.content_id,
        event_id=int(ev.id),
        media_id=ev.media_id,
        signals=dict(context.signals),
        matches=list(context.matches),
        reports=context.reports,
        priority=params.get("priority"),
        sla_seconds=params.get("sla_seconds"),
        title=title[:256],
    )
    return {"case_id": int(ref.case_id), "item_id": int(ref.item_id), "created": bool(ref.created)}


# --------------------------------------------------------------------------- preserve


_warned_no_vault = False


def _vault_context(ev: Event, media: Media, rule: Any, params: dict[str, Any]) -> dict[str, Any]:
    """What the vault keeps beside the content: the rules' input (signals, matches,
    classifications, reports, the account data the platform sent and the server's
    account signals, media facts), the event, the rule and the upload's metadata."""
    return {
        "event": {
            "id": int(ev.id),
            "tenant": ev.tenant,
            "kind": ev.kind,
            "at": ev.at.isoformat() if ev.at else None,
            "decision": ev.decision,
            "rules": list(ev.rules or []),
            "ruleset_id": ev.ruleset_id,
            "actions": [a.get("kind") for a in ev.actions or [] if isinstance(a, dict)],
        },
        "rule": rule,
        "params": dict(params),
        "content_id": ev.content_id,
        "account_id": ev.account_id,
        "input": dict(ev.context or {}),
        "upload": {
            "media_id": int(media.id),
            "sha256": media.sha256,
            "kind": media.kind,
            "format": media.format,
            "size": int(media.size),
            "width": media.width,
            "height": media.height,
            "kept_at": media.created_at.isoformat() if media.created_at else None,
        },
    }


def _to_vault(
    ctx: JobContext, ev: Event, params: dict[str, Any], rule: Any, case_id: int | None
) -> int | None:
    """Store the event's media and context in the vault (once per event: the item's
    origin is ``event:<id>``); the item id, or ``None`` without a vault."""
    global _warned_no_vault
    if ctx.vault is None:
        if not _warned_no_vault:
            _warned_no_vault = True
            log.warning(
                "the evidence vault has no master key (SAFEHOLD_VAULT_KEY or "
                "SAFEHOLD_VAULT_KEY_FILE): preserved media stays unencrypted in the media "
                "store only"
            )
        return None
    with ctx.db.session() as s:
        media = s.get(Media, int(ev.media_id or 0))
        if media is None:
            raise Permanent(f"stored media {ev.media_id} no longer exists")
        s.expunge(media)
    try:
        path = ctx.media.path(int(media.id))
    except NotFound as e:
        raise Permanent(e.message) from e
    days = params.get("days")
    try:
        item = ctx.vault.preserve(
            path,
            by="system:rules",
            context=_vault_context(ev, media, rule, params),
            tenant=ev.tenant,
            labels=_labels(Context.from_json(ev.context)),
            event_id=int(ev.id),
            case_id=case_id,
            content_id=ev.content_id,
            sha256=media.sha256,
            days=int(days) if isinstance(days, int) and days > 0 else None,
            origin=f"event:{int(ev.id)}",
            reason=f"rule {rule}: preserve" if rule else "preserve",
        )
    except InvalidValue as e:  # bad data (a label, the file changed): retrying cannot help
        raise Permanent(e.message) from e
    return item.id


def _preserve(
    ctx: JobContext,
    ev: Event,
    params: dict[str, Any],
    index: int,
    rule: Any,
    case_id: int | None = None,
) -> None:
    if ev.media_id is None:
        raise Permanent("nothing to preserve: the event has no stored media")
    vault_item = _to_vault(ctx, ev, params, rule, case_id)
    with ctx.db.session() as s:
        row = s.get(Media, int(ev.media_id))
        if row is None:
            raise Permanent(f"stored media {ev.media_id} no longer exists")
        first = row.preserved_at is None
        info = ctx.media.preserve(int(ev.media_id), session=s)
        if first:
            ctx.audit.append(
                "system:rules",
                "preserve",
                object_type="media",
                object_id=int(ev.media_id),
                details={
                    "event_id": int(ev.id),
                    "rule": rule,
                    "days": params.get("days"),
                    "sha256": getattr(info, "sha256", None),
                    "vault_item_id": vault_item,
                },
                tenant=ev.tenant,
                session=s,
            )
        _set_state(
            s,
            int(ev.id),
            index,
            state="done",
            result={"media_id": int(ev.media_id), "vault_item_id": vault_item},
        )


# --------------------------------------------------------------------------- notify

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def render_message(template: str, values: dict[str, Any]) -> str:
    """``{name}`` placeholders replaced by known values (unknown ones are kept as is)."""

    def sub(m: re.Match[str]) -> str:
        value = values.get(m.group(1))
        return m.group(0) if value is None else str(value)

    return _PLACEHOLDER.sub(sub, template)[:2000]


def _notify(
    ctx: JobContext,
    ev: Event,
    context: Context,
    params: dict[str, Any],
    index: int,
    rule: Any,
    case_id: int | None,
) -> None:
    target = str(params.get("to") or "")
    values = {
        "rule": rule,
        "decision": ev.decision,
        "event_id": ev.id,
        "content_id": context.content_id,
        "account_id": context.account_id,
        "case_id": case_id,
        "labels": ", ".join(_labels(context)) or None,
        "tenant": ev.tenant,
    }
    template = params.get("message") or (
        "Rule {rule}: {decision} for content {content_id}"
        + (" (case {case_id})" if case_id else "")
    )
    text = render_message(str(template), values)
    with ctx.db.session() as s:
        to_role: str | None = None
        to_user: int | None = None
        if target.startswith("user:"):
            name = target[5:]
            to_user = s.scalar(select(User.id).where(User.name == name, User.tenant == ev.tenant))
            if to_user is None:
                raise Permanent(f"notify: no user {name!r} in tenant {ev.tenant!r}")
        elif target in ROLES:
            to_role = target
        else:
            raise Permanent(f"notify: {target!r} is neither a role nor user:NAME")
        exists = s.scalar(
            select(Notification.id).where(
                Notification.event_id == ev.id,
                Notification.message == text,
                (Notification.to_role == to_role)
                if to_role is not None
                else (Notification.to_user_id == to_user),
            )
        )
        if exists is None:
            row = Notification(
                tenant=ev.tenant,
                to_role=to_role,
                to_user_id=to_user,
                case_id=case_id,
                event_id=ev.id,
                message=text,
                created_at=utcnow(),
            )
            s.add(row)
            s.flush()
            exists = row.id
        _set_state(s, int(ev.id), index, state="done", result={"notification_id": int(exists)})


# --------------------------------------------------------------------------- webhook


def event_data(ev: Event, context: Context, case_id: int | None) -> dict[str, Any]:
    """The ``data`` of an ``event.actioned`` webhook message."""
    actions = [a.get("kind") for a in ev.actions or [] if isinstance(a, dict)]
    return {
        "event_id": int(ev.id),
        "tenant": ev.tenant,
        "at": ev.at.isoformat() if ev.at else None,
        "content_id": ev.content_id,
        "account_id": ev.account_id,
        "decision": ev.decision,
        "rules": list(ev.rules or []),
        "actions": actions,
        "case_id": case_id,
        "matches": context.matches,
        "signals": context.signals,
        "media": context.media,
        "reports": context.reports,
    }


def _webhook(
    ctx: JobContext,
    webhooks: Webhooks,
    ev: Event,
    context: Context,
    params: dict[str, Any],
    index: int,
    action: dict[str, Any],
    case_id: int | None,
) -> None:
    url = str(params.get("url") or "")
    events = params.get("events") or ["event.actioned"]
    if "event.actioned" not in events:  # only case.decided: sent when a case is decided
        with ctx.db.session() as s:
            _set_state(s, int(ev.id), index, state="done", result={"deferred": True})
        return
    rule = action.get("rule")
    with ctx.db.session() as s:
        existing = s.scalar(
            select(WebhookDelivery.id).where(
                WebhookDelivery.event_id == ev.id,
                WebhookDelivery.url == url,
                WebhookDelivery.rule == rule
                if rule is not None
                else WebhookDelivery.rule.is_(None),
            )
        )
        queue_it = existing is None
        if existing is None:
            try:
                existing = webhooks.create(
                    url=url,
                    type_="event.actioned",
                    data=event_data(ev, context, case_id),
                    tenant=ev.tenant,
                    rule=str(rule) if rule is not None else None,
                    secret_env=params.get("secret_env"),
                    event_id=int(ev.id),
                    session=s,
                )
            except SafeholdError as e:
                raise Permanent(e.message) from e
        _set_state(s, int(ev.id), index, state="done", result={"delivery_id": int(existing)})
    if queue_it:
        webhooks.enqueue(int(existing))


# --------------------------------------------------------------------------- case.decided


def decided_listener(jobs: Any) -> Any:
    """A ``Cases.decided_listeners`` entry: queue ``case_decided`` for the webhooks."""

    def listener(case: Any, decision: Any) -> None:
        try:
            jobs.enqueue("case_decided", int(case.id), int(decision.id))
        except Exception:
            log.exception("could not queue the case.decided webhooks of case %s", case.id)

    return listener


def case_decided(ctx: JobContext, case_id: int, decision_id: int) -> list[int]:
    """Send ``case.decided`` to the webhooks of the rules that opened the case (those
    whose ``events`` name ``case.decided``); once per decision and webhook."""
    from safehold.store.models import CaseDecision

    with ctx.db.session() as s:
        case = s.get(Case, int(case_id))
        decision = s.get(CaseDecision, int(decision_id))
        if case is None or decision is None or decision.case_id != case.id:
            log.warning("case_decided: no decision %s of case %s", decision_id, case_id)
            return []
        items = s.scalars(select(CaseItem).where(CaseItem.case_id == case.id)).all()
        event_ids = sorted({int(i.event_id) for i in items if i.event_id is not None})
        events = s.scalars(select(Event).where(Event.id.in_(event_ids))).all() if event_ids else []
        targets: dict[tuple[str, str | None], dict[str, Any]] = {}
        for ev in events:
            for a in ev.actions or []:
                params = a.get("params") or {} if isinstance(a, dict) else {}
                if a.get("kind") == "webhook" and "case.decided" in (params.get("events") or []):
                    targets.setdefault((str(params.get("url")), a.get("rule")), params)
        data = {
            "decision_id": int(decision.id),
            "case_id": int(case.id),
            "tenant": case.tenant,
            "queue": case.queue,
            "state": case.state,
            "action": decision.action,
            "label": decision.label,
            "status": decision.status,
            "at": decision.at.isoformat() if decision.at else None,
            "labels": list(case.labels or []),
            "account_id": case.account_id,
            "content_ids": sorted({i.content_id for i in items if i.content_id}),
            "event_ids": event_ids,
        }
        fragment = f'"data":{{"decision_id":{int(decision.id)},'
        webhooks = webhooks_for(ctx)
        created: list[int] = []
        for (url, rule), params in targets.items():
            exists = s.scalar(
                select(WebhookDelivery.id).where(
                    WebhookDelivery.url == url,
                    WebhookDelivery.event_id.in_(event_ids),
                    WebhookDelivery.payload.contains(fragment),
                )
            )
            if exists is not None:
                continue
            try:
                created.append(
                    webhooks.create(
                        url=url,
                        type_="case.decided",
                        data=data,
                        tenant=case.tenant,
                        rule=rule,
                        secret_env=params.get("secret_env"),
                        event_id=event_ids[0],
                        session=s,
                    )
                )
            except SafeholdError as e:
                log.warning("case_decided: webhook %s refused: %s", url, e.message)
    for delivery_id in created:
        webhooks.enqueue(delivery_id)
    return created


@job("case_decided", retries=5, retry_delay=5.0)
def case_decided_job(ctx: JobContext, case_id: int, decision_id: int) -> None:
    case_decided(ctx, int(case_id), int(decision_id))

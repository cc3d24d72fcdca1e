"""The policy pipeline: matches + facts → the active rules → a decision and actions.

:meth:`Policy.decide` runs on the request path and stays short: it evaluates the tenant's
active rules, keeps the upload in the media store when a ``review`` or ``preserve``
action fired (before the caller deletes its temporary file), writes the ``events`` row
and the rule hit counters in one transaction, and queues the job ``run_actions`` for the
side effects (:mod:`safehold.actions.run`), which the worker carries out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from safehold.rules.context import Context
from safehold.rules.evaluate import evaluate
from safehold.rules.model import SIDE_EFFECTS
from safehold.store.db import Database
from safehold.store.models import Case, Event, utcnow

if TYPE_CHECKING:
    from safehold.audit import AuditLog
    from safehold.hashing import ContentHashes
    from safehold.jobs import Jobs
    from safehold.media_store import MediaStore
    from safehold.rules.store import RuleSets

log = logging.getLogger("safehold.actions")

KEEP_MEDIA = ("review", "preserve")
"""Actions that need the upload kept: a reviewer looks at it, or it is evidence."""
ACCOUNT_SIGNALS = ("prior_events", "prior_matches", "prior_cases")


@dataclass
class Outcome:
    decision: str
    event_id: int
    fired: list[str] = field(default_factory=list)
    shadow: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    """Kinds of the side-effect actions queued (review, webhook, preserve, notify)."""
    media_id: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "event_id": self.event_id,
            "rules": list(self.fired),
            "shadow": list(self.shadow),
            "actions": list(self.actions),
        }


class Policy:
    """Decide on content with the tenant's active rules and queue the actions."""

    def __init__(
        self,
        db: Database,
        *,
        rulesets: RuleSets,
        jobs: Jobs,
        media: MediaStore,
        audit: AuditLog,
    ) -> None:
        self.db = db
        self.rulesets = rulesets
        self.jobs = jobs
        self.media = media
        self.audit = audit

    def account_signals(self, tenant: str, account_id: str) -> dict[str, int]:
        """What the server knows about an account: earlier events, events with matches,
        cases (indexed counts over ``(tenant, account_id)``)."""
        with self.db.session() as s:
            events = s.scalar(
                select(func.count(Event.id)).where(
                    Event.tenant == tenant, Event.account_id == account_id
                )
            )
            if self.db.backend == "postgresql":
                length = func.json_array_length(Event.context["matches"])
            else:
                length = func.json_array_length(Event.context, "$.matches")
            matched = s.scalar(
                select(func.count(Event.id)).where(
                    Event.tenant == tenant, Event.account_id == account_id, length > 0
                )
            )
            cases = s.scalar(
                select(func.count(Case.id)).where(
                    Case.tenant == tenant, Case.account_id == account_id
                )
            )
        return {
            "prior_events": int(events or 0),
            "prior_matches": int(matched or 0),
            "prior_cases": int(cases or 0),
        }

    def decide(
        self,
        ctx: Context,
        *,
        upload_path: str | None = None,
        hashes: ContentHashes | None = None,
        kind: str = "scan",
    ) -> Outcome:
        """Evaluate the active rules on ``ctx``, record the event, queue the actions."""
        if ctx.account_id:
            ctx.account.update(self.account_signals(ctx.tenant, ctx.account_id))
        stored = self.rulesets.active(ctx.tenant)
        verdict = evaluate(stored.rules, ctx)
        side = [a for a in verdict.actions if a.kind in SIDE_EFFECTS]
        notes: list[str] = []
        media_id: int | None = None
        if upload_path and hashes is not None and any(a.kind in KEEP_MEDIA for a in side):
            try:
                media_id = self.media.keep(upload_path, hashes, tenant=ctx.tenant)
            except Exception:
                # the decision stands; the case opens without its media
                log.exception("could not keep the upload of content %r", ctx.content_id)
                notes.append("the upload could not be kept for review")
        with self.db.session() as s:
            event = Event(
                tenant=ctx.tenant,
                kind=kind,
                at=utcnow(),
                content_id=ctx.content_id,
                account_id=ctx.account_id,
                context=ctx.to_json(),
                decision=verdict.decision,
                actions=[a.to_dict() for a in side],
                rules=list(verdict.fired),
                ruleset_id=stored.id,
                media_id=media_id,
            )
            s.add(event)
            s.flush()
            event_id = int(event.id)
            self.rulesets.record_hits(stored.id, verdict.fired, verdict.shadow, session=s)
        if side:
            try:
                self.jobs.enqueue("run_actions", event_id)
            except Exception:
                log.exception("could not queue the actions of event %s", event_id)
                notes.append("the actions could not be queued; see the server log")
        kinds = list(dict.fromkeys(a.kind for a in side))
        return Outcome(
            decision=verdict.decision,
            event_id=event_id,
            fired=list(verdict.fired),
            shadow=list(verdict.shadow),
            actions=kinds,
            media_id=media_id,
            notes=notes,
        )

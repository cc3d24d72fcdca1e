"""Dry-run a rule set against recent traffic: ``safehold rules test FILE --against recent``.

Each ``events`` row keeps the rule input of one evaluation (its :class:`Context`), so a
new rule set can be evaluated on the most recent events without acting on them. The
report counts, per rule, how often it would fire (or fire in shadow), and how many
decisions would change (old -> new), with example event ids.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from safehold.errors import InvalidValue
from safehold.rules.context import Context
from safehold.rules.evaluate import evaluate
from safehold.rules.model import RuleSet
from safehold.store.db import Database
from safehold.store.models import Event

MAX_LIMIT = 100_000
MAX_EXAMPLES = 20


@dataclass
class ReplayReport:
    events: int = 0
    """How many events were replayed."""
    fired: dict[str, int] = field(default_factory=dict)
    """Rule name -> events it fired on (acting rules; every rule listed, zeros included)."""
    shadow: dict[str, int] = field(default_factory=dict)
    """Shadow rule name -> events its condition held on."""
    decisions: dict[str, int] = field(default_factory=dict)
    """New decision -> count."""
    before: dict[str, int] = field(default_factory=dict)
    """Recorded (old) decision -> count."""
    changes: dict[str, int] = field(default_factory=dict)
    """``"old -> new"`` -> count, for events whose decision would change."""
    changed: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    """Up to 20 changed events: ``event_id``, ``at``, ``old``, ``new``, ``rules``."""
    since: datetime | None = None
    limit: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "limit": self.limit,
            "since": self.since.isoformat() if self.since else None,
            "fired": dict(self.fired),
            "shadow": dict(self.shadow),
            "decisions": dict(self.decisions),
            "before": dict(self.before),
            "changed": self.changed,
            "changes": dict(self.changes),
            "examples": list(self.examples),
        }


def replay(
    db: Database,
    rules: RuleSet,
    *,
    tenant: str = "default",
    limit: int = 1000,
    since: datetime | timedelta | None = None,
) -> ReplayReport:
    """Evaluate ``rules`` on the tenant's most recent events (newest first, at most
    ``limit``, none older than ``since``: a time or an age) without acting."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidValue(f"limit must be from 1 to {MAX_LIMIT}, not {limit}")
    if isinstance(since, timedelta):
        since = datetime.now(UTC) - since
    report = ReplayReport(
        fired={r.name: 0 for r in rules.ordered() if not r.shadow},
        shadow={r.name: 0 for r in rules.ordered() if r.shadow},
        since=since,
        limit=limit,
    )
    query = select(Event.id, Event.at, Event.context, Event.decision).where(Event.tenant == tenant)
    if since is not None:
        query = query.where(Event.at >= since)
    query = query.order_by(Event.at.desc(), Event.id.desc()).limit(limit)
    decisions: Counter[str] = Counter()
    before: Counter[str] = Counter()
    changes: Counter[str] = Counter()
    with db.session() as s:
        rows = s.execute(query).all()
    for event_id, at, context, old in rows:
        ctx = Context.from_json(context)
        verdict = evaluate(rules, ctx)
        report.events += 1
        for name in verdict.fired:
            report.fired[name] = report.fired.get(name, 0) + 1
        for name in verdict.shadow:
            report.shadow[name] = report.shadow.get(name, 0) + 1
        decisions[verdict.decision] += 1
        before[old] += 1
        if verdict.decision != old:
            changes[f"{old} -> {verdict.decision}"] += 1
            report.changed += 1
            if len(report.examples) < MAX_EXAMPLES:
                report.examples.append(
                    {
                        "event_id": event_id,
                        "at": at.isoformat() if at else None,
                        "content_id": ctx.content_id,
                        "old": old,
                        "new": verdict.decision,
                        "rules": verdict.fired,
                    }
                )
    report.decisions = dict(decisions.most_common())
    report.before = dict(before.most_common())
    report.changes = dict(changes.most_common())
    return report

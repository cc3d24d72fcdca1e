"""Applying a rule set to one piece of content.

Rules are tried in descending priority (ties in file order). In ``first-match`` mode
the first non-shadow rule whose condition holds fires; in ``all-match`` mode every one
does. Shadow rules are always evaluated and recorded, but never act. The decision is
the strongest of the fired rules' ``block`` > ``hold`` > ``allow``, else the rule set's
default; the other actions of the fired rules are merged (one ``review`` per queue with
the highest priority and the shortest SLA, identical webhooks and notifications once,
one ``preserve`` keeping the longest period).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from safehold.rules.context import Context
from safehold.rules.model import DECISIONS, ActionSpec, RuleSet, strongest


@dataclass
class Verdict:
    decision: str
    actions: list[ActionSpec] = field(default_factory=list)
    """The side-effect actions (review, webhook, preserve, notify) of the fired rules."""
    fired: list[str] = field(default_factory=list)
    """Names of the rules that fired and act, in evaluation order."""
    shadow: list[str] = field(default_factory=list)
    """Names of the shadow rules whose condition held (recorded, never acting)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "actions": [a.to_dict() for a in self.actions],
            "fired": list(self.fired),
            "shadow": list(self.shadow),
        }


def evaluate(rules: RuleSet, ctx: Context) -> Verdict:
    """The verdict of ``rules`` on ``ctx``."""
    fired: list[str] = []
    shadow: list[str] = []
    decisions: list[str] = []
    actions: list[ActionSpec] = []
    for rule in rules.ordered():
        if rule.shadow:
            if rule.when.holds(ctx):
                shadow.append(rule.name)
            continue
        if fired and rules.mode == "first-match":
            continue
        if rule.when.holds(ctx):
            fired.append(rule.name)
            for action in rule.actions:
                if action.kind in DECISIONS:
                    decisions.append(action.kind)
                else:
                    actions.append(action)
    return Verdict(
        decision=strongest(decisions) or rules.default,
        actions=merge_actions(actions),
        fired=fired,
        shadow=shadow,
    )


def merge_actions(actions: list[ActionSpec]) -> list[ActionSpec]:
    """De-duplicated side-effect actions, in the order first seen."""
    out: list[ActionSpec] = []
    reviews: dict[str, int] = {}
    preserve: int | None = None
    for a in actions:
        if a.kind == "review":
            queue = str(a.params.get("queue") or "default")
            if queue not in reviews:
                reviews[queue] = len(out)
                out.append(ActionSpec("review", {**a.params, "queue": queue}, a.rule))
                continue
            i = reviews[queue]
            have = out[i].params
            out[i] = ActionSpec(
                "review",
                {
                    **have,
                    "priority": _pick(have.get("priority"), a.params.get("priority"), max),
                    "sla_seconds": _pick(have.get("sla_seconds"), a.params.get("sla_seconds"), min),
                },
                out[i].rule,
            )
        elif a.kind == "preserve":
            if preserve is None:
                preserve = len(out)
                out.append(a)
                continue
            have = out[preserve].params
            days = _pick(have.get("days"), a.params.get("days"), max)
            out[preserve] = ActionSpec("preserve", {**have, "days": days}, out[preserve].rule)
        elif not any(b.kind == a.kind and b.params == a.params for b in out):
            out.append(a)
    return out


def _pick(a: Any, b: Any, choose: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return choose(a, b)

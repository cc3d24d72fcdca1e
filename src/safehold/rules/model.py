"""The parsed form of a rule file: rule sets, rules, actions and conditions.

Everything here is immutable data; :mod:`safehold.rules.language` builds it from YAML
(with line numbers) and :mod:`safehold.rules.evaluate` applies it to a
:class:`~safehold.rules.context.Context`.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from safehold.errors import UnknownLabel
from safehold.rules.context import Context
from safehold.taxonomy import expand

MODES = ("first-match", "all-match")
DECISIONS = ("block", "hold", "allow")
"""The decision actions, strongest first."""
SIDE_EFFECTS = ("review", "webhook", "preserve", "notify")
"""The actions that do something beside deciding (run by the job worker)."""
ACTION_KINDS = (*DECISIONS, *SIDE_EFFECTS)

Mode = Literal["first-match", "all-match"]


@dataclass(frozen=True)
class ActionSpec:
    """One action of a rule: ``kind`` plus its validated ``params``.

    ``review``: ``queue``, ``priority`` (int or None), ``sla_seconds`` (int or None);
    ``webhook``: ``url``, ``secret_env``, ``events`` (list or None); ``preserve``:
    ``days`` (int or None); ``notify``: ``to`` (a role or ``user:NAME``), ``message``.
    ``rule`` names the rule it came from (the first one, after de-duplication).
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    rule: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "params": dict(self.params)}
        if self.rule is not None:
            out["rule"] = self.rule
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionSpec:
        return cls(str(d["kind"]), dict(d.get("params") or {}), d.get("rule"))


# --------------------------------------------------------------------------- conditions


@functools.lru_cache(maxsize=4096)
def _expanded(labels: tuple[str, ...]) -> frozenset[str]:
    try:
        return frozenset(expand(labels))
    except UnknownLabel:  # a label the taxonomy no longer knows: compare it as it is
        return frozenset(labels)


def _as_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return () if value is None else (str(value),)


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]
    line: int = 0

    def holds(self, ctx: Context) -> bool:
        return all(c.holds(ctx) for c in self.items)


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]
    line: int = 0

    def holds(self, ctx: Context) -> bool:
        return any(c.holds(ctx) for c in self.items)


@dataclass(frozen=True)
class Not:
    item: Condition
    line: int = 0

    def holds(self, ctx: Context) -> bool:
        return not self.item.holds(ctx)


@dataclass(frozen=True)
class MatchCondition:
    """At least ``min_count`` matches satisfy every given field (distinct bank entries)."""

    banks: tuple[str, ...] = ()
    """Bank names or shell-style globs (``ncmec-*``); empty: any bank."""
    labels: tuple[str, ...] = ()
    """Any of these (canonical) labels, after taxonomy expansion of the match's labels."""
    labels_all: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    signal_types: tuple[str, ...] = ()
    max_distance: int | None = None
    kind: str | None = None
    min_count: int = 1
    line: int = 0

    def accepts(self, m: dict[str, Any]) -> bool:
        if self.banks:
            bank = str(m.get("bank", ""))
            if not any(fnmatch.fnmatchcase(bank, pattern) for pattern in self.banks):
                return False
        if self.kind is not None and str(m.get("bank_kind") or "block") != self.kind:
            return False
        if self.sources and str(m.get("source", "")) not in self.sources:
            return False
        if self.signal_types and str(m.get("signal_type", "")) not in self.signal_types:
            return False
        if self.max_distance is not None:
            distance = m.get("distance")
            if not isinstance(distance, (int, float)) or distance > self.max_distance:
                return False
        if self.labels or self.labels_all:
            have = _expanded(_as_tuple(m.get("labels")))
            if self.labels and have.isdisjoint(self.labels):
                return False
            if self.labels_all and not have.issuperset(self.labels_all):
                return False
        return True

    def holds(self, ctx: Context) -> bool:
        seen: set[tuple[str, str]] = set()
        for i, m in enumerate(ctx.matches):
            if isinstance(m, dict) and self.accepts(m):
                entry = m.get("entry_id")
                seen.add((str(m.get("bank", "")), str(entry) if entry is not None else f"#{i}"))
                if len(seen) >= self.min_count:
                    return True
        return False


@dataclass(frozen=True)
class NoMatch:
    """``no_match: true``: no match at all; ``no_match: false``: at least one."""

    value: bool = True
    line: int = 0

    def holds(self, ctx: Context) -> bool:
        return (not ctx.matches) == self.value


@dataclass(frozen=True)
class ClassificationCondition:
    name: str
    min_score: float | None = None
    max_score: float | None = None
    line: int = 0

    def holds(self, ctx: Context) -> bool:
        score = ctx.classifications.get(self.name)
        if not _is_number(score):
            return False
        assert score is not None
        if self.min_score is not None and score < self.min_score:
            return False
        return not (self.max_score is not None and score > self.max_score)


@dataclass(frozen=True)
class ReportsCondition:
    min: int | None = None
    max: int | None = None
    line: int = 0

    def holds(self, ctx: Context) -> bool:
        n = ctx.reports
        if self.min is not None and n < self.min:
            return False
        return not (self.max is not None and n > self.max)


COMPARISONS = ("gte", "gt", "lte", "lt", "eq", "ne", "in")


@dataclass(frozen=True)
class Comparison:
    field: str
    op: str
    value: Any

    def holds(self, values: dict[str, Any]) -> bool:
        if self.field not in values:
            return False
        have = values[self.field]
        if self.op == "eq":
            return bool(_same_type(have, self.value) and have == self.value)
        if self.op == "ne":
            return not (_same_type(have, self.value) and have == self.value)
        if self.op == "in":
            return any(_same_type(have, v) and have == v for v in self.value)
        if not _is_number(have):
            return False
        if self.op == "gte":
            return bool(have >= self.value)
        if self.op == "gt":
            return bool(have > self.value)
        if self.op == "lte":
            return bool(have <= self.value)
        return bool(have < self.value)  # lt


@dataclass(frozen=True)
class AccountCondition:
    """Every comparison holds over the account signals (a missing field never holds)."""

    comparisons: tuple[Comparison, ...]
    line: int = 0

    def holds(self, ctx: Context) -> bool:
        return all(c.holds(ctx.account) for c in self.comparisons)


@dataclass(frozen=True)
class MediaCondition:
    kinds: tuple[str, ...]
    line: int = 0

    def holds(self, ctx: Context) -> bool:
        return str(ctx.media.get("kind", "")) in self.kinds


Condition = (
    All
    | AnyOf
    | Not
    | MatchCondition
    | NoMatch
    | ClassificationCondition
    | ReportsCondition
    | AccountCondition
    | MediaCondition
)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_type(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return True
    return type(a) is type(b)


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    name: str
    priority: int
    shadow: bool
    when: Condition
    actions: tuple[ActionSpec, ...]
    line: int
    description: str = ""

    @property
    def decision(self) -> str | None:
        """The rule's decision action (block, hold or allow), if it has one."""
        return next((a.kind for a in self.actions if a.kind in DECISIONS), None)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "priority": self.priority,
            "shadow": self.shadow,
            "actions": [a.kind for a in self.actions],
            "line": self.line,
            "description": self.description,
        }


@dataclass(frozen=True)
class RuleSet:
    mode: Mode
    rules: tuple[Rule, ...]
    default: str = "allow"

    def ordered(self) -> list[Rule]:
        """The rules in evaluation order: descending priority, ties in file order."""
        return [r for _, r in sorted(enumerate(self.rules), key=lambda p: (-p[1].priority, p[0]))]

    def names(self) -> list[str]:
        return [r.name for r in self.rules]

    def shadow_names(self) -> list[str]:
        return [r.name for r in self.rules if r.shadow]

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "default": self.default,
            "rules": [r.summary() for r in self.ordered()],
        }


def strongest(decisions: Iterable[str]) -> str | None:
    """The strongest decision: block > hold > allow (None for none)."""
    found = set(decisions)
    return next((d for d in DECISIONS if d in found), None)

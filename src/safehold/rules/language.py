"""The rule language: YAML in, a validated :class:`RuleSet` out, errors with line numbers.

A rule file::

    mode: first-match          # or all-match
    default: allow             # the decision when no rule decides
    rules:
      - name: known-csam
        priority: 100
        when:
          match: {labels: [csam]}
        actions:
          - block
          - review: {queue: csam, sla: 4h}

Every problem is reported at once as ``FILE:LINE:COL: message`` (:class:`RulesError`),
naming the valid alternatives. The reference is ``docs/rules.md``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from safehold.errors import InvalidValue, UnknownLabel, preview
from safehold.rules.model import (
    ACTION_KINDS,
    COMPARISONS,
    DECISIONS,
    MODES,
    AccountCondition,
    ActionSpec,
    All,
    AnyOf,
    ClassificationCondition,
    Comparison,
    Condition,
    MatchCondition,
    MediaCondition,
    Mode,
    NoMatch,
    Not,
    ReportsCondition,
    Rule,
    RuleSet,
)
from safehold.signals import SIGNAL_TYPES
from safehold.taxonomy import normalize_label

__all__ = [
    "MAX_SOURCE_BYTES",
    "ActionSpec",
    "Rule",
    "RuleSet",
    "RulesError",
    "decode_source",
    "load_rules",
    "parse_duration",
    "parse_rules",
]

MAX_SOURCE_BYTES = 1024 * 1024
MAX_RULES = 1000
MAX_DEPTH = 32
ROLES = ("reviewer", "lead", "admin", "auditor")
"""Console roles a ``notify`` action can address (see :mod:`safehold.access.users`)."""
WEBHOOK_EVENTS = ("event.actioned", "case.decided")
MEDIA_KINDS = ("image", "video")
BANK_KINDS = ("block", "negative")

TOP_KEYS = ("mode", "default", "rules")
RULE_KEYS = ("name", "description", "priority", "shadow", "when", "actions")
CONDITION_KEYS = (
    "all",
    "any",
    "not",
    "match",
    "no_match",
    "classification",
    "reports",
    "account",
    "media",
)
MATCH_KEYS = (
    "bank",
    "banks",
    "labels",
    "labels_all",
    "source",
    "signal_type",
    "max_distance",
    "kind",
    "min_count",
)
ACTION_PARAMS: dict[str, tuple[str, ...]] = {
    "block": (),
    "hold": (),
    "allow": (),
    "review": ("queue", "priority", "sla"),
    "webhook": ("url", "secret_env", "events"),
    "preserve": ("days",),
    "notify": ("to", "message"),
}

RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
QUEUE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
USER_NAME = re.compile(r"[a-z0-9._-]{1,64}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
DURATION = re.compile(r"(?:\d+[smhdw])+")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION = 366 * 86400

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_CONSTRUCT = SafeConstructor()


class RulesError(InvalidValue):
    """A rule file is not valid. ``problems``: ``{"line", "column", "message"}`` each
    (1-based; line 0 when the problem is not at one place)."""

    code = "invalid_rules"

    def __init__(self, filename: str, problems: list[dict[str, Any]]) -> None:
        self.filename = filename
        self.problems = problems
        lines = [f"{filename}:{p['line']}:{p['column']}: {p['message']}" for p in problems]
        n = len(problems)
        head = f"{filename}: {n} problem{'s' if n != 1 else ''} in the rules"
        super().__init__("\n".join([head, *lines]), errors=problems)

    def locations(self) -> list[str]:
        """Each problem as ``FILE:LINE:COL: message``."""
        return [f"{self.filename}:{p['line']}:{p['column']}: {p['message']}" for p in self.problems]


def parse_duration(text: str) -> int:
    """Seconds in a duration like ``30m``, ``4h``, ``2d``, ``1w`` or ``1h30m``."""
    raw = text.strip().lower() if isinstance(text, str) else ""
    if not DURATION.fullmatch(raw):
        raise InvalidValue(
            f"not a duration: {preview(text)}; use a number with a unit s, m, h, d or w "
            "(e.g. 30m, 4h, 2d, 1h30m)"
        )
    seconds = sum(int(n) * _UNIT[u] for n, u in re.findall(r"(\d+)([smhdw])", raw))
    if seconds <= 0 or seconds > MAX_DURATION:
        raise InvalidValue(f"duration {preview(text)} must be between 1s and 366d")
    return seconds


def load_rules(path: str | Path) -> RuleSet:
    """Parse a rule file (errors name the file)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InvalidValue(f"{p}: cannot read the rule file: {e.strerror or e}") from e
    return parse_rules(decode_source(data, str(p)), filename=str(p))


def decode_source(data: bytes, filename: str) -> str:
    """Rule-file bytes as text (UTF-8, a BOM allowed); RulesError when too large or not UTF-8."""
    if len(data) > MAX_SOURCE_BYTES:
        raise RulesError(
            filename, [_at(0, 0, f"the rule file is larger than {MAX_SOURCE_BYTES} bytes")]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise RulesError(filename, [_at(line, col, "the rule file is not UTF-8 text")]) from None


def parse_rules(text: str, *, filename: str = "<rules>") -> RuleSet:
    """Parse and validate rules; raises :class:`RulesError` listing every problem."""
    if not isinstance(text, str):
        raise RulesError(filename, [_at(0, 0, "rules must be YAML text")])
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise RulesError(
            filename, [_at(0, 0, f"the rule file is larger than {MAX_SOURCE_BYTES} bytes")]
        )
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as e:  # a control character: refused before parsing
        line = text.count("\n", 0, e.position) + 1
        col = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        message = (
            f"character U+{e.character:04X} is not allowed in YAML"
            if isinstance(e.character, int)
            else "a character is not allowed in YAML"
        )
        raise RulesError(filename, [_at(line, col, message)]) from None
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = e.problem or "invalid YAML"
        if e.context:
            problem += f" ({e.context})"
        if "indent" in problem or "block" in problem:
            problem += "; check the indentation"
        raise RulesError(filename, [_at(line, col, f"YAML syntax error: {problem}")]) from None
    except yaml.YAMLError as e:  # e.g. a control character in the stream
        raise RulesError(filename, [_at(0, 0, f"YAML error: {str(e)[:300]}")]) from None
    except RecursionError:
        raise RulesError(filename, [_at(0, 0, "the YAML nests too deeply")]) from None
    finally:
        loader.dispose()
    if root is None:
        raise RulesError(filename, [_at(1, 1, "the rule file is empty; it needs `rules:`")])
    parser = _Parser()
    ruleset = parser.ruleset(root)
    if parser.problems or ruleset is None:
        problems = sorted(parser.problems, key=lambda p: (p["line"], p["column"]))
        raise RulesError(filename, problems)
    return ruleset


def _at(line: int, column: int, message: str) -> dict[str, Any]:
    return {"line": line, "column": column, "message": message}


@dataclass
class _Bad:
    """A value that failed validation (its problem is already recorded)."""


BAD = _Bad()


def _alternatives(key: str, valid: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}valid: {', '.join(valid)}"


class _Parser:
    def __init__(self) -> None:
        self.problems: list[dict[str, Any]] = []
        self._seen: set[int] = set()
        self._flawed: set[int] = set()
        """Mappings with a bad key: what they lack is not reported again (a typo is enough)."""

    # ----------------------------------------------------------------- plumbing

    def problem(self, node: Node, message: str) -> _Bad:
        mark = node.start_mark
        self.problems.append(_at(mark.line + 1, mark.column + 1, message))
        return BAD

    def missing(self, node: Node, message: str) -> _Bad:
        """A required key is missing, unless the mapping had a bad key (likely that one)."""
        if id(node) in self._flawed:
            return BAD
        return self.problem(node, message)

    def visit(self, node: Node) -> bool:
        """False (with a problem) for a node seen before: an alias (``*name``)."""
        if id(node) in self._seen:
            self.problem(node, "YAML aliases (*name) are not supported in rule files")
            return False
        self._seen.add(id(node))
        if node.tag not in (_MAP, _SEQ) and not isinstance(node, ScalarNode):
            self.problem(node, f"unsupported YAML tag {preview(node.tag)}")
            return False
        return True

    def scalar(self, node: Node, what: str) -> Any:
        """The value of a scalar node: None, bool, int, float or str."""
        if not isinstance(node, ScalarNode):
            kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
            return self.problem(node, f"{what} must be a single value, not {kind}")
        tag = node.tag
        try:
            if tag == "tag:yaml.org,2002:null":
                return None
            if tag == "tag:yaml.org,2002:bool":
                return _CONSTRUCT.construct_yaml_bool(node)
            if tag == "tag:yaml.org,2002:int":
                return _CONSTRUCT.construct_yaml_int(node)
            if tag == "tag:yaml.org,2002:float":
                return _CONSTRUCT.construct_yaml_float(node)
        except (ValueError, yaml.YAMLError):
            return self.problem(node, f"{what}: {preview(node.value)} is not a valid {tag[18:]}")
        if tag in (_STR, "tag:yaml.org,2002:timestamp"):
            return str(node.value)
        return self.problem(node, f"{what}: unsupported YAML tag {preview(tag)}")

    def mapping(self, node: Node, what: str, valid: Sequence[str]) -> dict[str, Node] | _Bad:
        """A mapping's values by key; unknown, repeated and non-string keys are problems."""
        if not self.visit(node):
            return BAD
        if not isinstance(node, MappingNode):
            return self.problem(
                node, f"{what} must be a mapping (key: value) with keys: {', '.join(valid)}"
            )
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, f"a key of {what}")
            if isinstance(key, _Bad) or not isinstance(key, str) or key in out or key not in valid:
                self._flawed.add(id(node))
            if isinstance(key, _Bad):
                continue
            if not isinstance(key, str):
                self.problem(
                    key_node,
                    f"{what}: key {preview(key)} must be a name; valid: {', '.join(valid)}",
                )
                continue
            if key in out:
                self.problem(key_node, f"{what}: {key!r} is given twice")
                continue
            if key not in valid:
                self.problem(
                    key_node, f"unknown key {preview(key)} in {what}; " + _alternatives(key, valid)
                )
                continue
            out[key] = value_node
        return out

    def sequence(self, node: Node, what: str) -> list[Node] | _Bad:
        if not self.visit(node):
            return BAD
        if not isinstance(node, SequenceNode):
            return self.problem(node, f"{what} must be a list")
        return list(node.value)

    def string(
        self,
        node: Node,
        what: str,
        *,
        pattern: re.Pattern[str] | None = None,
        choices: Sequence[str] | None = None,
        hint: str = "",
        max_len: int = 1000,
    ) -> str | _Bad:
        value = self.scalar(node, what)
        if isinstance(value, _Bad):
            return value
        if not isinstance(value, str):
            if choices:
                return self.problem(node, f"{what} must be one of: {', '.join(choices)}")
            return self.problem(node, f"{what} must be text, not {preview(value)}")
        if choices is not None and value not in choices:
            return self.problem(
                node, f"{what}: {preview(value)} is not valid; " + _alternatives(value, choices)
            )
        if pattern is not None and not pattern.fullmatch(value):
            return self.problem(node, f"{what}: {preview(value)} is not valid; {hint}")
        if len(value) > max_len:
            return self.problem(node, f"{what} is longer than {max_len} characters")
        return value

    def integer(self, node: Node, what: str, *, low: int, high: int) -> int | _Bad:
        value = self.scalar(node, what)
        if isinstance(value, _Bad):
            return value
        if not isinstance(value, int) or isinstance(value, bool):
            return self.problem(
                node, f"{what} must be a whole number from {low} to {high}, not {preview(value)}"
            )
        if not low <= value <= high:
            return self.problem(node, f"{what} must be from {low} to {high}, not {value}")
        return value

    def number(self, node: Node, what: str, *, low: float, high: float) -> float | _Bad:
        value = self.scalar(node, what)
        if isinstance(value, _Bad):
            return value
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            return self.problem(
                node, f"{what} must be a number from {low:g} to {high:g}, not {preview(value)}"
            )
        if not low <= value <= high:
            return self.problem(node, f"{what} must be from {low:g} to {high:g}, not {value:g}")
        return float(value)

    def boolean(self, node: Node, what: str) -> bool | _Bad:
        value = self.scalar(node, what)
        if isinstance(value, _Bad):
            return value
        if not isinstance(value, bool):
            return self.problem(node, f"{what} must be true or false, not {preview(value)}")
        return value

    def strings(
        self, node: Node, what: str, check: Callable[[Node, str], str | _Bad]
    ) -> tuple[str, ...] | _Bad:
        """One value or a non-empty list of values, each checked."""
        items = [node] if isinstance(node, ScalarNode) else self.sequence(node, what)
        if isinstance(items, _Bad):
            return items
        if not items:
            return self.problem(node, f"{what} must not be an empty list")
        out: list[str] = []
        bad = False
        for item in items:
            value = check(item, what)
            if isinstance(value, _Bad):
                bad = True
            elif value not in out:
                out.append(value)
        return BAD if bad else tuple(out)

    def label(self, node: Node, what: str) -> str | _Bad:
        value = self.string(node, what)
        if isinstance(value, _Bad):
            return value
        try:
            return normalize_label(value)
        except UnknownLabel as e:
            return self.problem(node, f"{what}: {e.message}")

    # ----------------------------------------------------------------- the file

    def ruleset(self, root: Node) -> RuleSet | None:
        top = self.mapping(root, "the rule file", TOP_KEYS)
        if isinstance(top, _Bad):
            return None
        mode: Any = "first-match"
        if "mode" in top:
            mode = self.string(top["mode"], "mode", choices=MODES)
        default: Any = "allow"
        if "default" in top:
            default = self.string(top["default"], "default", choices=DECISIONS)
        if "rules" not in top:
            self.missing(root, "the rule file needs `rules:` (a list of rules)")
            return None
        items = self.sequence(top["rules"], "rules")
        if isinstance(items, _Bad):
            return None
        if len(items) > MAX_RULES:
            self.problem(top["rules"], f"at most {MAX_RULES} rules, not {len(items)}")
            return None
        rules: list[Rule] = []
        names: dict[str, int] = {}
        for item in items:
            rule, name = self.rule(item)
            if name is not None:
                if name in names:
                    self.problem(
                        item,
                        f"rule name {name!r} is used twice (first on line "
                        f"{names[name]}); names must be unique",
                    )
                    continue
                names[name] = item.start_mark.line + 1
            if rule is not None:
                rules.append(rule)
        if isinstance(mode, _Bad) or isinstance(default, _Bad):
            return None
        return RuleSet(mode=cast(Mode, mode), rules=tuple(rules), default=default)

    def rule(self, node: Node) -> tuple[Rule | None, str | None]:
        """The rule (None when invalid) and its name (None when missing or invalid)."""
        fields = self.mapping(node, "a rule", RULE_KEYS)
        if isinstance(fields, _Bad):
            return None, None
        line = node.start_mark.line + 1
        name: Any = BAD
        if "name" in fields:
            name = self.string(
                fields["name"],
                "the rule name",
                pattern=RULE_NAME,
                hint="use up to 100 letters, digits and _ . : - (starting with a letter or digit)",
            )
        else:
            self.missing(node, "a rule needs a `name`")
        label = f"rule {name!r}" if isinstance(name, str) else "a rule"
        description: Any = ""
        if "description" in fields:
            description = self.string(fields["description"], f"{label}: description", max_len=2000)
        priority: Any = 0
        if "priority" in fields:
            priority = self.integer(
                fields["priority"], f"{label}: priority", low=-1_000_000, high=1_000_000
            )
        shadow: Any = False
        if "shadow" in fields:
            shadow = self.boolean(fields["shadow"], f"{label}: shadow")
        when: Condition | _Bad = BAD
        if "when" in fields:
            when = self.condition(fields["when"], f"{label}: when", 0)
        else:
            self.missing(node, f"{label} needs `when:` (a condition)")
        actions: tuple[ActionSpec, ...] | _Bad = BAD
        if "actions" in fields:
            actions = self.actions(fields["actions"], label, name if isinstance(name, str) else "")
        else:
            self.missing(node, f"{label} needs `actions:` (a list, e.g. [block])")
        valid_name = name if isinstance(name, str) else None
        values = (name, description, priority, shadow, when, actions)
        if any(isinstance(v, _Bad) for v in values):
            return None, valid_name
        return Rule(
            name=name,
            priority=priority,
            shadow=shadow,
            when=cast(Condition, when),
            actions=cast(tuple[ActionSpec, ...], actions),
            line=line,
            description=description,
        ), valid_name

    # ----------------------------------------------------------------- conditions

    def condition(self, node: Node, what: str, depth: int) -> Condition | _Bad:
        if depth > MAX_DEPTH:
            return self.problem(node, f"{what}: conditions nest deeper than {MAX_DEPTH} levels")
        fields = self.mapping(node, f"{what} (a condition)", CONDITION_KEYS)
        if isinstance(fields, _Bad):
            return fields
        if not fields:
            return self.missing(
                node, f"{what}: an empty condition; use one of {', '.join(CONDITION_KEYS)}"
            )
        parts: list[Condition] = []
        bad = False
        for key, value in fields.items():
            part = self.leaf(key, value, what, depth)
            if isinstance(part, _Bad):
                bad = True
            else:
                parts.append(part)
        if bad:
            return BAD
        line = node.start_mark.line + 1
        return parts[0] if len(parts) == 1 else All(tuple(parts), line=line)

    def leaf(self, key: str, node: Node, what: str, depth: int) -> Condition | _Bad:
        line = node.start_mark.line + 1
        if key in ("all", "any"):
            items = self.sequence(node, f"{what}: {key}")
            if isinstance(items, _Bad):
                return items
            if not items:
                return self.problem(node, f"{what}: {key} needs at least one condition")
            conds = [self.condition(i, f"{what}: {key}", depth + 1) for i in items]
            if any(isinstance(c, _Bad) for c in conds):
                return BAD
            parts = tuple(cast(list[Condition], conds))
            return All(parts, line=line) if key == "all" else AnyOf(parts, line=line)
        if key == "not":
            inner = self.condition(node, f"{what}: not", depth + 1)
            return inner if isinstance(inner, _Bad) else Not(inner, line=line)
        if key == "match":
            return self.match(node, f"{what}: match")
        if key == "no_match":
            value = self.boolean(node, f"{what}: no_match")
            return value if isinstance(value, _Bad) else NoMatch(value, line=line)
        if key == "classification":
            return self.classification(node, f"{what}: classification")
        if key == "reports":
            return self.reports(node, f"{what}: reports")
        if key == "account":
            return self.account(node, f"{what}: account")
        return self.media(node, f"{what}: media")  # the only key left

    def match(self, node: Node, what: str) -> MatchCondition | _Bad:
        if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return MatchCondition(line=node.start_mark.line + 1)  # `match:` = any match
        fields = self.mapping(node, what, MATCH_KEYS)
        if isinstance(fields, _Bad):
            return fields
        kw: dict[str, Any] = {}
        banks: list[str] = []
        bank_pattern = re.compile(r"[A-Za-z0-9_.*?\[\]!-]{1,100}")
        bank_hint = "use a bank name or a glob like ncmec-* (letters, digits, _ . - * ?)"

        def bank(n: Node, w: str) -> str | _Bad:
            return self.string(n, w, pattern=bank_pattern, hint=bank_hint)

        for key in ("bank", "banks"):
            if key in fields:
                value = self.strings(fields[key], f"{what}: {key}", bank)
                if isinstance(value, _Bad):
                    kw["bad"] = True
                else:
                    banks.extend(value)
        kw["banks"] = tuple(dict.fromkeys(banks))
        for key in ("labels", "labels_all"):
            if key in fields:
                kw[key] = self.strings(fields[key], f"{what}: {key}", self.label)
        if "source" in fields:
            kw["sources"] = self.strings(
                fields["source"], f"{what}: source", lambda n, w: self.string(n, w, max_len=64)
            )
        if "signal_type" in fields:
            kw["signal_types"] = self.strings(
                fields["signal_type"],
                f"{what}: signal_type",
                lambda n, w: self.string(n, w, choices=tuple(SIGNAL_TYPES)),
            )
        if "max_distance" in fields:
            kw["max_distance"] = self.integer(
                fields["max_distance"], f"{what}: max_distance", low=0, high=256
            )
        if "kind" in fields:
            kw["kind"] = self.string(fields["kind"], f"{what}: kind", choices=BANK_KINDS)
        if "min_count" in fields:
            kw["min_count"] = self.integer(
                fields["min_count"], f"{what}: min_count", low=1, high=1_000_000
            )
        if kw.pop("bad", False) or any(isinstance(v, _Bad) for v in kw.values()):
            return BAD
        return MatchCondition(line=node.start_mark.line + 1, **kw)

    def classification(self, node: Node, what: str) -> ClassificationCondition | _Bad:
        fields = self.mapping(node, what, ("name", "min_score", "max_score"))
        if isinstance(fields, _Bad):
            return fields
        if "name" not in fields:
            return self.missing(node, f"{what} needs `name:` (the classifier)")
        name = self.string(
            fields["name"], f"{what}: name", pattern=FIELD_NAME, hint="use letters, digits and _"
        )
        scores: dict[str, Any] = {}
        for key in ("min_score", "max_score"):
            if key in fields:
                scores[key] = self.number(fields[key], f"{what}: {key}", low=0.0, high=1.0)
        if not scores:
            return self.missing(node, f"{what} needs min_score and/or max_score (0 to 1)")
        if isinstance(name, _Bad) or any(isinstance(v, _Bad) for v in scores.values()):
            return BAD
        return ClassificationCondition(name, line=node.start_mark.line + 1, **scores)

    def reports(self, node: Node, what: str) -> ReportsCondition | _Bad:
        fields = self.mapping(node, what, ("min", "max"))
        if isinstance(fields, _Bad):
            return fields
        if not fields:
            return self.missing(node, f"{what} needs min and/or max (a number of reports)")
        bounds = {k: self.integer(v, f"{what}: {k}", low=0, high=10**9) for k, v in fields.items()}
        if any(isinstance(v, _Bad) for v in bounds.values()):
            return BAD
        low, high = bounds.get("min"), bounds.get("max")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            return self.problem(node, f"{what}: min ({low}) is larger than max ({high})")
        return ReportsCondition(line=node.start_mark.line + 1, **cast(dict[str, int], bounds))

    def account(self, node: Node, what: str) -> AccountCondition | _Bad:
        if not isinstance(node, MappingNode) or not node.value:
            return self.problem(
                node,
                f"{what} must map signal names to comparisons, e.g. {{prior_matches: {{gte: 2}}}}",
            )
        out: list[Comparison] = []
        bad = False
        fields = self.mapping(node, what, _AnyKey())
        if isinstance(fields, _Bad):
            return fields
        for name, value in fields.items():
            key_what = f"{what}: {name}"
            if not FIELD_NAME.fullmatch(name):
                self.problem(
                    value, f"{what}: {preview(name)} is not a signal name (letters, digits and _)"
                )
                bad = True
                continue
            if isinstance(value, ScalarNode):  # shorthand: FIELD: VALUE means eq
                v = self.scalar(value, key_what)
                if isinstance(v, _Bad):
                    bad = True
                else:
                    out.append(Comparison(name, "eq", v))
                continue
            ops = self.mapping(value, key_what, COMPARISONS)
            if isinstance(ops, _Bad):
                bad = True
                continue
            if not ops and isinstance(value, MappingNode) and not value.value:
                self.problem(value, f"{key_what} needs a comparison: {', '.join(COMPARISONS)}")
                bad = True
            for op, op_node in ops.items():
                cmp = self.comparison(name, op, op_node, f"{key_what}: {op}")
                if isinstance(cmp, _Bad):
                    bad = True
                else:
                    out.append(cmp)
        if bad:
            return BAD
        return AccountCondition(tuple(out), line=node.start_mark.line + 1)

    def comparison(self, name: str, op: str, node: Node, what: str) -> Comparison | _Bad:
        if op == "in":
            items = self.sequence(node, what)
            if isinstance(items, _Bad):
                return items
            if not items:
                return self.problem(node, f"{what} needs at least one value")
            values = [self.scalar(i, what) for i in items]
            if any(isinstance(v, _Bad) for v in values):
                return BAD
            return Comparison(name, op, tuple(values))
        if op in ("eq", "ne"):
            value = self.scalar(node, what)
            return value if isinstance(value, _Bad) else Comparison(name, op, value)
        number = self.number(node, what, low=-1e18, high=1e18)
        if isinstance(number, _Bad):
            return number
        return Comparison(name, op, int(number) if number.is_integer() else number)

    def media(self, node: Node, what: str) -> MediaCondition | _Bad:
        fields = self.mapping(node, what, ("kind",))
        if isinstance(fields, _Bad):
            return fields
        if "kind" not in fields:
            return self.missing(node, f"{what} needs `kind:` ({', '.join(MEDIA_KINDS)})")
        kinds = self.strings(
            fields["kind"], f"{what}: kind", lambda n, w: self.string(n, w, choices=MEDIA_KINDS)
        )
        if isinstance(kinds, _Bad):
            return kinds
        return MediaCondition(kinds, line=node.start_mark.line + 1)

    # ----------------------------------------------------------------- actions

    def actions(self, node: Node, what: str, rule: str) -> tuple[ActionSpec, ...] | _Bad:
        items = self.sequence(node, f"{what}: actions")
        if isinstance(items, _Bad):
            return items
        if not items:
            return self.problem(node, f"{what}: actions must not be empty (e.g. [block])")
        out: list[ActionSpec] = []
        bad = False
        decision: tuple[str, Node] | None = None
        for item in items:
            action = self.action(item, f"{what}: action", rule)
            if isinstance(action, _Bad):
                bad = True
                continue
            if action.kind in DECISIONS:
                if decision is not None:
                    self.problem(
                        item,
                        f"{what}: a rule takes one decision; {decision[0]!r} is "
                        f"on line {decision[1].start_mark.line + 1} already "
                        f"(decisions: {', '.join(DECISIONS)})",
                    )
                    bad = True
                    continue
                decision = (action.kind, item)
            if action.kind == "preserve" and any(a.kind == "preserve" for a in out):
                self.problem(item, f"{what}: preserve is given twice")
                bad = True
                continue
            out.append(action)
        return BAD if bad else tuple(out)

    def action(self, node: Node, what: str, rule: str) -> ActionSpec | _Bad:
        if isinstance(node, ScalarNode):
            kind = self.string(node, what, choices=ACTION_KINDS)
            if isinstance(kind, _Bad):
                return kind
            params_node: Node | None = None
        else:
            fields = self.mapping(node, what, ACTION_KINDS)
            if isinstance(fields, _Bad):
                return fields
            if len(fields) != 1:
                return self.problem(
                    node, f"{what}: one action per list item, e.g. `- review: {{queue: csam}}`"
                )
            kind, params_node = next(iter(fields.items()))
        return self.params(kind, params_node, f"{what} {kind}", rule, node)

    def params(
        self, kind: str, node: Node | None, what: str, rule: str, at: Node
    ) -> ActionSpec | _Bad:
        valid = ACTION_PARAMS[kind]
        fields: dict[str, Node] = {}
        if node is not None and not (
            isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"
        ):
            if not valid:
                return self.problem(node, f"{what} takes no parameters")
            got = self.mapping(node, what, valid)
            if isinstance(got, _Bad):
                return got
            fields = got
        p: dict[str, Any] = {}
        if kind == "review":
            p["queue"] = "default"
            if "queue" in fields:
                p["queue"] = self.string(
                    fields["queue"],
                    f"{what}: queue",
                    pattern=QUEUE_NAME,
                    hint="use up to 64 lower-case letters, digits, _ . -",
                )
            p["priority"] = None
            if "priority" in fields:
                p["priority"] = self.integer(
                    fields["priority"], f"{what}: priority", low=0, high=1000
                )
            p["sla_seconds"] = None
            if "sla" in fields:
                raw = self.string(fields["sla"], f"{what}: sla")
                if not isinstance(raw, _Bad):
                    try:
                        p["sla_seconds"] = parse_duration(raw)
                    except InvalidValue as e:
                        p["sla_seconds"] = self.problem(fields["sla"], f"{what}: {e.message}")
        elif kind == "webhook":
            if "url" not in fields:
                return self.missing(node or at, f"{what} needs `url:` (http or https)")
            if "secret_env" not in fields:
                return self.missing(
                    node or at,
                    f"{what} needs `secret_env:` (the name of the "
                    "environment variable holding the signing secret)",
                )
            p["url"] = self.url(fields["url"], f"{what}: url")
            p["secret_env"] = self.string(
                fields["secret_env"],
                f"{what}: secret_env",
                pattern=ENV_NAME,
                hint="use an environment variable name like HOOK_SECRET",
            )
            p["events"] = None
            if "events" in fields:
                events = self.strings(
                    fields["events"],
                    f"{what}: events",
                    lambda n, w: self.string(n, w, choices=WEBHOOK_EVENTS),
                )
                p["events"] = events if isinstance(events, _Bad) else list(events)
        elif kind == "preserve":
            p["days"] = None
            if "days" in fields:
                p["days"] = self.integer(fields["days"], f"{what}: days", low=1, high=36500)
        elif kind == "notify":
            if "to" not in fields:
                return self.missing(
                    node or at, f"{what} needs `to:` (a role: {', '.join(ROLES)}; or user:NAME)"
                )
            p["to"] = self.recipient(fields["to"], f"{what}: to")
            p["message"] = None
            if "message" in fields:
                p["message"] = self.string(fields["message"], f"{what}: message", max_len=1000)
        if any(isinstance(v, _Bad) for v in p.values()):
            return BAD
        return ActionSpec(kind, p, rule or None)

    def url(self, node: Node, what: str) -> str | _Bad:
        value = self.string(node, what, max_len=2048)
        if isinstance(value, _Bad):
            return value
        try:
            parts = urlsplit(value)
            host = parts.hostname
        except ValueError:
            return self.problem(node, f"{what}: {preview(value)} is not a URL")
        if parts.scheme not in ("http", "https") or not host:
            return self.problem(
                node, f"{what}: {preview(value)} must be an http:// or https:// URL with a host"
            )
        if parts.username or parts.password:
            return self.problem(
                node,
                f"{what}: put no credentials in the URL; the signature "
                "(secret_env) authenticates the message",
            )
        if any(c.isspace() for c in value):
            return self.problem(node, f"{what}: the URL contains white space")
        return value

    def recipient(self, node: Node, what: str) -> str | _Bad:
        value = self.string(node, what)
        if isinstance(value, _Bad):
            return value
        if value in ROLES:
            return value
        if value.startswith("user:") and USER_NAME.fullmatch(value[5:]):
            return value
        return self.problem(
            node, f"{what}: {preview(value)} is neither a role ({', '.join(ROLES)}) nor user:NAME"
        )


class _AnyKey(tuple[str, ...]):
    """Accepts every key (account signal names are free)."""

    def __contains__(self, key: object) -> bool:
        return True

"""The rule language: every construct parses to the documented structure, and every
mistake is reported at its FILE:LINE:COL with the valid alternatives."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from safehold.errors import InvalidValue
from safehold.rules import (
    DEFAULT_RULES,
    ActionSpec,
    RulesError,
    load_rules,
    parse_duration,
    parse_rules,
)
from safehold.rules.language import MAX_SOURCE_BYTES
from safehold.rules.model import (
    AccountCondition,
    All,
    AnyOf,
    ClassificationCondition,
    Comparison,
    MatchCondition,
    MediaCondition,
    NoMatch,
    Not,
    ReportsCondition,
)

FULL = textwrap.dedent(
    """\
    mode: all-match
    default: hold
    rules:
      - name: known-csam
        description: Known CSAM from any block bank.
        priority: 100
        when:
          match:
            banks: [ncmec-*, local]
            labels: [csam]
            max_distance: 31
            min_count: 1
        actions:
          - block
          - review: {queue: csam, priority: 90, sla: 4h}
          - webhook:
              url: https://hooks.example.test/safehold
              secret_env: SAFEHOLD_HOOK_SECRET
              events: [event.actioned]
          - preserve: {days: 90}
          - notify: {to: lead, message: "known CSAM from {account_id}"}
      - name: reported-new-account
        priority: 10
        when:
          all:
            - no_match: true
            - reports: {min: 2, max: 100}
            - account: {prior_events: {lt: 5}, country: {in: [NZ, MY]}, verified: false}
            - any:
                - media: {kind: video}
                - classification: {name: nudity, min_score: 0.8}
            - not: {match: {kind: negative}}
        actions: [hold, {review: {queue: reports}}]
      - name: try-lower-threshold
        shadow: true
        when: {match: {labels_all: [A1, interpol:baseline], source: [ncmec], signal_type: pdq}}
        actions: [notify: {to: "user:alice"}]
    """
)


def problems(text: str) -> list[dict[str, object]]:
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename="rules.yaml")
    return info.value.problems


def only(text: str) -> str:
    """The single problem's ``LINE:COL: message``."""
    with pytest.raises(RulesError) as info:
        parse_rules(text, filename="rules.yaml")
    locations = info.value.locations()
    assert len(locations) == 1, locations
    assert locations[0].startswith("rules.yaml:")
    return locations[0].removeprefix("rules.yaml:")


def test_a_full_file_parses_to_the_documented_structure() -> None:
    rs = parse_rules(FULL)
    assert rs.mode == "all-match" and rs.default == "hold"
    assert [r.name for r in rs.rules] == [
        "known-csam",
        "reported-new-account",
        "try-lower-threshold",
    ]
    csam, reported, shadow = rs.rules
    assert csam.line == 4 and csam.priority == 100 and not csam.shadow
    assert csam.description == "Known CSAM from any block bank."
    assert csam.when == MatchCondition(
        banks=("ncmec-*", "local"), labels=("csam",), max_distance=31, min_count=1, line=9
    )
    assert csam.decision == "block"
    assert [a.kind for a in csam.actions] == ["block", "review", "webhook", "preserve", "notify"]
    review, webhook, preserve, notify = csam.actions[1:]
    assert review.params == {"queue": "csam", "priority": 90, "sla_seconds": 4 * 3600}
    assert review.rule == "known-csam"
    assert webhook.params == {
        "url": "https://hooks.example.test/safehold",
        "secret_env": "SAFEHOLD_HOOK_SECRET",
        "events": ["event.actioned"],
    }
    assert preserve.params == {"days": 90}
    assert notify.params == {"to": "lead", "message": "known CSAM from {account_id}"}

    assert isinstance(reported.when, All)
    no_match, reports, account, any_of, negated = reported.when.items
    assert no_match == NoMatch(True, line=no_match.line)
    assert reports == ReportsCondition(min=2, max=100, line=reports.line)
    assert isinstance(account, AccountCondition)
    assert account.comparisons == (
        Comparison("prior_events", "lt", 5),
        Comparison("country", "in", ("NZ", "MY")),
        Comparison("verified", "eq", False),
    )
    assert isinstance(any_of, AnyOf)
    assert any_of.items[0] == MediaCondition(("video",), line=any_of.items[0].line)
    assert any_of.items[1] == ClassificationCondition("nudity", 0.8, line=any_of.items[1].line)
    assert isinstance(negated, Not) and negated.item == MatchCondition(kind="negative", line=32)
    assert reported.decision == "hold"
    assert reported.actions[1] == ActionSpec(
        "review", {"queue": "reports", "priority": None, "sla_seconds": None}
    )

    assert shadow.shadow and shadow.decision is None
    assert shadow.when == MatchCondition(
        labels_all=("A1", "interpol:baseline"),
        sources=("ncmec",),
        signal_types=("pdq",),
        line=shadow.when.line,
    )
    assert shadow.actions[0].params == {"to": "user:alice", "message": None}


def test_defaults_labels_are_canonical_and_several_keys_mean_all() -> None:
    rs = parse_rules(
        "rules:\n"
        "  - name: r\n"
        "    when: {match: {labels: [a1, Industry:B2, baseline]}, reports: {min: 1}}\n"
        "    actions: [review]\n"
    )
    assert rs.mode == "first-match" and rs.default == "allow"
    rule = rs.rules[0]
    assert rule.priority == 0 and rule.shadow is False and rule.description == ""
    assert isinstance(rule.when, All)
    assert rule.when.items[0] == MatchCondition(labels=("A1", "B2", "interpol:baseline"), line=3)
    assert rule.actions == (
        ActionSpec("review", {"queue": "default", "priority": None, "sla_seconds": None}),
    )


def test_the_built_in_rules_block_and_review_block_bank_matches() -> None:
    assert DEFAULT_RULES.mode == "first-match" and DEFAULT_RULES.default == "allow"
    (rule,) = DEFAULT_RULES.rules
    assert rule.when == MatchCondition(kind="block", line=rule.when.line)
    assert [a.kind for a in rule.actions] == ["block", "review"]
    assert rule.actions[1].params["queue"] == "default"


def test_an_unknown_key_points_at_its_line_and_suggests_the_right_one() -> None:
    text = "rules:\n  - name: r\n    when:\n      match: {lables: [csam]}\n    actions: [block]\n"
    msg = only(text)
    assert msg.startswith("4:15: unknown key 'lables'")
    assert "did you mean 'labels'?" in msg
    assert "valid: bank, banks, labels, labels_all" in msg


@pytest.mark.parametrize(
    ("text", "where", "needles"),
    [
        ("mode: first\nrules: []\n", "1:7", ["mode", "first-match, all-match"]),
        ("default: review\nrules: []\n", "1:10", ["block, hold, allow"]),
        ("rulez: []\n", "1:1", ["did you mean 'rules'?"]),
        (
            "rules:\n  - name: r\n    when: {wen: 1}\n    actions: [block]\n",
            "3:12",
            ["unknown key 'wen'", "all, any, not, match, no_match, classification"],
        ),
        (
            "rules:\n  - name: r\n    when: {match: {labels: [A3]}}\n    actions: [block]\n",
            "3:29",
            ["unknown label 'A3'", "A1", "csam"],
        ),
        (
            "rules:\n  - name: r\n    when: {no_match: true}\n    actions: [blok]\n",
            "4:15",
            ["did you mean 'block'?", "block, hold, allow, review, webhook, preserve, notify"],
        ),
        (
            "rules:\n  - name: r\n    when: {no_match: true}\n    actions: [review: {sla: 4y}]\n",
            "4:29",
            ["not a duration", "30m, 4h, 2d"],
        ),
        (
            "rules:\n  - name: r\n    when: {no_match: true}\n"
            "    actions: [webhook: {url: 'ftp://h/x', secret_env: S}]\n",
            "4:30",
            ["http:// or https://"],
        ),
        (
            "rules:\n  - name: r\n    when: {no_match: true}\n"
            "    actions: [webhook: {url: 'https://u:p@h/x', secret_env: S}]\n",
            "4:30",
            ["no credentials"],
        ),
        (
            "rules:\n  - name: r\n    when: {no_match: true}\n"
            "    actions: [webhook: {url: 'https://h/x'}]\n",
            "4:24",
            ["needs `secret_env:`"],
        ),
        (
            "rules:\n  - name: r\n    when: {no_match: true}\n    actions: [notify: {to: boss}]\n",
            "4:28",
            ["reviewer, lead, admin, auditor", "user:NAME"],
        ),
        (
            "rules:\n  - name: r\n    when: {no_match: true}\n    actions: [block, allow]\n",
            "4:22",
            ["one decision", "'block' is on line 4"],
        ),
        (
            "rules:\n  - name: r\n    when: {media: {kind: gif}}\n    actions: [block]\n",
            "3:26",
            ["image, video"],
        ),
        (
            "rules:\n  - name: r\n    when: {account: {age: {more: 3}}}\n    actions: [block]\n",
            "3:28",
            ["gte, gt, lte, lt, eq, ne, in"],
        ),
        (
            "rules:\n  - name: r\n    when: {account: {age: {gte: young}}}\n    actions: [block]\n",
            "3:33",
            ["must be a number"],
        ),
        (
            "rules:\n  - name: r\n    when: {reports: {min: 3, max: 1}}\n    actions: [block]\n",
            "3:21",
            ["min (3) is larger than max (1)"],
        ),
        (
            "rules:\n  - name: r\n    when: {classification: {name: nudity, min_score: 2}}\n"
            "    actions: [block]\n",
            "3:54",
            ["from 0 to 1"],
        ),
        (
            "rules:\n  - name: r\n    when: {match: {signal_type: phash}}\n    actions: [block]\n",
            "3:33",
            ["md5", "pdq", "vpdq"],
        ),
        (
            "rules:\n  - name: r\n    when: {match: {kind: allow}}\n    actions: [block]\n",
            "3:26",
            ["block, negative"],
        ),
        (
            "rules:\n  - name: bad name\n    when: {match: }\n    actions: [block]\n",
            "2:11",
            ["letters, digits"],
        ),
        ("rules:\n  - name: r\n    actions: [block]\n", "2:5", ["needs `when:`"]),
        ("rules:\n  - name: r\n    when: {match: }\n", "2:5", ["needs `actions:`"]),
        ("rules:\n  - when: {match: }\n    actions: [block]\n", "2:5", ["needs a `name`"]),
        ("rules:\n  - name: r\n    when: {}\n    actions: [block]\n", "3:11", ["empty"]),
        ("rules:\n  - name: r\n    when: {any: []}\n    actions: [block]\n", "3:17", ["at least"]),
        ("rules:\n  - name: r\n    when: {match: }\n    actions: []\n", "4:14", ["not be empty"]),
        (
            "rules:\n  - name: r\n    shadow: maybe\n    when: {match: }\n    actions: [block]\n",
            "3:13",
            ["true or false"],
        ),
        ("rules: {a: 1}\n", "1:8", ["must be a list"]),
        ("- a\n- b\n", "1:1", ["must be a mapping", "mode, default, rules"]),
    ],
)
def test_each_mistake_is_reported_at_its_place(text: str, where: str, needles: list[str]) -> None:
    msg = only(text)
    assert msg.startswith(where + ": "), msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = textwrap.dedent(
        """\
        mode: fist-match
        rules:
          - name: a
            priority: high
            when: {match: {bank: ok, labels: [nope]}}
            actions: [block]
          - name: a
            when: {reports: {least: 1}}
            actions: [hold, {review: {queue: Bad Queue}}]
        """
    )
    found = problems(text)
    lines = [p["line"] for p in found]
    assert lines == sorted(lines)
    assert len(found) == 6, found  # no "needs min/max" after the typo
    joined = "\n".join(str(p["message"]) for p in found)
    for needle in ("mode", "priority", "unknown label 'nope'", "used twice", "'least'", "queue"):
        assert needle in joined, needle
    assert all(isinstance(p["column"], int) and p["column"] >= 1 for p in found)


def test_yaml_syntax_errors_point_at_the_line() -> None:
    msg = only("rules:\n  - name: a\n   when: x\n")
    assert msg.startswith("3:4: YAML syntax error")
    assert "indentation" in msg
    assert only("rules: [\n").startswith("2:1: YAML syntax error")
    assert only('rules:\n  - name: "unclosed\n').startswith("3:1: YAML syntax error")


def test_control_characters_are_refused_at_their_place() -> None:
    assert only("rules:\n  - name: \x05x\n").startswith("2:11: character U+0005 is not allowed")
    assert only("\u00deR\u00ce\x05").startswith("1:4: character U+0005")
    assert "not allowed" in only("rules:\n  - name: \udcff\n")


def test_repeated_keys_aliases_and_tags_are_refused() -> None:
    assert "given twice" in only("rules: []\nrules: []\n")
    text = (
        "rules:\n  - name: a\n    when: &c {match: }\n    actions: [block]\n"
        "  - name: b\n    when: *c\n    actions: [block]\n"
    )
    msg = only(text)
    assert msg.startswith("3:11: ") or msg.startswith("6:11: ")
    assert "aliases" in msg
    assert "unsupported YAML tag" in only("rules: !!python/object:os.system []\n")


def test_an_empty_or_huge_file_is_refused() -> None:
    assert "empty" in only("")
    assert "empty" in only("# just a comment\n")
    assert "nests too deeply" in only("[" * 100_000)
    assert "nests too deeply" in only("rules: " + "{a: " * 50_000)
    assert "deeper than 32 levels" in only(
        "rules:\n  - name: r\n    when: "
        + "{not: " * 40
        + "{match: }"
        + "}" * 40
        + "\n    actions: [block]\n"
    )
    with pytest.raises(RulesError, match="larger than"):
        parse_rules("#" * (MAX_SOURCE_BYTES + 1))


def test_rules_error_is_an_invalid_value_with_problems_for_problem_json() -> None:
    with pytest.raises(RulesError) as info:
        parse_rules("rules:\n  - name: r\n    when: {match: {banks: []}}\n    actions: [x]\n")
    e = info.value
    assert isinstance(e, InvalidValue) and e.status == 422 and e.code == "invalid_rules"
    assert e.details["errors"] == e.problems
    assert {tuple(sorted(p)) for p in e.problems} == {("column", "line", "message")}
    first, second = e.message.splitlines()[1:]
    assert first.startswith("<rules>:3:") and second.startswith("<rules>:4:")


def test_load_rules_names_the_file_and_refuses_bad_bytes(tmp_path: Path) -> None:
    good = tmp_path / "policy.yaml"
    good.write_text(FULL, encoding="utf-8")
    assert len(load_rules(good).rules) == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: r\n    when: {match: {lables: []}}\n    actions: [block]\n")
    with pytest.raises(RulesError) as info:
        load_rules(bad)
    assert info.value.locations()[0].startswith(f"{bad}:3:20: unknown key 'lables'")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"rules:\n  - name: \xff\n")
    with pytest.raises(RulesError, match=r"bin.yaml:2:11: the rule file is not UTF-8"):
        load_rules(binary)
    with pytest.raises(InvalidValue, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")


def test_durations() -> None:
    assert parse_duration("30m") == 1800
    assert parse_duration("4h") == 14400
    assert parse_duration("2d") == 172800
    assert parse_duration("1h30m") == 5400
    assert parse_duration(" 1W ") == 7 * 86400
    for bad in ("", "4", "h", "4 hours", "-1h", "0s", "400d", "1.5h"):
        with pytest.raises(InvalidValue):
            parse_duration(bad)

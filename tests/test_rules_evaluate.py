"""Evaluating rules: order, modes, shadow rules, decisions, merged actions, each condition."""

from __future__ import annotations

from typing import Any

import pytest

from safehold.rules import DEFAULT_RULES, ActionSpec, Context, evaluate, parse_rules


def m(
    bank: str = "local",
    entry_id: int = 1,
    labels: tuple[str, ...] = ("csam",),
    *,
    source: str = "local",
    distance: int = 0,
    signal_type: str = "pdq",
    kind: str | None = None,
) -> dict[str, Any]:
    """A match dict as ``Match.to_dict`` makes it (``bank_kind`` only when not block)."""
    out: dict[str, Any] = {
        "bank": bank,
        "entry_id": entry_id,
        "external_id": None,
        "labels": list(labels),
        "source": source,
        "distance": distance,
        "signal_type": signal_type,
    }
    if kind:
        out["bank_kind"] = kind
    return out


def rules(body: str, mode: str = "first-match", default: str = "allow") -> Any:
    return parse_rules(f"mode: {mode}\ndefault: {default}\nrules:\n{body}")


def holds(condition: str, ctx: Context) -> bool:
    rs = parse_rules(f"rules:\n  - name: r\n    when: {condition}\n    actions: [block]\n")
    return evaluate(rs, ctx).decision == "block"


THREE = """\
  - name: low
    priority: 1
    when: {no_match: false}
    actions: [allow, {review: {queue: low}}]
  - name: high
    priority: 50
    when: {match: {labels: [csam]}}
    actions: [hold]
  - name: high-too
    priority: 50
    when: {match: }
    actions: [block, {review: {queue: urgent}}]
"""


def test_first_match_fires_the_highest_priority_rule_ties_in_file_order() -> None:
    v = evaluate(rules(THREE), Context(matches=[m()]))
    assert v.fired == ["high"]
    assert v.decision == "hold"
    assert v.actions == [] and v.shadow == []


def test_all_match_fires_every_rule_and_the_strongest_decision_wins() -> None:
    v = evaluate(rules(THREE, mode="all-match"), Context(matches=[m()]))
    assert v.fired == ["high", "high-too", "low"]
    assert v.decision == "block"
    assert [a.params["queue"] for a in v.actions] == ["urgent", "low"]
    assert all(a.kind == "review" for a in v.actions)


def test_the_default_decides_when_no_rule_does() -> None:
    assert evaluate(rules(THREE), Context()).decision == "allow"
    v = evaluate(rules(THREE, default="hold"), Context())
    assert (v.decision, v.fired, v.actions) == ("hold", [], [])
    only_review = "  - name: r\n    when: {no_match: true}\n    actions: [review]\n"
    v = evaluate(rules(only_review, default="hold"), Context())
    assert v.fired == ["r"] and v.decision == "hold" and v.actions[0].kind == "review"


def test_shadow_rules_are_always_evaluated_and_never_act() -> None:
    body = """\
  - name: try-block
    priority: 100
    shadow: true
    when: {match: }
    actions: [block, {webhook: {url: "https://h.test/x", secret_env: S}}]
  - name: real
    when: {match: }
    actions: [hold]
  - name: later-shadow
    priority: -5
    shadow: true
    when: {match: {labels: [A1]}}
    actions: [block]
"""
    v = evaluate(rules(body), Context(matches=[m(labels=("A1",))]))
    assert v.fired == ["real"]
    assert v.shadow == ["try-block", "later-shadow"]  # evaluated after first-match stopped
    assert v.decision == "hold" and v.actions == []
    v = evaluate(rules(body), Context())
    assert v.fired == [] and v.shadow == [] and v.decision == "allow"


def test_actions_are_merged_one_review_per_queue() -> None:
    body = """\
  - name: a
    priority: 3
    when: {match: }
    actions:
      - review: {queue: csam, priority: 10, sla: 1d}
      - webhook: {url: "https://h.test/x", secret_env: S}
      - preserve: {days: 30}
      - notify: {to: lead}
  - name: b
    priority: 2
    when: {match: }
    actions:
      - review: {queue: csam, priority: 50}
      - review: {queue: other}
      - webhook: {url: "https://h.test/x", secret_env: S}
      - webhook: {url: "https://h.test/y", secret_env: S}
      - preserve: {days: 90}
      - notify: {to: lead}
  - name: c
    priority: 1
    when: {match: }
    actions: [{review: {queue: csam, sla: 4h}}, preserve]
"""
    v = evaluate(rules(body, mode="all-match"), Context(matches=[m()]))
    assert v.decision == "allow"
    kinds = [(a.kind, a.params.get("queue") or a.params.get("url") or "") for a in v.actions]
    assert kinds == [
        ("review", "csam"),
        ("webhook", "https://h.test/x"),
        ("preserve", ""),
        ("notify", ""),
        ("review", "other"),
        ("webhook", "https://h.test/y"),
    ]
    csam = v.actions[0]
    assert csam.params == {"queue": "csam", "priority": 50, "sla_seconds": 4 * 3600}
    assert csam.rule == "a"
    assert v.actions[2].params == {"days": 90}
    assert v.to_dict()["actions"][0] == {"kind": "review", "params": csam.params, "rule": "a"}
    assert ActionSpec.from_dict(v.to_dict()["actions"][1]) == v.actions[1]


def test_the_built_in_rules() -> None:
    v = evaluate(DEFAULT_RULES, Context(matches=[m()]))
    assert v.decision == "block" and v.fired == ["block-bank-match"]
    assert [(a.kind, a.params["queue"]) for a in v.actions] == [("review", "default")]
    assert evaluate(DEFAULT_RULES, Context()).decision == "allow"
    negative_only = Context(matches=[m(kind="negative", labels=("benign",))])
    assert evaluate(DEFAULT_RULES, negative_only).decision == "allow"


@pytest.mark.parametrize(
    ("condition", "matches", "expected"),
    [
        ("{match: }", [m()], True),
        ("{match: }", [], False),
        ("{match: {bank: ncmec-*}}", [m("ncmec-2024")], True),
        ("{match: {bank: ncmec-*}}", [m("local")], False),
        ("{match: {banks: [a, b]}}", [m("b")], True),
        ("{match: {labels: [csam]}}", [m(labels=("A1",))], True),  # A1 implies csam
        ("{match: {labels: [A1]}}", [m(labels=("csam",))], False),  # not the other way
        ("{match: {labels: [ncii, B2]}}", [m(labels=("B2",))], True),
        ("{match: {labels_all: [csam, interpol:baseline]}}", [m(labels=("A2",))], True),
        ("{match: {labels_all: [csam, interpol:baseline]}}", [m(labels=("B1",))], False),
        ("{match: {source: ncmec}}", [m(source="ncmec")], True),
        ("{match: {source: [stopncii, ncmec]}}", [m(source="local")], False),
        ("{match: {signal_type: md5}}", [m(signal_type="md5")], True),
        ("{match: {signal_type: md5}}", [m(signal_type="pdq")], False),
        ("{match: {max_distance: 10}}", [m(distance=10)], True),
        ("{match: {max_distance: 10}}", [m(distance=11)], False),
        ("{match: {kind: negative}}", [m(kind="negative")], True),
        ("{match: {kind: block}}", [m(kind="negative")], False),
        ("{match: {min_count: 2}}", [m(entry_id=1), m(entry_id=1, signal_type="md5")], False),
        ("{match: {min_count: 2}}", [m(entry_id=1), m(entry_id=2)], True),
        ("{match: {min_count: 2, labels: [A1]}}", [m(entry_id=1), m(entry_id=2)], False),
        ("{match: {bank: a, source: ncmec}}", [m("a"), m("b", 2, source="ncmec")], False),
        ("{no_match: true}", [], True),
        ("{no_match: true}", [m()], False),
        ("{no_match: false}", [m()], True),
    ],
)
def test_match_conditions(condition: str, matches: list[dict[str, Any]], expected: bool) -> None:
    assert holds(condition, Context(matches=matches)) is expected


@pytest.mark.parametrize(
    ("condition", "ctx", "expected"),
    [
        ("{classification: {name: nudity, min_score: 0.8}}", {"nudity": 0.8}, True),
        ("{classification: {name: nudity, min_score: 0.8}}", {"nudity": 0.79}, False),
        ("{classification: {name: nudity, min_score: 0.8}}", {}, False),
        ("{classification: {name: ai, max_score: 0.2}}", {"ai": 0.1}, True),
        ("{classification: {name: ai, max_score: 0.2}}", {"ai": 0.3}, False),
    ],
)
def test_classification(condition: str, ctx: dict[str, float], expected: bool) -> None:
    assert holds(condition, Context(classifications=ctx)) is expected


def test_reports_media_and_account_conditions() -> None:
    assert holds("{reports: {min: 2}}", Context(reports=2))
    assert not holds("{reports: {min: 2}}", Context(reports=1))
    assert holds("{reports: {max: 0}}", Context())
    assert not holds("{reports: {min: 1, max: 3}}", Context(reports=4))
    assert holds("{media: {kind: video}}", Context(media={"kind": "video"}))
    assert holds("{media: {kind: [image, video]}}", Context(media={"kind": "image"}))
    assert not holds("{media: {kind: image}}", Context(media={}))

    account = {"prior_matches": 3, "age_days": 2.5, "country": "NZ", "verified": False}
    ctx = Context(account=account)
    for condition, expected in [
        ("{account: {prior_matches: {gte: 3}}}", True),
        ("{account: {prior_matches: {gt: 3}}}", False),
        ("{account: {age_days: {lt: 3}, prior_matches: {lte: 3}}}", True),
        ("{account: {age_days: {lt: 3}, prior_matches: {lt: 3}}}", False),
        ("{account: {country: {in: [NZ, MY]}}}", True),
        ("{account: {country: {eq: MY}}}", False),
        ("{account: {country: {ne: MY}}}", True),
        ("{account: {verified: false}}", True),  # shorthand for eq
        ("{account: {verified: {eq: 0}}}", False),  # a bool is not a number
        ("{account: {verified: {lt: 1}}}", False),
        ("{account: {country: {gt: 1}}}", False),  # text never compares with numbers
        ("{account: {followers: {lt: 10}}}", False),  # a missing signal never holds
        ("{account: {followers: {ne: 10}}}", False),
        ("{account: {prior_matches: {gte: 1, lte: 5}}}", True),
    ]:
        assert holds(condition, ctx) is expected, condition


def test_boolean_logic() -> None:
    ctx = Context(matches=[m(labels=("ncii",))], reports=3)
    assert holds("{all: [{match: {labels: [ncii]}}, {reports: {min: 3}}]}", ctx)
    assert not holds("{all: [{match: {labels: [ncii]}}, {reports: {min: 4}}]}", ctx)
    assert holds("{any: [{match: {labels: [csam]}}, {reports: {min: 3}}]}", ctx)
    assert not holds("{any: [{match: {labels: [csam]}}, {reports: {min: 4}}]}", ctx)
    assert holds("{not: {match: {labels: [csam]}}}", ctx)
    assert not holds("{not: {not: {match: {labels: [csam]}}}}", ctx)
    assert holds("{match: {labels: [ncii]}, reports: {min: 3}}", ctx)  # several keys: all
    assert not holds("{match: {labels: [ncii]}, reports: {min: 9}}", ctx)


def test_context_round_trips_through_json_and_keeps_only_small_signals() -> None:
    ctx = Context(
        tenant="acme",
        content_id="c1",
        account_id="u1",
        matches=[m()],
        classifications={"nudity": 0.5},
        reports=2,
        account={"prior_events": 4},
        media={"kind": "video", "format": "mp4"},
        signals={"md5": "a" * 32, "sha256": "b" * 64, "vpdq": [{"frame": 0}] * 500},
    )
    assert "vpdq" not in ctx.signals
    d = ctx.to_json()
    assert d["signals"] == {"md5": "a" * 32, "sha256": "b" * 64}
    assert Context.from_json(d) == ctx
    # stored JSON of any shape loads without failing
    assert Context.from_json(None) == Context()
    odd = Context.from_json(
        {"matches": "x", "reports": True, "classifications": {"a": "high", "b": 1}, "account": []}
    )
    assert odd.matches == [] and odd.reports == 0 and odd.classifications == {"b": 1.0}
    assert odd.account == {}

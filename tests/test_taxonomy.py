"""Standard labels: validation, aliases, mappings between schemes, severity."""

from __future__ import annotations

import pytest

from safehold.errors import InvalidValue, UnknownLabel
from safehold.taxonomy import (
    LABELS,
    SCHEMES,
    Label,
    expand,
    map_label,
    normalize_label,
    severity,
    validate_labels,
    worst_of,
)

CSAM_DSA = [
    "dsa:STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
    "dsa:KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",
]


def test_label_table_is_consistent() -> None:
    assert set(SCHEMES) == {"industry", "iwf", "interpol", "csam", "ncii", "safehold", "dsa"}
    for name, label in LABELS.items():
        assert isinstance(label, Label) and label.name == name
        assert label.scheme in SCHEMES
        assert 0 <= label.severity <= 100
        assert label.title
    assert {n for n, lb in LABELS.items() if lb.scheme == "industry"} == {"A1", "A2", "B1", "B2"}
    assert {n for n, lb in LABELS.items() if lb.scheme == "iwf"} == {"iwf:A", "iwf:B", "iwf:C"}
    assert len([n for n in LABELS if n.startswith("dsa:STATEMENT_CATEGORY_")]) == 14
    assert LABELS["benign"].severity == 0


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("A1", "A1"),
        ("a1", "A1"),
        ("  b2 \n", "B2"),
        ("industry:a2", "A2"),
        ("INDUSTRY:B1", "B1"),
        ("IWF:a", "iwf:A"),
        ("iwf:c", "iwf:C"),
        ("baseline", "interpol:baseline"),
        ("interpol:worst-of", "interpol:baseline"),
        ("CSAM", "csam"),
        ("csam:AI-generated", "csam:ai-generated"),
        ("NCII:Synthetic", "ncii:synthetic"),
        ("fp", "benign"),
        ("false_positive", "benign"),
        (
            "dsa:statement_category_protection_of_minors",
            "dsa:STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
        ),
        ("DSA:KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL", "dsa:KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"),
    ],
)
def test_aliases_and_spelling(given: str, canonical: str) -> None:
    assert normalize_label(given) == canonical


@pytest.mark.parametrize("bad", ["", "A3", "C1", "iwf:D", "csam:", "A1 ", "x" * 500, "A\x001"])
def test_unknown_label_lists_the_valid_ones(bad: str) -> None:
    if bad == "A1 ":
        assert normalize_label(bad) == "A1"  # surrounding whitespace is forgiven
        return
    with pytest.raises(UnknownLabel) as info:
        normalize_label(bad)
    err = info.value
    assert isinstance(err, InvalidValue)
    assert err.code == "unknown_label" and err.status == 422
    assert err.details["valid"] == list(LABELS)
    assert "valid labels: A1, A2, B1, B2" in err.message
    assert len(err.message) < 200 + len(", ".join(LABELS))  # long input is cut short


def test_non_string_label_is_unknown() -> None:
    for bad in (None, 1, ["A1"]):
        with pytest.raises(UnknownLabel):
            normalize_label(bad)  # type: ignore[arg-type]


def test_validate_labels_canonical_and_deduplicated() -> None:
    assert validate_labels(["a1", "A1", "industry:a1", "iwf:c", "fp"]) == ["A1", "iwf:C", "benign"]
    assert validate_labels([]) == []
    with pytest.raises(UnknownLabel):
        validate_labels(["A1", "nope"])


def test_map_label_between_schemes() -> None:
    assert map_label("A1", "industry") == ["A1"]
    assert map_label("a2", "interpol") == ["interpol:baseline"]
    assert map_label("A1", "interpol") == ["interpol:baseline"]
    assert map_label("B1", "interpol") == []  # pubescent: not INTERPOL baseline
    # Exhibition is IWF C; a sex act is IWF A or B depending on penetration: no mapping.
    assert map_label("A2", "iwf") == ["iwf:C"]
    assert map_label("B2", "iwf") == ["iwf:C"]
    assert map_label("A1", "iwf") == []
    assert map_label("B1", "iwf") == []
    for label in ("A1", "A2", "B1", "B2", "iwf:A", "iwf:B", "iwf:C", "interpol:baseline"):
        assert map_label(label, "csam") == ["csam"]
        assert map_label(label, "dsa") == CSAM_DSA
    assert map_label("ncii:synthetic", "ncii") == ["ncii:synthetic"]
    assert map_label("ncii:synthetic", "dsa") == [
        "dsa:STATEMENT_CATEGORY_NON_CONSENSUAL_BEHAVIOUR",
        "dsa:KEYWORD_NON_CONSENSUAL_ITEMS_DEEPFAKE",
    ]
    assert map_label("benign", "industry") == []
    assert map_label("csam", "industry") == []  # ungraded: no grade can be implied


def test_map_label_errors() -> None:
    with pytest.raises(UnknownLabel, match="valid schemes"):
        map_label("A1", "nope")
    with pytest.raises(UnknownLabel):
        map_label("nope", "iwf")


def test_mappings_only_point_to_known_labels_of_the_right_scheme() -> None:
    for name in LABELS:
        for target in expand([name]):
            assert target in LABELS
        for scheme in SCHEMES:
            for target in map_label(name, scheme):
                assert target in LABELS and LABELS[target].scheme == scheme


def test_expand() -> None:
    assert expand(["a1"]) == ["A1", "interpol:baseline", "csam", *CSAM_DSA]
    assert expand(["B2", "A2"]) == ["B2", "iwf:C", "csam", *CSAM_DSA, "A2", "interpol:baseline"]
    assert expand(["benign"]) == ["benign"]
    assert expand([]) == []


def test_severity_ordering() -> None:
    order = ["A1", "interpol:baseline", "iwf:A", "A2", "B1", "iwf:B", "csam", "csam:ai-generated"]
    order += ["B2", "iwf:C", "ncii", "ncii:synthetic", "benign"]
    severities = [LABELS[n].severity for n in order]
    assert severities == sorted(severities, reverse=True)
    assert LABELS["A1"].severity > LABELS["A2"].severity > LABELS["B1"].severity
    assert LABELS["B1"].severity > LABELS["B2"].severity > LABELS["benign"].severity
    assert severity(["b2", "A1"]) == 100
    assert severity(["benign"]) == 0
    assert severity([]) == 0


def test_worst_of() -> None:
    assert worst_of(["B2", "A1", "iwf:C"]) == "A1"
    assert worst_of(["b2", "industry:b1"]) == "B1"
    assert worst_of(["ncii", "dsa:KEYWORD_ADULT_SEXUAL_MATERIAL"]) == "ncii"
    assert worst_of(["iwf:c", "B2"]) == "B2"
    assert worst_of(["benign"]) == "benign"
    assert worst_of([]) is None
    # Ties keep the first given.
    assert worst_of(["csam", "dsa:KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"]) == "csam"
    with pytest.raises(UnknownLabel):
        worst_of(["A1", "Z9"])

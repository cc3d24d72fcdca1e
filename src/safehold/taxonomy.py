"""Standard labels, so that like is compared with like across services and countries.

Label sets (``scheme``):

* ``industry`` — the industry classification system used in NCMEC CyberTipline
  reports and hash sharing: ``A1`` prepubescent minor, sex act; ``A2`` prepubescent
  minor, lascivious exhibition; ``B1`` pubescent minor, sex act; ``B2`` pubescent
  minor, lascivious exhibition.
* ``iwf`` — the UK sentencing categories the Internet Watch Foundation grades with:
  ``iwf:A`` penetrative sexual activity, sexual activity with an animal or sadism;
  ``iwf:B`` non-penetrative sexual activity; ``iwf:C`` other indecent images.
* ``interpol`` — ``interpol:baseline``: meets INTERPOL's Baseline criteria (a real,
  prepubescent child; sexual activity or focus on the genital or anal region), the
  "worst of the worst" standard that every country treats as illegal.
* ``ncii`` — non-consensual intimate imagery of adults: ``ncii`` (real) and
  ``ncii:synthetic`` (AI-generated or manipulated, "deepfake").
* ``csam`` — ``csam`` when the material is known to be CSAM but not graded, and
  ``csam:ai-generated`` for synthetic CSAM.
* ``dsa`` — the statement-of-reasons categories and the relevant keywords of the EU
  Digital Services Act Transparency Database (``dsa:STATEMENT_CATEGORY_...``,
  ``dsa:KEYWORD_...``).
* ``safehold`` — ``benign`` for entries of negative banks (known false positives).

Mappings between the schemes (:func:`map_label`) are conservative: a label maps to
another scheme's label only where the definitions imply it, and
:func:`worst_of` orders any mix of labels by severity (``A1`` before ``B2``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from safehold.errors import UnknownLabel, preview


@dataclass(frozen=True)
class Label:
    name: str
    scheme: str
    title: str
    severity: int
    """0 (benign) to 100 (most severe); orders review queues and ``worst_of``."""


_DSA_CATEGORIES = (
    "ANIMAL_WELFARE",
    "DATA_PROTECTION_AND_PRIVACY_VIOLATIONS",
    "ILLEGAL_OR_HARMFUL_SPEECH",
    "INTELLECTUAL_PROPERTY_INFRINGEMENTS",
    "NEGATIVE_EFFECTS_ON_CIVIC_DISCOURSE_OR_ELECTIONS",
    "NON_CONSENSUAL_BEHAVIOUR",
    "PORNOGRAPHY_OR_SEXUALIZED_CONTENT",
    "PROTECTION_OF_MINORS",
    "RISK_FOR_PUBLIC_SECURITY",
    "SCAMS_AND_FRAUD",
    "SELF_HARM",
    "SCOPE_OF_PLATFORM_SERVICE",
    "UNSAFE_AND_ILLEGAL_PRODUCTS",
    "VIOLENCE",
)
_DSA_SEVERITY = {"PROTECTION_OF_MINORS": 60, "NON_CONSENSUAL_BEHAVIOUR": 50}
_DSA_KEYWORDS = {
    "CHILD_SEXUAL_ABUSE_MATERIAL": ("Child sexual abuse material", 80),
    "GROOMING_SEXUAL_ENTICEMENT_MINORS": ("Grooming/sexual enticement of minors", 75),
    "NON_CONSENSUAL_IMAGE_SHARING": ("Non-consensual image sharing", 55),
    "NON_CONSENSUAL_ITEMS_DEEPFAKE": ("Non-consensual items containing deepfake", 50),
    "ADULT_SEXUAL_MATERIAL": ("Adult sexual material", 10),
    "IMAGE_BASED_SEXUAL_ABUSE": ("Image-based sexual abuse", 55),
    "AGE_SPECIFIC_RESTRICTIONS_MINORS": ("Age-specific restrictions concerning minors", 20),
    "UNSAFE_CHALLENGES": ("Unsafe challenges", 20),
}

LABELS: dict[str, Label] = {
    label.name: label
    for label in [
        Label("A1", "industry", "Prepubescent minor: sex act", 100),
        Label("A2", "industry", "Prepubescent minor: lascivious exhibition", 90),
        Label("B1", "industry", "Pubescent minor: sex act", 85),
        Label("B2", "industry", "Pubescent minor: lascivious exhibition", 75),
        Label("iwf:A", "iwf", "IWF category A: penetrative activity, bestiality or sadism", 95),
        Label("iwf:B", "iwf", "IWF category B: non-penetrative sexual activity", 85),
        Label("iwf:C", "iwf", "IWF category C: other indecent images", 70),
        Label("interpol:baseline", "interpol", "Meets INTERPOL Baseline criteria", 98),
        Label("csam", "csam", "Child sexual abuse material (ungraded)", 80),
        Label("csam:ai-generated", "csam", "Synthetic (AI-generated) CSAM", 78),
        Label("ncii", "ncii", "Non-consensual intimate imagery", 60),
        Label("ncii:synthetic", "ncii", "Synthetic non-consensual intimate imagery", 58),
        Label("benign", "safehold", "Benign: known false positive", 0),
        *[
            Label(
                f"dsa:STATEMENT_CATEGORY_{c}",
                "dsa",
                "DSA: " + c.replace("_", " ").capitalize(),
                _DSA_SEVERITY.get(c, 10),
            )
            for c in _DSA_CATEGORIES
        ],
        *[
            Label(f"dsa:KEYWORD_{k}", "dsa", f"DSA keyword: {title}", sev)
            for k, (title, sev) in _DSA_KEYWORDS.items()
        ],
    ]
}

SCHEMES: tuple[str, ...] = tuple(dict.fromkeys(label.scheme for label in LABELS.values()))

_ALIASES = {name.lower(): name for name in LABELS} | {
    "industry:a1": "A1",
    "industry:a2": "A2",
    "industry:b1": "B1",
    "industry:b2": "B2",
    "interpol:worst-of": "interpol:baseline",
    "baseline": "interpol:baseline",
    "fp": "benign",
    "false_positive": "benign",
}

_CSAM_DSA = (
    "dsa:STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
    "dsa:KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL",
)
_NCII_DSA = (
    "dsa:STATEMENT_CATEGORY_NON_CONSENSUAL_BEHAVIOUR",
    "dsa:KEYWORD_NON_CONSENSUAL_IMAGE_SHARING",
)

# Equivalences implied by the definitions. Each label maps to the labels of other
# schemes it entails; a sex act (A1/B1) is IWF A or B depending on penetration, so
# the industry grades map to IWF only where unambiguous (exhibition -> C).
_MAPPINGS: dict[str, tuple[str, ...]] = {
    "A1": ("interpol:baseline", "csam", *_CSAM_DSA),
    "A2": ("interpol:baseline", "iwf:C", "csam", *_CSAM_DSA),
    "B1": ("csam", *_CSAM_DSA),
    "B2": ("iwf:C", "csam", *_CSAM_DSA),
    "iwf:A": ("csam", *_CSAM_DSA),
    "iwf:B": ("csam", *_CSAM_DSA),
    "iwf:C": ("csam", *_CSAM_DSA),
    "interpol:baseline": ("csam", *_CSAM_DSA),
    "csam": _CSAM_DSA,
    "csam:ai-generated": ("csam", *_CSAM_DSA),
    "ncii": _NCII_DSA,
    "ncii:synthetic": (
        "ncii",
        "dsa:STATEMENT_CATEGORY_NON_CONSENSUAL_BEHAVIOUR",
        "dsa:KEYWORD_NON_CONSENSUAL_ITEMS_DEEPFAKE",
    ),
}


_SHORT_LIST = ", ".join(n for n, lb in LABELS.items() if lb.scheme != "dsa") + (
    ", dsa:STATEMENT_CATEGORY_*, dsa:KEYWORD_*"
)


def normalize_label(label: str) -> str:
    """The canonical spelling of a label; raises :class:`UnknownLabel` with the valid list."""
    key = label.strip().lower() if isinstance(label, str) else ""
    try:
        return _ALIASES[key]
    except KeyError:
        raise UnknownLabel(
            f"unknown label {preview(label)}; valid labels: {_SHORT_LIST} "
            "(`safehold labels` lists them all)",
            valid=list(LABELS),
        ) from None


def validate_labels(labels: Iterable[str]) -> list[str]:
    """Canonical, de-duplicated labels in the order given."""
    return list(dict.fromkeys(normalize_label(label) for label in labels))


def map_label(label: str, scheme: str) -> list[str]:
    """Labels of ``scheme`` that ``label`` entails (itself if already in ``scheme``)."""
    if scheme not in SCHEMES:
        raise UnknownLabel(f"unknown scheme {scheme!r}; valid schemes: {', '.join(SCHEMES)}")
    name = normalize_label(label)
    if LABELS[name].scheme == scheme:
        return [name]
    return [m for m in _MAPPINGS.get(name, ()) if LABELS[m].scheme == scheme]


def expand(labels: Iterable[str]) -> list[str]:
    """The labels with everything they entail, for matching rules across schemes."""
    out: dict[str, None] = {}
    for label in labels:
        name = normalize_label(label)
        out[name] = None
        for m in _MAPPINGS.get(name, ()):
            out[m] = None
    return list(out)


def severity(labels: Iterable[str]) -> int:
    """The highest severity among ``labels`` (0 when there are none)."""
    return max((LABELS[normalize_label(label)].severity for label in labels), default=0)


def worst_of(labels: Iterable[str]) -> str | None:
    """The most severe label, or ``None`` for no labels."""
    names = [normalize_label(label) for label in labels]
    return max(names, key=lambda n: LABELS[n].severity, default=None)

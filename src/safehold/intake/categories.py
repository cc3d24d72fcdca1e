"""What a person can report, in plain words, and where each kind of report goes.

Every category carries the taxonomy labels it stands for (so a report is triaged and
counted like any other case), the review queue its complaints wait in, and short
plain-language titles shown on the public portal. Titles are English message ids:
the portal translates them (``gettext``), so they are marked with :func:`N_` for
extraction and never changed lightly.

The demographic questions are optional and each has a fixed set of answers, so that
statistics can be made from them without storing free text about people.
"""

from __future__ import annotations

from dataclasses import dataclass

from safehold import taxonomy
from safehold.errors import InvalidValue, preview


def N_(message: str) -> str:
    """Mark a message for translation without translating it here (Babel extracts it)."""
    return message


@dataclass(frozen=True)
class Category:
    key: str
    title: str
    hint: str
    labels: tuple[str, ...]
    queue: str
    intimate: bool = False
    """About intimate images: a report about a person under 18 is treated as CSAM."""

    @property
    def priority(self) -> int:
        return taxonomy.severity(self.labels)


CSAM_QUEUE = "reports-csam"

CATEGORIES: dict[str, Category] = {
    c.key: c
    for c in (
        Category(
            "child_sexual_abuse",
            N_("Sexual images or videos of a child"),
            N_("Photos, videos or live streams that show a child (under 18) in a sexual way."),
            ("csam",),
            CSAM_QUEUE,
        ),
        Category(
            "grooming",
            N_("A child is being groomed or sexually approached online"),
            N_(
                "An adult or older young person asks a child for sexual pictures or talk, "
                "sends sexual messages, or tries to meet them."
            ),
            ("dsa:KEYWORD_GROOMING_SEXUAL_ENTICEMENT_MINORS",),
            "reports-grooming",
        ),
        Category(
            "sextortion",
            N_("Someone threatens to share my images"),
            N_(
                "Someone has intimate images of you or of someone you know and threatens to "
                "share them unless they get money, more images or something else."
            ),
            ("dsa:KEYWORD_IMAGE_BASED_SEXUAL_ABUSE",),
            "reports-ncii",
            intimate=True,
        ),
        Category(
            "intimate_images",
            N_("Intimate images were shared without consent"),
            N_("Nude or sexual images of you or of someone you know were shared without consent."),
            ("ncii",),
            "reports-ncii",
            intimate=True,
        ),
        Category(
            "fake_intimate_images",
            N_("Fake sexual images of a real person (deepfakes)"),
            N_("Sexual images or videos made or edited to look like a real person."),
            ("ncii:synthetic",),
            "reports-ncii",
            intimate=True,
        ),
        Category(
            "ai_child_images",
            N_("AI-generated sexual images of a child"),
            N_("Sexual images of children made with AI or other tools, even if no real child."),
            ("csam:ai-generated",),
            CSAM_QUEUE,
        ),
        Category(
            "other",
            N_("Something else that puts a child at risk online"),
            N_("Anything else you are worried about. Tell us in your own words."),
            ("dsa:STATEMENT_CATEGORY_PROTECTION_OF_MINORS",),
            "reports-other",
        ),
    )
}

REPORT_QUEUES: tuple[str, ...] = tuple(dict.fromkeys(c.queue for c in CATEGORIES.values()))


def get_category(key: object) -> Category:
    if not isinstance(key, str) or key not in CATEGORIES:
        raise InvalidValue(
            f"unknown report category {preview(key)}: use one of {', '.join(CATEGORIES)}"
        )
    return CATEGORIES[key]


# --------------------------------------------------------------------------- demographics

AGE_BANDS: dict[str, str] = {
    "under_13": N_("Under 13"),
    "13_15": N_("13 to 15"),
    "16_17": N_("16 or 17"),
    "18_24": N_("18 to 24"),
    "25_plus": N_("25 or older"),
    "unknown": N_("I don't know"),
}
MINOR_AGE_BANDS = frozenset({"under_13", "13_15", "16_17"})

GENDERS: dict[str, str] = {
    "female": N_("Girl or woman"),
    "male": N_("Boy or man"),
    "another": N_("Another gender"),
    "unknown": N_("I don't know or prefer not to say"),
}

RELATIONS: dict[str, str] = {
    "self": N_("It is me"),
    "parent": N_("I am their parent or carer"),
    "family_friend": N_("Family member or friend"),
    "professional": N_("Teacher, social worker or other professional"),
    "bystander": N_("I came across it"),
    "other": N_("Other"),
}

DEMOGRAPHIC_FIELDS: dict[str, dict[str, str] | None] = {
    "age_band": AGE_BANDS,
    "gender": GENDERS,
    "relation": RELATIONS,
    "country": None,  # an ISO 3166 region code, checked against Babel's list
}
"""Optional questions: ``age_band`` and ``gender`` of the person shown or affected,
``relation`` of the reporter to them, ``country`` where the reporter is."""


def check_demographics(raw: object) -> dict[str, str]:
    """Only the known questions with one of their answers; empty answers are dropped."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidValue("demographics must be an object of optional answers")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if key not in DEMOGRAPHIC_FIELDS:
            raise InvalidValue(
                f"unknown demographic question {preview(key)}: use {', '.join(DEMOGRAPHIC_FIELDS)}"
            )
        if value in (None, ""):
            continue
        answers = DEMOGRAPHIC_FIELDS[key]
        if key == "country":
            out[key] = check_country(value)
        elif answers is not None and value in answers:
            out[key] = str(value)
        else:
            choices = ", ".join(answers or ())
            raise InvalidValue(f"{key} must be one of {choices}, not {preview(value)}")
    return out


def countries() -> dict[str, str]:
    """ISO 3166-1 region codes and their English names (Babel's CLDR data)."""
    from babel import Locale

    return {
        code: name
        for code, name in Locale("en").territories.items()
        if len(code) == 2 and code.isalpha() and code not in ("ZZ", "QO", "EU", "EZ", "UN")
    }


def check_country(value: object) -> str:
    code = value.strip().upper() if isinstance(value, str) else ""
    if code not in countries():
        raise InvalidValue(f"country must be a two-letter region code, not {preview(value)}")
    return code

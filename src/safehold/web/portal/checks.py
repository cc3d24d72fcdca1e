"""Checking the portal's forms field by field, with messages in the reader's language.

The rules are the library's (:mod:`safehold.intake.fields`, :mod:`~safehold.intake.
categories`, :mod:`safehold.media`): each field goes through the same cleaner
``Reports.submit`` uses, so what passes here passes there. What this module adds is
*which* field was wrong and a translated sentence that says how to fix it, so the
form can be shown again with the message next to the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from safehold.errors import InvalidValue, MediaError, TooLarge
from safehold.intake.categories import (
    AGE_BANDS,
    CATEGORIES,
    GENDERS,
    RELATIONS,
    check_country,
)
from safehold.intake.fields import (
    MAX_DESCRIPTION,
    MAX_EMAIL,
    MAX_LINE,
    MAX_MESSAGE,
    MAX_PHONE,
    MAX_URL_CHARS,
    MAX_URLS,
    clean_email,
    clean_line,
    clean_phone,
    clean_text,
    clean_urls,
    split_urls,
)
from safehold.intake.reports import MAX_FILES
from safehold.media import Limits, identify
from safehold.web.portal.forms import FormFile, PortalForm
from safehold.web.portal.i18n import Language

REPORT_FIELDS = (
    "category",
    "urls",
    "platform",
    "username",
    "description",
    "files",
    "age_band",
    "gender",
    "country",
    "relation",
    "name",
    "email",
    "phone",
)
"""The report form's fields, in the order of the page (and of the error summary)."""
ADD_FIELDS = ("text", "urls", "files")
TEXT_LIMITS = {
    "platform": MAX_LINE,
    "username": MAX_LINE,
    "description": MAX_DESCRIPTION,
    "name": MAX_LINE,
    "email": MAX_EMAIL,
    "phone": MAX_PHONE,
    "text": MAX_MESSAGE,
}
MULTILINE = frozenset({"description", "text"})


_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def shown(value: str) -> str:
    """What the form shows again of a field: without NUL and other control characters
    (the error next to the field says what was wrong)."""
    return _CONTROLS.sub("", value)


def isolate(text: str) -> str:
    """User text quoted inside a sentence, in Unicode isolates (FSI … PDI): a
    right-to-left override in it cannot turn the rest of the sentence around."""
    return "\u2068" + text + "\u2069"


@dataclass
class Checked:
    values: dict[str, str]
    """What the person typed (shown again when the form has errors)."""
    errors: dict[str, str]
    """``field: message`` in the reader's language, in page order."""


def _problem(lang: Language, problem: str | None, value: str, limit: int) -> str | None:
    _ = lang.gettext
    if problem == "not_utf8":
        return _("This contains bytes that are not text. Type it again and send the form.")
    if problem == "too_long":
        return _("This is too long: shorten it to at most %(max)s characters.") % {
            "max": lang.number(limit)
        }
    if "\x00" in value:
        return _("This contains a NUL character, which cannot be sent. Remove it and try again.")
    return None


def check_text(lang: Language, name: str, value: str, problem: str | None) -> str | None:
    """The message for a text field, or ``None`` when the library accepts it."""
    _ = lang.gettext
    limit = TEXT_LIMITS[name]
    found = _problem(lang, problem, value, limit)
    if found:
        return found
    cleaner: Callable[[object], str]
    if name == "email":
        cleaner = clean_email
    elif name == "phone":
        cleaner = clean_phone
    elif name in MULTILINE:

        def cleaner(v: object) -> str:
            return clean_text(v, limit, name)

    else:

        def cleaner(v: object) -> str:
            return clean_line(v, name, limit)

    try:
        cleaner(value)
    except InvalidValue:
        try:  # too long, or (e-mail, phone) not in the right form?
            clean_text(value, limit, name, multiline=name in MULTILINE)
        except InvalidValue:
            return _("This is too long: shorten it to at most %(max)s characters.") % {
                "max": lang.number(limit)
            }
        if name == "email":
            return _(
                "This does not look like an e-mail address (like name@example.org). Correct it "
                "or leave it empty."
            )
        if name == "phone":
            return _(
                "A phone number may only have digits, spaces and the signs + ( ) - . / — "
                "correct it or leave it empty."
            )
        return _("This cannot be sent as it is. Change it and try again.")
    return None


def check_urls(lang: Language, value: str, problem: str | None) -> str | None:
    _ = lang.gettext
    found = _problem(lang, problem, value, MAX_URLS * (MAX_URL_CHARS + 1))
    if found:
        return found
    try:
        items = split_urls(value)
    except InvalidValue:
        return _("These web addresses cannot be read. Put one address on each line.")
    if len(items) > MAX_URLS:
        return _(
            "You gave %(count)s web addresses: send at most %(max)s in one report. You can add "
            "the others later with your receipt."
        ) % {"count": len(items), "max": MAX_URLS}
    for n, raw in enumerate(items, 1):
        try:
            clean_urls([raw])  # the library's own check, one address at a time
        except InvalidValue:
            shown = isolate(raw if len(raw) <= 60 else raw[:57] + "...")
            return _(
                "Web address %(number)s (%(address)s) is not a web address. It should look "
                "like https://example.com/page. Put account names in the user name field."
            ) % {"number": n, "address": shown}
    return None


def check_choice(lang: Language, name: str, value: str) -> str | None:
    _ = lang.gettext
    if not value:
        return None
    if name == "country":
        try:
            check_country(value)
        except InvalidValue:
            return _("Choose a country or region from the list.")
        return None
    answers = {"age_band": AGE_BANDS, "gender": GENDERS, "relation": RELATIONS}[name]
    if value not in answers:
        return _("Choose one of the answers.")
    return None


def size_text(n: int) -> str:
    """A file size for people (``25 MB``); digits and units read the same in every
    language the portal ships."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            value = n / size
            if value >= 10 or value == int(value):
                return f"{value:.0f} {unit}"
            return f"{value:.1f} {unit}"
    return f"{n} B"


def media_message(lang: Language, error: MediaError, name: str) -> str:
    """A translated sentence for a file that cannot be used."""
    _ = lang.gettext
    shown = isolate(name) if name else _("a file")
    if isinstance(error, TooLarge):
        return _("%(file)s is too large: the limit is %(limit)s.") % {
            "file": shown,
            "limit": size_text(int(error.details.get("limit") or 0)),
        }
    if error.code == "empty":
        return _("%(file)s is empty. Choose the file again.") % {"file": shown}
    if error.code == "unsupported_format":
        return _(
            "%(file)s is not a picture or video this service can read. Send photos (JPEG, "
            "PNG, GIF, WebP, HEIC, AVIF, BMP, TIFF) or videos (MP4, MOV, WebM, MKV)."
        ) % {"file": shown}
    return _(
        "%(file)s could not be read as a picture or video. It may be damaged: try another "
        "copy, or give the web address where you saw it."
    ) % {"file": shown}


def check_files(lang: Language, files: list[FormFile], limits: Limits) -> str | None:
    """Each file must be a picture or video within the limits (sniffed, not decoded:
    the full decode happens when the report is stored)."""
    _ = lang.gettext
    if len(files) > MAX_FILES:
        return _("You chose %(count)s files: send at most %(max)s in one report.") % {
            "count": len(files),
            "max": MAX_FILES,
        }
    for f in files:
        try:
            identify(Path(f.path), limits)
        except MediaError as e:
            return media_message(lang, e, f.name)
    return None


def check_report(lang: Language, form: PortalForm, limits: Limits) -> Checked:
    _ = lang.gettext
    values = {name: form.get(name) for name in REPORT_FIELDS if name != "files"}
    errors: dict[str, str] = {}
    category = values["category"]
    if category not in CATEGORIES:
        errors["category"] = _("Choose what happened.")
    found = check_urls(lang, values["urls"], form.problems.get("urls"))
    if found:
        errors["urls"] = found
    for name in ("platform", "username", "description", "name", "email", "phone"):
        found = check_text(lang, name, values[name], form.problems.get(name))
        if found:
            errors[name] = found
    for name in ("age_band", "gender", "country", "relation"):
        if form.problems.get(name):
            errors[name] = _("Choose one of the answers.")
            continue
        found = check_choice(lang, name, values[name])
        if found:
            errors[name] = found
    files = form.files_of("files")
    found = check_files(lang, files, limits)
    if found:
        errors["files"] = found
    where = [values[n].strip() for n in ("urls", "platform", "username", "description")]
    if not errors and not any(where) and not files:
        errors["urls"] = _(
            "The report is empty. Say where it happened (a web address, the platform or a "
            "user name), describe it, or add a file."
        )
    values = {k: shown(v) for k, v in values.items()}
    return Checked(values, {k: errors[k] for k in REPORT_FIELDS if k in errors})


def check_addition(lang: Language, form: PortalForm, limits: Limits) -> Checked:
    _ = lang.gettext
    values = {"text": form.get("text"), "urls": form.get("urls")}
    errors: dict[str, str] = {}
    found = check_text(lang, "text", values["text"], form.problems.get("text"))
    if found:
        errors["text"] = found
    found = check_urls(lang, values["urls"], form.problems.get("urls"))
    if found:
        errors["urls"] = found
    files = form.files_of("files")
    found = check_files(lang, files, limits)
    if found:
        errors["files"] = found
    if not errors and not values["text"].strip() and not values["urls"].strip() and not files:
        errors["text"] = _("Nothing to add: write something, add a web address or a file.")
    values = {k: shown(v) for k, v in values.items()}
    return Checked(values, {k: errors[k] for k in ADD_FIELDS if k in errors})

"""Checking what the public types: every field is hostile until cleaned.

Text keeps what people write (any script, emoji, right-to-left text) but never NUL or
other control characters, and each field has a length limit; URLs are canonicalised
with the ``url`` signal so that two reports of the same page meet in one case.
Errors say which field was wrong and what to do, in words a member of the public can
act on.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

from safehold.errors import InvalidSignal, InvalidValue
from safehold.signals.url import CanonicalUrl, canonicalize

MAX_DESCRIPTION = 10_000
MAX_LINE = 200
MAX_URLS = 20
MAX_URL_CHARS = 2048
MAX_EMAIL = 254
MAX_PHONE = 40
MAX_MESSAGE = 5_000

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?[0-9 ()./-]{5,40}")


def clean_text(value: object, limit: int, what: str, *, multiline: bool = True) -> str:
    """Text without NUL or control characters (newlines kept when ``multiline``), NFC,
    stripped, at most ``limit`` characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidValue(f"{what} must be text")
    if "\x00" in value:
        raise InvalidValue(f"{what} contains a NUL character: remove it and try again")
    text = unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    if not multiline:
        text = " ".join(text.split())
    text = text.strip()
    if len(text) > limit:
        raise InvalidValue(
            f"{what} is too long ({len(text)} characters): shorten it to at most {limit}"
        )
    return text


def clean_line(value: object, what: str, limit: int = MAX_LINE) -> str:
    return clean_text(value, limit, what, multiline=False)


def clean_email(value: object) -> str:
    email = clean_line(value, "the e-mail address", MAX_EMAIL)
    if email and not _EMAIL.fullmatch(email):
        raise InvalidValue(
            "the e-mail address does not look like one (name@example.org): correct it or "
            "leave it empty"
        )
    return email


def clean_phone(value: object) -> str:
    phone = clean_line(value, "the phone number", MAX_PHONE)
    if phone and not _PHONE.fullmatch(phone):
        raise InvalidValue(
            "the phone number may only have digits, spaces, +, (, ), -, . and /: correct it or "
            "leave it empty"
        )
    return phone


@dataclass(frozen=True)
class GivenUrl:
    given: str
    canonical: CanonicalUrl


def split_urls(value: object) -> list[str]:
    """URLs from a text box (one per line, or separated by spaces) or a list."""
    if value is None:
        return []
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidValue("the web addresses contain a NUL character: remove it")
        items = value.split()
    elif isinstance(value, list | tuple):
        items = []
        for v in value:
            if not isinstance(v, str):
                raise InvalidValue("each web address must be text")
            items.extend(v.split())
    else:
        raise InvalidValue("the web addresses must be text, one per line")
    return [i for i in items if i]


def _public_host(host: str) -> bool:
    """A host a report can name: an IP address or a name with a dot (``someone`` typed
    in the URL box is an account name, not the web site ``http://someone/``)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "." in host.strip(".")
    return True


def clean_urls(value: object) -> list[GivenUrl]:
    """Canonical http(s) URLs, duplicates dropped; at most :data:`MAX_URLS`."""
    out: dict[str, GivenUrl] = {}
    items = split_urls(value)
    if len(items) > MAX_URLS:
        raise InvalidValue(
            f"{len(items)} web addresses were given: send at most {MAX_URLS} in one report "
            "(add the others afterwards with your receipt)"
        )
    for n, raw in enumerate(items, 1):
        given = clean_line(raw, f"web address {n}", MAX_URL_CHARS)
        if not given:
            continue
        try:
            canonical = canonicalize(given)
            if not _public_host(canonical.host):
                raise InvalidSignal(f"{canonical.host!r} is not a domain name with a dot")
        except InvalidSignal as e:
            shown = given if len(given) <= 80 else given[:77] + "..."
            raise InvalidValue(
                f"web address {n} ({shown!r}) is not a web address ({e.message}). Put "
                "account names in the user name field instead."
            ) from None
        out.setdefault(canonical.sha256, GivenUrl(given, canonical))
    return list(out.values())

"""The help and support page: helplines, resources and what happens next.

The operator describes it in a YAML file named by ``SAFEHOLD_PORTAL_HELP`` (read again
when it changes), one section per language, with a ``default`` language for those
without their own section::

    default: en
    en:
      intro: If you are worried about a child, you are not alone.
      emergency: If a child is in immediate danger, call 999 now.
      sections:
        - title: Helplines
          entries:
            - name: Talian Kasih
              text: Free, confidential, 24 hours a day.
              phone: "15999"
              url: https://www.kpwkm.gov.my/
              hours: Every day, all day
    ms:
      intro: ...

Everything is plain text (shown escaped; line breaks kept); ``url`` must be
``https://``, ``http://`` or ``mailto:``; ``phone`` may hold digits, spaces and
``+ ( ) - .`` and becomes a ``tel:`` link. Without the file (or when it cannot be
read: the reason is logged) the page shows built-in, translated defaults that name
no local service. A language missing from the file gets the ``default`` section.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from safehold.intake.categories import N_

log = logging.getLogger("safehold.portal")

MAX_TEXT = 2000
MAX_SECTIONS = 30
MAX_ENTRIES = 50
_PHONE = re.compile(r"\+?[0-9][0-9 ().-]{1,30}")
_SCHEMES = ("https://", "http://", "mailto:")


@dataclass(frozen=True)
class Entry:
    name: str
    text: str = ""
    url: str = ""
    phone: str = ""
    hours: str = ""

    @property
    def tel(self) -> str:
        return "tel:" + "".join(c for c in self.phone if c.isdigit() or c == "+")


@dataclass(frozen=True)
class Section:
    title: str
    text: str = ""
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True)
class HelpContent:
    intro: str
    emergency: str
    sections: tuple[Section, ...]
    translated: bool = False
    """Built-in text: the page translates each string (the operator's is shown as is)."""


DEFAULT = HelpContent(
    intro=N_(
        "You are not alone. Whatever happened, it is not your fault, and there are people "
        "who can help."
    ),
    emergency=N_(
        "If a child is in immediate danger, call your local emergency number now "
        "(for example 999 in Malaysia and the United Kingdom, 112 in the European Union, "
        "911 in the United States)."
    ),
    sections=(
        Section(
            N_("Talk to someone"),
            N_(
                "Child helplines are free and confidential, and you do not have to give your "
                "name. Children, young people and worried adults can call them."
            ),
            (
                Entry(
                    N_("Child Helpline International"),
                    N_("A list of child helplines in more than 130 countries."),
                    url="https://childhelplineinternational.org/helplines/",
                ),
            ),
        ),
        Section(
            N_("If your intimate images were shared, or someone threatens to share them"),
            N_(
                "Do not pay and do not send more images. Keep the messages, block the person "
                "and tell someone you trust. You can make hashes of your images on this "
                "device so that services can block copies, without sending the images."
            ),
            (
                Entry(
                    N_("StopNCII.org"),
                    N_("For adults: stop intimate images from being shared on many platforms."),
                    url="https://stopncii.org/",
                ),
                Entry(
                    N_("Take It Down"),
                    N_("For images taken before you were 18 (run by NCMEC)."),
                    url="https://takeitdown.ncmec.org/",
                ),
            ),
        ),
        Section(
            N_("What happens after you report"),
            N_(
                "A trained analyst looks at every report; reports about children come first. "
                "If the content is illegal, we ask the website or service to remove it and, "
                "where the law says so, pass the report to the police. Check your report with "
                "its number and secret to read our messages, add information or withdraw it."
            ),
        ),
        Section(
            N_("Look after yourself"),
            N_(
                "You do not need to look at the content again or keep copies of it. Never "
                "forward sexual images of a child to anyone, not even to report them: use this "
                "form instead. Take a break and talk to someone if it has upset you."
            ),
        ),
    ),
    translated=True,
)


def _text(raw: object, where: str, *, required: bool = False) -> str:
    if raw is None:
        if required:
            raise ValueError(f"{where} is missing")
        return ""
    if not isinstance(raw, str | int | float) or isinstance(raw, bool):
        raise ValueError(f"{where} must be text")
    text = str(raw).replace("\x00", "").strip()
    if len(text) > MAX_TEXT:
        raise ValueError(f"{where} is longer than {MAX_TEXT} characters")
    if required and not text:
        raise ValueError(f"{where} is empty")
    return text


def _mapping(raw: object, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a mapping")
    unknown = set(map(str, raw)) - keys
    if unknown:
        raise ValueError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    return {str(k): v for k, v in raw.items()}


def _entry(raw: object, where: str) -> Entry:
    item = _mapping(raw, where, {"name", "text", "url", "phone", "hours"})
    url = _text(item.get("url"), f"{where}.url")
    if url and (not url.lower().startswith(_SCHEMES) or any(c.isspace() for c in url)):
        raise ValueError(f"{where}.url must start with https://, http:// or mailto:")
    phone = _text(item.get("phone"), f"{where}.phone")
    if phone and not _PHONE.fullmatch(phone):
        raise ValueError(f"{where}.phone may only have digits, spaces and + ( ) - .")
    return Entry(
        name=_text(item.get("name"), f"{where}.name", required=True),
        text=_text(item.get("text"), f"{where}.text"),
        url=url,
        phone=phone,
        hours=_text(item.get("hours"), f"{where}.hours"),
    )


def _content(raw: object, where: str) -> HelpContent:
    body = _mapping(raw, where, {"intro", "emergency", "sections"})
    sections_raw = body.get("sections") or []
    if not isinstance(sections_raw, list) or len(sections_raw) > MAX_SECTIONS:
        raise ValueError(f"{where}.sections must be a list of at most {MAX_SECTIONS}")
    sections = []
    for i, s in enumerate(sections_raw):
        at = f"{where}.sections[{i}]"
        sec = _mapping(s, at, {"title", "text", "entries"})
        entries_raw = sec.get("entries") or []
        if not isinstance(entries_raw, list) or len(entries_raw) > MAX_ENTRIES:
            raise ValueError(f"{at}.entries must be a list of at most {MAX_ENTRIES}")
        sections.append(
            Section(
                title=_text(sec.get("title"), f"{at}.title", required=True),
                text=_text(sec.get("text"), f"{at}.text"),
                entries=tuple(_entry(e, f"{at}.entries[{j}]") for j, e in enumerate(entries_raw)),
            )
        )
    return HelpContent(
        intro=_text(body.get("intro"), f"{where}.intro"),
        emergency=_text(body.get("emergency"), f"{where}.emergency"),
        sections=tuple(sections),
    )


@dataclass
class HelpConfig:
    """The parsed file: a section per language and the default language."""

    languages: dict[str, HelpContent] = field(default_factory=dict)
    default: str | None = None

    def for_language(self, code: str) -> HelpContent:
        base = code.split("_", 1)[0]
        for key in (code, base, self.default):
            if key and key in self.languages:
                return self.languages[key]
        return DEFAULT


def parse_help(text: str) -> HelpConfig:
    """The help file's content; ``ValueError`` saying where it is wrong."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"not valid YAML: {e}") from None
    if raw is None:
        return HelpConfig()
    if not isinstance(raw, dict):
        raise ValueError("the file must be a mapping of language codes to sections")
    config = HelpConfig()
    for key, value in raw.items():
        name = str(key)
        if name == "default":
            config.default = _text(value, "default", required=True).replace("-", "_")
            continue
        if not re.fullmatch(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})*", name):
            raise ValueError(f"{name!r} is not a language code (e.g. en, ms, pt_BR)")
        config.languages[name.replace("-", "_")] = _content(value, name)
    if config.default and config.default not in config.languages:
        raise ValueError(f"default: there is no section for {config.default!r}")
    return config


class HelpPages:
    """The operator's help file, re-read when it changes; defaults without one."""

    def __init__(self, path: str | Path | None = None) -> None:
        configured = path if path is not None else os.environ.get("SAFEHOLD_PORTAL_HELP", "")
        self.path = Path(configured) if configured else None
        self._stamp: tuple[float, int] | None = None
        self._config = HelpConfig()
        self._lock = threading.Lock()

    def _load(self) -> HelpConfig:
        if self.path is None:
            return self._config
        try:
            st = self.path.stat()
        except OSError as e:
            if self._stamp != (-1.0, -1):
                log.warning("help file %s cannot be read (%s); using the defaults", self.path, e)
                self._stamp, self._config = (-1.0, -1), HelpConfig()
            return self._config
        stamp = (st.st_mtime, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    if st.st_size > 1024 * 1024:
                        raise ValueError("the file is larger than 1 MiB")
                    self._config = parse_help(self.path.read_text(encoding="utf-8"))
                except (ValueError, OSError, UnicodeDecodeError) as e:
                    log.warning("help file %s is not valid (%s); using the defaults", self.path, e)
                    self._config = HelpConfig()
            return self._config

    def content(self, language: str) -> HelpContent:
        return self._load().for_language(language)

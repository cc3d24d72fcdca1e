"""Languages of the portal: gettext catalogs read straight from ``.po`` files.

English is the source language (the message ids). Malay (``ms``) ships in
``locales/ms/LC_MESSAGES/portal.po``. An operator adds a language, or overrides a
shipped one, without code: a ``<dir>/<lang>/LC_MESSAGES/portal.po`` file in the
directory named by ``SAFEHOLD_LOCALE_DIR`` (read when the service starts). Files are
read with Babel and compiled in memory, so no ``msgfmt`` step is needed; fuzzy
entries are ignored, and a message without a translation stays in English.

The language of a request is ``?lang=xx`` (or the form field ``lang``: it is carried
in every link and form, no cookie), else the best match of ``Accept-Language``, else
English. Text direction (``rtl`` for Arabic, Hebrew, ...) comes from Babel's CLDR data.
"""

from __future__ import annotations

import gettext
import io
import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations

log = logging.getLogger("safehold.portal")

DOMAIN = "portal"
SOURCE = "en"
BUILTIN_DIR = Path(__file__).parent / "locales"
MAX_ACCEPT_LANGUAGE = 512


@dataclass(frozen=True)
class Language:
    """One language the portal can speak."""

    code: str
    """The catalog's directory name, e.g. ``ms`` or ``pt_BR``."""
    name: str
    """Its own name for itself (``Melayu``), for the language switcher."""
    direction: str
    translations: gettext.NullTranslations = field(compare=False, repr=False)

    @property
    def tag(self) -> str:
        """The BCP 47 tag for ``lang`` attributes (``pt-BR``)."""
        return self.code.replace("_", "-")

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.code)

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def when(self, value: datetime | None) -> str:
        """A date and time in this language, in UTC."""
        if value is None:
            return ""
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return format_datetime(value, "d MMM y, HH:mm", tzinfo=UTC, locale=self.locale) + " UTC"

    def countries(self, codes: dict[str, str]) -> list[tuple[str, str]]:
        """``(code, name)`` of the given regions, named and sorted in this language."""
        names = self.locale.territories
        pairs = [(code, str(names.get(code) or english)) for code, english in codes.items()]
        return sorted(pairs, key=lambda p: p[1].casefold())


def _locale(code: str) -> Locale | None:
    try:
        return Locale.parse(code)
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def _native_name(locale: Locale) -> str:
    name = locale.get_display_name(locale) or str(locale)
    return name[:1].upper() + name[1:]


def compile_po(path: Path, code: str) -> Translations:
    """Read a ``.po`` file and compile it in memory (fuzzy entries are left out)."""
    with path.open("rb") as f:
        catalog: Catalog = read_po(f, locale=code, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def catalog_files(directory: Path) -> dict[str, Path]:
    """``{code: path}`` of every ``<code>/LC_MESSAGES/portal.po`` under ``directory``."""
    found: dict[str, Path] = {}
    if not directory.is_dir():
        return found
    for child in sorted(directory.iterdir()):
        po = child / "LC_MESSAGES" / f"{DOMAIN}.po"
        if po.is_file() and _locale(child.name) is not None:
            found[child.name] = po
    return found


class Languages:
    """The languages on offer: English, the shipped catalogs and the operator's."""

    def __init__(self, extra_dir: str | Path | None = None) -> None:
        extra = extra_dir if extra_dir is not None else os.environ.get("SAFEHOLD_LOCALE_DIR", "")
        dirs = [BUILTIN_DIR]
        if extra:
            dirs.append(Path(extra))
        source = Locale.parse(SOURCE)
        self.by_code: dict[str, Language] = {
            SOURCE: Language(SOURCE, _native_name(source), "ltr", gettext.NullTranslations())
        }
        files: dict[str, list[Path]] = {}
        for d in dirs:
            for code, path in catalog_files(d).items():
                files.setdefault(code, []).append(path)
        for code, paths in files.items():
            locale = _locale(code)
            if locale is None or code == SOURCE:
                continue
            merged: gettext.NullTranslations | None = None
            # the operator's file comes last and wins; the shipped one is its fallback
            for path in paths:
                try:
                    t = compile_po(path, code)
                except Exception as e:  # a broken file must not stop the portal
                    log.warning("cannot read the translations in %s: %s", path, e)
                    continue
                if merged is not None:
                    t.add_fallback(merged)
                merged = t
            if merged is None:
                continue
            direction = "rtl" if locale.text_direction == "rtl" else "ltr"
            self.by_code[code] = Language(code, _native_name(locale), direction, merged)
        self.default = self.by_code[SOURCE]

    @property
    def all(self) -> list[Language]:
        """English first, then the others by their own names."""
        rest = sorted(
            (lang for code, lang in self.by_code.items() if code != SOURCE),
            key=lambda lang: lang.name.casefold(),
        )
        return [self.default, *rest]

    def find(self, value: object) -> Language | None:
        """The language a tag names (``ms``, ``ms-MY``, ``pt_br``), or ``None``."""
        if not isinstance(value, str) or not 1 <= len(value) <= 35:
            return None
        tag = value.strip().replace("-", "_")
        lowered = {c.lower(): c for c in self.by_code}
        if tag.lower() in lowered:
            return self.by_code[lowered[tag.lower()]]
        base = tag.split("_", 1)[0].lower()
        return self.by_code.get(lowered.get(base, ""))

    def from_accept(self, header: str | None) -> Language | None:
        """The best language of an ``Accept-Language`` header that the portal has."""
        if not header or len(header) > MAX_ACCEPT_LANGUAGE:
            return None
        choices: list[tuple[float, int, str]] = []
        for i, part in enumerate(header.split(",")[:20]):
            tag, _, params = part.strip().partition(";")
            q = 1.0
            params = params.strip()
            if params.startswith("q="):
                try:
                    q = float(params[2:])
                except ValueError:
                    q = 0.0
            if tag and tag != "*" and q > 0:
                choices.append((-q, i, tag))
        for _q, _i, tag in sorted(choices):
            found = self.find(tag)
            if found is not None:
                return found
        return None

    def negotiate(self, asked: object, accept: str | None) -> Language:
        return self.find(asked) or self.from_accept(accept) or self.default

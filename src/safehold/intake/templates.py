"""Notice templates: operator-editable Jinja2 text, per kind, jurisdiction and language.

One template per kind (``takedown``, ``block``), jurisdiction (``default``, ``NZ``,
``MY``, ...) and language. They are rendered in Jinja2's sandbox, so an edited template
cannot run code, with the variables in :data:`TEMPLATE_VARIABLES`. Built-in templates
ship for both kinds in English and Malay, and for New Zealand and Malaysia; a template
the operator saves replaces the built-in one with the same key, and resetting it brings
the built-in one back. A notice uses the template of its jurisdiction and language,
else that jurisdiction in English, else the default jurisdiction.
"""

from __future__ import annotations

import builtins
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select

from safehold.audit import AuditLog, actor_of
from safehold.cases.model import iso
from safehold.errors import InvalidValue, NotFound, preview
from safehold.intake.fields import clean_line, clean_text
from safehold.store.db import Database
from safehold.store.models import NoticeTemplate, utcnow

KINDS: tuple[str, ...] = ("takedown", "block")
JURISDICTION = re.compile(r"[A-Za-z0-9_-]{1,32}")
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})?")
MAX_SUBJECT = 300
MAX_BODY = 20_000

TEMPLATE_VARIABLES: dict[str, str] = {
    "reference": "the hotline's reference for the case (e.g. SH-42)",
    "url": "the reported URL",
    "host": "the URL's host name",
    "domain": "the host's registrable domain",
    "scope": "url or host (what a block request covers)",
    "category": "what the content appears to be, in plain words",
    "date": "today's date (YYYY-MM-DD)",
    "jurisdiction": "the jurisdiction code",
    "recipient_name": "the host's name from the contact list (may be empty)",
    "operator_name": "SAFEHOLD_OPERATOR_NAME: the hotline's name",
    "operator_email": "SAFEHOLD_MAIL_FROM: where hosts answer",
    "operator_url": "SAFEHOLD_PUBLIC_URL: the hotline's web address",
}

_TAKEDOWN_EN = (
    "Takedown request {{ reference }}: {{ host }}",
    """Dear {{ recipient_name or "abuse team" }},

{{ operator_name }} has received a report about content on your service that appears
to be: {{ category }}.

URL: {{ url }}
Our reference: {{ reference }}
Date: {{ date }}
{% if legal_basis %}
{{ legal_basis }}
{% endif %}
Please remove the content or disable access to it as soon as possible, preserve the
related account data in case law enforcement asks for it, and tell us when it has been
removed, quoting our reference. Do not send the content itself to us.

{{ operator_name }}
{{ operator_email }}
""",
)
_TAKEDOWN_MS = (
    "Permintaan penurunan kandungan {{ reference }}: {{ host }}",
    """Kepada {{ recipient_name or "pasukan penyalahgunaan" }},

{{ operator_name }} telah menerima laporan tentang kandungan dalam perkhidmatan anda
yang kelihatan seperti: {{ category }}.

URL: {{ url }}
Rujukan kami: {{ reference }}
Tarikh: {{ date }}
{% if legal_basis %}
{{ legal_basis }}
{% endif %}
Sila turunkan kandungan ini atau sekat akses kepadanya secepat mungkin, simpan data
akaun yang berkaitan sekiranya diminta oleh pihak penguat kuasa undang-undang, dan
maklumkan kepada kami apabila ia telah diturunkan dengan menyebut rujukan kami. Jangan
hantar kandungan itu sendiri kepada kami.

{{ operator_name }}
{{ operator_email }}
""",
)
_BLOCK_EN = (
    "URL block request {{ reference }}: {{ host }}",
    """To network operators,

{{ operator_name }} asks you to block access to the following
{{ "host name (every address under it)" if scope == "host" else "web address" }}, which
appears to carry: {{ category }}.

{{ host if scope == "host" else url }}

Our reference: {{ reference }}
Date: {{ date }}
{% if legal_basis %}
{{ legal_basis }}
{% endif %}
The current block list is available from {{ operator_url or operator_name }} as a plain
list and as an RPZ zone. We will tell you when the block can be lifted.

{{ operator_name }}
{{ operator_email }}
""",
)
_BLOCK_MS = (
    "Permintaan sekatan URL {{ reference }}: {{ host }}",
    """Kepada pengendali rangkaian,

{{ operator_name }} meminta anda menyekat akses kepada
{{ "nama hos berikut (semua alamat di bawahnya)" if scope == "host" else "alamat web berikut" }},
yang kelihatan mengandungi: {{ category }}.

{{ host if scope == "host" else url }}

Rujukan kami: {{ reference }}
Tarikh: {{ date }}
{% if legal_basis %}
{{ legal_basis }}
{% endif %}
Senarai sekatan terkini boleh didapati daripada {{ operator_url or operator_name }}
sebagai senarai biasa dan zon RPZ. Kami akan memaklumkan apabila sekatan boleh ditarik balik.

{{ operator_name }}
{{ operator_email }}
""",
)
_LEGAL = {
    "NZ": (
        "We make this request as part of our work under the Harmful Digital Communications "
        "Act 2015 (New Zealand), which asks online content hosts to act on complaints about "
        "harmful digital communications."
    ),
    "MY": (
        "Kandungan ini mungkin melanggar Akta Komunikasi dan Multimedia 1998 (Malaysia). / "
        "This content may breach the Communications and Multimedia Act 1998 (Malaysia)."
    ),
}

BUILTIN_TEMPLATES: dict[tuple[str, str, str], tuple[str, str]] = {
    ("takedown", "default", "en"): _TAKEDOWN_EN,
    ("takedown", "default", "ms"): _TAKEDOWN_MS,
    ("block", "default", "en"): _BLOCK_EN,
    ("block", "default", "ms"): _BLOCK_MS,
    ("takedown", "NZ", "en"): _TAKEDOWN_EN,
    ("block", "NZ", "en"): _BLOCK_EN,
    ("takedown", "MY", "ms"): _TAKEDOWN_MS,
    ("takedown", "MY", "en"): _TAKEDOWN_EN,
    ("block", "MY", "ms"): _BLOCK_MS,
    ("block", "MY", "en"): _BLOCK_EN,
}
"""(kind, jurisdiction, language) → (subject, body). ``legal_basis`` is filled in per
jurisdiction from :data:`_LEGAL` for the built-in ones."""

MAX_RENDERED = 100_000
"""Characters a rendered template may have; the sandbox stops a template at this size."""
MAX_LOOP = 1000
"""Longest ``range()`` a template may loop over."""


class _Bounded(SandboxedEnvironment):
    """Jinja2's sandbox, also bounded in size: an operator's template cannot build a
    gigabyte string (``{{ url * 10**9 }}``, ``url.ljust(10**9)``) or loop for ever."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (abs(_number(right)) > 64 or abs(_number(left)) > 10**6):
            raise SecurityError("the power is too large for a template")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and len(seq) * _number(n) > MAX_RENDERED:
                    raise SecurityError("the repeated text would be too long for a template")
        return super().call_binop(context, operator, left, right)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_RENDERED:
                raise SecurityError("a number in the template is too large")
        return super().call(__context, __obj, *args, **kwargs)


def _number(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_LOOP:
        raise SecurityError(f"a template may loop at most {MAX_LOOP} times")
    return r


_ENV = _Bounded(autoescape=False, keep_trailing_newline=True)
_ENV.globals["range"] = _range


def _render(source: str, context: dict[str, Any]) -> str:
    out: list[str] = []
    size = 0
    for chunk in _ENV.from_string(source).generate(context):
        size += len(chunk)
        if size > MAX_RENDERED:
            raise SecurityError(f"the rendered text is longer than {MAX_RENDERED} characters")
        out.append(chunk)
    return "".join(out)


def default_jurisdiction() -> str:
    raw = os.environ.get("SAFEHOLD_JURISDICTION", "").strip()
    return raw if JURISDICTION.fullmatch(raw) else "default"


def check_kind(kind: object) -> str:
    if kind not in KINDS:
        raise InvalidValue(f"unknown notice kind {preview(kind)}: use takedown or block")
    return str(kind)


def check_jurisdiction(value: object) -> str:
    if not isinstance(value, str) or not JURISDICTION.fullmatch(value.strip()):
        raise InvalidValue(
            f"invalid jurisdiction {preview(value)}: use a short code such as default, NZ or MY"
        )
    return value.strip()


def check_language(value: object) -> str:
    if not isinstance(value, str) or not LANGUAGE.fullmatch(value.strip()):
        raise InvalidValue(f"invalid language {preview(value)}: use a code such as en or ms")
    return value.strip()


def operator_context() -> dict[str, str]:
    return {
        "operator_name": os.environ.get("SAFEHOLD_OPERATOR_NAME", "").strip() or "safehold hotline",
        "operator_email": os.environ.get("SAFEHOLD_MAIL_FROM", "").strip(),
        "operator_url": os.environ.get("SAFEHOLD_PUBLIC_URL", "").strip(),
    }


def render(subject: str, body: str, context: dict[str, Any]) -> tuple[str, str]:
    """Render a template pair in the sandbox; errors say what to fix."""
    try:
        return (" ".join(_render(subject, context).split()), _render(body, context))
    except TemplateError as e:
        raise InvalidValue(f"the template cannot be used: {e}") from None
    except (ArithmeticError, LookupError, TypeError, ValueError) as e:
        # ``{{ 1/0 }}``, ``{{ url + 1 }}``: the sandbox lets the operation fail in Python
        raise InvalidValue(f"the template cannot be used: {type(e).__name__}: {e}") from None


SAMPLE_CONTEXT: dict[str, Any] = {
    "reference": "SH-1",
    "url": "https://files.example.org/a/b.jpg",
    "host": "files.example.org",
    "domain": "example.org",
    "scope": "url",
    "category": "Sexual images or videos of a child",
    "date": "2026-01-31",
    "jurisdiction": "default",
    "recipient_name": "Example Hosting",
    "legal_basis": "",
    "operator_name": "safehold hotline",
    "operator_email": "hotline@example.org",
    "operator_url": "https://hotline.example.org",
}


@dataclass(frozen=True)
class TemplateInfo:
    kind: str
    jurisdiction: str
    language: str
    subject: str
    body: str
    builtin: bool
    updated_at: datetime | None = None
    updated_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "jurisdiction": self.jurisdiction,
            "language": self.language,
            "subject": self.subject,
            "body": self.body,
            "builtin": self.builtin,
            "updated_at": iso(self.updated_at),
            "updated_by": self.updated_by,
        }


class NoticeTemplates:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    def list(self, tenant: str) -> builtins.list[TemplateInfo]:
        out: dict[tuple[str, str, str], TemplateInfo] = {
            key: TemplateInfo(*key, subject, body, True)
            for key, (subject, body) in BUILTIN_TEMPLATES.items()
        }
        with self.db.session() as s:
            for row in s.scalars(select(NoticeTemplate).where(NoticeTemplate.tenant == tenant)):
                key = (row.kind, row.jurisdiction, row.language)
                out[key] = TemplateInfo(
                    *key, row.subject, row.body, False, row.updated_at, row.updated_by
                )
        return sorted(
            out.values(),
            key=lambda t: (t.kind, t.jurisdiction != "default", t.jurisdiction, t.language),
        )

    def get(self, tenant: str, kind: str, jurisdiction: str, language: str) -> TemplateInfo:
        """The template for a notice, falling back to the jurisdiction in English, the
        default jurisdiction in the language, then the default in English."""
        kind = check_kind(kind)
        candidates = [
            (jurisdiction, language),
            (jurisdiction, "en"),
            ("default", language),
            ("default", "en"),
        ]
        with self.db.session() as s:
            rows = {
                (r.jurisdiction, r.language): r
                for r in s.scalars(
                    select(NoticeTemplate).where(
                        NoticeTemplate.tenant == tenant, NoticeTemplate.kind == kind
                    )
                )
            }
        for j, lang in candidates:
            if (j, lang) in rows:
                r = rows[(j, lang)]
                return TemplateInfo(
                    kind, j, lang, r.subject, r.body, False, r.updated_at, r.updated_by
                )
            if (kind, j, lang) in BUILTIN_TEMPLATES:
                subject, body = BUILTIN_TEMPLATES[(kind, j, lang)]
                return TemplateInfo(kind, j, lang, subject, body, True)
        raise NotFound(f"no {kind} template")  # pragma: no cover - defaults always exist

    def save(
        self,
        tenant: str,
        *,
        kind: str,
        jurisdiction: str,
        language: str,
        subject: str,
        body: str,
        by: object,
    ) -> TemplateInfo:
        """Save (or replace) a template after rendering it once with sample values."""
        kind = check_kind(kind)
        jurisdiction = check_jurisdiction(jurisdiction)
        language = check_language(language)
        subject = clean_line(subject, "the subject", MAX_SUBJECT)
        body = clean_text(body, MAX_BODY, "the body")
        if not subject or not body:
            raise InvalidValue("a template needs a subject and a body")
        render(subject, body, SAMPLE_CONTEXT)
        actor = actor_of(by)
        with self.db.session() as s:
            row = s.scalar(
                select(NoticeTemplate).where(
                    NoticeTemplate.tenant == tenant,
                    NoticeTemplate.kind == kind,
                    NoticeTemplate.jurisdiction == jurisdiction,
                    NoticeTemplate.language == language,
                )
            )
            if row is None:
                row = NoticeTemplate(
                    tenant=tenant, kind=kind, jurisdiction=jurisdiction, language=language
                )
                s.add(row)
            row.subject, row.body = subject, body
            row.updated_at, row.updated_by = utcnow(), actor
            self.audit.append(
                actor,
                "template_change",
                object_type="notice_template",
                object_id=f"{kind}/{jurisdiction}/{language}",
                details={"change": "save"},
                tenant=tenant,
                session=s,
            )
            return TemplateInfo(
                kind, jurisdiction, language, subject, body, False, row.updated_at, actor
            )

    def reset(
        self, tenant: str, *, kind: str, jurisdiction: str, language: str, by: object
    ) -> bool:
        """Remove the operator's template (the built-in one, if any, applies again)."""
        actor = actor_of(by)
        with self.db.session() as s:
            row = s.scalar(
                select(NoticeTemplate).where(
                    NoticeTemplate.tenant == tenant,
                    NoticeTemplate.kind == kind,
                    NoticeTemplate.jurisdiction == jurisdiction,
                    NoticeTemplate.language == language,
                )
            )
            if row is None:
                return False
            s.delete(row)
            self.audit.append(
                actor,
                "template_change",
                object_type="notice_template",
                object_id=f"{kind}/{jurisdiction}/{language}",
                details={"change": "reset"},
                tenant=tenant,
                session=s,
            )
            return True

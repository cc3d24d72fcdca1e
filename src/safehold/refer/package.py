"""Law-enforcement packages: a case exported for police or another authority, in any
jurisdiction, with its evidence encrypted to the recipient.

A package is a directory (``0700``, files ``0600``; optionally also a ``.tar`` or
``.zip`` of it, itself optionally encrypted to the recipient as ``.tar.age``)::

    manifest.json          what the package is (case, tenant, created at/by, reason,
                           recipient key fingerprints, the request it answers), every
                           file with its SHA-256 and size, and the data-minimisation
                           statement: what was included, what was left out and why
    summary.pdf            a human-readable summary: timeline, accounts, suspect
                           profile, matches and labels (never an image of the content)
    evidence/item-<id>.<ext>.age           the content of a vault item
    evidence/item-<id>.context.json.age    its preserved context
    custody.json           the chain of custody: the audit entries of the evidence,
                           the request and this export, with their hashes
    SHA256SUMS             ``sha256sum -c`` of every other file

Evidence leaves the :class:`~safehold.refer.vault.EvidenceVault` through an audited
read (``vault_access``, with the reason) and is encrypted **in memory** to the
recipients' `age <https://age-encryption.org>`_ X25519 public keys (``age1…``) with
``pyrage``: its plaintext is never written to disk. (The vault's own ``export`` with a
:class:`~safehold.refer.vault.BundleSealer` decrypts to a file first;
:class:`AgeSealer` is such a sealer for ``safehold vault export`` users, but packages do
not use that path.) Each evidence item also gets a ``vault_export`` entry, and the
package one ``export`` entry on its case (reason, recipient fingerprints, the request's
reference, the file count), written before anything is decrypted.

**Data minimisation.** A package holds only what the case holds — its own items, their
events, decisions, reports, referrals and preserved evidence, and (kind ``related``)
other accounts in related cases — and every kind of data can be left out
(``exclude``), as can accounts, dates and single evidence items. When the package
answers a preservation request (:mod:`safehold.refer.preservation`), it holds only what
the request's scope covers: its account, its date range, the kinds of data it names.
Reviewer comments, reporters' contact details and report descriptions are never
included. The manifest and the summary say what was left out and why.

The recipient decrypts with ``age -d -i key.txt evidence/item-1.png.age > item-1.png``
and checks it against the item's ``sha256`` in the manifest; :func:`verify_package`
does every check in Python.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import tarfile
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrage  # type: ignore[import-untyped]
from fpdf import FPDF, FontFace, XPos, YPos
from sqlalchemy import select

from safehold.audit import AuditLog, check_exported, entry_info
from safehold.cases.model import CaseView, ItemInfo
from safehold.cases.service import Cases
from safehold.errors import Conflict, InvalidValue, NotFound, preview
from safehold.intake.receipts import display_number
from safehold.refer.preservation import (
    AUDIT_OBJECT as PRESERVATION_OBJECT,
)
from safehold.refer.preservation import (
    Preservations,
    RequestInfo,
    clean_field,
    parse_when,
)
from safehold.refer.vault import AUDIT_OBJECT as VAULT_OBJECT
from safehold.refer.vault import EvidenceDamaged, EvidenceVault
from safehold.refer.vault import ItemInfo as VaultItemInfo
from safehold.store.db import Database
from safehold.store.models import (
    AuditEntry,
    Case,
    CaseItem,
    Event,
    Media,
    PreservationRequest,
    Referral,
    Report,
    ReportUrl,
    VaultHold,
)

log = logging.getLogger("safehold.package")

FORMAT = "safehold-le-package"
VERSION = 1
EXPORT_DIR_ENV = "SAFEHOLD_EXPORT_DIR"
PDF_FONT_ENV = "SAFEHOLD_PDF_FONT"
DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
"""Debian's ``fonts-dejavu-core`` (installed with Chromium by ``scripts/ensure-services``)."""

EXPORT_ID = re.compile(r"pkg_[0-9a-f]{16}")
ARCHIVES = ("tar", "zip")
MAX_RECIPIENTS = 10

KINDS: dict[str, str] = {
    "content": (
        "the evidence files (each item's content, encrypted to the recipient) with their "
        "hashes, matches and labels"
    ),
    "context": (
        "each evidence item's preserved context (signals, matches, upload facts, the rule), "
        "encrypted to the recipient; the account data in it only when account is included"
    ),
    "events": "the scans of the case's content: when, the decision, the rules that fired",
    "account": (
        "the account signals the platform supplied: IP addresses, devices, linked account "
        "ids, profile images and other signals"
    ),
    "decisions": "reviewers' decisions on the case: action, label, reason, who and when",
    "reports": (
        "reports from the public or partners about the content: number, category, when, "
        "source, the platform, user name and URLs they named"
    ),
    "referrals": "referrals of the case to authorities (e.g. NCMEC): status, report id, when",
    "preservation": "evidence preservation, legal holds and preservation requests",
    "related": (
        "the suspect profile beyond the case's own account: other accounts in related cases "
        "(the same SHA-256 or PDQ) and other cases of the account"
    ),
}
"""The kinds of data a package can hold (all by default; leave any out with ``exclude``)."""

ALWAYS_LEFT_OUT: dict[str, str] = {
    "reviewer comments": "internal working notes of the reviewers, not evidence",
    "reporters' contact details, demographics and report descriptions": (
        "reporters are anonymous by default and are not the subject of the package; the "
        "hotline can be asked for them under legal process"
    ),
    "images or renditions of the content in the summary": (
        "the content is only in the encrypted evidence files"
    ),
    "reviewers' exposure records, sessions and API keys": "not about the case",
    "other tenants' data": "a package never leaves its tenant",
}

REQUEST_KINDS: dict[str, tuple[str, ...]] = {
    "content": ("content", "context"),
    "account": ("account",),
    "events": ("events",),
    "decisions": ("decisions",),
    "reports": ("reports",),
}
"""A preservation request's scope kinds → the package kinds they cover (``preservation``
is always included when a package answers a request: it is the answer's custody)."""

_HIDDEN = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)
_EXT = re.compile(r"[a-z0-9]{1,8}")

_IP_KEYS = frozenset(
    {"ip", "ips", "ip_address", "ip_addresses", "upload_ip", "login_ip", "last_ip", "ipv4"}
)
_DEVICE_KEYS = frozenset({"device", "devices", "device_id", "device_ids", "idfa", "android_id"})
_LINKED_KEYS = frozenset(
    {"linked", "linked_accounts", "linked_account_ids", "linked_ids", "alt_accounts"}
)
_PROFILE_PREFIXES = ("profile_image", "profile_photo", "avatar")
_SERVER_KEYS = frozenset({"prior_events", "prior_matches", "prior_cases"})
MAX_VALUES = 200
"""Most distinct values of one kind listed per account."""


# --------------------------------------------------------------------------- recipients


@dataclass(frozen=True)
class Recipient:
    """An age X25519 public key (``age1…``) and its fingerprint."""

    public_key: str
    fingerprint: str

    def to_dict(self) -> dict[str, str]:
        return {
            "type": "age-x25519",
            "public_key": self.public_key,
            "fingerprint": self.fingerprint,
        }


def fingerprint_of(public_key: str) -> str:
    """``SHA256:`` and 32 hex digits of the SHA-256 of the key's text: short enough to read
    out on the phone, long enough to tell keys apart."""
    return "SHA256:" + hashlib.sha256(public_key.encode("ascii")).hexdigest()[:32]


def parse_recipient(text: object) -> Recipient:
    """Check an age public key (``age1`` + 58 Bech32 characters)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidValue("the recipient's age public key (age1…) is required")
    key = text.strip()
    if len(key) > 100 or not key.isascii() or not key.lower().startswith("age1"):
        raise InvalidValue(
            f"{preview(key, 40)} is not an age public key: it starts with age1 (make one "
            "with `age-keygen`; an OpenPGP key is not accepted)"
        )
    try:
        pyrage.x25519.Recipient.from_str(key)
    except Exception:  # pyrage.RecipientError: not Bech32, bad checksum, wrong length
        raise InvalidValue(
            f"{preview(key, 40)} is not a valid age public key (its Bech32 checksum or "
            "length is wrong): copy it again from the recipient"
        ) from None
    return Recipient(key, fingerprint_of(key))


def parse_recipients(values: Iterable[str] | str) -> list[Recipient]:
    raw = [values] if isinstance(values, str) else list(values)
    parts = [p for v in raw for p in str(v).replace(",", " ").split() if p]
    if not parts:
        raise InvalidValue("the recipient's age public key (age1…) is required")
    if len(parts) > MAX_RECIPIENTS:
        raise InvalidValue(f"at most {MAX_RECIPIENTS} recipients")
    out = {r.public_key: r for r in (parse_recipient(p) for p in parts)}
    return list(out.values())


class AgeSealer:
    """Encrypts to age recipients. :meth:`seal_bytes` encrypts bytes in memory into a new
    file; :meth:`seal` makes it a :class:`~safehold.refer.vault.BundleSealer` for
    :meth:`EvidenceVault.export` (which has written the plaintext file first: use
    :class:`Packages` to keep plaintext off the disk)."""

    name = "age"

    def __init__(self, recipients: Iterable[str] | str) -> None:
        self.recipients = parse_recipients(recipients)
        self._keys = [pyrage.x25519.Recipient.from_str(r.public_key) for r in self.recipients]

    @property
    def fingerprints(self) -> list[str]:
        return [r.fingerprint for r in self.recipients]

    def seal_bytes(self, data: bytes, dest: Path) -> None:
        """Encrypt ``data`` into the new file ``dest`` (mode 0600)."""
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                pyrage.encrypt_io(io.BytesIO(data), out, self._keys)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    def seal_file(self, source: Path, dest: Path) -> None:
        """Encrypt the file ``source`` into the new file ``dest`` (mode 0600), streaming."""
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with open(source, "rb") as fin, os.fdopen(fd, "wb") as out:
                pyrage.encrypt_io(fin, out, self._keys)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    def seal(self, path: Path) -> Path:
        sealed = path.with_name(path.name + ".age")
        self.seal_file(path, sealed)
        path.unlink()
        return sealed


# --------------------------------------------------------------------------- settings


def default_export_root(db: Database) -> Path:
    """``safehold-exports/`` next to the SQLite database file, else in the working
    directory."""
    url = db.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / "safehold-exports"
    return Path("safehold-exports").resolve()


def export_root(db: Database, environ: Mapping[str, str] | None = None) -> Path:
    """Where the console writes packages: ``SAFEHOLD_EXPORT_DIR`` or the default (made
    mode 0700)."""
    env = os.environ if environ is None else environ
    root = Path(env.get(EXPORT_DIR_ENV, "").strip() or default_export_root(db))
    if not root.is_dir():
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(root, 0o700)
    return root


def new_export_id() -> str:
    return "pkg_" + secrets.token_hex(8)


def check_export_id(value: object) -> str:
    if not isinstance(value, str) or not EXPORT_ID.fullmatch(value):
        raise NotFound(f"no package {preview(value, 40)}")
    return value


def case_reference(tenant: str, case_id: int) -> str:
    """How the package names its case on every page: ``<tenant>-case-<id>``."""
    return f"{tenant}-case-{int(case_id)}"


# --------------------------------------------------------------------------- text


def _clean(value: object, limit: int = 2000) -> str:
    """Text from outside for the manifest and the summary: no control, zero-width or
    bidi-override characters (line breaks become spaces), at most ``limit``
    characters."""
    text = "" if value is None else str(value)
    text = " ".join(_HIDDEN.sub(" ", unicodedata.normalize("NFC", text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_ASCII_FOR = {
    "—": "-",
    "–": "-",
    "‑": "-",
    "…": "...",
    "“": '"',
    "”": '"',
    "„": '"',
    "‘": "'",
    "’": "'",
    "→": "->",
    "←": "<-",
    "•": "*",
    "≥": ">=",
    "≤": "<=",
    "€": "EUR",
    "✓": "v",
}


def transliterate(text: str) -> str:
    """``text`` in Latin-1 for the PDF core fonts: accents kept where Latin-1 has them,
    else dropped (``ł`` → ``l``), common punctuation spelled in ASCII, anything else
    ``?``."""
    out: list[str] = []
    for ch in text:
        if ord(ch) < 256:
            out.append(ch)
            continue
        if ch in _ASCII_FOR:
            out.append(_ASCII_FOR[ch])
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
        if base and all(ord(c) < 256 for c in base):
            out.append(base)
        else:
            out.append({"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ø": "o"}.get(ch, "?"))
    return "".join(out)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _short(value: datetime | None) -> str:
    """A time in a table column (the column says UTC)."""
    return _when(value)[:-4] if value is not None else "-"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """What goes into a package: the kinds of data, and (optionally) only some accounts,
    a date range and without some evidence items."""

    include: frozenset[str]
    accounts: frozenset[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    exclude_items: frozenset[int] = frozenset()

    def covers(self, account: str | None, at: datetime | None) -> bool:
        if self.accounts is not None and account not in self.accounts:
            return False
        if at is None:
            return True
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        if self.since is not None and at < self.since:
            return False
        return not (self.until is not None and at > self.until)

    def to_dict(self) -> dict[str, Any]:
        return {
            "include": sorted(self.include),
            "accounts": sorted(self.accounts) if self.accounts is not None else None,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "excluded_items": sorted(self.exclude_items),
        }


def _kinds(values: Iterable[str], what: str) -> set[str]:
    out: set[str] = set()
    for v in values:
        for part in str(v).split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in KINDS:
                raise InvalidValue(
                    f"{what}: unknown kind of data {preview(name, 30)}: use {', '.join(KINDS)}"
                )
            out.add(name)
    return out


# --------------------------------------------------------------------------- account signals


@dataclass
class AccountProfile:
    """What the platform said about one account across the events the package holds."""

    account_id: str
    events: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    ips: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)
    linked: dict[str, int] = field(default_factory=dict)
    profile_images: dict[str, int] = field(default_factory=dict)
    other: dict[str, str] = field(default_factory=dict)
    cases: list[int] = field(default_factory=list)
    related_by: list[str] = field(default_factory=list)

    def add_event(self, at: datetime | None, signals: Mapping[str, Any]) -> None:
        self.events += 1
        if at is not None:
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            self.first_seen = at if self.first_seen is None else min(self.first_seen, at)
            self.last_seen = at if self.last_seen is None else max(self.last_seen, at)
        for key, value in signals.items():
            name = str(key).lower()
            values = _values(value)
            if name in _IP_KEYS or name.endswith(("_ip", "_ips")):
                for v in values:
                    ip = _ip(v)
                    if ip is not None:
                        _count(self.ips, ip)
                    else:
                        self.other.setdefault(_clean(key, 64), _clean(v, 200))
            elif name in _DEVICE_KEYS or name.endswith(("_device", "_device_id", "_device_ids")):
                for v in values:
                    _count(self.devices, _clean(v, 128))
            elif name in _LINKED_KEYS:
                for v in values:
                    _count(self.linked, _clean(v, 256))
            elif name.startswith(_PROFILE_PREFIXES):
                for v in values:
                    _count(self.profile_images, _clean(v, 200))
            elif len(self.other) < MAX_VALUES:
                shown = ", ".join(_clean(v, 200) for v in values[:10])
                if isinstance(value, bool | int | float) or values:
                    self.other[_clean(key, 64)] = shown or _clean(value, 200)

    def to_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "events": self.events,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "ips": dict(self.ips),
            "devices": dict(self.devices),
            "linked": dict(self.linked),
            "profile_images": dict(self.profile_images),
            "other": dict(self.other),
            "cases": list(self.cases),
            "related_by": list(self.related_by),
        }


def _values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, bool):
        return [str(value).lower()]
    if isinstance(value, int | float):
        return [str(value)]
    if isinstance(value, list | tuple):
        return [str(v) for v in value[:MAX_VALUES] if isinstance(v, str | int) and str(v)]
    if isinstance(value, dict):  # e.g. {"sha256": ..., "pdq": ...} of a profile image
        return [
            f"{_clean(k, 32)}={_clean(v, 200)}"
            for k, v in list(value.items())[:20]
            if isinstance(v, str | int | float)
        ]
    return []


def _count(into: dict[str, int], value: str) -> None:
    if value and (value in into or len(into) < MAX_VALUES):
        into[value] = into.get(value, 0) + 1


def _ip(value: str) -> str | None:
    import ipaddress

    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        return None


def _account_signals(ev: Event) -> dict[str, Any]:
    ctx = ev.context if isinstance(ev.context, dict) else {}
    account = ctx.get("account")
    return dict(account) if isinstance(account, dict) else {}


def _strip_account(value: Any) -> Any:
    """``value`` without any ``account`` object (for packages without account data)."""
    if isinstance(value, dict):
        return {k: _strip_account(v) for k, v in value.items() if k != "account"}
    if isinstance(value, list):
        return [_strip_account(v) for v in value]
    return value


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PackageResult:
    path: Path
    export_id: str
    case_id: int
    tenant: str
    items: list[int]
    files: list[dict[str, Any]]
    manifest_sha256: str
    archive: Path | None = None
    archive_sha256: str | None = None
    request_id: int | None = None
    recipients: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "export_id": self.export_id,
            "case_id": self.case_id,
            "tenant": self.tenant,
            "items": self.items,
            "files": self.files,
            "manifest_sha256": self.manifest_sha256,
            "archive": str(self.archive) if self.archive else None,
            "archive_sha256": self.archive_sha256,
            "request_id": self.request_id,
            "recipients": self.recipients,
        }


@dataclass(frozen=True)
class PackageCheck:
    ok: bool
    problems: list[str]
    files: int
    entries: int
    decrypted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "files": self.files,
            "entries": self.entries,
            "decrypted": self.decrypted,
        }


@dataclass
class _Timeline:
    rows: list[tuple[datetime, str, str]] = field(default_factory=list)

    def add(self, at: datetime | None, what: str, details: str) -> None:
        if at is None:
            return
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        self.rows.append((at, what, details))

    def sorted(self) -> list[tuple[datetime, str, str]]:
        return sorted(self.rows, key=lambda r: r[0])


@dataclass
class _Gathered:
    view: CaseView
    tenant: str
    reference: str
    selection: Selection
    request: RequestInfo | None
    items: list[ItemInfo]
    items_left_out: int
    events: dict[int, Event]
    evidence: list[VaultItemInfo]
    evidence_left_out: int
    profiles: list[AccountProfile]
    linked: list[AccountProfile]
    other_cases: list[int]
    decisions: list[Any]
    reports: list[dict[str, Any]]
    referrals: list[dict[str, Any]]
    holds: list[VaultHold]
    requests: list[RequestInfo]
    related_left_out: int = 0


# --------------------------------------------------------------------------- the service


class Packages:
    """Export cases as law-enforcement packages."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog | None = None,
        *,
        vault: EvidenceVault | None,
        cases: Cases | None = None,
        preservations: Preservations | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.db = db
        self.audit = audit or AuditLog(db)
        self.vault = vault
        self.cases = cases or Cases(db, self.audit)
        self.preservations = preservations or Preservations(db, self.audit, vault=vault)
        self.environ = os.environ if environ is None else environ

    # -- choosing what goes in

    def selection(
        self,
        *,
        request: RequestInfo | None = None,
        exclude: Iterable[str] = (),
        accounts: Iterable[str] | None = None,
        since: object = None,
        until: object = None,
        exclude_items: Iterable[int] = (),
    ) -> Selection:
        """The selection for the parameters, narrowed to ``request``'s scope."""
        include = set(KINDS) - _kinds(exclude, "exclude")
        wanted = None if accounts is None else {clean_field(a, "an account", 256) for a in accounts}
        start = parse_when(since, "since")
        end = parse_when(until, "until", end_of_day=True)
        if request is not None:
            covered = {k for kind in request.scope.kinds for k in REQUEST_KINDS[kind]}
            include = (include & covered) | {"preservation"}
            wanted = {request.account_id} if wanted is None else wanted & {request.account_id}
            if request.scope.since is not None:
                start = request.scope.since if start is None else max(start, request.scope.since)
            if request.scope.until is not None:
                end = request.scope.until if end is None else min(end, request.scope.until)
        if start is not None and end is not None and start > end:
            raise InvalidValue("since is after until: the date range is empty")
        if wanted is not None and not wanted:
            raise InvalidValue("the accounts chosen are outside the request's scope")
        items = set()
        for i in exclude_items:
            try:
                items.add(int(i))
            except (TypeError, ValueError):
                raise InvalidValue(f"{preview(i)} is not an evidence item id") from None
        return Selection(
            frozenset(include),
            frozenset(wanted) if wanted is not None else None,
            start,
            end,
            frozenset(items),
        )

    def _gather(
        self, case_id: int, tenant: str | None, sel: Selection, request: RequestInfo | None
    ) -> _Gathered:
        view = self.cases.get(case_id, tenant)
        case = view.case
        tenant = case.tenant
        with self.db.session() as s:
            event_ids = [i.event_id for i in view.items if i.event_id is not None]
            events: dict[int, Event] = {}
            for start in range(0, len(event_ids), 500):
                for ev in s.scalars(
                    select(Event).where(Event.id.in_(event_ids[start : start + 500]))
                ):
                    if ev.tenant == tenant:
                        s.expunge(ev)
                        events[int(ev.id)] = ev
        items: list[ItemInfo] = []
        for item in view.items:
            found = events.get(item.event_id) if item.event_id is not None else None
            account = found.account_id if found is not None else case.account_id
            at = found.at if found is not None else item.added_at
            if sel.covers(account, at):
                items.append(item)
        if request is not None and not items:
            raise Conflict(
                f"case {case.id} holds nothing of account {preview(request.account_id, 80)} "
                f"in the scope of preservation request {request.id} ({request.scope.describe()})"
            )
        kept_events = {
            int(i.event_id): events[int(i.event_id)]
            for i in items
            if i.event_id is not None and int(i.event_id) in events
        }
        evidence, evidence_left_out = self._evidence(
            case.id, tenant, sel, kept_events, events, request
        )

        profiles: dict[str, AccountProfile] = {}
        for ev in sorted(kept_events.values(), key=lambda e: int(e.id)):
            name = ev.account_id or "(no account id)"
            profile = profiles.setdefault(name, AccountProfile(name))
            profile.add_event(ev.at, _account_signals(ev) if "account" in sel.include else {})
        if (
            case.account_id
            and case.account_id not in profiles
            and sel.covers(case.account_id, None)
        ):
            profiles[case.account_id] = AccountProfile(case.account_id)
        for p in profiles.values():
            p.cases = [case.id]

        linked: list[AccountProfile] = []
        other_cases: list[int] = []
        related_left_out = 0
        related = self.cases.related(case.id, tenant)
        if "related" in sel.include:
            linked, other_cases = self._linked(related, sel, set(profiles))
        else:
            related_left_out = len(related)

        decisions = list(view.decisions) if "decisions" in sel.include else []
        reports = self._reports(case.id, tenant) if "reports" in sel.include else []
        referrals = self._referrals(case.id, tenant) if "referrals" in sel.include else []
        holds: list[VaultHold] = []
        requests: list[RequestInfo] = []
        if "preservation" in sel.include:
            with self.db.session() as s:
                if evidence:
                    holds = list(
                        s.scalars(
                            select(VaultHold)
                            .where(VaultHold.item_id.in_([e.id for e in evidence]))
                            .order_by(VaultHold.id)
                        )
                    )
                    for h in holds:
                        s.expunge(h)
            requests = self._requests(case.id, tenant, set(profiles), request)
        return _Gathered(
            view=view,
            tenant=tenant,
            reference=case_reference(tenant, case.id),
            selection=sel,
            request=request,
            items=items,
            items_left_out=len(view.items) - len(items),
            events=kept_events,
            evidence=evidence,
            evidence_left_out=evidence_left_out,
            profiles=list(profiles.values()),
            linked=linked,
            other_cases=other_cases,
            decisions=decisions,
            reports=reports,
            referrals=referrals,
            holds=holds,
            requests=requests,
            related_left_out=related_left_out,
        )

    def _evidence(
        self,
        case_id: int,
        tenant: str,
        sel: Selection,
        kept: Mapping[int, Event],
        all_events: Mapping[int, Event],
        request: RequestInfo | None,
    ) -> tuple[list[VaultItemInfo], int]:
        if self.vault is None:
            return [], 0
        found: dict[int, VaultItemInfo] = {}
        for item in self.vault.list_items(tenant=tenant, case_id=case_id, limit=1000):
            found[item.id] = item
        for event_id in all_events:
            for item in self.vault.list_items(tenant=tenant, event_id=event_id, limit=1000):
                found[item.id] = item
        record_prefix = f"preservation:{request.id}:events:" if request is not None else None
        if request is not None:
            for item_id in request.vault_items:
                try:
                    item = self.vault.get(item_id, tenant=tenant)
                except NotFound:
                    continue
                if item.origin and record_prefix and item.origin.startswith(record_prefix):
                    found[item.id] = item
        chosen: list[VaultItemInfo] = []
        for item in sorted(found.values(), key=lambda i: i.id):
            ok = "content" in sel.include and item.id not in sel.exclude_items
            if ok and item.origin and record_prefix and item.origin.startswith(record_prefix):
                ok = bool({"events", "account"} & sel.include)
            elif ok and item.event_id is not None:
                ok = item.event_id in kept
            elif ok:
                ok = sel.accounts is None and sel.covers(None, item.preserved_at)
            if ok:
                chosen.append(item)
        # the same content of the same event preserved twice (by the rules, then for a
        # request): the first item only
        seen: set[tuple[int | None, str]] = set()
        unique: list[VaultItemInfo] = []
        for item in chosen:
            key = (item.event_id, item.sha256)
            if item.event_id is not None and key in seen:
                continue
            seen.add(key)
            unique.append(item)
        chosen = unique
        # only the newest account-events snapshot of the request
        records = [
            i for i in chosen if i.origin and record_prefix and i.origin.startswith(record_prefix)
        ]
        if len(records) > 1:
            newest = max(records, key=lambda i: i.id)
            chosen = [i for i in chosen if i not in records or i is newest]
        return chosen, len(found) - len(chosen)

    def _linked(
        self, related: Sequence[Any], sel: Selection, own: set[str]
    ) -> tuple[list[AccountProfile], list[int]]:
        by_account: dict[str, AccountProfile] = {}
        other_cases: list[int] = []
        for info in related:
            if info.account_id is None or info.account_id in own:
                # another case of the account, or one without an account (e.g. a
                # complaint with the same file)
                other_cases.append(int(info.id))
                continue
            profile = by_account.setdefault(info.account_id, AccountProfile(info.account_id))
            profile.cases.append(int(info.id))
            for why in info.related_by:
                if why != "account" and why not in profile.related_by:
                    profile.related_by.append(why)
        if not by_account:
            return [], sorted(set(other_cases))
        with self.db.session() as s:
            for profile in by_account.values():
                event_ids = [
                    int(e)
                    for e in s.scalars(
                        select(CaseItem.event_id).where(CaseItem.case_id.in_(profile.cases))
                    )
                    if e is not None
                ][:1000]
                for ev in s.scalars(select(Event).where(Event.id.in_(event_ids))):
                    if sel.since is not None or sel.until is not None:
                        probe = Selection(sel.include, None, sel.since, sel.until)
                        if not probe.covers(None, ev.at):
                            continue
                    profile.add_event(
                        ev.at, _account_signals(ev) if "account" in sel.include else {}
                    )
        return sorted(by_account.values(), key=lambda p: p.account_id), sorted(set(other_cases))

    def _reports(self, case_id: int, tenant: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            rows = list(
                s.scalars(
                    select(Report)
                    .where(Report.case_id == case_id, Report.tenant == tenant)
                    .order_by(Report.id)
                )
            )
            urls: dict[int, list[str]] = {}
            if rows:
                for u in s.scalars(
                    select(ReportUrl)
                    .where(ReportUrl.report_id.in_([r.id for r in rows]))
                    .order_by(ReportUrl.id)
                ):
                    urls.setdefault(int(u.report_id), []).append(_clean(u.canonical, 2100))
            return [
                {
                    "number": display_number(r.number),
                    "kind": r.kind,
                    "category": r.category,
                    "source": r.source,
                    "status": r.status,
                    "received_at": _iso(r.created_at),
                    "withdrawn_at": _iso(r.withdrawn_at),
                    "platform": _clean(r.platform, 200),
                    "username": _clean(r.username, 200),
                    "urls": urls.get(int(r.id), []),
                }
                for r in rows
            ]

    def _referrals(self, case_id: int, tenant: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            return [
                {
                    "id": int(r.id),
                    "kind": r.kind,
                    "status": r.status,
                    "external_id": r.external_id,
                    "environment": r.environment,
                    "created_at": _iso(r.created_at),
                    "created_by": r.created_by,
                    "decided_at": _iso(r.decided_at),
                    "decided_by": r.decided_by,
                    "sent_at": _iso(r.sent_at),
                }
                for r in s.scalars(
                    select(Referral)
                    .where(Referral.case_id == case_id, Referral.tenant == tenant)
                    .order_by(Referral.id)
                )
            ]

    def _requests(
        self, case_id: int, tenant: str, accounts: set[str], answered: RequestInfo | None
    ) -> list[RequestInfo]:
        from safehold.refer.preservation import request_info

        with self.db.session() as s:
            q = select(PreservationRequest).where(PreservationRequest.tenant == tenant)
            if answered is not None:
                q = q.where(PreservationRequest.id == answered.id)
            else:
                q = q.where(
                    (PreservationRequest.case_id == case_id)
                    | PreservationRequest.account_id.in_(sorted(accounts) or [""])
                )
            return [request_info(r) for r in s.scalars(q.order_by(PreservationRequest.id))]

    # -- exporting

    def export(
        self,
        case_id: int,
        to_dir: str | os.PathLike[str],
        *,
        recipients: Iterable[str] | str,
        by: str,
        reason: str,
        tenant: str | None = None,
        request_id: int | None = None,
        exclude: Iterable[str] = (),
        accounts: Iterable[str] | None = None,
        since: object = None,
        until: object = None,
        exclude_items: Iterable[int] = (),
        archive: str | None = None,
        seal_archive: bool = False,
        export_id: str | None = None,
    ) -> PackageResult:
        """Write the package of ``case_id`` into ``to_dir`` (new or empty). See the
        module's documentation for what it holds; ``archive`` (``tar`` or ``zip``) also
        writes ``<to_dir>.tar`` / ``.zip`` beside it, ``seal_archive`` encrypts that to
        the recipients (``.tar.age``). Audited (``export`` on the case, ``vault_export``
        and ``vault_access`` on each evidence item) before anything is decrypted."""
        by = clean_field(by, "who (the actor)", 128)
        reason = clean_field(reason, "a reason for the export", 2000)
        sealer = AgeSealer(recipients)
        if archive is not None and archive not in ARCHIVES:
            raise InvalidValue(f"archive must be one of {', '.join(ARCHIVES)}")
        if seal_archive and archive is None:
            archive = "tar"
        export_id = check_export_id(export_id) if export_id is not None else new_export_id()
        request = None
        if request_id is not None:
            request = self.preservations.get(request_id, tenant)
            if request.status == "withdrawn":
                raise Conflict(f"preservation request {request.id} was withdrawn")
        view = self.cases.get(case_id, tenant)
        if request is not None and request.tenant != view.case.tenant:
            raise NotFound(f"no preservation request {request_id}")
        sel = self.selection(
            request=request,
            exclude=exclude,
            accounts=accounts,
            since=since,
            until=until,
            exclude_items=exclude_items,
        )
        if "content" in sel.include and self.vault is None:
            raise InvalidValue(
                "the evidence vault is not configured (SAFEHOLD_VAULT_KEY): export without "
                "the evidence (exclude content) or configure the vault"
            )
        data = self._gather(case_id, view.case.tenant, sel, request)
        dest = Path(to_dir)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise InvalidValue(f"{dest} exists and is not an empty directory")
        archive_path = self._archive_path(dest, archive, seal_archive)
        with_context = "context" in sel.include
        planned = len(data.evidence) * (2 if with_context else 1) + 4
        entry = self._audit_export(data, dest, export_id, by, reason, sealer, planned, archive)
        created = not dest.exists()
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(dest, 0o700)
        try:
            return self._write(
                data, dest, export_id, by, reason, sealer, entry, archive, archive_path
            )
        except BaseException:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            else:
                for child in list(dest.iterdir()):
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            if archive_path is not None:
                archive_path.unlink(missing_ok=True)
            raise

    @staticmethod
    def _archive_path(dest: Path, archive: str | None, seal: bool) -> Path | None:
        if archive is None:
            return None
        path = dest.with_name(dest.name + f".{archive}" + (".age" if seal else ""))
        if path.exists():
            raise InvalidValue(f"{path} exists already")
        return path

    def _audit_export(
        self,
        data: _Gathered,
        dest: Path,
        export_id: str,
        by: str,
        reason: str,
        sealer: AgeSealer,
        planned: int,
        archive: str | None,
    ) -> Any:
        sel = data.selection
        with self.db.session() as s:
            entry = self.audit.append(
                by,
                "export",
                object_type="case",
                object_id=data.view.case.id,
                details={
                    "what": "law-enforcement package",
                    "export_id": export_id,
                    "reason": reason,
                    "recipient_fingerprint": sealer.fingerprints[0],
                    "recipients": sealer.fingerprints,
                    "request_id": data.request.id if data.request else None,
                    "request_reference": data.request.reference if data.request else None,
                    "files": planned,
                    "items": [e.id for e in data.evidence],
                    "included": sorted(sel.include),
                    "left_out": sorted(set(KINDS) - sel.include),
                    "accounts": sorted(sel.accounts) if sel.accounts is not None else None,
                    "since": _iso(sel.since),
                    "until": _iso(sel.until),
                    "to": str(dest.resolve()),
                    "archive": archive,
                },
                tenant=data.tenant,
                session=s,
            )
            for item in data.evidence:
                self.audit.append(
                    by,
                    "vault_export",
                    object_type=VAULT_OBJECT,
                    object_id=item.id,
                    details={
                        "export_id": export_id,
                        "reason": reason,
                        "to": str(dest.resolve()),
                        "sha256": item.sha256,
                        "sealed_with": "age",
                        "recipients": sealer.fingerprints,
                        "case_id": data.view.case.id,
                    },
                    tenant=item.tenant,
                    session=s,
                )
        return entry

    def _write(
        self,
        data: _Gathered,
        dest: Path,
        export_id: str,
        by: str,
        reason: str,
        sealer: AgeSealer,
        entry: Any,
        archive: str | None,
        archive_path: Path | None,
    ) -> PackageResult:
        assert data.selection is not None
        sel = data.selection
        described: dict[str, str] = {}
        manifest_items: list[dict[str, Any]] = []
        if data.evidence:
            assert self.vault is not None
            (dest / "evidence").mkdir(mode=0o700)
            os.chmod(dest / "evidence", 0o700)
        for item in data.evidence:
            assert self.vault is not None
            evidence = self.vault.read(
                item.id,
                by=by,
                reason=f"law-enforcement package {export_id}: {reason}"[:2000],
                tenant=data.tenant,
            )
            content = evidence.content
            if hashlib.sha256(content).hexdigest() != item.sha256:  # pragma: no cover
                raise EvidenceDamaged(f"item {item.id}: the content's SHA-256 is not its own")
            ctx = evidence.context
            upload = ctx.get("upload") if isinstance(ctx.get("upload"), dict) else {}
            fmt = str((upload or {}).get("format") or self._format_of(item) or "").lower()
            ext = {"jpeg": "jpg"}.get(fmt, fmt)
            name = f"evidence/item-{item.id}.{ext if _EXT.fullmatch(ext) else 'bin'}.age"
            sealer.seal_bytes(content, dest / name)
            del content
            files = {"content": name}
            described[name] = f"evidence item {item.id}: the content, encrypted to the recipient"
            if "context" in sel.include:
                record = evidence.record
                if "account" not in sel.include:
                    record = _strip_account(record)
                cname = f"evidence/item-{item.id}.context.json.age"
                sealer.seal_bytes(_json_bytes(record), dest / cname)
                files["context"] = cname
                described[cname] = (
                    f"evidence item {item.id}: its preserved context, encrypted to the recipient"
                )
            manifest_items.append(
                {
                    "id": item.id,
                    "sha256": item.sha256,
                    "size": item.size,
                    "content_id": _clean(item.content_id, 256) if item.content_id else None,
                    "event_id": item.event_id,
                    "case_id": item.case_id,
                    "origin": item.origin,
                    "category": item.category,
                    "labels": list(item.labels),
                    "preserved_at": _iso(item.preserved_at),
                    "preserved_by": item.preserved_by,
                    "retain_until": _iso(item.retain_until),
                    "holds": [h.reference for h in item.holds],
                    "files": files,
                }
            )
        pdf = render_summary(
            data,
            export_id=export_id,
            by=by,
            reason=reason,
            recipients=sealer.recipients,
            created_at=entry.at,
            environ=self.environ,
            files={i["id"]: list(i["files"].values()) for i in manifest_items},
        )
        _write_private(dest / "summary.pdf", pdf)
        described["summary.pdf"] = "the human-readable summary (no content)"
        custody = self._custody(data, export_id)
        _write_private(dest / "custody.json", _json_bytes(custody))
        described["custody.json"] = "the chain of custody: audit entries with their hashes"
        listed = []
        for p in sorted(dest.rglob("*")):
            if p.is_file():
                rel = p.relative_to(dest).as_posix()
                listed.append(
                    {
                        "path": rel,
                        "sha256": file_sha256(p),
                        "size": p.stat().st_size,
                        "encrypted": rel.endswith(".age"),
                        "what": described.get(rel, ""),
                    }
                )
        manifest = self._manifest(
            data, export_id, by, reason, sealer, entry, manifest_items, listed
        )
        text = _json_bytes(manifest)
        _write_private(dest / "manifest.json", text)
        sums = (
            "".join(f"{f['sha256']}  {f['path']}\n" for f in listed)
            + f"{hashlib.sha256(text).hexdigest()}  manifest.json\n"
        )
        _write_private(dest / "SHA256SUMS", sums.encode())
        archive_sha = None
        if archive is not None and archive_path is not None:
            archive_sha = self._archive(dest, archive, archive_path, sealer)
        return PackageResult(
            path=dest,
            export_id=export_id,
            case_id=data.view.case.id,
            tenant=data.tenant,
            items=[e.id for e in data.evidence],
            files=listed,
            manifest_sha256=hashlib.sha256(text).hexdigest(),
            archive=archive_path,
            archive_sha256=archive_sha,
            request_id=data.request.id if data.request else None,
            recipients=sealer.fingerprints,
        )

    def _format_of(self, item: VaultItemInfo) -> str | None:
        if item.event_id is None:
            return None
        with self.db.session() as s:
            media_id = s.scalar(select(Event.media_id).where(Event.id == item.event_id))
            if media_id is None:
                return None
            return s.scalar(select(Media.format).where(Media.id == media_id))

    def _custody(self, data: _Gathered, export_id: str) -> dict[str, Any]:
        ids = [str(e.id) for e in data.evidence]
        request_ids = [str(r.id) for r in data.requests] if data.request else []
        with self.db.session() as s:
            cond = (AuditEntry.object_type == "vault") & (AuditEntry.action == "vault_rotate")
            if ids:
                cond = cond | (
                    (AuditEntry.object_type == VAULT_OBJECT) & AuditEntry.object_id.in_(ids)
                )
            if request_ids:
                cond = cond | (
                    (AuditEntry.object_type == PRESERVATION_OBJECT)
                    & AuditEntry.object_id.in_(request_ids)
                )
            cond = cond | (
                (AuditEntry.object_type == "case")
                & (AuditEntry.object_id == str(data.view.case.id))
                & (AuditEntry.action == "export")
            )
            rows = s.scalars(select(AuditEntry).where(cond).order_by(AuditEntry.id)).all()
            entries = [
                entry_info(r).to_dict()
                for r in rows
                if r.tenant == data.tenant
                and (
                    r.action != "export"
                    or (isinstance(r.details, dict) and r.details.get("export_id") == export_id)
                )
            ]
        last_id, last_hash, _count = self.audit.head()
        chain = self.audit.verify()
        return {
            "format": "safehold-custody",
            "version": 1,
            "export_id": export_id,
            "case_id": data.view.case.id,
            "items": [e.id for e in data.evidence],
            "entries": entries,
            "audit_head": {"last_id": last_id, "last_hash": last_hash},
            "audit_verified": chain.to_dict(),
            "hash": (
                "each entry's hash is sha256(prev_hash + '\\n' + canonical JSON of id, at, "
                "tenant, actor, action, object_type, object_id, details, prev_hash) with sorted "
                "keys and no whitespace; entries with consecutive ids chain by prev_hash; the "
                "whole log is checked with `safehold audit verify` against audit_head"
            ),
        }

    def _manifest(
        self,
        data: _Gathered,
        export_id: str,
        by: str,
        reason: str,
        sealer: AgeSealer,
        entry: Any,
        items: list[dict[str, Any]],
        files: list[dict[str, Any]],
    ) -> dict[str, Any]:
        case = data.view.case
        req = data.request
        return {
            "format": FORMAT,
            "version": VERSION,
            "export_id": export_id,
            "created_at": _iso(entry.at),
            "created_by": by,
            "reason": reason,
            "tenant": data.tenant,
            "case": {
                "id": case.id,
                "reference": data.reference,
                "kind": case.kind,
                "state": case.state,
                "queue": case.queue,
                "labels": list(case.labels),
                "account_id": case.account_id
                if data.selection.accounts is None or case.account_id in data.selection.accounts
                else None,
                "opened_at": _iso(case.created_at),
                "ncmec_report_id": self._ncmec_id(case.id)
                if "referrals" in data.selection.include
                else None,
            },
            "request": {
                "id": req.id,
                "reference": req.reference,
                "authority": req.authority,
                "account_id": req.account_id,
                "scope": req.scope.to_json(),
                "received_at": _iso(req.received_at),
                "deadline_at": _iso(req.deadline_at),
            }
            if req is not None
            else None,
            "recipient_fingerprint": sealer.fingerprints[0],
            "recipients": [r.to_dict() for r in sealer.recipients],
            "sealed_with": "age",
            "audit_entry": {"id": entry.id, "hash": entry.hash},
            "items": items,
            "files": files,
            "data_minimisation": minimisation(data),
            "how_to_check": [
                "sha256sum -c SHA256SUMS",
                "age -d -i KEY_FILE evidence/item-N.EXT.age > item-N.EXT; sha256sum item-N.EXT "
                "(compare with items[].sha256)",
                "the custody entries' hashes: see custody.json 'hash'",
            ],
        }

    def _ncmec_id(self, case_id: int) -> str | None:
        with self.db.session() as s:
            return s.scalar(select(Case.ncmec_report_id).where(Case.id == case_id))

    def _archive(self, dest: Path, kind: str, path: Path, sealer: AgeSealer) -> str:
        sealed = path.name.endswith(".age")
        target = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp") if sealed else path
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as raw:
                if kind == "tar":
                    with tarfile.open(fileobj=raw, mode="w") as tar:
                        for p in [dest, *sorted(dest.rglob("*"))]:
                            info = tar.gettarinfo(
                                str(p), arcname=str(Path(dest.name) / p.relative_to(dest))
                            )
                            info.uid = info.gid = 0
                            info.uname = info.gname = ""
                            info.mode = 0o700 if p.is_dir() else 0o600
                            if p.is_file():
                                with open(p, "rb") as f:
                                    tar.addfile(info, f)
                            else:
                                tar.addfile(info)
                else:
                    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
                        for p in sorted(dest.rglob("*")):
                            if p.is_file():
                                zf.write(p, str(Path(dest.name) / p.relative_to(dest)))
            if sealed:
                sealer.seal_file(target, path)
        finally:
            if sealed:
                target.unlink(missing_ok=True)
        return file_sha256(path)


# --------------------------------------------------------------------------- minimisation


def minimisation(data: _Gathered) -> dict[str, Any]:
    """What the package includes and leaves out, and why (the manifest's statement)."""
    sel = data.selection
    req = data.request
    included = [{"kind": k, "what": KINDS[k]} for k in KINDS if k in sel.include]
    left_out: list[dict[str, str]] = []
    for k in KINDS:
        if k in sel.include:
            continue
        if req is not None and not any(k in REQUEST_KINDS[x] for x in req.scope.kinds):
            why = f"not named by the scope of preservation request {req.reference}"
        else:
            why = "left out by the person who made the package"
        left_out.append({"what": f"{k}: {KINDS[k]}", "why": why})
    if data.items_left_out:
        left_out.append(
            {
                "what": f"{data.items_left_out} of the case's {len(data.view.items)} content "
                "items (and their events)",
                "why": _outside(sel, req),
            }
        )
    if data.evidence_left_out:
        left_out.append(
            {
                "what": f"{data.evidence_left_out} preserved evidence items of the case",
                "why": "outside the selection (content left out, another account or date, an "
                "item left out by name, or an older snapshot of the account's records)",
            }
        )
    if data.related_left_out:
        left_out.append(
            {
                "what": f"{data.related_left_out} related cases (other accounts or other cases "
                "of the account)",
                "why": "the suspect profile beyond the case's own account was left out"
                + (f" (request {req.reference} names one account)" if req else ""),
            }
        )
    left_out += [{"what": k, "why": v} for k, v in ALWAYS_LEFT_OUT.items()]
    scope = (
        f"the scope of preservation request {req.reference} from {req.authority} "
        f"({req.scope.describe()}, account {req.account_id})"
        if req is not None
        else "what the person who made it chose"
    )
    statement = (
        f"This package holds only what case {data.reference} holds, limited to {scope}. "
        "Content appears only in the evidence files, encrypted to the recipient; the summary "
        "never shows it. Everything left out is listed with the reason."
    )
    return {
        "statement": statement,
        "selection": sel.to_dict(),
        "included": included,
        "left_out": left_out,
        "counts": {
            "content_items": len(data.items),
            "evidence_files": len(data.evidence),
            "accounts": len(data.profiles),
            "linked_accounts": len(data.linked),
            "decisions": len(data.decisions),
            "reports": len(data.reports),
            "referrals": len(data.referrals),
        },
    }


def _outside(sel: Selection, req: RequestInfo | None) -> str:
    parts = []
    if sel.accounts is not None:
        parts.append("of another account than " + ", ".join(sorted(sel.accounts)))
    if sel.since is not None or sel.until is not None:
        parts.append(
            f"outside {sel.since.date().isoformat() if sel.since else 'the beginning'} to "
            f"{sel.until.date().isoformat() if sel.until else 'now'}"
        )
    why = " or ".join(parts) or "outside the selection"
    return why + (f" (the scope of preservation request {req.reference})" if req else "")


# --------------------------------------------------------------------------- the summary


class _SummaryPdf(FPDF):
    """A4, the case reference in every page's header, page numbers in the footer."""

    def __init__(self, reference: str, export_id: str, environ: Mapping[str, str]) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.reference = reference
        self.export_id = export_id
        self._family = "Helvetica"
        self.unicode = False
        self._cmap: set[int] = set()
        fonts = _font_files(environ)
        if fonts is not None:
            regular, bold = fonts
            try:
                self.add_font("SafeholdSans", "", str(regular))
                self.add_font("SafeholdSans", "B", str(bold or regular))
                self._family = "SafeholdSans"
                self.unicode = True
                font = self.fonts["safeholdsans"]
                self._cmap = set(getattr(font, "cmap", {}) or {})
            except Exception as e:  # a broken font file: the core fonts still work
                log.warning("the PDF font %s cannot be used (%s): using the core fonts", regular, e)
                self._family, self.unicode = "Helvetica", False
        self.set_margins(15, 18, 15)
        self.set_auto_page_break(True, margin=16)
        self.alias_nb_pages()
        self.set_title(self.clean(f"Law-enforcement package {reference}"))
        self.set_creator("safehold")
        self.set_subject(self.clean(f"Case {reference}, package {export_id}"))

    def clean(self, value: object) -> str:
        """Safe text for the current font: no control or bidi-override characters, and
        only characters the font has (``?`` else; Latin-1 transliteration for the core
        fonts)."""
        raw = "" if value is None else str(value)
        lines = [_HIDDEN.sub(" ", unicodedata.normalize("NFC", line)) for line in raw.split("\n")]
        clean = "\n".join(lines)
        if not self.unicode:
            return transliterate(clean)
        return "".join(c if c == "\n" or ord(c) in self._cmap else "?" for c in clean)

    def header(self) -> None:
        self.set_font(self._family, "", 8)
        self.set_text_color(90, 90, 90)
        half = (self.w - self.l_margin - self.r_margin) / 2
        self.cell(half, 5, self.clean("Law-enforcement package · CONFIDENTIAL"))
        self.cell(
            half,
            5,
            self.clean(f"Case {self.reference}"),
            align="R",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        self.set_draw_color(160, 160, 160)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(3)
        self.set_text_color(0, 0, 0)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self._family, "", 8)
        self.set_text_color(90, 90, 90)
        self.cell(
            0,
            5,
            self.clean(
                f"Case {self.reference} · package {self.export_id} · "
                f"page {self.page_no()} of {{nb}}"
            ),
            align="C",
        )
        self.set_text_color(0, 0, 0)

    def h1(self, value: str) -> None:
        self.set_font(self._family, "B", 16)
        self.multi_cell(0, 8, self.clean(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(2)

    def h2(self, value: str) -> None:
        if self.get_y() > self.h - 45:
            self.add_page()
        self.ln(3)
        self.set_font(self._family, "B", 12)
        self.multi_cell(0, 6, self.clean(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1)
        self.set_font(self._family, "", 9)

    def para(self, value: str, size: float = 9) -> None:
        self.set_font(self._family, "", size)
        self.multi_cell(0, 4.6, self.clean(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.ln(1)

    def pairs(self, rows: Sequence[tuple[str, str]]) -> None:
        self.table_of(None, rows, (42, 138))

    def table_of(
        self,
        headings: Sequence[str] | None,
        rows: Sequence[Sequence[str]],
        widths: Sequence[float],
    ) -> None:
        if not rows:
            self.para("None.")
            return
        self.set_font(self._family, "", 8.5)
        with self.table(
            col_widths=tuple(widths),
            text_align="LEFT",
            line_height=4.4,
            first_row_as_headings=headings is not None,
            headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235)),
            borders_layout="HORIZONTAL_LINES",
            padding=1,
        ) as table:
            if headings is not None:
                row = table.row()
                for h in headings:
                    row.cell(self.clean(h))
            for values in rows:
                row = table.row()
                for v in values:
                    row.cell(self.clean(v))
        self.ln(2)


def _font_files(environ: Mapping[str, str]) -> tuple[Path, Path | None] | None:
    """The Unicode TTF font for the summary (``SAFEHOLD_PDF_FONT``, default DejaVu Sans
    from Debian's ``fonts-dejavu-core``) and its bold face; ``None``: the PDF core fonts
    (``SAFEHOLD_PDF_FONT=core``, or no such file)."""
    value = environ.get(PDF_FONT_ENV, "").strip()
    if value.lower() == "core":
        return None
    regular = Path(value) if value else Path(DEFAULT_FONT)
    if not regular.is_file():
        if value:
            log.warning(
                "%s=%s is not a file: the summary uses the PDF core fonts", PDF_FONT_ENV, value
            )
        return None
    bold = regular.with_name(f"{regular.stem}-Bold{regular.suffix}")
    return regular, bold if bold.is_file() else None


MAX_TIMELINE = 2000


def _labels_text(labels: Iterable[str]) -> str:
    from safehold.taxonomy import LABELS

    out = []
    for name in labels:
        label = LABELS.get(name)
        out.append(f"{name} ({label.title})" if label else name)
    return ", ".join(out) or "-"


def _match_text(m: Mapping[str, Any]) -> str:
    labels = " ".join(str(x) for x in m.get("labels") or []) or "no label"
    parts = [
        f"bank {_clean(m.get('bank'), 64)}",
        labels,
        f"source {_clean(m.get('source'), 64)}",
    ]
    if m.get("signal_type") is not None:
        parts.append(f"{_clean(m.get('signal_type'), 16)} distance {_clean(m.get('distance'), 8)}")
    if m.get("external_id"):
        parts.append(f"entry {_clean(m.get('external_id'), 64)}")
    return " · ".join(parts)


def _timeline(data: _Gathered, export_id: str, created_at: datetime, by: str) -> _Timeline:
    t = _Timeline()
    sel = data.selection
    case = data.view.case
    t.add(
        case.created_at, "Case opened", f"queue {case.queue}; labels {' '.join(case.labels) or '-'}"
    )
    for item in data.items:
        ev = data.events.get(item.event_id) if item.event_id is not None else None
        labels = sorted({str(x) for m in item.matches for x in m.get("labels") or []})
        if ev is not None and "events" in sel.include:
            rules = ", ".join(str(r) for r in ev.rules or []) or "none"
            t.add(
                ev.at,
                "Scan",
                f"content {_clean(ev.content_id, 120) or '-'} of account "
                f"{_clean(ev.account_id, 120) or '-'}: {ev.decision}; rules {rules}; "
                f"matched {' '.join(labels) or '-'} (event {ev.id})",
            )
        else:
            t.add(
                item.added_at,
                "Content added",
                f"content {_clean(item.content_id, 120) or '-'}; matched {' '.join(labels) or '-'}",
            )
    for d in data.decisions:
        t.add(
            d.at,
            "Decision",
            f"{d.action} {d.label or ''} by {d.user or '-'} ({d.status}): {_clean(d.reason, 500)}",
        )
        if d.confirmed_at is not None:
            verb = "rejected" if d.status == "rejected" else "confirmed"
            t.add(d.confirmed_at, f"Decision {verb}", f"by {d.confirmed_by or '-'}")
    for r in data.reports:
        t.add(
            parse_when(r["received_at"], "report"),
            "Report received",
            f"{r['number']} ({r['category']}) from {r['source']}",
        )
    for r in data.referrals:
        t.add(
            parse_when(r["created_at"], "referral"),
            "Referral proposed",
            f"{r['kind']} by {r['created_by']}",
        )
        if r["decided_at"]:
            t.add(
                parse_when(r["decided_at"], "referral"),
                f"Referral {r['status']}",
                f"by {r['decided_by'] or '-'}",
            )
        if r["sent_at"]:
            t.add(
                parse_when(r["sent_at"], "referral"),
                "Referral sent",
                f"{r['kind']} report {r['external_id'] or '-'}",
            )
    if "preservation" in sel.include:
        for e in data.evidence:
            t.add(
                e.preserved_at,
                "Evidence preserved",
                f"item {e.id} ({' '.join(e.labels) or e.category}) by {e.preserved_by}; kept until "
                f"{_when(e.retain_until)}",
            )
        for h in data.holds:
            t.add(
                h.held_at,
                "Legal hold",
                f"item {h.item_id}: {_clean(h.reference, 200)} by {h.held_by}",
            )
            if h.released_at is not None:
                t.add(
                    h.released_at,
                    "Legal hold released",
                    f"item {h.item_id}: {_clean(h.reference, 200)} by {h.released_by or '-'}",
                )
        for req in data.requests:
            deadline = _when(req.deadline_at) if req.deadline_at else "none"
            t.add(
                req.received_at,
                "Preservation request",
                f"{req.reference} from {req.authority} for account {req.account_id}; deadline "
                f"{deadline}",
            )
            if req.closed_at is not None:
                t.add(req.closed_at, f"Request {req.status}", req.reference)
    t.add(created_at, "Package exported", f"{export_id} by {by}")
    return t


def _values_text(values: Mapping[str, int], unit: str = "event") -> str:
    if not values:
        return "-"
    return "\n".join(f"{v} ({n} {unit}{'' if n == 1 else 's'})" for v, n in values.items())


def render_summary(
    data: _Gathered,
    *,
    export_id: str,
    by: str,
    reason: str,
    recipients: Sequence[Recipient],
    created_at: datetime,
    environ: Mapping[str, str] | None = None,
    files: Mapping[int, Sequence[str]] | None = None,
) -> bytes:
    """The package's ``summary.pdf``: A4, the case reference and page numbers on every
    page, text only (never an image of the content)."""
    env = os.environ if environ is None else environ
    pdf = _SummaryPdf(data.reference, export_id, env)
    pdf.add_page()
    case = data.view.case
    sel = data.selection
    req = data.request
    pdf.h1(f"Law-enforcement package: case {data.reference}")
    pdf.para(
        "This summary describes a case and the evidence that comes with it. It never shows "
        "the content: the content is only in the evidence files, encrypted to the "
        "recipient's age key. What was left out, and why, is listed under Data minimisation."
    )
    answers = "-"
    if req is not None:
        answers = (
            f"{req.reference} from {req.authority}: account {req.account_id}; scope "
            f"{req.scope.describe()}; received {_when(req.received_at)}; deadline "
            f"{_when(req.deadline_at) if req.deadline_at else 'none'}"
        )
    pdf.pairs(
        [
            ("Case", f"{data.reference} (case {case.id} of tenant {data.tenant})"),
            ("Kind, state", f"{case.kind}, {case.state} (queue {case.queue})"),
            ("Labels", _labels_text(case.labels)),
            ("Opened", _when(case.created_at)),
            ("Package", export_id),
            ("Made", f"{_when(created_at)} by {by}"),
            ("Reason", reason),
            ("Recipient", "\n".join(f"{r.fingerprint}\n{r.public_key}" for r in recipients)),
            ("Answers request", answers),
            ("Evidence files", str(len(data.evidence))),
        ]
    )

    pdf.h2("Timeline")
    rows = [
        (_short(at), what, details)
        for at, what, details in _timeline(data, export_id, created_at, by).sorted()
    ]
    if len(rows) > MAX_TIMELINE:
        rows = rows[:MAX_TIMELINE]
        pdf.para(
            f"The first {MAX_TIMELINE} entries; the manifest and custody record hold the rest."
        )
    pdf.table_of(("When (UTC)", "What", "Details"), rows, (29, 34, 117))

    pdf.h2("Accounts")
    pdf.table_of(
        ("Account", "Events", "First seen (UTC)", "Last seen (UTC)"),
        [
            (p.account_id, str(p.events), _short(p.first_seen), _short(p.last_seen))
            for p in data.profiles
        ],
        (80, 20, 40, 40),
    )

    pdf.h2("Suspect profile")
    if "account" not in sel.include:
        pdf.para(
            "Account signals (IP addresses, devices, linked ids, profile images) were left out."
        )
    for p in data.profiles:
        pdf.para(f"Account {p.account_id}", size=10)
        if "account" in sel.include:
            pdf.pairs(
                [
                    ("IP addresses", _values_text(p.ips)),
                    ("Devices", _values_text(p.devices)),
                    ("Linked by the platform", _values_text(p.linked)),
                    ("Profile images", _values_text(p.profile_images)),
                    (
                        "Other signals",
                        "\n".join(f"{k}: {v}" for k, v in list(p.other.items())[:60]) or "-",
                    ),
                ]
            )
    if "related" in sel.include:
        pdf.para(
            "Linked accounts: other accounts in related cases (the same SHA-256 or PDQ).", size=9
        )
        own_ips = {ip for p in data.profiles for ip in p.ips}
        own_devices = {d for p in data.profiles for d in p.devices}
        own_images = {i for p in data.profiles for i in p.profile_images}
        linked_rows = []
        for p in data.linked:
            shared = [
                *(f"IP {ip}" for ip in p.ips if ip in own_ips),
                *(f"device {d}" for d in p.devices if d in own_devices),
                *(f"profile image {i}" for i in p.profile_images if i in own_images),
            ]
            linked_rows.append(
                (
                    p.account_id,
                    ", ".join(p.related_by) or "-",
                    ", ".join(str(c) for c in p.cases),
                    "\n".join(shared) or "-",
                    "\n".join([*p.ips, *p.devices][:40]) or "-",
                )
            )
        pdf.table_of(
            ("Account", "Related by", "Cases", "Shared with the suspect", "IPs and devices"),
            linked_rows,
            (38, 22, 20, 50, 50),
        )
        if data.other_cases:
            pdf.para(
                "Other related cases (of the same account, or without an account, e.g. "
                "complaints with the same file): " + ", ".join(str(c) for c in data.other_cases)
            )
    else:
        pdf.para("Related cases and linked accounts were left out.")

    pdf.h2("Matches and labels")
    match_rows = []
    for item in data.items:
        hashes = f"sha256 {item.sha256 or '-'}" + (f"\npdq {item.pdq}" if item.pdq else "")
        matches = "\n".join(_match_text(m) for m in item.matches) or "no match"
        match_rows.append((f"{item.id}", _clean(item.content_id, 200) or "-", hashes, matches))
    pdf.table_of(("Item", "Content id", "Hashes", "Matches"), match_rows, (12, 38, 62, 68))

    pdf.h2("Evidence files")
    pdf.para(
        "Each file is encrypted to the recipient with age. After decrypting, its SHA-256 must "
        "be the one below (the content as it was preserved)."
    )
    pdf.table_of(
        ("Item", "File", "SHA-256 of the content", "Labels"),
        [
            (
                str(e.id),
                "\n".join((files or {}).get(e.id) or [f"evidence/item-{e.id}.*.age"]),
                f"{e.sha256}\n{e.size:,} bytes",
                " ".join(e.labels) or e.category,
            )
            for e in data.evidence
        ],
        (12, 46, 90, 32),
    )

    if "decisions" in sel.include:
        pdf.h2("Decisions")
        pdf.table_of(
            ("When (UTC)", "Decision", "By", "Reason"),
            [
                (
                    _short(d.at),
                    f"{d.action} {d.label or ''} ({d.status})",
                    f"{d.user or '-'}"
                    + (
                        f", {'rejected' if d.status == 'rejected' else 'confirmed'} by "
                        f"{d.confirmed_by}"
                        if d.confirmed_by
                        else ""
                    ),
                    _clean(d.reason, 1000),
                )
                for d in data.decisions
            ],
            (30, 40, 40, 70),
        )
    if "reports" in sel.include:
        pdf.h2("Reports")
        pdf.table_of(
            ("Report", "Received (UTC)", "Category, source", "Where"),
            [
                (
                    r["number"],
                    _short(parse_when(r["received_at"], "report")),
                    f"{r['category']}, {r['source']} ({r['status']})",
                    "\n".join(
                        x
                        for x in [
                            f"platform {r['platform']}" if r["platform"] else "",
                            f"user {r['username']}" if r["username"] else "",
                            *r["urls"][:20],
                        ]
                        if x
                    )
                    or "-",
                )
                for r in data.reports
            ],
            (28, 30, 42, 80),
        )
    if "referrals" in sel.include:
        pdf.h2("Referrals")
        pdf.table_of(
            ("Referral", "Status", "Report id", "Sent"),
            [
                (
                    f"{r['id']} ({r['kind']})",
                    r["status"],
                    r["external_id"] or "-",
                    _when(parse_when(r["sent_at"], "sent")) if r["sent_at"] else "-",
                )
                for r in data.referrals
            ],
            (40, 40, 50, 50),
        )
    if "preservation" in sel.include:
        pdf.h2("Preservation")
        pdf.table_of(
            ("Request", "Authority", "Account", "Status, deadline"),
            [
                (
                    f"{r.reference} (#{r.id})",
                    r.authority,
                    r.account_id,
                    f"{r.status}; deadline {_when(r.deadline_at) if r.deadline_at else 'none'}",
                )
                for r in data.requests
            ],
            (45, 45, 45, 45),
        )
        active = [h for h in data.holds if h.released_at is None]
        pdf.para(
            f"{len(data.evidence)} evidence items; {len(active)} active legal holds: "
            + (", ".join(sorted({_clean(h.reference, 200) for h in active})) or "none")
        )

    pdf.h2("Data minimisation")
    statement = minimisation(data)
    pdf.para(statement["statement"])
    pdf.table_of(
        ("Included", ""), [(i["kind"], i["what"]) for i in statement["included"]], (30, 150)
    )
    pdf.table_of(
        ("Left out", "Why"), [(i["what"], i["why"]) for i in statement["left_out"]], (90, 90)
    )

    pdf.h2("Checking this package")
    pdf.para(
        "1. sha256sum -c SHA256SUMS checks every file. Compare the SHA-256 of manifest.json "
        "with the one the sender gave you by another channel.\n"
        "2. age -d -i YOUR_KEY_FILE evidence/item-N.EXT.age > item-N.EXT decrypts an "
        "evidence file; its SHA-256 must be the item's in the manifest (and above).\n"
        "3. custody.json holds the audit entries of the evidence, the request and this "
        "export, each with its hash: sha256(prev_hash + newline + canonical JSON of the "
        "entry); the sender can check the whole chain with `safehold audit verify`."
    )
    return bytes(pdf.output())


# --------------------------------------------------------------------------- checking


def _check_custody(custody: Mapping[str, Any], problems: list[str]) -> list[dict[str, Any]]:
    entries = [e for e in custody.get("entries") or [] if isinstance(e, dict)]
    problems.extend(check_exported(entries))
    return entries


def verify_package(
    path: str | os.PathLike[str], identities: Iterable[str] | str | None = None
) -> PackageCheck:
    """Check a package: every file against the manifest (nothing missing, changed or
    added), ``SHA256SUMS``, the custody entries' hashes and that every evidence item has
    its preservation and this export in them; with ``identities`` (age secret keys,
    ``AGE-SECRET-KEY-1…``) also decrypt every evidence file (in memory) and compare its
    SHA-256 with the manifest's."""
    root = Path(path)
    problems: list[str] = []
    try:
        manifest_bytes = (root / "manifest.json").read_bytes()
        manifest = json.loads(manifest_bytes)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return PackageCheck(False, [f"manifest.json cannot be read: {e}"], 0, 0)
    if manifest.get("format") != FORMAT:
        problems.append(f"manifest.json is not a {FORMAT} manifest")
    listed: dict[str, dict[str, Any]] = {}
    for f in manifest.get("files") or []:
        rel = str(f.get("path"))
        listed[rel] = f
        p = root / rel
        if not p.is_file():
            problems.append(f"{rel}: listed in the manifest but missing")
        elif file_sha256(p) != f.get("sha256") or p.stat().st_size != f.get("size"):
            problems.append(f"{rel}: its SHA-256 is not the manifest's (it was changed)")
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in listed and rel not in ("manifest.json", "SHA256SUMS"):
            problems.append(f"{rel}: not listed in the manifest (it was added)")
    sums: dict[str, str] = {}
    try:
        for line in (root / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
            digest, sep, name = line.partition("  ")
            if sep and name:
                sums[name] = digest
    except OSError as e:
        problems.append(f"SHA256SUMS cannot be read: {e}")
    for rel in [*listed, "manifest.json"]:
        p = root / rel
        if rel not in sums:
            problems.append(f"SHA256SUMS: {rel} is not in it")
        elif p.is_file() and file_sha256(p) != sums[rel]:
            problems.append(f"SHA256SUMS: {rel} does not match")
    for rel in sums:
        if rel not in listed and rel != "manifest.json":
            problems.append(f"SHA256SUMS: {rel} is not a file of the package")
    entries: list[dict[str, Any]] = []
    try:
        custody = json.loads((root / "custody.json").read_text(encoding="utf-8"))
        entries = _check_custody(custody if isinstance(custody, dict) else {}, problems)
    except (OSError, ValueError) as e:
        problems.append(f"custody.json cannot be read: {e}")
    export_id = manifest.get("export_id")
    audit_entry = manifest.get("audit_entry") or {}
    if not any(
        e.get("action") == "export" and e.get("hash") == audit_entry.get("hash") for e in entries
    ):
        problems.append("custody: the export's own audit entry is missing")
    keys = []
    if identities is not None:
        raw = [identities] if isinstance(identities, str) else list(identities)
        try:
            keys = [pyrage.x25519.Identity.from_str(i.strip()) for i in raw]
        except Exception:
            return PackageCheck(
                False,
                [*problems, "an identity is not an age secret key"],
                len(listed),
                len(entries),
            )
    decrypted = 0
    for item in manifest.get("items") or []:
        iid = str(item.get("id"))
        actions = {
            (e.get("action"), (e.get("details") or {}).get("export_id"))
            for e in entries
            if e.get("object_type") == VAULT_OBJECT and str(e.get("object_id")) == iid
        }
        if not any(a == "vault_preserve" for a, _ in actions):
            problems.append(f"custody: item {iid} has no vault_preserve entry")
        if ("vault_export", export_id) not in actions:
            problems.append(f"custody: item {iid} has no vault_export entry of {export_id}")
        if keys:
            files = item.get("files") or {}
            for what, rel in files.items():
                try:
                    plain = pyrage.decrypt((root / str(rel)).read_bytes(), keys)
                except Exception:
                    problems.append(f"{rel}: does not decrypt with the identity given")
                    continue
                decrypted += 1
                if what == "content" and hashlib.sha256(plain).hexdigest() != item.get("sha256"):
                    problems.append(f"{rel}: decrypted, its SHA-256 is not item {iid}'s")
                if what == "context":
                    try:
                        json.loads(plain)
                    except ValueError:
                        problems.append(f"{rel}: decrypted, it is not JSON")
                del plain
    return PackageCheck(not problems, problems, len(listed), len(entries), decrypted)


__all__ = [
    "ALWAYS_LEFT_OUT",
    "ARCHIVES",
    "EXPORT_DIR_ENV",
    "FORMAT",
    "KINDS",
    "PDF_FONT_ENV",
    "REQUEST_KINDS",
    "AccountProfile",
    "AgeSealer",
    "PackageCheck",
    "PackageResult",
    "Packages",
    "Recipient",
    "Selection",
    "case_reference",
    "check_export_id",
    "default_export_root",
    "export_root",
    "file_sha256",
    "fingerprint_of",
    "minimisation",
    "new_export_id",
    "parse_recipient",
    "parse_recipients",
    "render_summary",
    "transliterate",
    "verify_package",
]

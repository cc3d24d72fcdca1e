"""The evidence vault: reported content and its context, encrypted at rest, kept for
its retention period (or while a legal hold lasts), with a chain of custody.

Storage
    Content is **content-addressed** by the SHA-256 of its plaintext: one encrypted
    *blob* per tenant and digest, in the vault directory (``SAFEHOLD_VAULT_DIR``,
    default ``safehold-vault/`` next to a SQLite database, else in the working
    directory; directory 0700, files 0600) under a random name
    (``blobs/ab/<uid>.vault``: the file name says nothing about the content). Each
    preservation is an *item*: the blob plus its context (signals, matches, the account
    data the platform sent, upload metadata, timestamps, the event and case ids),
    sealed in the database. The same content preserved twice is one blob with two items.

Encryption
    AES-256-GCM throughout (``cryptography``). Every blob and every item has a fresh
    random **data key**; data keys are wrapped (AES-256-GCM, the master key id and the
    data key's id as associated data) by the **master key** from the configuration
    (``SAFEHOLD_VAULT_KEY``: base64 of 32 bytes, or ``SAFEHOLD_VAULT_KEY_FILE``: a file
    of mode 0600 holding it). The master key is never stored; the database only knows
    its id (``mk_`` + 16 hex digits of a SHA-256 over the key).

    A blob file is ``SHVAULT1 | uid (16 bytes) | chunk size (4) | nonce prefix (7)``
    followed by 1 MiB chunks, each sealed with the nonce ``prefix | chunk number (4) |
    last (1)`` and the associated data ``header | SHA-256 of the plaintext`` (the STREAM
    construction: chunks cannot be reordered, dropped or cut off). An item's sealed
    record is ``nonce | ciphertext | tag`` with the associated data
    ``safehold-vault/v1/item/<item id>/<sha256>``; it holds a copy of the item's plain
    columns, which :meth:`EvidenceVault.verify` compares with the row.

Key rotation
    :meth:`EvidenceVault.rotate` re-wraps every data key under a new master key (the
    content is not re-encrypted); the old key is needed until it is done, then never.

Retention and holds
    An item is kept for ``SAFEHOLD_VAULT_RETENTION_DAYS`` (default 365: the REPORT Act's
    one year), or what ``SAFEHOLD_VAULT_RETENTION`` sets for its category (``csam``,
    ``ncii``, ``other``) or one of its labels (``csam=365,ncii=90,A1=730``; the longest
    that applies wins, and a rule's ``preserve: {days}`` can only lengthen it). The date
    is fixed when the item is preserved. A **legal hold** keeps an item past that date
    until every hold on it is released. :meth:`EvidenceVault.expire` (a periodic job)
    deletes items past retention and not held — the sealed context and its key, and the
    blob, its key and its file when no other item uses them — and leaves a tombstone in
    the audit log.

Custody
    Every preservation, access (a reason is required), export (a reason is required),
    hold, release, expiry and rotation is an entry of the hash-chained audit log
    (:class:`safehold.audit.AuditLog`). :meth:`EvidenceVault.export` writes a bundle:
    the decrypted files, ``manifest.json`` with the SHA-256 of every file, and
    ``custody.json`` with the audit entries of its items and their hashes
    (:func:`verify_bundle` checks a bundle).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safehold.audit import (
    AuditEntryInfo,
    AuditLog,
    VerifyResult,
    canonical_json,
    check_exported,
    entry_info,
)
from safehold.banks.entries import DEFAULT_TENANT, check_tenant
from safehold.errors import InvalidValue, NotFound, SafeholdError, UnknownLabel, preview
from safehold.jobs import JobContext, job
from safehold.store.db import Database
from safehold.store.models import (
    AuditEntry,
    VaultBlob,
    VaultHold,
    VaultItem,
    VaultKey,
    VaultMasterKey,
    utcnow,
)
from safehold.taxonomy import expand, normalize_label, validate_labels

log = logging.getLogger("safehold.vault")

KEY_ENV = "SAFEHOLD_VAULT_KEY"
KEY_FILE_ENV = "SAFEHOLD_VAULT_KEY_FILE"
DIR_ENV = "SAFEHOLD_VAULT_DIR"
RETENTION_DAYS_ENV = "SAFEHOLD_VAULT_RETENTION_DAYS"
RETENTION_ENV = "SAFEHOLD_VAULT_RETENTION"

DEFAULT_RETENTION_DAYS = 365
MAX_RETENTION_DAYS = 36500
CATEGORIES = ("csam", "ncii", "other")

MAGIC = b"SHVAULT1"
CHUNK = 1 << 20
MAX_CHUNK = 64 << 20
TAG = 16
HEADER_LEN = len(MAGIC) + 16 + 4 + 7
MAX_CONTEXT_BYTES = 1 << 20
STRAY_GRACE_SECONDS = 60
"""A file younger than this without a blob row may be a preservation in flight."""

_SHA256 = re.compile(r"[0-9a-f]{64}")
_EXT = re.compile(r"[a-z0-9]{1,8}")

AUDIT_OBJECT = "vault_item"
ACTIONS = (
    "vault_preserve",
    "vault_access",
    "vault_export",
    "vault_hold",
    "vault_release",
    "vault_expire",
    "vault_rotate",
    "vault_verify",
)
"""The audit actions the vault records."""


# --------------------------------------------------------------------------- errors


class VaultError(SafeholdError):
    """The evidence vault cannot do what was asked."""

    code = "vault_error"
    status = 500


class VaultKeyError(VaultError):
    """The master key is missing, malformed, not this vault's, or retired."""

    code = "vault_key"


class VaultNotConfigured(VaultKeyError):
    code = "vault_not_configured"


class EvidenceDamaged(VaultError):
    """Stored evidence does not authenticate: it (or its record) was changed."""

    code = "evidence_damaged"


# --------------------------------------------------------------------------- master keys


def key_id_of(secret: bytes) -> str:
    """The id of a master key: ``mk_`` + 16 hex digits of a SHA-256 over it."""
    return "mk_" + hashlib.sha256(b"safehold-vault/master-key-id\x00" + secret).hexdigest()[:16]


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit master key and its id. ``repr`` never shows the key."""

    id: str
    secret: bytes = field(repr=False)

    @classmethod
    def from_bytes(cls, secret: bytes) -> MasterKey:
        if len(secret) != 32:
            raise VaultKeyError(f"a vault master key is 32 bytes, not {len(secret)}")
        return cls(key_id_of(secret), bytes(secret))

    @classmethod
    def parse(cls, text: str, source: str = "the key") -> MasterKey:
        """A key from its base64 text (standard or URL-safe alphabet)."""
        raw = text.strip()
        if not raw:
            raise VaultKeyError(f"{source} is empty: it must be base64 of 32 random bytes")
        try:
            if "-" in raw or "_" in raw:
                secret = base64.urlsafe_b64decode(raw.encode("ascii"))
            else:
                secret = base64.b64decode(raw.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise VaultKeyError(
                f"{source} is not valid base64: it must be base64 of 32 random bytes "
                "(e.g. `openssl rand -base64 32`)"
            ) from None
        if len(secret) != 32:
            raise VaultKeyError(
                f"{source} decodes to {len(secret)} bytes: it must be base64 of exactly 32 "
                "random bytes (e.g. `openssl rand -base64 32`)"
            )
        return cls.from_bytes(secret)

    @classmethod
    def generate(cls) -> MasterKey:
        return cls.from_bytes(AESGCM.generate_key(bit_length=256))

    def encode(self) -> str:
        """The key as base64 text (what ``SAFEHOLD_VAULT_KEY`` holds)."""
        return base64.b64encode(self.secret).decode("ascii")


def read_key_file(path: str | os.PathLike[str], source: str | None = None) -> MasterKey:
    """The key in a file that only its owner may read (mode 0600 or 0400)."""
    p = Path(path)
    what = source or f"the key file {p}"
    try:
        st = p.stat()
    except FileNotFoundError:
        raise VaultKeyError(f"{what} does not exist") from None
    except OSError as e:
        raise VaultKeyError(f"{what} cannot be read: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise VaultKeyError(f"{what} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise VaultKeyError(
            f"{what} is mode {mode:04o}: others may read it; make it readable by its "
            f"owner only (chmod 600 {p})"
        )
    try:
        text = p.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise VaultKeyError(f"{what} cannot be read as base64 text: {e}") from None
    return MasterKey.parse(text, what)


def load_master_key(environ: Mapping[str, str] | None = None) -> MasterKey | None:
    """The configured master key, ``None`` when neither setting is given."""
    env = os.environ if environ is None else environ
    value = env.get(KEY_ENV, "")
    file = env.get(KEY_FILE_ENV, "")
    if value.strip() and file.strip():
        raise VaultKeyError(f"set {KEY_ENV} or {KEY_FILE_ENV}, not both")
    if value.strip():
        return MasterKey.parse(value, KEY_ENV)
    if file.strip():
        return read_key_file(file.strip(), f"{KEY_FILE_ENV} ({file.strip()})")
    return None


def vault_configured(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get(KEY_ENV, "").strip() or env.get(KEY_FILE_ENV, "").strip())


NOT_CONFIGURED = (
    f"the evidence vault has no master key: set {KEY_ENV} (base64 of 32 random bytes) or "
    f"{KEY_FILE_ENV} (a file of mode 0600 holding it); `safehold vault keygen FILE` makes one"
)


# --------------------------------------------------------------------------- retention


def category_of(labels: Iterable[str]) -> str:
    """``csam`` when a label is or entails CSAM, else ``ncii`` when one is NCII, else
    ``other``."""
    names = set(expand(labels))
    if "csam" in names:
        return "csam"
    if "ncii" in names:
        return "ncii"
    return "other"


@dataclass(frozen=True)
class Retention:
    """How long items are kept: a default and per-category or per-label periods."""

    default_days: int = DEFAULT_RETENTION_DAYS
    overrides: Mapping[str, int] = field(default_factory=dict)
    """Category (``csam``, ``ncii``, ``other``) or canonical label -> days."""

    @staticmethod
    def _days(value: str, what: str) -> int:
        try:
            days = int(value.strip())
        except ValueError:
            raise InvalidValue(f"{what}: {preview(value)} is not a whole number of days") from None
        if not 1 <= days <= MAX_RETENTION_DAYS:
            raise InvalidValue(f"{what}: {days} days is not between 1 and {MAX_RETENTION_DAYS}")
        return days

    @classmethod
    def parse(cls, mapping: str = "", default_days: str | int | None = None) -> Retention:
        """``"csam=365,ncii=90,A1=730"`` and the default (``SAFEHOLD_VAULT_*`` syntax)."""
        default = DEFAULT_RETENTION_DAYS
        if default_days is not None and str(default_days).strip():
            default = cls._days(str(default_days), RETENTION_DAYS_ENV)
        overrides: dict[str, int] = {}
        for part in mapping.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or not key:
                raise InvalidValue(
                    f"{RETENTION_ENV}: {preview(part.strip())} is not NAME=DAYS "
                    "(e.g. csam=365,ncii=90)"
                )
            if key.lower() in CATEGORIES:
                name = key.lower()
            else:
                try:
                    name = normalize_label(key)
                except UnknownLabel:
                    raise InvalidValue(
                        f"{RETENTION_ENV}: {preview(key)} is neither a category "
                        f"({', '.join(CATEGORIES)}) nor a label (`safehold labels`)"
                    ) from None
            overrides[name] = cls._days(value, f"{RETENTION_ENV} {key}")
        return cls(default, overrides)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Retention:
        env = os.environ if environ is None else environ
        return cls.parse(env.get(RETENTION_ENV, ""), env.get(RETENTION_DAYS_ENV))

    def days_for(self, labels: Sequence[str], requested: int | None = None) -> int:
        """The longest of: the period of the item's category (else the default), those
        of its labels that have one, and ``requested`` (a rule's ``days``)."""
        candidates = [self.overrides.get(category_of(labels), self.default_days)]
        candidates += [self.overrides[label] for label in labels if label in self.overrides]
        if requested is not None:
            candidates.append(int(requested))
        return max(candidates)


# --------------------------------------------------------------------------- crypto helpers


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _wrap_ad(master_id: str, key_row_id: int) -> bytes:
    return f"safehold-vault/v1/key/{master_id}/{key_row_id}".encode()


def _item_ad(item_id: int, sha256: str) -> bytes:
    return f"safehold-vault/v1/item/{item_id}/{sha256}".encode()


def _wrap(master: MasterKey, key_row_id: int, dek: bytes) -> str:
    nonce = secrets.token_bytes(12)
    return _b64(nonce + AESGCM(master.secret).encrypt(nonce, dek, _wrap_ad(master.id, key_row_id)))


def _unwrap(master: MasterKey, key_row_id: int, wrapped: str) -> bytes:
    raw = _unb64(wrapped)
    dek = AESGCM(master.secret).decrypt(raw[:12], raw[12:], _wrap_ad(master.id, key_row_id))
    if len(dek) != 32:
        raise InvalidTag()
    return dek


def _seal(dek: bytes, ad: bytes, plaintext: bytes) -> str:
    nonce = secrets.token_bytes(12)
    return _b64(nonce + AESGCM(dek).encrypt(nonce, plaintext, ad))


def _open(dek: bytes, ad: bytes, sealed: str) -> bytes:
    raw = _unb64(sealed)
    return AESGCM(dek).decrypt(raw[:12], raw[12:], ad)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


class _Damaged(Exception):
    """A blob file that does not check out (kind: format, swapped, auth, digest)."""

    def __init__(self, kind: str, message: str, uid: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.uid = uid


def _file_uid(path: Path) -> str | None:
    """The uid in a vault file's header (``None`` when it has no valid header)."""
    try:
        with open(path, "rb") as f:
            header = f.read(HEADER_LEN)
    except OSError:
        return None
    if len(header) < HEADER_LEN or header[: len(MAGIC)] != MAGIC:
        return None
    return header[len(MAGIC) : len(MAGIC) + 16].hex()


def _decrypt_chunks(path: Path, dek: bytes, uid: str, sha256: str) -> Iterator[bytes]:
    """The plaintext of a blob file, chunk by chunk, each authenticated before it is
    yielded (a caller must not use the output until the iterator is exhausted: a later
    chunk may still fail)."""
    with open(path, "rb") as f:
        header = f.read(HEADER_LEN)
        if len(header) < HEADER_LEN or header[: len(MAGIC)] != MAGIC:
            raise _Damaged("format", "is not a vault file (its header is missing or wrong)")
        file_uid = header[len(MAGIC) : len(MAGIC) + 16].hex()
        if file_uid != uid:
            raise _Damaged("swapped", f"holds the ciphertext of blob uid {file_uid}", file_uid)
        chunk_size = int.from_bytes(header[len(MAGIC) + 16 : len(MAGIC) + 20], "big")
        if not 1 <= chunk_size <= MAX_CHUNK:
            raise _Damaged("format", f"has an impossible chunk size ({chunk_size})")
        prefix = header[len(MAGIC) + 20 : HEADER_LEN]
        ad = header + bytes.fromhex(sha256)
        aes = AESGCM(dek)
        block = f.read(chunk_size + TAG)
        index = 0
        while True:
            nxt = f.read(chunk_size + TAG) if len(block) == chunk_size + TAG else b""
            last = not nxt
            try:
                plain = aes.decrypt(_nonce(prefix, index, last), block, ad)
            except InvalidTag:
                raise _Damaged("auth", f"does not authenticate at chunk {index}") from None
            yield plain
            if last:
                return
            block = nxt
            index += 1


def _sha256_of(source: str | os.PathLike[str] | bytes) -> tuple[str, int]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        return hashlib.sha256(data).hexdigest(), len(data)
    digest = hashlib.sha256()
    size = 0
    try:
        with open(source, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise InvalidValue(f"cannot read {source}: {e.strerror or e}") from None
    return digest.hexdigest(), size


def _open_source(source: str | os.PathLike[str] | bytes) -> IO[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    return open(source, "rb")


def _iso(at: datetime | None) -> str | None:
    """ISO-8601 in UTC with microseconds (naive datetimes are taken as UTC)."""
    if at is None:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _plain_json(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValue(f"{what} must be a JSON object")
    text = json.dumps(dict(value), default=str, ensure_ascii=False)
    if len(text.encode()) > MAX_CONTEXT_BYTES:
        raise InvalidValue(f"{what} is larger than {MAX_CONTEXT_BYTES} bytes")
    out = json.loads(text)
    assert isinstance(out, dict)
    return out


def _required(value: object, what: str, limit: int = 2000) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{what} is required")
    text = value.strip()
    if "\x00" in text:
        raise InvalidValue(f"{what} must not contain NUL")
    if len(text) > limit:
        raise InvalidValue(f"{what} is longer than {limit} characters")
    return text


def _actor(by: object) -> str:
    return _required(by, "who (the actor)", 128)


def default_vault_root(db: Database) -> Path:
    """``safehold-vault/`` next to the SQLite database file, else in the working directory."""
    url = db.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / "safehold-vault"
    return Path("safehold-vault").resolve()


def _private_dir(path: Path) -> None:
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class HoldInfo:
    id: int
    item_id: int
    reference: str
    reason: str
    held_by: str
    held_at: datetime
    released_at: datetime | None = None
    released_by: str | None = None
    release_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.released_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "item_id": self.item_id,
            "reference": self.reference,
            "reason": self.reason,
            "held_by": self.held_by,
            "held_at": _iso(self.held_at),
            "released_at": _iso(self.released_at),
            "released_by": self.released_by,
            "release_reason": self.release_reason,
            "active": self.active,
        }


def _hold(row: VaultHold) -> HoldInfo:
    return HoldInfo(
        id=int(row.id),
        item_id=int(row.item_id),
        reference=row.reference,
        reason=row.reason,
        held_by=row.held_by,
        held_at=row.held_at,
        released_at=row.released_at,
        released_by=row.released_by,
        release_reason=row.release_reason,
    )


@dataclass(frozen=True)
class ItemInfo:
    """An item as the plain columns describe it (no decryption, not audited)."""

    id: int
    tenant: str
    sha256: str
    size: int
    blob_id: int
    origin: str | None
    event_id: int | None
    case_id: int | None
    content_id: str | None
    category: str
    labels: list[str]
    preserved_at: datetime
    preserved_by: str
    retain_until: datetime
    holds: list[HoldInfo] = field(default_factory=list)
    """Active holds."""
    created: bool = False
    """True when :meth:`EvidenceVault.preserve` made it (False: it existed already)."""

    @property
    def on_hold(self) -> bool:
        return bool(self.holds)

    def due(self, now: datetime | None = None) -> bool:
        """Past retention and not held: the next ``expire`` deletes it."""
        return not self.on_hold and self.retain_until <= (now or utcnow())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "sha256": self.sha256,
            "size": self.size,
            "blob_id": self.blob_id,
            "origin": self.origin,
            "event_id": self.event_id,
            "case_id": self.case_id,
            "content_id": self.content_id,
            "category": self.category,
            "labels": list(self.labels),
            "preserved_at": _iso(self.preserved_at),
            "preserved_by": self.preserved_by,
            "retain_until": _iso(self.retain_until),
            "on_hold": self.on_hold,
            "holds": [h.to_dict() for h in self.holds],
        }


@dataclass(frozen=True)
class Evidence:
    """Decrypted evidence: the content bytes and the sealed record (with ``context``)."""

    item: ItemInfo
    content: bytes
    record: dict[str, Any]

    @property
    def context(self) -> dict[str, Any]:
        ctx = self.record.get("context")
        return dict(ctx) if isinstance(ctx, dict) else {}


@dataclass(frozen=True)
class Problem:
    """One thing :meth:`EvidenceVault.verify` found wrong."""

    kind: str
    """``blob_missing``, ``blob_changed``, ``blob_swapped``, ``blob_record_changed``,
    ``key_damaged``, ``key_unavailable``, ``item_changed``, ``item_missing``,
    ``item_unrecorded``, ``hold_changed``, ``orphan``, ``stray_file``, ``permissions``,
    ``audit_broken``."""
    object: str
    """What it is about: ``blob 3``, ``item 5``, ``key 7``, ``audit 12``, a path."""
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "object": self.object, "message": self.message}


@dataclass(frozen=True)
class VaultCheck:
    ok: bool
    items: int
    blobs: int
    keys: int
    problems: list[Problem]
    audit: VerifyResult

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "items": self.items,
            "blobs": self.blobs,
            "keys": self.keys,
            "problems": [p.to_dict() for p in self.problems],
            "audit": self.audit.to_dict(),
        }


@dataclass(frozen=True)
class ExpireReport:
    expired: list[int]
    """Items deleted (or, in a dry run, that would be)."""
    blobs_deleted: list[int]
    held: list[int]
    """Items past retention kept by a legal hold."""
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "expired": self.expired,
            "blobs_deleted": self.blobs_deleted,
            "held": self.held,
            "dry_run": self.dry_run,
        }


@dataclass(frozen=True)
class RotateReport:
    old_key: str
    new_key: str
    rewrapped: int

    def to_dict(self) -> dict[str, Any]:
        return {"old_key": self.old_key, "new_key": self.new_key, "rewrapped": self.rewrapped}


@dataclass(frozen=True)
class ExportResult:
    path: Path
    export_id: str
    items: list[int]
    files: list[dict[str, Any]]
    manifest_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "export_id": self.export_id,
            "items": self.items,
            "files": self.files,
            "manifest_sha256": self.manifest_sha256,
        }


class BundleSealer(Protocol):
    """The hook for bundles encrypted to a recipient (e.g. a law-enforcement key):
    ``seal`` encrypts the file at ``path`` for the recipient, removes the plaintext and
    returns the sealed file's path (inside the bundle)."""

    name: str

    def seal(self, path: Path) -> Path: ...


# --------------------------------------------------------------------------- the vault


@dataclass
class _NewBlob:
    uid: str
    rel: str
    dek: bytes
    size: int
    file_size: int
    file_sha256: str


class EvidenceVault:
    """Preserve, read, hold, expire, export and verify evidence (see the module doc)."""

    def __init__(
        self,
        db: Database,
        root: str | os.PathLike[str],
        key: MasterKey | None,
        *,
        audit: AuditLog | None = None,
        retention: Retention | None = None,
        key_error: str | None = None,
    ) -> None:
        self.db = db
        self.root = Path(root)
        self.key = key
        self.audit = audit or AuditLog(db)
        self.retention = retention or Retention()
        self._key_error = key_error
        self._extra_keys: dict[str, MasterKey] = {}

    # -- construction

    @classmethod
    def from_env(
        cls,
        db: Database,
        *,
        audit: AuditLog | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> EvidenceVault:
        """The vault the settings describe; raises :class:`VaultKeyError` (or
        :class:`VaultNotConfigured`) when the master key is missing or unusable."""
        env = os.environ if environ is None else environ
        key = load_master_key(env)
        if key is None:
            raise VaultNotConfigured(NOT_CONFIGURED)
        root = env.get(DIR_ENV, "").strip() or default_vault_root(db)
        return cls(db, root, key, audit=audit, retention=Retention.from_env(env))

    # -- keys

    def _need_key(self) -> MasterKey:
        if self.key is None:
            raise VaultKeyError(self._key_error or NOT_CONFIGURED)
        return self.key

    def _keys(self) -> dict[str, MasterKey]:
        key = self._need_key()
        return {**self._extra_keys, key.id: key}

    def _master_rows(self, s: Session) -> dict[str, VaultMasterKey]:
        return {r.id: r for r in s.scalars(select(VaultMasterKey))}

    def _check_key(self, *, write: bool) -> MasterKey:
        """The configured key, after checking that it is this vault's (registering it
        as the active key of an empty vault)."""
        key = self._need_key()
        for _ in range(3):
            try:
                with self.db.session() as s:
                    rows = self._master_rows(s)
                    if not rows:
                        s.add(VaultMasterKey(id=key.id, state="active", created_at=utcnow()))
                        s.flush()
                        return key
                    self._judge(key, rows, write=write)
                    return key
            except IntegrityError:  # registered at the same moment elsewhere
                continue
        raise VaultKeyError("could not register the vault's master key")

    @staticmethod
    def _judge(key: MasterKey, rows: Mapping[str, VaultMasterKey], *, write: bool) -> None:
        current = next((r.id for r in rows.values() if r.state == "active"), None)
        row = rows.get(key.id)
        if row is None:
            raise VaultKeyError(
                f"the configured master key {key.id} is not a key of this vault (its "
                f"current key is {current}): check {KEY_ENV} / {KEY_FILE_ENV}"
            )
        if row.state == "retired":
            when = row.retired_at.date().isoformat() if row.retired_at else "an earlier date"
            raise VaultKeyError(
                f"the configured master key {key.id} was retired by a key rotation on "
                f"{when}: configure the vault's current key {current}"
            )
        if row.state == "retiring" and write:
            raise VaultKeyError(
                f"a key rotation from {key.id} to {current} is unfinished: finish it with "
                f"`safehold vault rotate-key` (this key configured, the new key on standard "
                f"input), then configure {current}"
            )

    def _dek(self, s: Session, key_id: int) -> bytes:
        """The unwrapped data key ``key_id`` (raises :class:`EvidenceDamaged` /
        :class:`VaultKeyError`)."""
        row = s.get(VaultKey, int(key_id))
        if row is None:
            raise EvidenceDamaged(f"data key {key_id} does not exist (it was deleted)")
        return self._unwrap_row(row)

    def _unwrap_row(self, row: VaultKey) -> bytes:
        master = self._keys().get(row.master_key_id)
        if master is None:
            raise VaultKeyError(
                f"data key {row.id} is wrapped under master key {row.master_key_id}, which "
                f"is not configured (the configured key is {self._need_key().id}); a key "
                "rotation may be unfinished: run `safehold vault rotate-key` with the old "
                "key configured and the new key on standard input"
            )
        try:
            return _unwrap(master, int(row.id), row.wrapped)
        except (InvalidTag, binascii.Error, ValueError):
            raise EvidenceDamaged(
                f"data key {row.id} does not unwrap with master key {master.id}: its wrapped "
                "bytes, its id or its master key id were changed"
            ) from None

    def _new_key_row(self, s: Session, master: MasterKey, dek: bytes) -> VaultKey:
        row = VaultKey(master_key_id=master.id, wrapped="", created_at=utcnow())
        s.add(row)
        s.flush()
        row.wrapped = _wrap(master, int(row.id), dek)
        return row

    # -- preserve

    def preserve(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        by: str,
        context: Mapping[str, Any] | None = None,
        tenant: str = DEFAULT_TENANT,
        labels: Sequence[str] = (),
        event_id: int | None = None,
        case_id: int | None = None,
        content_id: str | None = None,
        sha256: str | None = None,
        days: int | None = None,
        origin: str | None = None,
        reason: str | None = None,
    ) -> ItemInfo:
        """Store ``source`` (a file or bytes) and its context; the item.

        ``origin`` (e.g. ``event:41``) makes it idempotent: an item of the same tenant
        and origin is returned as it is (``created`` False). ``sha256``, when given, is
        checked against the content. Audited as ``vault_preserve``."""
        check_tenant(tenant)
        by = _actor(by)
        canonical_labels = validate_labels(labels)
        plain_context = _plain_json(context, "the context")
        if origin is not None:
            origin = _required(origin, "origin", 128)
            found = self._by_origin(tenant, origin)
            if found is not None:
                return found
        if days is not None and not 1 <= int(days) <= MAX_RETENTION_DAYS:
            raise InvalidValue(f"days must be between 1 and {MAX_RETENTION_DAYS}")
        digest, size = _sha256_of(source)
        if sha256 is not None and sha256.lower() != digest:
            raise InvalidValue(
                f"the content's SHA-256 is {digest}, not {preview(sha256)} as given: "
                "it changed or is not the content meant"
            )
        master = self._check_key(write=True)
        retention_days = self.retention.days_for(canonical_labels, days)
        for _attempt in range(4):
            blob_id = self._blob_id(tenant, digest)
            new_blob = self._write_blob(source, digest) if blob_id is None else None
            try:
                with self.db.session() as s:
                    item = self._insert(
                        s,
                        master,
                        tenant=tenant,
                        digest=digest,
                        size=size,
                        blob_id=blob_id,
                        new_blob=new_blob,
                        by=by,
                        labels=canonical_labels,
                        context=plain_context,
                        event_id=event_id,
                        case_id=case_id,
                        content_id=content_id,
                        origin=origin,
                        reason=reason,
                        retention_days=retention_days,
                    )
                    if item is None:  # the blob was deleted meanwhile: write a new one
                        continue
                    info = self._info(s, item, created=True)
                return info
            except IntegrityError:
                if new_blob is not None:
                    (self.root / new_blob.rel).unlink(missing_ok=True)
                if origin is not None:
                    found = self._by_origin(tenant, origin)
                    if found is not None:
                        return found
                continue
            except BaseException:
                if new_blob is not None:
                    (self.root / new_blob.rel).unlink(missing_ok=True)
                raise
        raise VaultError("could not preserve the content: it was changed concurrently; retry")

    def _by_origin(self, tenant: str, origin: str) -> ItemInfo | None:
        with self.db.session() as s:
            row = s.scalar(
                select(VaultItem).where(VaultItem.tenant == tenant, VaultItem.origin == origin)
            )
            return self._info(s, row) if row is not None else None

    def _blob_id(self, tenant: str, digest: str) -> int | None:
        with self.db.session() as s:
            found = s.scalar(
                select(VaultBlob.id).where(VaultBlob.tenant == tenant, VaultBlob.sha256 == digest)
            )
        return int(found) if found is not None else None

    def _write_blob(self, source: str | os.PathLike[str] | bytes, digest: str) -> _NewBlob:
        uid = secrets.token_hex(16)
        rel = f"blobs/{uid[:2]}/{uid}.vault"
        dest = self.root / rel
        _private_dir(self.root)
        _private_dir(dest.parent)
        dek = AESGCM.generate_key(bit_length=256)
        prefix = secrets.token_bytes(7)
        header = MAGIC + bytes.fromhex(uid) + CHUNK.to_bytes(4, "big") + prefix
        ad = header + bytes.fromhex(digest)
        aes = AESGCM(dek)
        plain_hash = hashlib.sha256()
        file_hash = hashlib.sha256(header)
        size = 0
        file_size = len(header)
        tmp = dest.with_name(f".{uid}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with _open_source(source) as fin, os.fdopen(fd, "wb") as fout:
                fout.write(header)
                chunk = fin.read(CHUNK)
                index = 0
                while True:
                    nxt = fin.read(CHUNK) if len(chunk) == CHUNK else b""
                    last = not nxt
                    plain_hash.update(chunk)
                    size += len(chunk)
                    sealed = aes.encrypt(_nonce(prefix, index, last), chunk, ad)
                    fout.write(sealed)
                    file_hash.update(sealed)
                    file_size += len(sealed)
                    if last:
                        break
                    chunk = nxt
                    index += 1
                fout.flush()
                os.fsync(fout.fileno())
            if plain_hash.hexdigest() != digest:
                raise InvalidValue(
                    "the content changed while it was preserved: its SHA-256 is not the one "
                    "computed first"
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return _NewBlob(uid, rel, dek, size, file_size, file_hash.hexdigest())

    def _insert(
        self,
        s: Session,
        master: MasterKey,
        *,
        tenant: str,
        digest: str,
        size: int,
        blob_id: int | None,
        new_blob: _NewBlob | None,
        by: str,
        labels: list[str],
        context: dict[str, Any],
        event_id: int | None,
        case_id: int | None,
        content_id: str | None,
        origin: str | None,
        reason: str | None,
        retention_days: int,
    ) -> VaultItem | None:
        now = utcnow()
        if new_blob is not None:
            blob_key = self._new_key_row(s, master, new_blob.dek)
            blob = VaultBlob(
                tenant=tenant,
                sha256=digest,
                uid=new_blob.uid,
                key_id=blob_key.id,
                size=new_blob.size,
                path=new_blob.rel,
                file_size=new_blob.file_size,
                file_sha256=new_blob.file_sha256,
                created_at=now,
            )
            s.add(blob)
            s.flush()
        else:
            assert blob_id is not None
            found = s.get(VaultBlob, blob_id, with_for_update={"read": True})
            if found is None:
                return None
            blob = found
        item_dek = AESGCM.generate_key(bit_length=256)
        item_key = self._new_key_row(s, master, item_dek)
        item = VaultItem(
            tenant=tenant,
            blob_id=blob.id,
            key_id=item_key.id,
            sha256=digest,
            origin=origin,
            event_id=int(event_id) if event_id is not None else None,
            case_id=int(case_id) if case_id is not None else None,
            content_id=str(content_id)[:256] if content_id is not None else None,
            category=category_of(labels),
            labels=labels,
            preserved_at=now,
            preserved_by=by,
            retain_until=now + timedelta(days=retention_days),
            context="",
        )
        s.add(item)
        s.flush()
        record = self._record(item, blob, retention_days=retention_days, reason=reason)
        record["context"] = context
        item.context = _seal(
            item_dek, _item_ad(int(item.id), digest), canonical_json(record).encode()
        )
        # the master key must still be the active one: a rotation that started meanwhile
        # waits for this lock (PostgreSQL) or for this transaction (SQLite)
        state = s.scalar(
            select(VaultMasterKey.state)
            .where(VaultMasterKey.id == master.id)
            .with_for_update(read=True)
        )
        if state != "active":
            raise VaultKeyError(
                f"master key {master.id} is {state or 'unknown'}: a key rotation is under way; "
                "preserve with the vault's new key"
            )
        self.audit.append(
            by,
            "vault_preserve",
            object_type=AUDIT_OBJECT,
            object_id=int(item.id),
            details={
                "sha256": digest,
                "size": int(blob.size),
                "blob_id": int(blob.id),
                "new_blob": new_blob is not None,
                "event_id": item.event_id,
                "case_id": item.case_id,
                "origin": origin,
                "category": item.category,
                "labels": labels,
                "retain_until": _iso(item.retain_until),
                "reason": reason,
            },
            tenant=tenant,
            session=s,
        )
        return item

    @staticmethod
    def _bound(item: VaultItem) -> dict[str, Any]:
        """The plain columns of an item, as the sealed record holds them."""
        return {
            "item_id": int(item.id),
            "tenant": item.tenant,
            "sha256": item.sha256,
            "origin": item.origin,
            "event_id": item.event_id,
            "case_id": item.case_id,
            "content_id": item.content_id,
            "category": item.category,
            "labels": list(item.labels or []),
            "preserved_at": _iso(item.preserved_at),
            "preserved_by": item.preserved_by,
            "retain_until": _iso(item.retain_until),
            "blob_id": int(item.blob_id),
            "key_id": int(item.key_id),
        }

    def _record(
        self, item: VaultItem, blob: VaultBlob, *, retention_days: int, reason: str | None
    ) -> dict[str, Any]:
        return {
            "v": 1,
            **self._bound(item),
            "blob_uid": blob.uid,
            "size": int(blob.size),
            "retention_days": retention_days,
            "reason": reason,
        }

    # -- finding

    def _info(self, s: Session, row: VaultItem, *, created: bool = False) -> ItemInfo:
        holds = s.scalars(
            select(VaultHold)
            .where(VaultHold.item_id == row.id, VaultHold.released_at.is_(None))
            .order_by(VaultHold.id)
        ).all()
        size = s.scalar(select(VaultBlob.size).where(VaultBlob.id == row.blob_id))
        return ItemInfo(
            id=int(row.id),
            tenant=row.tenant,
            sha256=row.sha256,
            size=int(size or 0),
            blob_id=int(row.blob_id),
            origin=row.origin,
            event_id=row.event_id,
            case_id=row.case_id,
            content_id=row.content_id,
            category=row.category,
            labels=list(row.labels or []),
            preserved_at=row.preserved_at,
            preserved_by=row.preserved_by,
            retain_until=row.retain_until,
            holds=[_hold(h) for h in holds],
            created=created,
        )

    def _row(self, s: Session, item_id: int, tenant: str | None) -> VaultItem:
        row = s.get(VaultItem, int(item_id))
        if row is None or (tenant is not None and row.tenant != tenant):
            raise NotFound(f"no evidence item {preview(item_id)} in the vault")
        return row

    def get(self, item_id: int, *, tenant: str | None = None) -> ItemInfo:
        """An item's plain description (no decryption; not audited)."""
        with self.db.session() as s:
            return self._info(s, self._row(s, item_id, tenant))

    def holds(self, item_id: int, *, tenant: str | None = None) -> list[HoldInfo]:
        """Every hold of an item, released ones too, oldest first."""
        with self.db.session() as s:
            self._row(s, item_id, tenant)
            rows = s.scalars(
                select(VaultHold).where(VaultHold.item_id == int(item_id)).order_by(VaultHold.id)
            ).all()
            return [_hold(h) for h in rows]

    def list_items(
        self,
        *,
        tenant: str | None = None,
        case_id: int | None = None,
        event_id: int | None = None,
        sha256: str | None = None,
        on_hold: bool | None = None,
        due: bool | None = None,
        limit: int = 100,
        before_id: int | None = None,
        now: datetime | None = None,
    ) -> list[ItemInfo]:
        """Items, newest first, filtered; page on with ``before_id``."""
        limit = max(1, min(int(limit), 1000))
        now = now or utcnow()
        active_hold = (
            select(VaultHold.id)
            .where(VaultHold.item_id == VaultItem.id, VaultHold.released_at.is_(None))
            .exists()
        )
        q = select(VaultItem).order_by(VaultItem.id.desc()).limit(limit)
        if tenant is not None:
            q = q.where(VaultItem.tenant == tenant)
        if case_id is not None:
            q = q.where(VaultItem.case_id == int(case_id))
        if event_id is not None:
            q = q.where(VaultItem.event_id == int(event_id))
        if sha256 is not None:
            q = q.where(VaultItem.sha256 == sha256.lower())
        if on_hold is True:
            q = q.where(active_hold)
        elif on_hold is False:
            q = q.where(~active_hold)
        if due is True:
            q = q.where(VaultItem.retain_until <= now, ~active_hold)
        elif due is False:
            q = q.where((VaultItem.retain_until > now) | active_hold)
        if before_id is not None:
            q = q.where(VaultItem.id < int(before_id))
        with self.db.session() as s:
            return [self._info(s, r) for r in s.scalars(q).all()]

    # -- reading (audited)

    def read(self, item_id: int, *, by: str, reason: str, tenant: str | None = None) -> Evidence:
        """Decrypt an item's content and sealed record; audited as ``vault_access``
        (before decrypting: an attempt is recorded too)."""
        by, reason = _actor(by), _required(reason, "a reason for the access")
        self._check_key(write=False)
        with self.db.session() as s:
            row = self._row(s, item_id, tenant)
            self._audit_access(s, row, by, reason, "content and context")
        with self.db.session() as s:
            row = self._row(s, item_id, tenant)
            info = self._info(s, row)
            record = self._open_record(s, row)
            blob = s.get(VaultBlob, int(row.blob_id))
            if blob is None:
                raise EvidenceDamaged(f"item {row.id}: its blob {row.blob_id} does not exist")
            dek = self._dek(s, int(blob.key_id))
        content = self._content(blob, dek)
        return Evidence(info, content, record)

    def read_context(
        self, item_id: int, *, by: str, reason: str, tenant: str | None = None
    ) -> dict[str, Any]:
        """The sealed record of an item (its context and ids); audited as ``vault_access``."""
        by, reason = _actor(by), _required(reason, "a reason for the access")
        self._check_key(write=False)
        with self.db.session() as s:
            row = self._row(s, item_id, tenant)
            self._audit_access(s, row, by, reason, "context")
        with self.db.session() as s:
            return self._open_record(s, self._row(s, item_id, tenant))

    def _audit_access(self, s: Session, row: VaultItem, by: str, reason: str, what: str) -> None:
        self.audit.append(
            by,
            "vault_access",
            object_type=AUDIT_OBJECT,
            object_id=int(row.id),
            details={"reason": reason, "what": what, "sha256": row.sha256},
            tenant=row.tenant,
            session=s,
        )

    def _open_record(self, s: Session, row: VaultItem) -> dict[str, Any]:
        dek = self._dek(s, int(row.key_id))
        try:
            plain = _open(dek, _item_ad(int(row.id), row.sha256), row.context)
        except (InvalidTag, binascii.Error, ValueError):
            raise EvidenceDamaged(
                f"item {row.id}: its sealed context does not authenticate with the item's id "
                "and SHA-256 (its context, id or sha256 column, or its data key, was changed)"
            ) from None
        record = json.loads(plain)
        assert isinstance(record, dict)
        changed = self._changed_fields(row, record)
        if changed:
            raise EvidenceDamaged(f"item {row.id}: " + "; ".join(changed))
        return record

    def _changed_fields(self, row: VaultItem, record: Mapping[str, Any]) -> list[str]:
        out = []
        for name, value in self._bound(row).items():
            sealed = record.get(name)
            if sealed != value:
                out.append(
                    f"{name} is {json.dumps(value)} in the database but {json.dumps(sealed)} "
                    "in the sealed record (the row was changed)"
                )
        return out

    def _content(self, blob: VaultBlob, dek: bytes) -> bytes:
        path = self.root / blob.path
        if not path.is_file():
            raise EvidenceDamaged(f"blob {blob.id}: its file {blob.path} is missing")
        try:
            content = b"".join(_decrypt_chunks(path, dek, blob.uid, blob.sha256))
        except _Damaged as e:
            raise EvidenceDamaged(f"blob {blob.id}: its file {blob.path} {e.message}") from None
        if hashlib.sha256(content).hexdigest() != blob.sha256:  # pragma: no cover - AD binds it
            raise EvidenceDamaged(f"blob {blob.id}: the content's SHA-256 is not the recorded one")
        return content

    def _decrypt_to(self, blob: VaultBlob, dek: bytes, dest: Path) -> None:
        """Decrypt a blob into ``dest`` (written only when every chunk authenticated)."""
        path = self.root / blob.path
        if not path.is_file():
            raise EvidenceDamaged(f"blob {blob.id}: its file {blob.path} is missing")
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.tmp")
        digest = hashlib.sha256()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                try:
                    for chunk in _decrypt_chunks(path, dek, blob.uid, blob.sha256):
                        digest.update(chunk)
                        out.write(chunk)
                except _Damaged as e:
                    raise EvidenceDamaged(
                        f"blob {blob.id}: its file {blob.path} {e.message}"
                    ) from None
            if digest.hexdigest() != blob.sha256:  # pragma: no cover - AD binds it
                raise EvidenceDamaged(f"blob {blob.id}: the SHA-256 is not the recorded one")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    # -- legal holds

    def hold(
        self, item_id: int, *, by: str, reason: str, reference: str, tenant: str | None = None
    ) -> HoldInfo:
        """Put an item on legal hold (kept past retention until released). The same
        reference on an item that already has it active changes nothing."""
        by = _actor(by)
        reason = _required(reason, "a reason for the hold")
        reference = _required(reference, "a reference for the hold (case or order number)", 200)
        with self.db.session() as s:
            row = self._row(s, item_id, tenant)
            existing = s.scalar(
                select(VaultHold).where(
                    VaultHold.item_id == row.id,
                    VaultHold.reference == reference,
                    VaultHold.released_at.is_(None),
                )
            )
            if existing is not None:
                return _hold(existing)
            hold = VaultHold(
                item_id=row.id, reference=reference, reason=reason, held_by=by, held_at=utcnow()
            )
            s.add(hold)
            s.flush()
            self.audit.append(
                by,
                "vault_hold",
                object_type=AUDIT_OBJECT,
                object_id=int(row.id),
                details={
                    "hold_id": int(hold.id),
                    "reference": reference,
                    "reason": reason,
                    "sha256": row.sha256,
                },
                tenant=row.tenant,
                session=s,
            )
            return _hold(hold)

    def release(
        self,
        item_id: int,
        *,
        by: str,
        reason: str,
        reference: str | None = None,
        tenant: str | None = None,
    ) -> HoldInfo:
        """Release the active hold of ``reference`` on an item (``reference`` may be left
        out when the item has exactly one active hold)."""
        by = _actor(by)
        reason = _required(reason, "a reason for the release")
        with self.db.session() as s:
            row = self._row(s, item_id, tenant)
            active = s.scalars(
                select(VaultHold)
                .where(VaultHold.item_id == row.id, VaultHold.released_at.is_(None))
                .order_by(VaultHold.id)
            ).all()
            refs = ", ".join(h.reference for h in active) or "none"
            if reference is not None:
                chosen = [h for h in active if h.reference == reference.strip()]
                if not chosen:
                    raise NotFound(
                        f"item {row.id} has no active hold {preview(reference)} "
                        f"(active holds: {refs})"
                    )
            else:
                if not active:
                    raise NotFound(f"item {row.id} is not on hold")
                if len(active) > 1:
                    raise InvalidValue(
                        f"item {row.id} has {len(active)} active holds ({refs}): name the "
                        "reference to release"
                    )
                chosen = list(active)
            hold = chosen[0]
            hold.released_at = utcnow()
            hold.released_by = by
            hold.release_reason = reason
            s.flush()
            self.audit.append(
                by,
                "vault_release",
                object_type=AUDIT_OBJECT,
                object_id=int(row.id),
                details={
                    "hold_id": int(hold.id),
                    "reference": hold.reference,
                    "reason": reason,
                    "sha256": row.sha256,
                },
                tenant=row.tenant,
                session=s,
            )
            return _hold(hold)

    # -- retention

    def expire(
        self,
        *,
        now: datetime | None = None,
        by: str = "system",
        dry_run: bool = False,
        limit: int = 1000,
    ) -> ExpireReport:
        """Delete the items past retention and not on hold: the sealed context and its key,
        and the blob, its key and its file when no other item uses it. Each leaves a
        tombstone in the audit log (``vault_expire``: sha256, ids, why)."""
        now = now or utcnow()
        by = _actor(by)
        with self.db.session() as s:
            rows = s.execute(
                select(VaultItem.id)
                .where(VaultItem.retain_until <= now)
                .order_by(VaultItem.retain_until, VaultItem.id)
                .limit(max(1, int(limit)))
            ).all()
            ids = [int(r[0]) for r in rows]
            held_ids = set(
                int(x)
                for x in s.scalars(
                    select(VaultHold.item_id)
                    .where(VaultHold.item_id.in_(ids), VaultHold.released_at.is_(None))
                    .distinct()
                )
            )
        held = [i for i in ids if i in held_ids]
        due = [i for i in ids if i not in held_ids]
        if dry_run:
            return ExpireReport(due, [], held, dry_run=True)
        expired: list[int] = []
        blobs_deleted: list[int] = []
        for item_id in due:
            result = self._expire_one(item_id, now, by)
            if result is None:
                continue
            expired.append(item_id)
            blob_id, path = result
            if path is not None:
                blobs_deleted.append(blob_id)
                (self.root / path).unlink(missing_ok=True)
        if expired:
            log.info("vault: %s items expired, %s blobs deleted", len(expired), len(blobs_deleted))
        return ExpireReport(expired, blobs_deleted, held)

    def _expire_one(self, item_id: int, now: datetime, by: str) -> tuple[int, str | None] | None:
        with self.db.session() as s:
            # lock the item (a write first: the row lock on PostgreSQL, the write lock on
            # SQLite), then look again: a hold may have been set meanwhile
            s.execute(
                update(VaultItem).where(VaultItem.id == item_id).values(tenant=VaultItem.tenant)
            )
            row = s.get(VaultItem, item_id, populate_existing=True)
            if row is None or row.retain_until > now:
                return None
            held = s.scalar(
                select(func.count())
                .select_from(VaultHold)
                .where(VaultHold.item_id == item_id, VaultHold.released_at.is_(None))
            )
            if held:
                return None
            blob = s.get(VaultBlob, int(row.blob_id), with_for_update=True)
            others = s.scalar(
                select(func.count())
                .select_from(VaultItem)
                .where(VaultItem.blob_id == row.blob_id, VaultItem.id != row.id)
            )
            details: dict[str, Any] = {
                "sha256": row.sha256,
                "event_id": row.event_id,
                "case_id": row.case_id,
                "content_id": row.content_id,
                "origin": row.origin,
                "category": row.category,
                "labels": list(row.labels or []),
                "preserved_at": _iso(row.preserved_at),
                "retain_until": _iso(row.retain_until),
                "blob_id": int(row.blob_id),
                "content_deleted": not others,
                "why": (
                    f"its retention ended on {row.retain_until.date().isoformat()} and it is "
                    "not on legal hold: the sealed context and its key are deleted"
                    + ("" if others else ", and the content, its key and its file")
                ),
            }
            tenant = row.tenant
            key_id = int(row.key_id)
            s.execute(delete(VaultHold).where(VaultHold.item_id == item_id))
            s.execute(delete(VaultItem).where(VaultItem.id == item_id))
            s.execute(delete(VaultKey).where(VaultKey.id == key_id))
            path: str | None = None
            if blob is not None and not others:
                path = blob.path
                s.execute(delete(VaultBlob).where(VaultBlob.id == blob.id))
                s.execute(delete(VaultKey).where(VaultKey.id == blob.key_id))
            self.audit.append(
                by,
                "vault_expire",
                object_type=AUDIT_OBJECT,
                object_id=item_id,
                details=details,
                tenant=tenant,
                session=s,
            )
            return int(row.blob_id), path

    # -- key rotation

    def rotate(self, new_key: MasterKey, *, by: str, batch: int = 500) -> RotateReport:
        """Re-wrap every data key under ``new_key`` (the content is not re-encrypted).

        The configured key is the old one. The new key becomes the active key at once;
        the old one is ``retiring`` until every data key is re-wrapped, then ``retired``.
        An interrupted rotation is finished by calling this again with the same new key.
        Audited as ``vault_rotate`` (start and done)."""
        by = _actor(by)
        old = self._check_key(write=False)
        if new_key.id == old.id:
            raise InvalidValue(f"the new key is the configured key ({old.id}): give a new one")
        with self.db.session() as s:
            rows = {r.id: r for r in s.scalars(select(VaultMasterKey).with_for_update()).all()}
            mine = rows[old.id]
            target = rows.get(new_key.id)
            if mine.state == "active":
                if target is not None:
                    raise InvalidValue(
                        f"the new key {new_key.id} was used by this vault before "
                        f"({target.state}): give a fresh key"
                    )
                retiring = [r.id for r in rows.values() if r.state == "retiring"]
                if retiring:
                    raise VaultKeyError(
                        f"a rotation away from {', '.join(retiring)} is unfinished: finish it first"
                    )
                s.add(VaultMasterKey(id=new_key.id, state="active", created_at=utcnow()))
                mine.state = "retiring"
                s.flush()
                self.audit.append(
                    by,
                    "vault_rotate",
                    object_type="vault",
                    details={"phase": "start", "from": old.id, "to": new_key.id},
                    session=s,
                )
            elif mine.state == "retiring":
                if target is None or target.state != "active":
                    current = next((r.id for r in rows.values() if r.state == "active"), None)
                    raise VaultKeyError(
                        f"the rotation away from {old.id} is to {current}, not to "
                        f"{new_key.id}: give that key to finish it"
                    )
            else:  # pragma: no cover - _check_key refuses a retired key
                raise VaultKeyError(f"master key {old.id} is {mine.state}")
        self._extra_keys[old.id] = old
        rewrapped = 0
        while True:
            with self.db.session() as s:
                keys = s.scalars(
                    select(VaultKey)
                    .where(VaultKey.master_key_id == old.id)
                    .order_by(VaultKey.id)
                    .limit(max(1, batch))
                    .with_for_update()
                ).all()
                now = utcnow()
                for row in keys:
                    try:
                        dek = _unwrap(old, int(row.id), row.wrapped)
                    except (InvalidTag, binascii.Error, ValueError):
                        raise EvidenceDamaged(
                            f"data key {row.id} does not unwrap with master key {old.id}: it was "
                            "changed; the rotation stops here (run `safehold vault verify`, "
                            "restore the row, then rotate again)"
                        ) from None
                    row.wrapped = _wrap(new_key, int(row.id), dek)
                    row.master_key_id = new_key.id
                    row.rewrapped_at = now
                rewrapped += len(keys)
                if keys:
                    continue
                # done: retire the old key (in the transaction that saw no key left under it)
                mine = s.get_one(VaultMasterKey, old.id, with_for_update=True)
                left = s.scalar(
                    select(func.count())
                    .select_from(VaultKey)
                    .where(VaultKey.master_key_id == old.id)
                )
                if left:
                    continue
                mine.state = "retired"
                mine.retired_at = now
                self.audit.append(
                    by,
                    "vault_rotate",
                    object_type="vault",
                    details={
                        "phase": "done",
                        "from": old.id,
                        "to": new_key.id,
                        "rewrapped": rewrapped,
                    },
                    session=s,
                )
                break
        self.key = new_key
        self._extra_keys.pop(old.id, None)
        log.info("vault: rotated %s data keys from %s to %s", rewrapped, old.id, new_key.id)
        return RotateReport(old.id, new_key.id, rewrapped)

    # -- export

    def export(
        self,
        item_ids: Iterable[int],
        to_dir: str | os.PathLike[str],
        *,
        by: str,
        reason: str,
        tenant: str | None = None,
        sealer: BundleSealer | None = None,
    ) -> ExportResult:
        """Write an evidence bundle to ``to_dir`` (new or empty): ``evidence/<id>/content.*``
        (decrypted, or sealed by ``sealer``), ``evidence/<id>/context.json`` (the sealed
        record), ``custody.json`` (the audit entries of the items with their hashes) and
        ``manifest.json`` (the SHA-256 of every file). Each item's export is audited
        (``vault_export``, with the reason) before it is decrypted."""
        by, reason = _actor(by), _required(reason, "a reason for the export")
        ids = list(dict.fromkeys(int(i) for i in item_ids))
        if not ids:
            raise InvalidValue("name at least one item to export")
        self._check_key(write=False)
        with self.db.session() as s:
            items = [self._row(s, i, tenant) for i in ids]
        dest = Path(to_dir)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise InvalidValue(f"{dest} exists and is not an empty directory")
        created = not dest.exists()
        dest.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(dest, 0o700)
        export_id = "exp_" + secrets.token_hex(8)
        try:
            return self._export(items, dest, export_id, by, reason, sealer)
        except BaseException:
            if created:
                shutil.rmtree(dest, ignore_errors=True)
            else:
                for child in list(dest.iterdir()):
                    if child.is_dir():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
            raise

    def _export(
        self,
        items: Sequence[VaultItem],
        dest: Path,
        export_id: str,
        by: str,
        reason: str,
        sealer: BundleSealer | None,
    ) -> ExportResult:
        with self.db.session() as s:
            for row in items:
                self.audit.append(
                    by,
                    "vault_export",
                    object_type=AUDIT_OBJECT,
                    object_id=int(row.id),
                    details={
                        "export_id": export_id,
                        "reason": reason,
                        "to": str(dest.resolve()),
                        "sha256": row.sha256,
                        "sealed_with": sealer.name if sealer is not None else None,
                    },
                    tenant=row.tenant,
                    session=s,
                )
        manifest_items: list[dict[str, Any]] = []
        for row in items:
            with self.db.session() as s:
                fresh = self._row(s, int(row.id), None)
                info = self._info(s, fresh)
                record = self._open_record(s, fresh)
                blob = s.get(VaultBlob, int(fresh.blob_id))
                if blob is None:
                    raise EvidenceDamaged(f"item {fresh.id}: its blob {fresh.blob_id} is missing")
                dek = self._dek(s, int(blob.key_id))
            folder = dest / "evidence" / str(info.id)
            _private_dir(dest / "evidence")
            _private_dir(folder)
            media = (record.get("context") or {}).get("upload") or {}
            fmt = str(media.get("format") or "").lower() if isinstance(media, dict) else ""
            ext = {"jpeg": "jpg"}.get(fmt, fmt)
            content = folder / f"content.{ext if _EXT.fullmatch(ext) else 'bin'}"
            self._decrypt_to(blob, dek, content)
            context_file = folder / "context.json"
            _write_private(
                context_file,
                (json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode(),
            )
            files = {"content": content, "context": context_file}
            if sealer is not None:
                files = {k: sealer.seal(p) for k, p in files.items()}
            manifest_items.append(
                {
                    **info.to_dict(),
                    "files": {k: p.relative_to(dest).as_posix() for k, p in files.items()},
                }
            )
        custody = self._custody([int(r.id) for r in items], export_id)
        _write_private(
            dest / "custody.json",
            (json.dumps(custody, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode(),
        )
        listed = []
        for p in sorted(dest.rglob("*")):
            if p.is_file() and p.name != "manifest.json":
                listed.append(
                    {
                        "path": p.relative_to(dest).as_posix(),
                        "sha256": _file_sha256(p),
                        "size": p.stat().st_size,
                    }
                )
        manifest = {
            "format": "safehold-evidence-bundle",
            "version": 1,
            "export_id": export_id,
            "created_at": _iso(utcnow()),
            "created_by": by,
            "reason": reason,
            "sealed_with": sealer.name if sealer is not None else None,
            "items": manifest_items,
            "files": listed,
        }
        text = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
        _write_private(dest / "manifest.json", text)
        return ExportResult(
            dest, export_id, [int(r.id) for r in items], listed, hashlib.sha256(text).hexdigest()
        )

    def custody(self, item_id: int) -> list[AuditEntryInfo]:
        """The audit entries of an item, oldest first (its chain of custody)."""
        with self.db.session() as s:
            rows = s.scalars(
                select(AuditEntry)
                .where(AuditEntry.object_type == AUDIT_OBJECT, AuditEntry.object_id == str(item_id))
                .order_by(AuditEntry.id)
            ).all()
            return [entry_info(r) for r in rows]

    def _custody(self, ids: Sequence[int], export_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            rows = s.scalars(
                select(AuditEntry)
                .where(
                    (
                        (AuditEntry.object_type == AUDIT_OBJECT)
                        & AuditEntry.object_id.in_([str(i) for i in ids])
                    )
                    | ((AuditEntry.object_type == "vault") & (AuditEntry.action == "vault_rotate"))
                )
                .order_by(AuditEntry.id)
            ).all()
            entries = [entry_info(r).to_dict() for r in rows]
        last_id, last_hash, _count = self.audit.head()
        chain = self.audit.verify()
        return {
            "format": "safehold-custody",
            "version": 1,
            "export_id": export_id,
            "items": list(ids),
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

    # -- verification

    def verify(self, *, by: str = "system", record: bool = True) -> VaultCheck:
        """Decrypt and authenticate every blob and sealed record, check every data key,
        the items against their records and the audit log, the files and their modes, and
        the audit chain. ``record``: append a ``vault_verify`` entry with the outcome."""
        self._check_key(write=False)
        problems: list[Problem] = []
        add = problems.append
        with self.db.session() as s:
            blobs = {int(b.id): b for b in s.scalars(select(VaultBlob)).all()}
            items = {int(i.id): i for i in s.scalars(select(VaultItem)).all()}
            keys = {int(k.id): k for k in s.scalars(select(VaultKey)).all()}
            holds = s.scalars(select(VaultHold)).all()
            s.expunge_all()
        deks: dict[int, bytes] = {}
        failed: dict[int, str] = {}
        for kid, krow in keys.items():
            try:
                deks[kid] = self._unwrap_row(krow)
            except EvidenceDamaged as e:
                failed[kid] = "key_damaged"
                add(Problem("key_damaged", f"key {kid}", e.message))
            except VaultKeyError as e:
                failed[kid] = "key_unavailable"
                add(Problem("key_unavailable", f"key {kid}", e.message))
        used_keys = {int(b.key_id) for b in blobs.values()} | {
            int(i.key_id) for i in items.values()
        }
        for kid in sorted(set(keys) - used_keys):
            add(Problem("orphan", f"key {kid}", f"data key {kid} is used by no blob or item"))
        by_uid = {b.uid: bid for bid, b in blobs.items()}
        for bid, blob in sorted(blobs.items()):
            self._verify_blob(bid, blob, deks, failed, by_uid, add)
        blob_items: dict[int, int] = {}
        for iid, item in sorted(items.items()):
            blob_items[int(item.blob_id)] = blob_items.get(int(item.blob_id), 0) + 1
            self._verify_item(iid, item, blobs, deks, failed, add)
        for bid in sorted(set(blobs) - set(blob_items)):
            add(Problem("orphan", f"blob {bid}", f"blob {bid} belongs to no item"))
        self._verify_audit_trail(items, holds, add)
        self._verify_files(blobs, add)
        chain = self.audit.verify()
        if not chain.ok:
            add(
                Problem(
                    "audit_broken",
                    f"audit {chain.bad_id}",
                    f"the audit log is broken at entry {chain.bad_id}: {chain.reason}",
                )
            )
        check = VaultCheck(not problems, len(items), len(blobs), len(keys), problems, chain)
        if record:
            self.audit.append(
                _actor(by),
                "vault_verify",
                object_type="vault",
                details={
                    "ok": check.ok,
                    "items": check.items,
                    "blobs": check.blobs,
                    "problems": [f"{p.object}: {p.kind}" for p in problems][:100],
                },
            )
        return check

    def _verify_blob(
        self,
        bid: int,
        blob: VaultBlob,
        deks: Mapping[int, bytes],
        failed: Mapping[int, str],
        by_uid: Mapping[str, int],
        add: Any,
    ) -> None:
        path = self.root / blob.path
        name = f"blob {bid}"
        if not path.is_file():
            add(Problem("blob_missing", name, f"blob {bid}: its file {blob.path} is missing"))
            return
        file_uid = _file_uid(path)
        if file_uid is not None and file_uid != blob.uid:
            other = by_uid.get(file_uid)
            whose = f"blob {other}'s" if other is not None else f"an unknown blob's ({file_uid})"
            add(
                Problem(
                    "blob_swapped",
                    name,
                    f"blob {bid}: its file {blob.path} holds {whose} ciphertext: files were "
                    "swapped or moved",
                )
            )
            return
        dek = deks.get(int(blob.key_id))
        if dek is None:
            add(_key_problem(name, int(blob.key_id), failed, "content"))
            return
        file_digest = _file_sha256(path)
        file_same = file_digest == blob.file_sha256
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in _decrypt_chunks(path, dek, blob.uid, blob.sha256):
                digest.update(chunk)
                size += len(chunk)
        except _Damaged as e:
            if file_same:
                add(
                    Problem(
                        "blob_record_changed",
                        name,
                        f"blob {bid}: the file {blob.path} is as it was written, but it "
                        f"{e.message} with the blob's record: its sha256 or uid column, or "
                        "its data key, was changed",
                    )
                )
            else:
                add(
                    Problem(
                        "blob_changed",
                        name,
                        f"blob {bid}: the file {blob.path} was changed: it {e.message} and its "
                        "SHA-256 is not the one recorded when it was written",
                    )
                )
            return
        if not file_same:
            add(
                Problem(
                    "blob_record_changed",
                    name,
                    f"blob {bid}: the content authenticates, but the file_sha256 column was "
                    "changed",
                )
            )
        if digest.hexdigest() != blob.sha256:  # pragma: no cover - the AD binds it
            add(Problem("blob_changed", name, f"blob {bid}: the content's SHA-256 differs"))
        if size != int(blob.size):
            add(
                Problem(
                    "blob_record_changed",
                    name,
                    f"blob {bid}: the content is {size} bytes but the size column says {blob.size}",
                )
            )

    def _verify_item(
        self,
        iid: int,
        item: VaultItem,
        blobs: Mapping[int, VaultBlob],
        deks: Mapping[int, bytes],
        failed: Mapping[int, str],
        add: Any,
    ) -> None:
        name = f"item {iid}"
        blob = blobs.get(int(item.blob_id))
        if blob is None:
            add(Problem("item_changed", name, f"item {iid}: its blob {item.blob_id} is missing"))
        elif blob.sha256 != item.sha256:
            add(
                Problem(
                    "item_changed",
                    name,
                    f"item {iid}: its sha256 is {item.sha256} but its blob's is {blob.sha256}",
                )
            )
        dek = deks.get(int(item.key_id))
        if dek is None:
            add(_key_problem(name, int(item.key_id), failed, "sealed context"))
            return
        try:
            plain = _open(dek, _item_ad(iid, item.sha256), item.context)
        except (InvalidTag, binascii.Error, ValueError):
            add(
                Problem(
                    "item_changed",
                    name,
                    f"item {iid}: its sealed context does not authenticate with the item's id "
                    "and SHA-256: its context, id or sha256 column, or its data key, was changed",
                )
            )
            return
        record = json.loads(plain)
        for message in self._changed_fields(item, record):
            add(Problem("item_changed", name, f"item {iid}: {message}"))
        if blob is not None and record.get("blob_uid") != blob.uid:
            add(
                Problem(
                    "item_changed",
                    name,
                    f"item {iid}: its blob {blob.id} is not the one it was sealed with",
                )
            )

    def _verify_audit_trail(
        self, items: Mapping[int, VaultItem], holds: Sequence[VaultHold], add: Any
    ) -> None:
        with self.db.session() as s:
            entries = s.execute(
                select(AuditEntry.id, AuditEntry.action, AuditEntry.object_id, AuditEntry.details)
                .where(
                    AuditEntry.object_type == AUDIT_OBJECT,
                    AuditEntry.action.in_(
                        ("vault_preserve", "vault_expire", "vault_hold", "vault_release")
                    ),
                )
                .order_by(AuditEntry.id)
            ).all()
        preserved: dict[int, int] = {}
        expired: set[int] = set()
        held: dict[int, int] = {}
        released: set[int] = set()
        for entry_id, action, object_id, details in entries:
            try:
                iid = int(object_id)
            except (TypeError, ValueError):
                continue
            d = details if isinstance(details, dict) else {}
            if action == "vault_preserve":
                preserved[iid] = int(entry_id)
            elif action == "vault_expire":
                expired.add(iid)
            elif action == "vault_hold" and isinstance(d.get("hold_id"), int):
                held[int(d["hold_id"])] = iid
            elif action == "vault_release" and isinstance(d.get("hold_id"), int):
                released.add(int(d["hold_id"]))
        for iid in sorted(set(items) - set(preserved)):
            add(
                Problem(
                    "item_unrecorded",
                    f"item {iid}",
                    f"item {iid} has no vault_preserve entry in the audit log: it was not "
                    "stored through the vault",
                )
            )
        for iid, entry_id in sorted(preserved.items()):
            if iid not in items and iid not in expired:
                add(
                    Problem(
                        "item_missing",
                        f"item {iid}",
                        f"item {iid} is missing: it was preserved (audit entry {entry_id}) but "
                        "is neither in the vault nor expired (it was deleted outside the vault)",
                    )
                )
        rows = {int(h.id): h for h in holds}
        for hid, hold in sorted(rows.items()):
            if hid not in held:
                add(
                    Problem(
                        "hold_changed",
                        f"hold {hid}",
                        f"hold {hid} of item {hold.item_id} has no vault_hold entry in the "
                        "audit log: it was added outside the vault",
                    )
                )
            elif hold.released_at is not None and hid not in released:
                add(
                    Problem(
                        "hold_changed",
                        f"hold {hid}",
                        f"hold {hid} ({hold.reference}) of item {hold.item_id} is marked "
                        "released, but no release is in the audit log: it was released "
                        "outside the vault",
                    )
                )
            elif hold.released_at is None and hid in released:
                add(
                    Problem(
                        "hold_changed",
                        f"hold {hid}",
                        f"hold {hid} ({hold.reference}) of item {hold.item_id} was released "
                        "(audit log) but the row says it is active",
                    )
                )
        for hid, iid in sorted(held.items()):
            if hid not in rows and iid in items and hid not in released:
                add(
                    Problem(
                        "hold_changed",
                        f"hold {hid}",
                        f"hold {hid} of item {iid} is active in the audit log but its row was "
                        "deleted outside the vault",
                    )
                )

    def _verify_files(self, blobs: Mapping[int, VaultBlob], add: Any) -> None:
        if not self.root.is_dir():
            return
        mode = stat.S_IMODE(self.root.stat().st_mode)
        if mode & 0o077:
            add(
                Problem(
                    "permissions",
                    str(self.root),
                    f"the vault directory {self.root} is mode {mode:04o}: make it 0700",
                )
            )
        known = {b.path for b in blobs.values()}
        grace = utcnow().timestamp() - STRAY_GRACE_SECONDS
        base = self.root / "blobs"
        if not base.is_dir():
            return
        for p in sorted(base.rglob("*")):
            if not p.is_file():
                continue
            rel = p.relative_to(self.root).as_posix()
            st = p.stat()
            if rel not in known:
                if p.name.endswith(".tmp") or st.st_mtime > grace:
                    continue  # a preservation in flight
                add(
                    Problem(
                        "stray_file",
                        rel,
                        f"{rel} belongs to no blob (left over by a crash, or put there): "
                        "nothing can decrypt it",
                    )
                )
            elif stat.S_IMODE(st.st_mode) & 0o077:
                add(
                    Problem(
                        "permissions",
                        rel,
                        f"{rel} is mode {stat.S_IMODE(st.st_mode):04o}: make it 0600",
                    )
                )


def _key_problem(name: str, key_id: int, failed: Mapping[int, str], what: str) -> Problem:
    """What to say of a blob or item whose data key did not unwrap (or is gone)."""
    state = failed.get(key_id)
    if state == "key_unavailable":
        reason = "is wrapped under a master key that is not configured"
    elif state == "key_damaged":
        reason = "is damaged"
    else:
        state = "item_changed" if name.startswith("item") else "blob_record_changed"
        reason = "does not exist (its row was deleted, or the key_id column changed)"
    return Problem(
        state, name, f"{name}: its data key {key_id} {reason}, so its {what} cannot be checked"
    )


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def vault_from_env(db: Database, audit: AuditLog | None = None) -> EvidenceVault | None:
    """The vault for a service or worker: ``None`` when no master key is configured; when
    one is configured but unusable (malformed, a key file others may read), a vault whose
    every operation fails with that error — so a bad key fails the ``preserve`` jobs
    loudly (retried until it is fixed) without stopping the scanning service."""
    if not vault_configured():
        return None
    try:
        return EvidenceVault.from_env(db, audit=audit)
    except (VaultKeyError, InvalidValue) as e:
        log.error("the evidence vault cannot be used: %s", e.message)
        root = os.environ.get(DIR_ENV, "").strip() or default_vault_root(db)
        return EvidenceVault(db, root, None, audit=audit, key_error=e.message)


@job("vault_expire", retries=0, periodic=True)
def vault_expire_job(ctx: JobContext) -> None:
    """Job, once a minute in every worker: delete the evidence past retention and not on
    hold (no master key needed: deleting decrypts nothing)."""
    vault = ctx.vault
    if vault is not None:
        vault.expire()


# --------------------------------------------------------------------------- bundles


@dataclass(frozen=True)
class BundleCheck:
    ok: bool
    problems: list[str]
    files: int
    entries: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "files": self.files,
            "entries": self.entries,
        }


def verify_bundle(path: str | os.PathLike[str]) -> BundleCheck:
    """Check an export bundle: every file against the manifest's SHA-256 (and no file
    left out), each content file against its item's SHA-256 (unless sealed), and every
    custody entry's hash (and ``prev_hash`` between consecutive entries)."""
    root = Path(path)
    problems: list[str] = []
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return BundleCheck(False, [f"manifest.json cannot be read: {e}"], 0, 0)
    listed: dict[str, dict[str, Any]] = {}
    for f in manifest.get("files") or []:
        listed[str(f.get("path"))] = f
        p = root / str(f.get("path"))
        if not p.is_file():
            problems.append(f"{f.get('path')}: listed in the manifest but missing")
        elif _file_sha256(p) != f.get("sha256"):
            problems.append(f"{f.get('path')}: its SHA-256 is not the manifest's (it was changed)")
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel != "manifest.json" and rel not in listed:
            problems.append(f"{rel}: not listed in the manifest (it was added)")
    if not manifest.get("sealed_with"):
        for item in manifest.get("items") or []:
            content = (item.get("files") or {}).get("content")
            p = root / str(content)
            if content and p.is_file() and _file_sha256(p) != item.get("sha256"):
                problems.append(f"{content}: its SHA-256 is not item {item.get('id')}'s")
    entries: list[dict[str, Any]] = []
    try:
        custody = json.loads((root / "custody.json").read_text(encoding="utf-8"))
        entries = list(custody.get("entries") or [])
    except (OSError, ValueError) as exc:
        problems.append(f"custody.json cannot be read: {exc}")
        custody = {}
    problems.extend(check_exported(entries))
    prev: dict[str, Any] | None = entries[-1] if entries and isinstance(entries[-1], dict) else None
    head = custody.get("audit_head") or {}
    at_head = prev is not None and head.get("last_id") == prev.get("id")
    if at_head and prev is not None and head.get("last_hash") != prev.get("hash"):
        problems.append("custody: the last entry is not the audit head recorded")
    ids = {int(i.get("id")) for i in manifest.get("items") or [] if i.get("id") is not None}
    for iid in sorted(ids):
        actions = {
            e.get("action")
            for e in entries
            if e.get("object_type") == AUDIT_OBJECT and str(e.get("object_id")) == str(iid)
        }
        for needed in ("vault_preserve", "vault_export"):
            if needed not in actions:
                problems.append(f"custody: item {iid} has no {needed} entry")
    return BundleCheck(not problems, problems, len(listed), len(entries))


__all__ = [
    "ACTIONS",
    "BundleCheck",
    "BundleSealer",
    "Evidence",
    "EvidenceDamaged",
    "EvidenceVault",
    "ExpireReport",
    "ExportResult",
    "HoldInfo",
    "ItemInfo",
    "MasterKey",
    "Problem",
    "Retention",
    "RotateReport",
    "VaultCheck",
    "VaultError",
    "VaultKeyError",
    "VaultNotConfigured",
    "category_of",
    "default_vault_root",
    "key_id_of",
    "load_master_key",
    "read_key_file",
    "vault_configured",
    "vault_from_env",
    "verify_bundle",
]

"""What goes into a bank: validated entries, and the bank settings they live under."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from safehold.errors import InvalidValue, preview
from safehold.signals import SIGNAL_TYPES, get_signal_type
from safehold.taxonomy import validate_labels

BankKind = Literal["block", "negative"]
BANK_KINDS: tuple[str, ...] = ("block", "negative")
BANK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
SOURCE = re.compile(r"[a-z0-9][a-z0-9_.:\-]{0,63}")
SOURCES = ("local", "ncmec", "stopncii", "takeitdown", "threatexchange", "public_report")
"""Well-known sources; a partner may use its own name (``partner:acme``)."""
MAX_EXTERNAL_ID = 256
MAX_NOTE = 4000


def check_bank_name(name: str) -> str:
    if not isinstance(name, str) or not BANK_NAME.fullmatch(name):
        raise InvalidValue(
            f"invalid bank name {preview(name)}: use 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def check_kind(kind: str) -> str:
    if kind not in BANK_KINDS:
        raise InvalidValue(f"invalid bank kind {preview(kind)}: use 'block' or 'negative'")
    return kind


def check_thresholds(thresholds: dict[str, Any] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, value in (thresholds or {}).items():
        st = get_signal_type(name)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise InvalidValue(
                f"threshold for {st.name} must be a whole number, not {value!r}"
            ) from None
        if st.comparison == "exact" and number != 0:
            raise InvalidValue(f"{st.name} is matched exactly; its threshold can only be 0")
        out[st.name] = st.check_threshold(number)
    return out


def default_thresholds() -> dict[str, int]:
    return {name: st.default_threshold for name, st in SIGNAL_TYPES.items()}


@lru_cache(maxsize=4096)
def check_source(source: str | None) -> str:
    s = (source or "local").strip().lower()
    if not SOURCE.fullmatch(s):
        raise InvalidValue(
            f"invalid source {preview(source)}: use lower-case letters, digits and '_.:-' "
            f"(e.g. {', '.join(SOURCES)} or partner:NAME)"
        )
    return s


def value_digest(signal_type: str, value: str) -> str:
    return hashlib.sha256(f"{signal_type}:{value}".encode()).hexdigest()


@dataclass(slots=True)
class EntryInput:
    """One entry to add, validated and normalised by :func:`make_entry`."""

    signal_type: str
    value: str
    labels: list[str] = field(default_factory=list)
    source: str = "local"
    external_id: str | None = None
    note: str | None = None
    digest: str = ""

    def __post_init__(self) -> None:
        if not self.digest:
            self.digest = value_digest(self.signal_type, self.value)


def make_entry(
    signal_type: str,
    value: str,
    labels: list[str] | tuple[str, ...] | None = None,
    source: str | None = None,
    external_id: str | None = None,
    note: str | None = None,
) -> EntryInput:
    """Validate and normalise one entry; raises :class:`InvalidValue` saying what is wrong."""
    st = get_signal_type(signal_type)
    if not isinstance(value, str):
        raise InvalidValue(f"value must be text, not {type(value).__name__}")
    normalized = st.normalize(value)
    if labels is not None and not isinstance(labels, list | tuple):
        raise InvalidValue("labels must be a list of label names")
    ext = None if external_id in (None, "") else str(external_id)
    if ext is not None and (len(ext) > MAX_EXTERNAL_ID or "\x00" in ext):
        raise InvalidValue(f"external_id must be at most {MAX_EXTERNAL_ID} characters without NUL")
    if note is not None and (len(note) > MAX_NOTE or "\x00" in note):
        raise InvalidValue(f"note must be at most {MAX_NOTE} characters without NUL")
    return EntryInput(
        signal_type=st.name,
        value=normalized,
        labels=list(_labels(tuple(labels or ()))),
        source=check_source(source),
        external_id=ext,
        note=note or None,
    )


@lru_cache(maxsize=4096)
def _labels(labels: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(validate_labels(labels))


TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
DEFAULT_TENANT = "default"


def check_tenant(tenant: str) -> str:
    if not isinstance(tenant, str) or not TENANT.fullmatch(tenant):
        raise InvalidValue(
            f"invalid tenant {preview(tenant)}: use 1-64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return tenant


@dataclass(frozen=True)
class BankInfo:
    id: int
    name: str
    kind: str
    description: str
    thresholds: dict[str, int]
    dihedral: bool
    version: int
    created_at: datetime
    updated_at: datetime
    counts: dict[str, int] = field(default_factory=dict)
    tenant: str = DEFAULT_TENANT
    shared_with: tuple[str, ...] = ()

    def visible_to(self, tenant: str | None) -> bool:
        """Whether ``tenant`` may read this bank (``None``: the operator, who sees all)."""
        return tenant is None or tenant == self.tenant or tenant in self.shared_with

    def threshold(self, signal_type: str) -> int:
        if signal_type in self.thresholds:
            return self.thresholds[signal_type]
        return get_signal_type(signal_type).default_threshold

    def to_dict(self, viewer: str | None = None) -> dict[str, Any]:
        """The bank as JSON. ``viewer``: the tenant asking; a bank shared with it shows
        as ``read_only`` and does not reveal whom else it is shared with."""
        out = {
            "name": self.name,
            "tenant": self.tenant,
            "kind": self.kind,
            "description": self.description,
            "thresholds": {**default_thresholds(), **self.thresholds},
            "dihedral": self.dihedral,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "entries": sum(self.counts.values()),
            "counts": dict(self.counts),
        }
        if viewer is None or viewer == self.tenant:
            out["shared_with"] = list(self.shared_with)
            out["read_only"] = False
        else:
            out["read_only"] = True
        return out


@dataclass(frozen=True)
class EntryRecord:
    id: int
    bank: str
    signal_type: str
    value: str
    labels: list[str]
    source: str
    external_id: str | None
    added_at: datetime
    added_by: str | None
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bank": self.bank,
            "signal_type": self.signal_type,
            "value": self.value,
            "labels": list(self.labels),
            "source": self.source,
            "external_id": self.external_id,
            "added_at": self.added_at.isoformat(),
            "added_by": self.added_by,
            "note": self.note,
        }

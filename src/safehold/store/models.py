"""SQLAlchemy models: banks, entries, shares, API keys and the change log.

The schema is created and upgraded by the Alembic migrations next to this module
(``safehold.store.migrations``); a test checks that they agree with these models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Digest keys compare bytewise: PostgreSQL's locale-aware text comparison would make the
# unique index several times slower to build and probe.
Digest = String(64).with_variant(String(64, collation="C"), "postgresql")

# 64-bit ids on PostgreSQL; SQLite's INTEGER PRIMARY KEY is already 64-bit (rowid).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


class Bank(Base):
    """A named, versioned set of signals: a block bank or a negative bank."""

    __tablename__ = "banks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    """The tenant that owns the bank; others see it only when it is shared to them."""
    kind: Mapped[str] = mapped_column(String(16), default="block")
    description: Mapped[str] = mapped_column(Text, default="")
    thresholds: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    dihedral: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Entry(Base):
    """One signal value in a bank, with its labels and provenance."""

    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("bank_id", "value_digest", name="uq_entries_bank_value"),
        Index("ix_entries_bank_signal", "bank_id", "signal_type"),
        # ids are never reused on SQLite either: matches, cases and replicas refer to them
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(BigId, ForeignKey("banks.id", ondelete="CASCADE"))
    signal_type: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(Text)
    value_digest: Mapped[str] = mapped_column(Digest)
    """SHA-256 of ``signal_type:value``: the uniqueness key (values can be long)."""
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(64), default="local")
    external_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    added_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class BankShare(Base):
    """A bank shared read-only with another tenant (its entries match that tenant's content)."""

    __tablename__ = "bank_shares"
    __table_args__ = (UniqueConstraint("bank_id", "tenant", name="uq_bank_shares_bank_tenant"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(BigId, ForeignKey("banks.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key: a public id plus a secret kept only as an argon2 hash."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(100), default="")
    tenant: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Requests per second (token refill rate); ``None`` uses the service default."""
    burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Change(Base):
    """The append-only change log index replicas follow (cursor: ``id``).

    ``op`` is ``add`` / ``remove`` (an entry), ``bank`` (a bank was created, changed or
    deleted, or its shares changed) or ``key`` (an API key was revoked or changed).
    Written in the same transaction as the change itself.
    """

    __tablename__ = "changes"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    op: Mapped[str] = mapped_column(String(8))
    bank_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    entry_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)


# --- issue 5: rules, actions, cases, review console, audit log -------------------------


class User(Base):
    """A console user: reviewer, lead, admin or auditor. The password is an argon2id hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    tenant: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    blur: Mapped[int] = mapped_column(Integer, default=24, server_default="24")
    """Blur radius in pixels of the default rendition (per-reviewer wellness setting)."""
    daily_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Items this reviewer may reveal a day before assignment pauses; None: the default."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(nullable=True)


class UserSession(Base):
    """A console login. ``token_hash`` is SHA-256 of the random cookie token."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class RuleSet(Base):
    """One stored version of a tenant's rules (YAML source). One version is active."""

    __tablename__ = "rulesets"
    __table_args__ = (UniqueConstraint("tenant", "version", name="uq_rulesets_tenant_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class RuleHit(Base):
    """How often a rule of a rule-set version fired (``shadow``: it fired in dry-run)."""

    __tablename__ = "rule_hits"
    __table_args__ = (
        UniqueConstraint("ruleset_id", "rule", "shadow", name="uq_rule_hits_ruleset_rule"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ruleset_id: Mapped[int] = mapped_column(BigId, ForeignKey("rulesets.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(100))
    shadow: Mapped[bool] = mapped_column(Boolean, default=False)
    hits: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hit_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Event(Base):
    """One evaluation of the rules: what was known about a piece of content then.

    ``context`` holds the rule input (matches, classifications, reports, account
    signals, media facts; never the media itself) so that ``rules test --against recent``
    can replay it. Pruned after a retention period.
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_tenant_at", "tenant", "at"),
        Index("ix_events_account", "tenant", "account_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    kind: Mapped[str] = mapped_column(String(16), default="scan")
    at: Mapped[datetime] = mapped_column(default=utcnow)
    content_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decision: Mapped[str] = mapped_column(String(16))
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    rules: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Names of the rules that fired (acting, not shadow)."""
    ruleset_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    media_id: Mapped[int | None] = mapped_column(BigId, nullable=True)


class Media(Base):
    """A stored copy of content kept for review or as evidence (content-addressed file)."""

    __tablename__ = "media"
    __table_args__ = (UniqueConstraint("tenant", "sha256", name="uq_media_tenant_sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    sha256: Mapped[str] = mapped_column(Digest)
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    path: Mapped[str] = mapped_column(String(512))
    """Path relative to the media directory (``SAFEHOLD_MEDIA_DIR``)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    preserved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    """Set by the ``preserve`` action: kept as evidence, exempt from retention."""


class Case(Base):
    """A unit of human review work."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_queue_state", "tenant", "queue", "state"),
        Index("ix_cases_account", "tenant", "account_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    queue: Mapped[str] = mapped_column(String(64), default="default")
    state: Mapped[str] = mapped_column(String(16), default="new")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    """Higher is more urgent: the taxonomy severity of the worst label, or a rule's value."""
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    account_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    title: Mapped[str] = mapped_column(String(256), default="")
    assignee_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    sla_due_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="content", server_default="content")
    """``content`` (opened by the rules for scanned content) or ``complaint`` (opened by a
    report from the public or a partner: the assess, investigate, resolve workflow)."""
    stage: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """Complaints only: ``assess``, ``investigate`` or ``resolved``."""
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    ncmec_report_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The CyberTipline report id once a referral of this case was submitted."""


class CaseItem(Base):
    """One content item of a case, with the signals and matches known when it was added."""

    __tablename__ = "case_items"
    __table_args__ = (Index("ix_case_items_sha256", "sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id", ondelete="CASCADE"))
    content_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    event_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    media_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("media.id", ondelete="SET NULL"), nullable=True
    )
    sha256: Mapped[str | None] = mapped_column(Digest, nullable=True)
    pdq: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reports: Mapped[int] = mapped_column(Integer, default=0)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    report_id: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    """The report a file came with (complaint cases), else ``None``."""


class CaseDecision(Base):
    """A reviewer's decision. Under the two-person rule it is ``proposed`` until a second
    reviewer confirms it (``confirmed``) or rejects it (``rejected``)."""

    __tablename__ = "case_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    label: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="confirmed")
    at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_by: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    confirmed_at: Mapped[datetime | None] = mapped_column(nullable=True)


class CaseComment(Base):
    __tablename__ = "case_comments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    body: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Exposure(Base):
    """One reveal of one item by one reviewer (wellness counters are sums of these)."""

    __tablename__ = "exposures"
    __table_args__ = (Index("ix_exposures_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    case_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    item_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class Notification(Base):
    """An in-console notice from a ``notify`` action, to a role or a user."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    to_role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_user_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    case_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    event_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(nullable=True)


class WebhookDelivery(Base):
    """One webhook message: retried with backoff, dead-lettered, replayable."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    rule: Mapped[str | None] = mapped_column(String(100), nullable=True)
    url: Mapped[str] = mapped_column(Text)
    secret_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """Where the signing secret comes from (an environment variable name), never the secret."""
    event_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AuditEntry(Base):
    """The append-only audit log. ``hash`` = SHA-256 over ``prev_hash`` and this entry's
    canonical JSON, so changing or removing any entry breaks the chain after it."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_object", "object_type", "object_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    actor: Mapped[str] = mapped_column(String(128))
    """``user:NAME``, ``key:KEY_ID``, ``cli`` or ``system``."""
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    object_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """One row: the last audit entry. Appending updates it first, which serialises
    writers on every backend (a row lock on PostgreSQL, the write lock on SQLite), and
    lets ``audit verify`` notice entries cut off the end of the log."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(BigInteger, default=0)


# --------------------------------------------------------------------------- intake


class Report(Base):
    """A report from the public or a partner (``kind`` ``report``), or a person's own
    hashes made on their device (``kind`` ``hashes``). Checked, extended and withdrawn
    with its receipt: the ``number`` and a secret kept only as an argon2 hash."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_tenant_created", "tenant", "created_at"),
        Index("ix_reports_description_digest", "description_digest"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    number: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16), default="report")
    category: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="received")
    case_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("cases.id", ondelete="SET NULL"), nullable=True, index=True
    )
    source: Mapped[str] = mapped_column(String(64), default="public_report")
    description: Mapped[str] = mapped_column(Text, default="")
    description_digest: Mapped[str | None] = mapped_column(Digest, nullable=True)
    platform: Mapped[str] = mapped_column(String(200), default="")
    username: Mapped[str] = mapped_column(String(200), default="")
    demographics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    contact: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    language: Mapped[str] = mapped_column(String(16), default="en")
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ReportUrl(Base):
    """A URL named in a report, canonicalised; reports of the same URL share a case."""

    __tablename__ = "report_urls"
    __table_args__ = (Index("ix_report_urls_digest", "digest"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(BigId, ForeignKey("reports.id", ondelete="CASCADE"))
    case_id: Mapped[int | None] = mapped_column(BigId, nullable=True, index=True)
    url: Mapped[str] = mapped_column(Text)
    """As the reporter gave it (cleaned of control characters)."""
    canonical: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(Digest)
    host: Mapped[str] = mapped_column(String(255), default="")
    domain: Mapped[str] = mapped_column(String(255), default="")
    """The registrable domain (eTLD+1) of the host: whom a notice goes to."""


class ReportHash(Base):
    """One hash a person made of their own image or video on their device, in the
    consent bank until they withdraw it."""

    __tablename__ = "report_hashes"
    __table_args__ = (Index("ix_report_hashes_digest", "digest"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(BigId, ForeignKey("reports.id", ondelete="CASCADE"))
    signal_type: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(Digest)
    """The bank entry's value digest (``signal_type:value``)."""
    quality: Mapped[int | None] = mapped_column(Integer, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ReportMessage(Base):
    """A message between the hotline and a reporter, read with the receipt."""

    __tablename__ = "report_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("reports.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(16))
    """``to_reporter`` or ``from_reporter`` (information the reporter added)."""
    body: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)
    email_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """``queued``, ``sent`` or ``failed`` when the reporter left an e-mail address."""
    email_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class CaseStage(Base):
    """One stage of a complaint (assess, investigate, resolved): the response-time clocks."""

    __tablename__ = "case_stages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("cases.id", ondelete="CASCADE"), index=True
    )
    stage: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )


class NoticeTemplate(Base):
    """An operator-editable template of a takedown or blocking notice."""

    __tablename__ = "notice_templates"
    __table_args__ = (
        UniqueConstraint(
            "tenant", "kind", "jurisdiction", "language", name="uq_notice_templates_key"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    kind: Mapped[str] = mapped_column(String(16))
    jurisdiction: Mapped[str] = mapped_column(String(32), default="default")
    language: Mapped[str] = mapped_column(String(16), default="en")
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class HostContact(Base):
    """Whom to send notices for a domain (the operator's list of hosting providers)."""

    __tablename__ = "host_contacts"
    __table_args__ = (UniqueConstraint("tenant", "domain", name="uq_host_contacts_domain"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    domain: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    abuse_url: Mapped[str] = mapped_column(Text, default="")
    jurisdiction: Mapped[str] = mapped_column(String(32), default="default")
    notes: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notice(Base):
    """A takedown notice to a host, or a blocking request for network operators,
    tracked until removal is confirmed (with scheduled rechecks of the URL)."""

    __tablename__ = "notices"
    __table_args__ = (
        Index("ix_notices_status_check", "status", "next_check_at"),
        Index("ix_notices_case", "case_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    case_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("cases.id", ondelete="SET NULL"), nullable=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    """``takedown`` (to the host) or ``block`` (a URL block request)."""
    scope: Mapped[str] = mapped_column(String(16), default="url")
    """``url`` (block this URL) or ``host`` (block the whole host name: RPZ)."""
    url: Mapped[str] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(255), default="")
    domain: Mapped[str] = mapped_column(String(255), default="")
    jurisdiction: Mapped[str] = mapped_column(String(32), default="default")
    language: Mapped[str] = mapped_column(String(16), default="en")
    recipient_name: Mapped[str] = mapped_column(String(200), default="")
    recipient_email: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="draft")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    sent_via: Mapped[str | None] = mapped_column(String(16), nullable=True)
    email_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    next_check_at: Mapped[datetime | None] = mapped_column(nullable=True)
    checks: Mapped[int] = mapped_column(Integer, default=0)
    last_check_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_check_result: Mapped[str | None] = mapped_column(String(200), nullable=True)


# --------------------------------------------------------------------------- evidence vault


class VaultMasterKey(Base):
    """A master key of the evidence vault, by id only: the key itself is never stored.

    ``id`` is derived from the key (``mk_`` + 16 hex digits of a SHA-256 over it), so a
    configured key names itself. ``state`` is ``active`` (wraps new data keys),
    ``retiring`` (a rotation away from it is under way) or ``retired``."""

    __tablename__ = "vault_master_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(nullable=True)


class VaultKey(Base):
    """A data key (AES-256), one per blob and one per item, wrapped by a master key
    (AES-256-GCM; base64 of nonce + ciphertext + tag). Deleting it destroys what it
    encrypted."""

    __tablename__ = "vault_keys"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    master_key_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("vault_master_keys.id"), index=True
    )
    wrapped: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rewrapped_at: Mapped[datetime | None] = mapped_column(nullable=True)


class VaultBlob(Base):
    """Encrypted content in the vault directory, once per tenant and SHA-256 of the
    plaintext; the file is named by the random ``uid``, not by the digest."""

    __tablename__ = "vault_blobs"
    __table_args__ = (
        UniqueConstraint("tenant", "sha256", name="uq_vault_blobs_tenant_sha256"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    sha256: Mapped[str] = mapped_column(Digest)
    """SHA-256 of the plaintext content."""
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    key_id: Mapped[int] = mapped_column(BigId, ForeignKey("vault_keys.id"))
    size: Mapped[int] = mapped_column(BigInteger)
    path: Mapped[str] = mapped_column(String(512))
    """Path relative to the vault directory (``SAFEHOLD_VAULT_DIR``)."""
    file_size: Mapped[int] = mapped_column(BigInteger)
    file_sha256: Mapped[str] = mapped_column(Digest)
    """SHA-256 of the encrypted file: tells a changed file from a changed row."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VaultItem(Base):
    """One preservation: a blob and its context (signals, matches, account data, upload
    metadata, ids), sealed with the item's own data key. The plain columns are for
    finding items; their values are also inside the sealed record, and ``verify``
    compares the two."""

    __tablename__ = "vault_items"
    __table_args__ = (
        UniqueConstraint("tenant", "origin", name="uq_vault_items_tenant_origin"),
        Index("ix_vault_items_retain_until", "retain_until"),
        Index("ix_vault_items_event", "event_id"),
        Index("ix_vault_items_case", "case_id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    blob_id: Mapped[int] = mapped_column(BigId, ForeignKey("vault_blobs.id"), index=True)
    key_id: Mapped[int] = mapped_column(BigId, ForeignKey("vault_keys.id"))
    sha256: Mapped[str] = mapped_column(Digest)
    origin: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """What preserved it (``event:41``): the same origin preserves once."""
    event_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    case_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    content_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    category: Mapped[str] = mapped_column(String(16))
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    preserved_at: Mapped[datetime] = mapped_column(default=utcnow)
    preserved_by: Mapped[str] = mapped_column(String(128))
    retain_until: Mapped[datetime] = mapped_column()
    context: Mapped[str] = mapped_column(Text)
    """The sealed record: base64 of nonce + AES-256-GCM ciphertext + tag."""


class VaultHold(Base):
    """A legal hold on an item: kept past its retention until every hold is released."""

    __tablename__ = "vault_holds"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("vault_items.id", ondelete="CASCADE"), index=True
    )
    reference: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    held_by: Mapped[str] = mapped_column(String(128))
    held_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    release_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


# --------------------------------------------------------------------------- referrals


class Referral(Base):
    """A report of a case to an authority (NCMEC's CyberTipline, or police as a package):
    proposed by one person, approved by another (two-person rule), then sent."""

    __tablename__ = "referrals"
    __table_args__ = (
        Index("ix_referrals_case", "case_id"),
        Index("ix_referrals_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16), default="ncmec")
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    """``proposed`` → ``approved`` → ``sending`` → ``sent``; or ``rejected``, ``failed``,
    ``unknown`` (the submit's answer was lost: check with NCMEC), ``retracted``."""
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """What the proposer entered (incident type, annotations, escalation, notes)."""
    journal: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """The CyberTipline client's resumable journal (never credentials)."""
    external_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """NCMEC's report id once submitted."""
    environment: Mapped[str | None] = mapped_column(String(16), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)


class PreservationRequest(Base):
    """A request from law enforcement to preserve an account's data (reference, scope,
    deadline), tracked until it is fulfilled, withdrawn or expires."""

    __tablename__ = "preservation_requests"
    __table_args__ = (Index("ix_preservation_requests_status", "tenant", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    reference: Mapped[str] = mapped_column(String(128))
    authority: Mapped[str] = mapped_column(String(200), default="")
    account_id: Mapped[str] = mapped_column(String(256))
    scope: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """What is covered: ``content``, ``account``, ``events`` and a date range."""
    status: Mapped[str] = mapped_column(String(16), default="open")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline_at: Mapped[datetime | None] = mapped_column(nullable=True)
    case_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    vault_items: Mapped[list[int]] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    closed_at: Mapped[datetime | None] = mapped_column(nullable=True)

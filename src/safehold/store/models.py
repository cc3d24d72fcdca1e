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

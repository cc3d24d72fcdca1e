"""The store: migrations create exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from safehold.errors import InvalidValue
from safehold.store import Database, database_url
from safehold.store.models import Base


def test_migrations_match_models(db: Database) -> None:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, Base.metadata) == []
    tables = set(inspect(db.engine).get_table_names())
    assert {"banks", "entries", "alembic_version"} <= tables


def test_opening_twice_is_a_no_op(db_url: str) -> None:
    Database(db_url).close()
    with Database(db_url) as again:
        assert again.backend in ("sqlite", "postgresql")


def test_database_url_defaults_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAFEHOLD_DATABASE_URL", raising=False)
    assert database_url() == "sqlite:///safehold.db"
    monkeypatch.setenv("SAFEHOLD_DATABASE_URL", "postgresql://u@h/db")
    assert database_url() == "postgresql+psycopg://u@h/db"
    with pytest.raises(InvalidValue, match="unsupported database"):
        database_url("mysql://u@h/db")
    with pytest.raises(InvalidValue, match="not a database URL"):
        database_url("::not a url::")


def test_sqlite_file_created_in_missing_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "deep" / "er" / "x.db"
    with Database(f"sqlite:///{path}"):
        pass
    assert path.exists()


def test_timestamps_are_utc(db: Database) -> None:
    from safehold.banks import Banks

    info = Banks(db).create("tz")
    again = Banks(db).get("tz")
    assert info.created_at.tzinfo is not None
    assert again.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((again.created_at - info.created_at).total_seconds()) < 1

"""Shared fixtures: a fresh database on SQLite and on the real PostgreSQL server.

PostgreSQL tests create a database of their own (``safehold_test_<random>``) on the
server at ``SAFEHOLD_TEST_POSTGRES`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``,
the maintenance database used to create and drop it) and drop it afterwards. They are
skipped when the server is unreachable, unless ``SAFEHOLD_REQUIRE_POSTGRES=1``
(``make test`` and CI set it), in which case they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from safehold.store import Database

PG_ADMIN = os.environ.get(
    "SAFEHOLD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _find_vectors() -> Path:
    """The shared reference vectors: $SAFEHOLD_VECTORS, ../shared/vectors next to the
    checkout, or /work/shared/vectors (CI's clean clone may live elsewhere)."""
    candidates = [
        os.environ.get("SAFEHOLD_VECTORS", ""),
        str(Path(__file__).resolve().parents[2] / "shared" / "vectors"),
        "/work/shared/vectors",
    ]
    for c in candidates:
        if c and (Path(c) / "pdq" / "manifest.json").exists():
            return Path(c)
    return Path(candidates[1])


VECTORS = _find_vectors()


def _pg_admin_conninfo() -> str:
    return PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Admin URL of a reachable PostgreSQL server (or skip/fail)."""
    import psycopg

    try:
        with psycopg.connect(_pg_admin_conninfo(), connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        if os.environ.get("SAFEHOLD_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at {PG_ADMIN} is required but unreachable: {e}")
        pytest.skip(f"PostgreSQL at {PG_ADMIN} unreachable: {e}")
    yield PG_ADMIN


@pytest.fixture()
def pg_url(pg_server: str) -> Iterator[str]:
    """URL of a brand-new PostgreSQL database, dropped after the test."""
    import psycopg

    name = f"safehold_test_{secrets.token_hex(6)}"
    with psycopg.connect(_pg_admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_server.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_pg_admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'safehold.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'safehold.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture()
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.close()


@pytest.fixture()
def vectors() -> Path:
    if not (VECTORS / "pdq" / "manifest.json").exists():
        pytest.skip(f"reference vectors not found at {VECTORS}")
    return VECTORS


@pytest.fixture(autouse=True)
def _private_queue_and_media(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test gets its own job-queue file and media directory (unless it sets its own),
    so nothing lands in the checkout and no two tests share a queue."""
    base = tmp_path_factory.mktemp("svc")
    if "SAFEHOLD_QUEUE_URL" not in os.environ:
        monkeypatch.setenv("SAFEHOLD_QUEUE_URL", f"sqlite:///{base / 'jobs.db'}")
    if "SAFEHOLD_MEDIA_DIR" not in os.environ:
        monkeypatch.setenv("SAFEHOLD_MEDIA_DIR", str(base / "media"))

"""Persistence: SQLAlchemy models, sessions and Alembic migrations."""

from safehold.store.db import DEFAULT_URL, Database, database_url, migrate
from safehold.store.models import Bank, Base, Entry

__all__ = ["DEFAULT_URL", "Bank", "Base", "Database", "Entry", "database_url", "migrate"]

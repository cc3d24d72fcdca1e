"""Console users (placeholder until the cases helper lands)."""

from __future__ import annotations

from safehold.audit import AuditLog
from safehold.store.db import Database


class Users:
    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db

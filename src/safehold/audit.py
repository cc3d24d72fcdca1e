"""The audit log (placeholder until the cases helper lands)."""

from __future__ import annotations

from safehold.store.db import Database


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

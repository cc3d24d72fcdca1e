"""Stored, versioned rule sets (placeholder until the rules helper lands)."""

from __future__ import annotations

from safehold.store.db import Database


class RuleSets:
    def __init__(self, db: Database) -> None:
        self.db = db

"""The policy pipeline (placeholder until the actions helper lands)."""

from __future__ import annotations

from typing import Any


class Policy:
    def __init__(self, db: Any, **parts: Any) -> None:
        self.db = db

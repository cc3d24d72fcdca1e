"""The job queue (placeholder until the actions helper lands)."""

from __future__ import annotations


class Jobs:
    @classmethod
    def from_url(cls, url: str | None, db_url: str) -> Jobs:
        return cls()

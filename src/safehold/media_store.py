"""Stored media (placeholder until the cases helper lands)."""

from __future__ import annotations

from pathlib import Path

from safehold.store.db import Database


def default_media_root(db: Database) -> Path:
    """``safehold-media/`` next to the SQLite database file, else in the working directory."""
    url = db.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / "safehold-media"
    return Path("safehold-media").resolve()


class MediaStore:
    def __init__(self, db: Database, root: str | Path) -> None:
        self.db = db
        self.root = Path(root)

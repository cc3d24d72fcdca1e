"""Stored media: copies of content kept for review or as evidence.

Files are content-addressed under the media directory (``SAFEHOLD_MEDIA_DIR``, default
``safehold-media/`` next to the SQLite database or in the working directory):
``ab/cd/<sha256>`` where ``abcd`` are the first hex digits of the SHA-256 of the bytes.
Each tenant has one ``media`` row per distinct SHA-256; the same bytes kept twice are
stored once. Files are written to a temporary name and renamed into place, readable by
the owner only, and the bytes are checked against the SHA-256 the caller computed.
``preserve`` marks a file as evidence (exempt from retention).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safehold.banks.entries import DEFAULT_TENANT, check_tenant
from safehold.errors import InvalidValue, NotFound, Unreadable, preview
from safehold.hashing import ContentHashes
from safehold.store.db import Database
from safehold.store.models import Media, utcnow

_SHA256 = re.compile(r"[0-9a-f]{64}")


def default_media_root(db: Database) -> Path:
    """``safehold-media/`` next to the SQLite database file, else in the working directory."""
    url = db.engine.url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / "safehold-media"
    return Path("safehold-media").resolve()


@dataclass(frozen=True)
class MediaInfo:
    id: int
    tenant: str
    sha256: str
    kind: str
    format: str
    size: int
    width: int | None
    height: int | None
    path: str
    created_at: datetime
    preserved_at: datetime | None

    @property
    def preserved(self) -> bool:
        return self.preserved_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant": self.tenant,
            "sha256": self.sha256,
            "kind": self.kind,
            "format": self.format,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "created_at": self.created_at.isoformat(),
            "preserved_at": self.preserved_at.isoformat() if self.preserved_at else None,
        }


def _info(row: Media) -> MediaInfo:
    return MediaInfo(
        id=int(row.id),
        tenant=row.tenant,
        sha256=row.sha256,
        kind=row.kind,
        format=row.format,
        size=int(row.size),
        width=row.width,
        height=row.height,
        path=row.path,
        created_at=row.created_at,
        preserved_at=row.preserved_at,
    )


def relative_path(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


class MediaStore:
    """Keep, find and preserve stored media files."""

    def __init__(self, db: Database, root: str | Path) -> None:
        self.db = db
        self.root = Path(root)

    def keep(self, path: str | Path, hashes: ContentHashes, *, tenant: str = DEFAULT_TENANT) -> int:
        """Copy ``path`` into the store (once per tenant and SHA-256); returns the media id."""
        check_tenant(tenant)
        sha = str(hashes.sha256).lower()
        if not _SHA256.fullmatch(sha):
            raise InvalidValue(f"not a SHA-256: {preview(hashes.sha256)}")
        with self.db.session() as s:
            existing = s.scalar(select(Media).where(Media.tenant == tenant, Media.sha256 == sha))
            if existing is not None and self._file(existing.path).is_file():
                return int(existing.id)
        rel = relative_path(sha)
        self._copy(Path(path), rel, sha)
        try:
            with self.db.session() as s:
                existing = s.scalar(
                    select(Media).where(Media.tenant == tenant, Media.sha256 == sha)
                )
                if existing is not None:
                    existing.path = rel
                    return int(existing.id)
                row = Media(
                    tenant=tenant,
                    sha256=sha,
                    kind=hashes.kind,
                    format=str(hashes.format)[:32],
                    size=int(hashes.size),
                    width=hashes.width,
                    height=hashes.height,
                    path=rel,
                    created_at=utcnow(),
                )
                s.add(row)
                s.flush()
                return int(row.id)
        except IntegrityError:  # kept at the same moment by another request
            with self.db.session() as s:
                media_id = s.scalar(
                    select(Media.id).where(Media.tenant == tenant, Media.sha256 == sha)
                )
            if media_id is None:
                raise
            return int(media_id)

    def _file(self, rel: str) -> Path:
        return self.root / rel

    def _copy(self, src: Path, rel: str, sha: str) -> None:
        dest = self._file(rel)
        if dest.is_file():
            return
        if not self.root.is_dir():  # private: the file names are content digests
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.tmp")
        digest = hashlib.sha256()
        try:
            try:
                with open(src, "rb") as fin:
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as fout:
                        while chunk := fin.read(1 << 20):
                            digest.update(chunk)
                            fout.write(chunk)
                        fout.flush()
                        os.fsync(fout.fileno())
            except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
                raise Unreadable(f"cannot read {src}: {e.strerror or e}") from e
            if digest.hexdigest() != sha:
                raise InvalidValue(
                    "the file changed while it was kept: its SHA-256 is not the one given"
                )
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def _row(self, s: Session, media_id: int) -> Media:
        row = s.get(Media, int(media_id))
        if row is None:
            raise NotFound(f"no stored media with id {preview(media_id)}")
        return row

    def info(self, media_id: int) -> MediaInfo:
        with self.db.session() as s:
            return _info(self._row(s, media_id))

    def path(self, media_id: int) -> Path:
        """The stored file of ``media_id`` (NotFound when the row or the file is gone)."""
        info = self.info(media_id)
        file = self._file(info.path)
        if not file.is_file():
            # the path is for the operator's log, not for whoever asked
            logging.getLogger("safehold.media").warning(
                "the file of media %s is missing from %s", media_id, self.root
            )
            raise NotFound(
                f"the file of media {media_id} is missing from the media directory; "
                "ask an operator to restore it from backup"
            )
        return file

    def preserve(self, media_id: int, *, session: Session | None = None) -> MediaInfo:
        """Mark media as evidence (idempotent: the first time is kept)."""
        if session is not None:
            return self._preserve(session, media_id)
        with self.db.session() as s:
            return self._preserve(s, media_id)

    def _preserve(self, s: Session, media_id: int) -> MediaInfo:
        row = self._row(s, media_id)
        if row.preserved_at is None:
            s.execute(
                update(Media)
                .where(Media.id == row.id, Media.preserved_at.is_(None))
                .values(preserved_at=utcnow())
            )
            s.refresh(row)
        return _info(row)

    def remove_file(self, media_id: int) -> None:
        """Delete a stored file unless it is preserved or another row still uses it."""
        with self.db.session() as s:
            row = self._row(s, media_id)
            if row.preserved_at is not None:
                return
            others = s.scalar(
                select(Media.id).where(Media.sha256 == row.sha256, Media.id != row.id).limit(1)
            )
            rel = row.path
            s.delete(row)
        if others is None:
            self._file(rel).unlink(missing_ok=True)


__all__ = ["MediaInfo", "MediaStore", "default_media_root", "relative_path"]

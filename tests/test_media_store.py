"""Stored media: content-addressed copies, one per tenant and SHA-256, preserved as evidence."""

from __future__ import annotations

import stat
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from media_factory import photo_like, write_image
from safehold.errors import InvalidValue, NotFound, Unreadable
from safehold.hashing import ContentHashes, hash_file
from safehold.media_store import MediaStore, default_media_root
from safehold.store import Database


@pytest.fixture()
def picture(tmp_path: Path) -> tuple[Path, ContentHashes]:
    path = write_image(tmp_path / "upload.png", photo_like(96, 64, seed=3), "png")
    return path, hash_file(path)


@pytest.fixture()
def store(db: Database, tmp_path: Path) -> MediaStore:
    return MediaStore(db, tmp_path / "media")


def test_keep_copies_content_addressed(
    store: MediaStore, picture: tuple[Path, ContentHashes], tmp_path: Path
) -> None:
    path, hashes = picture
    media_id = store.keep(path, hashes, tenant="acme")
    stored = store.path(media_id)
    sha = hashes.sha256
    assert stored == tmp_path / "media" / sha[:2] / sha[2:4] / sha
    assert stored.read_bytes() == path.read_bytes()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    info = store.info(media_id)
    assert (info.tenant, info.sha256, info.kind, info.format) == ("acme", sha, "image", "png")
    assert (info.width, info.height, info.size) == (96, 64, path.stat().st_size)
    assert info.preserved_at is None
    path.unlink()  # the upload's temporary file goes; the copy stays
    assert store.path(media_id).exists()
    assert not list((tmp_path / "media").rglob("*.tmp"))


def test_dedup_per_tenant(store: MediaStore, picture: tuple[Path, ContentHashes]) -> None:
    path, hashes = picture
    first = store.keep(path, hashes, tenant="acme")
    assert store.keep(path, hashes, tenant="acme") == first
    other = store.keep(path, hashes, tenant="beta")
    assert other != first
    assert store.path(other) == store.path(first)  # one file on disk


def test_concurrent_keeps_make_one_row(
    db_url: str, picture: tuple[Path, ContentHashes], tmp_path: Path
) -> None:
    path, hashes = picture
    dbs = [Database(db_url, upgrade=i == 0) for i in range(4)]
    try:
        ids: list[int] = []
        errors: list[BaseException] = []

        def keep(d: Database) -> None:
            try:
                ids.append(MediaStore(d, tmp_path / "media").keep(path, hashes, tenant="acme"))
            except BaseException as e:  # pragma: no cover
                errors.append(e)

        threads = [threading.Thread(target=keep, args=(d,)) for d in dbs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert len(set(ids)) == 1
    finally:
        for d in dbs:
            d.close()


def test_bytes_must_match_the_hash(
    store: MediaStore, picture: tuple[Path, ContentHashes], tmp_path: Path
) -> None:
    path, hashes = picture
    with pytest.raises(InvalidValue, match="SHA-256"):
        store.keep(path, replace(hashes, sha256="0" * 64))
    with pytest.raises(InvalidValue, match="not a SHA-256"):
        store.keep(path, replace(hashes, sha256="../../etc/passwd"))
    with pytest.raises(Unreadable):
        store.keep(tmp_path / "missing.png", hashes)
    assert not [p for p in (tmp_path / "media").rglob("*") if p.is_file()]


def test_preserve_is_idempotent(store: MediaStore, picture: tuple[Path, ContentHashes]) -> None:
    media_id = store.keep(*picture)
    first = store.preserve(media_id)
    assert first.preserved and first.preserved_at is not None
    assert store.preserve(media_id).preserved_at == first.preserved_at
    store.remove_file(media_id)  # preserved: kept
    assert store.path(media_id).exists()


def test_remove_file(store: MediaStore, picture: tuple[Path, ContentHashes]) -> None:
    media_id = store.keep(*picture)
    file = store.path(media_id)
    store.remove_file(media_id)
    assert not file.exists()
    with pytest.raises(NotFound):
        store.info(media_id)


def test_missing_ids_and_files(store: MediaStore, picture: tuple[Path, ContentHashes]) -> None:
    with pytest.raises(NotFound):
        store.path(12345)
    media_id = store.keep(*picture)
    store.path(media_id).unlink()
    with pytest.raises(NotFound, match="missing"):
        store.path(media_id)
    assert store.keep(*picture) == media_id  # keeping it again restores the file
    assert store.path(media_id).exists()


def test_default_root(tmp_path: Path) -> None:
    with Database(f"sqlite:///{tmp_path / 'x' / 'safehold.db'}") as db:
        assert default_media_root(db) == (tmp_path / "x" / "safehold-media").resolve()

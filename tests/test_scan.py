"""safehold.scan: walking files, hashing on several processes, resumable progress.

Pictures are drawn by code (gradients, shapes, text) into pytest's tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import cast

import pytest
from PIL import Image

from safehold.banks import Banks, Matcher, make_entry
from safehold.demo import synthetic_picture
from safehold.errors import SafeholdError
from safehold.hashing import ContentHashes, hash_file
from safehold.scan import ScanOutcome, ScanState, hash_files, iter_files, scan
from safehold.store import Database


def picture(seed: int, size: tuple[int, int] = (256, 192)) -> Image.Image:
    """A harmless photo-like picture drawn by code (the demo bank's generator)."""
    return synthetic_picture(seed, size)


def save(path: Path, seed: int, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(seed).save(path, fmt)
    return path


# --------------------------------------------------------------------------- iter_files


def test_iter_files_is_recursive_and_sorted(tmp_path: Path) -> None:
    for rel in ["b/2.png", "b/1.png", "a/z/9.png", "a/0.png", "c.png", "b/a/x.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    got = [p.relative_to(tmp_path).as_posix() for p in iter_files([tmp_path])]
    # Files of a directory come before its subdirectories; both in name order.
    assert got == ["c.png", "a/0.png", "a/z/9.png", "b/1.png", "b/2.png", "b/a/x.png"]
    # Stable across calls.
    assert list(iter_files([tmp_path])) == list(iter_files([tmp_path]))


def test_iter_files_keeps_argument_order_and_missing_paths(tmp_path: Path) -> None:
    one = tmp_path / "one.png"
    one.write_bytes(b"1")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "two.png").write_bytes(b"2")
    missing = tmp_path / "missing.png"
    got = list(iter_files([str(missing), tmp_path / "d", one]))
    assert got == [missing, tmp_path / "d" / "two.png", one]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_iter_files_does_not_follow_directory_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.png").write_bytes(b"a")
    (root / "b.png").write_bytes(b"b")
    os.symlink(root, root / "sub" / "loop")  # a cycle back to the top
    os.symlink(tmp_path, root / "up")  # a way out of the scanned tree
    os.symlink(root / "b.png", root / "sub" / "link-to-b.png")  # a file symlink is a file
    got = [p.relative_to(root).as_posix() for p in iter_files([root])]
    assert got == ["b.png", "sub/a.png", "sub/link-to-b.png"]


# --------------------------------------------------------------------------- hash_files


@pytest.fixture()
def mixed_files(tmp_path: Path) -> list[Path]:
    """Good pictures interleaved with files that cannot be hashed."""
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not a picture at all" * 10)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(save(tmp_path / "whole.png", 99).read_bytes()[:200])
    return [
        save(tmp_path / "p1.png", 1),
        garbage,
        save(tmp_path / "p2.jpg", 2, "JPEG"),
        tmp_path / "missing.png",
        empty,
        save(tmp_path / "p3.png", 3),
        truncated,
        save(tmp_path / "p4.webp", 4, "WEBP"),
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_hash_files_keeps_order_and_returns_errors(mixed_files: list[Path], workers: int) -> None:
    results = list(hash_files(iter(mixed_files), workers=workers))
    assert [path for path, _ in results] == [str(p) for p in mixed_files]
    ok = {path: r for path, r in results if isinstance(r, ContentHashes)}
    failed = {path: r for path, r in results if isinstance(r, SafeholdError)}
    assert set(ok) == {str(p) for p in mixed_files if p.name.startswith("p")}
    assert set(failed) == {str(p) for p in mixed_files if not p.name.startswith("p")}
    for path, res in ok.items():
        assert res.md5 == hashlib.md5(Path(path).read_bytes()).hexdigest()
        assert res.sha256 == hashlib.sha256(Path(path).read_bytes()).hexdigest()
        assert res.kind == "image" and res.pdq is not None and len(res.pdq) == 64
        assert res.pdq == hash_file(path).pdq
    for err in failed.values():
        assert err.code and err.message
    assert failed[str(mixed_files[3])].code == "unreadable"


def test_hash_files_two_workers_equal_one_worker(mixed_files: list[Path]) -> None:
    def summary(workers: int) -> list[tuple[str, str | None]]:
        return [
            (path, r.pdq if isinstance(r, ContentHashes) else r.code)
            for path, r in hash_files(mixed_files, workers=workers)
        ]

    assert summary(2) == summary(1)


def test_hash_files_many_files_in_flight(tmp_path: Path) -> None:
    # More files than the look-ahead window (workers x 4): order still kept.
    base = save(tmp_path / "base.png", 7)
    paths = []
    for i in range(21):
        p = tmp_path / f"copy-{i:02d}.png"
        p.write_bytes(base.read_bytes())
        paths.append(p if i % 5 else tmp_path / f"missing-{i}.png")
    results = list(hash_files(paths, workers=2))
    assert [p for p, _ in results] == [str(p) for p in paths]
    assert [isinstance(r, SafeholdError) for _, r in results] == [i % 5 == 0 for i in range(21)]


# --------------------------------------------------------------------------- ScanState


def test_scan_state_marks_persist_and_resume(tmp_path: Path) -> None:
    a, b = save(tmp_path / "a.png", 1), save(tmp_path / "b.png", 2)
    state_path = tmp_path / "state" / "scan.jsonl"
    st = ScanState(state_path)
    assert not st.done and not st.is_done(a)
    st.mark(a)
    st.mark(tmp_path / "gone.png")  # vanished files are not recorded
    st.close()
    lines = [json.loads(x) for x in state_path.read_text().splitlines()]
    assert lines == [{"path": str(a), "size": a.stat().st_size, "mtime_ns": a.stat().st_mtime_ns}]
    again = ScanState(state_path)
    assert again.is_done(a) and not again.is_done(b)
    again.mark(b)
    again.finish()
    assert not state_path.exists()


def test_scan_state_rescans_modified_files(tmp_path: Path) -> None:
    a, b = save(tmp_path / "a.png", 1), save(tmp_path / "b.png", 2)
    state_path = tmp_path / "scan.jsonl"
    st = ScanState(state_path)
    st.mark(a)
    st.mark(b)
    st.close()
    # a: same size, different modification time; b: different content and size.
    stat = a.stat()
    os.utime(a, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    b_mtime = b.stat().st_mtime_ns
    save(b, 3)
    os.utime(b, ns=(b_mtime, b_mtime))
    assert b.stat().st_size != json.loads(state_path.read_text().splitlines()[1])["size"]
    resumed = ScanState(state_path)
    assert not resumed.is_done(a)
    assert not resumed.is_done(b)


def test_scan_state_ignores_damaged_lines(tmp_path: Path) -> None:
    a = save(tmp_path / "a.png", 1)
    good = json.dumps({"path": str(a), "size": a.stat().st_size, "mtime_ns": a.stat().st_mtime_ns})
    state_path = tmp_path / "scan.jsonl"
    state_path.write_bytes(
        b"\xff\xfe not utf-8\n"
        + b"[1, 2]\n"
        + b'{"path": ["x"], "size": 1, "mtime_ns": 1}\n'
        + b'{"path": "x", "size": "big", "mtime_ns": 1}\n'
        + b"null\n"
        + b'{"path": "y", "size": 1, "mtime_ns": 1e400}\n'
        + good.encode()
        + b"\n"
        + b'{"path": "cut sho'  # the line being written when the scan was killed
    )
    st = ScanState(state_path)
    assert st.is_done(a)
    assert len(st.done) == 1


def test_default_state_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    settings = {"banks": [], "fps": 1.0, "mode": "exact"}
    p1 = ScanState.default_path([tmp_path / "a", tmp_path / "b"], settings)
    assert p1.parent == tmp_path / "xdg" / "safehold" / "scans"
    # Same scan spelled differently -> same file; other settings -> another file.
    assert ScanState.default_path([tmp_path / "b", str(tmp_path / "a")], settings) == p1
    assert ScanState.default_path([tmp_path / "a", tmp_path / "b"], {**settings, "fps": 2.0}) != p1
    assert ScanState.default_path([tmp_path / "a"], settings) != p1


# --------------------------------------------------------------------------- scan()


@pytest.fixture()
def scan_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'scan.db'}")
    yield db
    db.close()


def test_scan_matches_skips_and_marks(tmp_path: Path, scan_db: Database) -> None:
    media = tmp_path / "media"
    known = save(media / "a-known.png", 1)
    save(media / "b-other.png", 2)
    (media / "c-broken.jpg").write_bytes(b"\xff\xd8 broken")
    save(media / "sub" / "d-known-copy.jpg", 1, "JPEG")
    banks = Banks(scan_db)
    banks.create("blk")
    banks.add("blk", [make_entry("pdq", hash_file(known).pdq or "", ["A1"], "local", "k1")])
    matcher = Matcher(scan_db)

    state = ScanState(tmp_path / "state.jsonl")
    outcomes = list(scan([media], matcher, workers=1, state=state))
    by_name = {Path(o.path).name: o for o in outcomes}
    assert list(by_name) == ["a-known.png", "b-other.png", "c-broken.jpg", "d-known-copy.jpg"]
    assert [m.external_id for m in by_name["a-known.png"].result.matches] == ["k1"]  # type: ignore[union-attr]
    assert [m.labels for m in by_name["d-known-copy.jpg"].result.matches] == [["A1"]]  # type: ignore[union-attr]
    assert by_name["b-other.png"].result.matches == []  # type: ignore[union-attr]
    assert by_name["c-broken.jpg"].error is not None
    assert by_name["c-broken.jpg"].to_dict() == {
        "path": str(media / "c-broken.jpg"),
        "error": {
            "code": by_name["c-broken.jpg"].error.code,
            "message": by_name["c-broken.jpg"].error.message,
        },
    }
    d = by_name["a-known.png"].to_dict()
    assert d["kind"] == "image" and d["matches"][0]["bank"] == "blk"
    state.close()

    # Every file is recorded, errors included; a second scan skips them all.
    skipped: list[Path] = []
    resumed = ScanState(tmp_path / "state.jsonl")
    assert list(scan([media], matcher, workers=1, state=resumed, on_skip=skipped.append)) == []
    assert sorted(p.name for p in skipped) == sorted(by_name)


def test_scan_interrupted_consumer_resumes_without_losing_files(
    tmp_path: Path, scan_db: Database
) -> None:
    media = tmp_path / "media"
    paths = [save(media / f"p{i}.png", 10 + i) for i in range(5)]
    Banks(scan_db).create("blk")
    matcher = Matcher(scan_db)
    state_path = tmp_path / "state.jsonl"

    seen: list[str] = []
    st = ScanState(state_path)
    gen = cast(Generator[ScanOutcome, None, None], scan([media], matcher, workers=2, state=st))
    for outcome in gen:
        if len(seen) == 2:
            break  # Ctrl-C: the third outcome arrived but was never printed
        seen.append(outcome.path)
    gen.close()
    st.close()

    rest = [o.path for o in scan([media], matcher, workers=1, state=ScanState(state_path))]
    # No file is lost: each one was either reported by the first run or is scanned again.
    assert set(seen) | set(rest) == {str(p) for p in paths}
    assert str(paths[2]) in rest
    assert str(paths[0]) not in rest

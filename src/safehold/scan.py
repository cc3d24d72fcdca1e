"""Scan files on disk against banks: all cores, resumable.

``scan`` walks the given paths (recursively), hashes files in worker processes,
matches them in this process and yields one :class:`ScanOutcome` per file. Progress
is kept in a state file (one JSON line per finished file), so an interrupted scan
started again with the same arguments skips what it already did. The state file is
removed when a scan completes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from safehold.banks.matcher import Matcher, MatchResult
from safehold.errors import MediaError, SafeholdError, Unreadable
from safehold.hashing import ContentHashes, Mode, hash_file
from safehold.media import Limits, resolve_limits


@dataclass
class ScanOutcome:
    path: str
    hashes: ContentHashes | None = None
    result: MatchResult | None = None
    error: SafeholdError | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.error is not None:
            out["error"] = {"code": self.error.code, "message": self.error.message}
            return out
        assert self.hashes is not None and self.result is not None
        out["kind"] = self.hashes.kind
        out.update(self.result.to_dict())
        if self.hashes.warnings:
            out["warnings"] = list(self.hashes.warnings)
        return out


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files under the given paths, recursively, in a stable order; symlinks to
    directories are not followed (no loops). Missing paths are yielded as given so
    that they are reported as unreadable."""
    for raw in paths:
        p = Path(raw)
        try:
            is_dir = p.is_dir()
        except OSError:  # e.g. a name too long for the file system: reported when read
            is_dir = False
        if is_dir:
            for root, dirs, files in os.walk(p, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    yield Path(root) / name
        else:
            yield p


def hash_one(
    path: str, fps: float, mode: Mode, dihedral: bool, limits: Limits
) -> ContentHashes | SafeholdError:
    """Hash a file, returning the error instead of raising (for worker processes)."""
    try:
        return hash_file(path, fps=fps, mode=mode, dihedral=dihedral, limits=limits)
    except SafeholdError as e:
        return e
    except MemoryError:
        return MediaError(f"{path}: ran out of memory while decoding")
    except OSError as e:
        return Unreadable(f"{path} cannot be read: {e.strerror or e}")


def hash_files(
    paths: Iterable[Path],
    *,
    workers: int | None = None,
    fps: float = 1.0,
    mode: Mode = "exact",
    dihedral: bool = False,
    limits: Limits | None = None,
) -> Iterator[tuple[str, ContentHashes | SafeholdError]]:
    """Hash files on ``workers`` processes (default: every core), yielding results in
    input order. A few files per worker are in flight, so memory stays flat."""
    limits = resolve_limits(limits)  # once here, so worker processes use the same
    n = workers or os.cpu_count() or 1
    if n <= 1:
        for p in paths:
            yield str(p), hash_one(str(p), fps, mode, dihedral, limits)
        return
    pool = ProcessPoolExecutor(n, initializer=_ignore_interrupt)
    try:
        pending: deque[tuple[str, Future[ContentHashes | SafeholdError]]] = deque()
        for p in paths:
            pending.append((str(p), pool.submit(hash_one, str(p), fps, mode, dihedral, limits)))
            if len(pending) >= n * 4:
                yield _result(*pending.popleft())
        while pending:
            yield _result(*pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ignore_interrupt() -> None:
    """Workers leave Ctrl-C (sent to the whole process group) to the parent, which
    stops the pool cleanly; a worker interrupted inside the pool's queue code can leave
    it locked and the scan hanging."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _result(
    path: str, fut: Future[ContentHashes | SafeholdError]
) -> tuple[str, ContentHashes | SafeholdError]:
    try:
        return path, fut.result()
    except Exception as e:  # a worker died (e.g. killed by the OS)
        return path, MediaError(f"{path}: hashing failed ({type(e).__name__}: {e})")


class ScanState:
    """Finished files of an interrupted scan: ``{"path", "size", "mtime_ns"}`` per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[tuple[str, int, int]] = set()
        if path.exists():
            with open(path, encoding="utf-8", errors="replace") as f:  # never trust it
                for line in f:
                    try:
                        obj = json.loads(line)
                        self.done.add((obj["path"], int(obj["size"]), int(obj["mtime_ns"])))
                    except (ValueError, KeyError, TypeError, OverflowError):
                        continue  # a line cut short by the interruption, or damaged
        self._out: IO[str] | None = None

    @staticmethod
    def default_path(paths: Sequence[str | Path], settings: dict[str, Any]) -> Path:
        key = json.dumps(
            {"paths": sorted(str(Path(p).resolve()) for p in paths), **settings}, sort_keys=True
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
        return base / "safehold" / "scans" / f"{digest}.jsonl"

    @staticmethod
    def _key(p: Path) -> tuple[str, int, int] | None:
        try:
            st = p.stat()
            # absolute, so resuming from another working directory finds the same files
            name = str(p.resolve())
        except (OSError, RuntimeError):
            return None
        return (name, st.st_size, st.st_mtime_ns)

    def is_done(self, p: Path) -> bool:
        key = self._key(p)
        return key is not None and key in self.done

    def mark(self, p: Path) -> None:
        key = self._key(p)
        if key is None:
            return
        if self._out is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._out = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._out.write(json.dumps({"path": key[0], "size": key[1], "mtime_ns": key[2]}) + "\n")
        self._out.flush()

    def finish(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def scan(
    paths: Sequence[str | Path],
    matcher: Matcher,
    *,
    banks: Sequence[str] | None = None,
    workers: int | None = None,
    fps: float = 1.0,
    mode: Mode = "exact",
    state: ScanState | None = None,
    limits: Limits | None = None,
    on_skip: Callable[[Path], None] | None = None,
) -> Iterator[ScanOutcome]:
    """Hash and match every file under ``paths``; skips files the state has done."""
    dihedral = any(b.dihedral for b in matcher.banks.values())

    def todo() -> Iterator[Path]:
        for p in iter_files(paths):
            if state is not None and state.is_done(p):
                if on_skip:
                    on_skip(p)
                continue
            yield p

    for path, res in hash_files(
        todo(), workers=workers, fps=fps, mode=mode, dihedral=dihedral, limits=limits
    ):
        if isinstance(res, SafeholdError):
            outcome = ScanOutcome(path, error=res)
        else:
            outcome = ScanOutcome(path, hashes=res, result=matcher.match_content(res, banks=banks))
        yield outcome
        # Recorded only once the caller asks for the next file, i.e. has handled this
        # one: a scan interrupted in between scans the file again rather than lose it.
        if state is not None:
            state.mark(Path(path))

"""An index replica: a :class:`Matcher` that follows the change log.

Each ``safehold serve`` process holds one. At start-up it notes the newest change
id, loads every bank's entries in bulk, then applies the changes made since. From
then on a background thread waits for work — a PostgreSQL ``NOTIFY`` on the
change-log channel, or a short poll on SQLite (and as a safety net on PostgreSQL) —
and applies new changes in id order:

* ``add``: read the entries by id and put them in the index;
* ``remove``: take them out;
* ``bank``: reload the bank's settings and shares (or drop it and its entries);
* ``key``: tell the listeners (the API key cache) that a key changed.

So an entry added through one replica is matchable on every other replica as soon as
its transaction commits and the notification arrives (milliseconds), with no
rebuild. :meth:`IndexReplica.sync` applies pending changes at once; the API calls it
after its own writes so a client reads its own writes on the same replica.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from safehold.banks.matcher import Matcher
from safehold.store import changes
from safehold.store.db import Database

log = structlog.get_logger("safehold.replica")

POLL_SECONDS = 0.25
"""How often to look for changes without a notification (SQLite, or a missed NOTIFY)."""
LISTEN_POLL_SECONDS = 2.0
"""On PostgreSQL the NOTIFY wakes the replica; this poll is only a safety net."""
STOP_CHECK_SECONDS = 0.2
"""The PostgreSQL listener waits for notifications in slices this long, so stop() is prompt."""


@dataclass
class ReplicaStatus:
    loaded: bool
    entries: int
    change_id: int
    latest_change_id: int
    last_sync_at: float | None
    load_seconds: float | None
    error: str | None

    @property
    def lag_changes(self) -> int:
        return max(0, self.latest_change_id - self.change_id)

    @property
    def lag_seconds(self) -> float | None:
        return None if self.last_sync_at is None else max(0.0, time.time() - self.last_sync_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "entries": self.entries,
            "change_id": self.change_id,
            "latest_change_id": self.latest_change_id,
            "lag_changes": self.lag_changes,
            "seconds_since_sync": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "load_seconds": None if self.load_seconds is None else round(self.load_seconds, 3),
            "error": self.error,
        }


class IndexReplica:
    """A matcher over every bank, kept current from the change log."""

    def __init__(self, db: Database, *, poll_seconds: float | None = None) -> None:
        self.db = db
        self.poll_seconds = poll_seconds or (
            LISTEN_POLL_SECONDS if db.backend == "postgresql" else POLL_SECONDS
        )
        self.key_listeners: list[Callable[[str], None]] = []
        self._matcher: Matcher | None = None
        self._cursor = 0
        self._latest = 0
        self._last_sync: float | None = None
        self._load_seconds: float | None = None
        self._error: str | None = None
        self._sync_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        """Set by :meth:`stop`: a load still running when the service shut down must not
        start a follower afterwards."""
        self._life = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle

    def load(self) -> Matcher:
        """Load the index from the database (blocking) and catch up with the change log."""
        started = time.perf_counter()
        with self.db.engine.connect() as conn:
            cursor = changes.latest(conn)
        matcher = Matcher(self.db)
        with self._sync_lock:
            self._matcher, self._cursor = matcher, cursor
        self.sync()
        self._load_seconds = time.perf_counter() - started
        log.info(
            "index loaded",
            entries=len(matcher),
            seconds=round(self._load_seconds, 3),
            change=cursor,
        )
        return matcher

    def start(self) -> None:
        """Follow the change log in a background thread (loads first if needed)."""
        if self._matcher is None:
            self.load()
        with self._life:
            if self._thread is not None or self._closed:
                return
            self._stop.clear()
            target = self._listen if self.db.backend == "postgresql" else self._poll
            self._thread = threading.Thread(target=target, name="safehold-replica", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop following for good (a later :meth:`start` does nothing)."""
        with self._life:
            self._closed = True
            self._stop.set()
            self._wake.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    @property
    def matcher(self) -> Matcher:
        if self._matcher is None:
            raise RuntimeError("the index is not loaded yet: call load() or start() first")
        return self._matcher

    @property
    def loaded(self) -> bool:
        return self._matcher is not None

    # ------------------------------------------------------------------ following

    def sync(self) -> int:
        """Apply every change not applied yet; returns how many were applied."""
        matcher = self._matcher
        if matcher is None:
            return 0
        applied = 0
        with self._sync_lock:
            while True:
                with self.db.engine.connect() as conn:
                    batch = changes.since(conn, self._cursor)
                    if not batch:
                        self._latest = max(self._latest, self._cursor)
                        break
                self._apply(matcher, batch)
                applied += len(batch)
                self._cursor = batch[-1].id
                self._latest = max(self._latest, self._cursor)
            self._last_sync = time.time()
            self._error = None
        return applied

    def _apply(self, matcher: Matcher, batch: list[changes.ChangeRow]) -> None:
        # consecutive changes of one kind are applied together (a bulk import is one batch)
        i = 0
        while i < len(batch):
            op = batch[i].op
            j = i
            while j < len(batch) and batch[j].op == op and op in (changes.ADD, changes.REMOVE):
                j += 1
            if op == changes.ADD:
                with self.db.engine.connect() as conn:
                    rows = changes.added_entries(conn, batch[i].id - 1, batch[j - 1].id)
                by_bank: dict[int, list[tuple[int, str, str]]] = {}
                for entry_id, bank_id, signal_type, value in rows:
                    by_bank.setdefault(bank_id, []).append((entry_id, signal_type, value))
                for bank_id, entries in by_bank.items():
                    matcher.add_to(bank_id, entries)
            elif op == changes.REMOVE:
                matcher.remove(c.entry_id for c in batch[i:j] if c.entry_id)
            elif op == changes.BANK and batch[i].bank_id is not None:
                bank_id = int(batch[i].bank_id)  # type: ignore[arg-type]
                info = matcher.repo.by_id(bank_id)
                if info is None:
                    matcher.drop_bank(bank_id)
                else:
                    matcher.set_bank(info)
            elif op == changes.KEY and batch[i].key_id:
                for listener in self.key_listeners:
                    listener(str(batch[i].key_id))
            i = max(j, i + 1)

    def _safe_sync(self) -> None:
        try:
            self.sync()
        except Exception as e:  # the database went away: keep serving, retry soon
            self._error = f"{type(e).__name__}: {e}"
            log.warning("change-log sync failed", error=self._error)
            self._stop.wait(1.0)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_seconds)
            self._wake.clear()
            if not self._stop.is_set():
                self._safe_sync()

    def _listen(self) -> None:
        import psycopg

        url = self.db.engine.url.set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {changes.CHANNEL}")
                    self._safe_sync()  # anything committed before LISTEN took effect
                    next_poll = time.monotonic() + self.poll_seconds
                    while not self._stop.is_set():
                        # wait in short slices so that stop() does not wait for the poll
                        left = max(0.0, next_poll - time.monotonic())
                        woke = False
                        for _ in conn.notifies(timeout=min(STOP_CHECK_SECONDS, left), stop_after=1):
                            woke = True
                        if woke:
                            # drain notifications that arrived together, then apply once
                            for _ in conn.notifies(timeout=0.0):
                                pass
                        elif time.monotonic() < next_poll or self._stop.is_set():
                            continue
                        self._safe_sync()
                        next_poll = time.monotonic() + self.poll_seconds
            except Exception as e:
                self._error = f"{type(e).__name__}: {e}"
                log.warning("change-log listener lost its connection", error=self._error)
                self._stop.wait(1.0)

    def status(self) -> ReplicaStatus:
        matcher = self._matcher
        return ReplicaStatus(
            loaded=matcher is not None,
            entries=len(matcher) if matcher is not None else 0,
            change_id=self._cursor,
            latest_change_id=self._latest,
            last_sync_at=self._last_sync,
            load_seconds=self._load_seconds,
            error=self._error,
        )

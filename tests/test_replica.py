"""Index replicas follow the change log: library-level tests on SQLite and PostgreSQL.

Every test writes through one :class:`Database` object (standing in for another
``safehold serve`` process) and reads through an :class:`IndexReplica` on a second,
separate one. What a replica holds is checked on its in-memory index itself (not only
through lookups: a lookup reads the entry back from the database, which would hide a
removal the index missed).
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

import safehold.banks.replica as replica_module
from safehold.access.keys import ApiKeys
from safehold.banks import Banks, make_entry
from safehold.banks.matcher import Matcher
from safehold.banks.replica import IndexReplica
from safehold.errors import NotFound, Unauthorized
from safehold.store import Database, changes
from safehold.store.models import Entry

DEADLINE = 10.0
"""Seconds a background follower gets to apply a change (it normally takes milliseconds)."""


# --------------------------------------------------------------------------- helpers


def pdq() -> str:
    return secrets.token_hex(32)


def md5() -> str:
    return secrets.token_hex(16)


def flip(value: str, bits: int) -> str:
    """``value`` with its first ``bits`` bits inverted (a PDQ hash at that distance)."""
    n = int(value, 16) ^ (((1 << bits) - 1) << (256 - bits))
    return f"{n:064x}"


def wait_until(cond: Callable[[], Any], what: str, timeout: float = DEADLINE) -> float:
    """Poll ``cond`` until it is true; returns the seconds it took (fails after ``timeout``)."""
    started = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.005)


def indexed(matcher: Matcher) -> set[int]:
    """Entry ids held by a matcher's in-memory indexes (exact, PDQ and vPDQ)."""
    ids: set[int] = set()
    for exact in matcher._exact.values():
        ids.update(exact._by_id)
    pdq_index = matcher._pdq
    for seg in [*pdq_index._segments, pdq_index._memtable]:
        live, _codes = seg.live_arrays()
        ids.update(int(i) for i in live.tolist())
    ids.update(matcher._vpdq_entries)
    return ids


def stored(db: Database) -> set[int]:
    with db.session() as s:
        return {int(i) for i in s.scalars(select(Entry.id))}


def assert_in_step(replica: IndexReplica, db: Database) -> None:
    """The replica's index holds exactly the entries in the database, once each."""
    want = stored(db)
    have = indexed(replica.matcher)
    assert have == want, f"missing {sorted(want - have)[:20]}, extra {sorted(have - want)[:20]}"
    assert len(replica.matcher) == len(want)


def id_of(db: Database, value: str) -> int:
    with db.session() as s:
        return int(s.scalars(select(Entry.id).where(Entry.value == value)).one())


def latest(db: Database) -> int:
    with db.engine.connect() as conn:
        return changes.latest(conn)


def hits(replica: IndexReplica, signal_type: str, value: str) -> set[int]:
    """Entry ids the index finds for a value (no database read: the index alone)."""
    return {h.entry_id for h in replica.matcher._hits(signal_type, [value], None)[0]}


def matched(replica: IndexReplica, signal_type: str, value: str, **kw: Any) -> list[str]:
    """Bank names a lookup through the replica matches (the full path, with policy)."""
    return [m.bank for m in replica.matcher.lookup(signal_type, [value], **kw)[0].matches]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture()
def other_db(db_url: str) -> Iterator[Database]:
    """A second connection to the same database: the replica's process."""
    database = Database(db_url)
    yield database
    database.close()


@pytest.fixture()
def writer(db: Database) -> Banks:
    return Banks(db)


@pytest.fixture()
def make_replica(other_db: Database) -> Iterator[Callable[..., IndexReplica]]:
    made: list[IndexReplica] = []

    def make(**kw: Any) -> IndexReplica:
        replica = IndexReplica(other_db, **kw)
        made.append(replica)
        return replica

    yield make
    for replica in made:
        replica.stop()


# --------------------------------------------------------------------------- sync()


def test_sync_applies_entries_added_and_removed_elsewhere(
    db: Database, writer: Banks, make_replica: Callable[..., IndexReplica]
) -> None:
    writer.create("early")
    v1 = pdq()
    writer.add("early", [make_entry("pdq", v1, ["A1"])])
    replica = make_replica()
    replica.load()
    assert_in_step(replica, db)
    assert matched(replica, "pdq", v1) == ["early"]

    # a bank created after loading, and entries of both signal kinds
    writer.create("late")
    v2, d2 = pdq(), md5()
    writer.add("late", [make_entry("pdq", v2), make_entry("md5", d2)])
    assert hits(replica, "pdq", v2) == set()
    assert replica.sync() >= 2
    assert hits(replica, "pdq", v2) == {id_of(db, v2)}
    assert hits(replica, "md5", d2) == {id_of(db, d2)}
    assert matched(replica, "pdq", v2) == ["late"]
    assert_in_step(replica, db)

    writer.remove("late", ids=[id_of(db, v2)])
    writer.remove("early", values=[("pdq", v1)])
    assert replica.sync() == 2
    assert hits(replica, "pdq", v2) == set()
    assert hits(replica, "pdq", v1) == set()
    assert matched(replica, "md5", d2) == ["late"]
    assert_in_step(replica, db)
    assert replica.status().change_id == latest(db)
    assert replica.status().lag_changes == 0
    assert replica.sync() == 0  # nothing pending


def test_sync_applies_a_threshold_change(
    writer: Banks, make_replica: Callable[..., IndexReplica]
) -> None:
    writer.create("b")
    value = pdq()
    writer.add("b", [make_entry("pdq", value)])
    near = flip(value, 20)  # 20 bits away: within the default PDQ threshold (31)
    replica = make_replica()
    replica.load()
    assert matched(replica, "pdq", near) == ["b"]

    writer.update("b", thresholds={"pdq": 10})
    replica.sync()
    assert replica.matcher.banks[writer.get("b").id].threshold("pdq") == 10
    assert matched(replica, "pdq", near) == []
    assert matched(replica, "pdq", flip(value, 8)) == ["b"]

    writer.update("b", thresholds={"pdq": 31})
    replica.sync()
    assert matched(replica, "pdq", near) == ["b"]


def test_sync_applies_a_bank_deletion(
    db: Database, writer: Banks, make_replica: Callable[..., IndexReplica]
) -> None:
    writer.create("doomed")
    writer.create("kept")
    gone = writer.add("doomed", [make_entry("pdq", pdq()), make_entry("md5", md5())]).ids
    kept_value = pdq()
    writer.add("kept", [make_entry("pdq", kept_value)])
    replica = make_replica()
    replica.load()
    bank_id = writer.get("doomed").id
    assert set(gone) <= indexed(replica.matcher)

    assert writer.delete("doomed") == 2
    replica.sync()
    assert bank_id not in replica.matcher.banks
    assert not set(gone) & indexed(replica.matcher)
    with pytest.raises(NotFound):
        replica.matcher.lookup("pdq", [kept_value], banks=["doomed"])
    assert matched(replica, "pdq", kept_value) == ["kept"]
    assert_in_step(replica, db)

    # a new bank may take the name again; it starts empty
    writer.create("doomed")
    replica.sync()
    assert matched(replica, "pdq", kept_value, banks=["doomed"]) == []


def test_sync_applies_shares(writer: Banks, make_replica: Callable[..., IndexReplica]) -> None:
    writer.create("owned", tenant="owner")
    value = pdq()
    writer.add("owned", [make_entry("pdq", value)])
    replica = make_replica()
    replica.load()
    assert matched(replica, "pdq", value, tenant="owner") == ["owned"]
    assert matched(replica, "pdq", value, tenant="guest") == []

    writer.share("owned", "guest")
    replica.sync()
    assert matched(replica, "pdq", value, tenant="guest") == ["owned"]
    assert matched(replica, "pdq", value, tenant="guest", banks=["owned"]) == ["owned"]

    writer.unshare("owned", "guest")
    replica.sync()
    assert matched(replica, "pdq", value, tenant="guest") == []
    with pytest.raises(NotFound):
        replica.matcher.lookup("pdq", [value], tenant="guest", banks=["owned"])


def test_sync_tells_key_listeners_about_a_revoked_key(
    db: Database, other_db: Database, make_replica: Callable[..., IndexReplica]
) -> None:
    here = ApiKeys(other_db)  # the replica's process checks keys with its own cache
    key, info = ApiKeys(db).create(scopes="scan", tenant="t")
    replica = make_replica()
    heard: list[str] = []
    replica.key_listeners.extend([heard.append, here.forget])
    replica.load()
    assert here.authenticate(key).key_id == info.key_id  # now in the verification cache

    ApiKeys(db).revoke(info.key_id)  # revoked through another process
    replica.sync()
    assert heard == [info.key_id]
    with pytest.raises(Unauthorized):
        here.authenticate(key)

    ApiKeys(db).revoke(info.key_id)  # idempotent: no second change
    replica.sync()
    assert heard == [info.key_id]


# --------------------------------------------------------------------------- follower


def test_background_follower_applies_every_kind_of_change(
    db: Database,
    other_db: Database,
    writer: Banks,
    make_replica: Callable[..., IndexReplica],
) -> None:
    # On PostgreSQL the safety-net poll is pushed far out, so only a NOTIFY can wake the
    # follower in time; on SQLite the follower polls (every 0.25 s).
    poll = 120.0 if db.backend == "postgresql" else None
    replica = make_replica(poll_seconds=poll)
    here = ApiKeys(other_db)
    replica.key_listeners.append(here.forget)
    key, info = ApiKeys(db).create(scopes="scan", tenant="t")
    replica.start()
    assert replica.loaded
    assert here.authenticate(key).key_id == info.key_id

    writer.create("b", tenant="t")
    value = pdq()
    (entry_id,) = writer.add("b", [make_entry("pdq", value)], tenant="t").ids
    wait_until(lambda: hits(replica, "pdq", value) == {entry_id}, "an added entry")
    assert matched(replica, "pdq", value) == ["b"]

    near = flip(value, 20)
    writer.update("b", thresholds={"pdq": 10})
    wait_until(lambda: matched(replica, "pdq", near) == [], "a lowered threshold")

    writer.share("b", "guest")
    wait_until(lambda: matched(replica, "pdq", value, tenant="guest") == ["b"], "a share")
    writer.unshare("b", "guest")
    wait_until(lambda: matched(replica, "pdq", value, tenant="guest") == [], "an unshare")

    other = pdq()
    writer.add("b", [make_entry("pdq", other)])
    wait_until(lambda: len(hits(replica, "pdq", other)) == 1, "a second entry")
    writer.remove("b", ids=[entry_id])
    wait_until(lambda: hits(replica, "pdq", value) == set(), "a removed entry")

    bank_id = writer.get("b").id
    writer.delete("b")
    wait_until(lambda: bank_id not in replica.matcher.banks, "a deleted bank")
    assert hits(replica, "pdq", other) == set()

    ApiKeys(db).revoke(info.key_id)

    def refused() -> bool:
        try:
            here.authenticate(key)
        except Unauthorized:
            return True
        return False

    wait_until(refused, "a revoked key")
    assert_in_step(replica, db)
    wait_until(lambda: replica.status().change_id == latest(db), "the cursor")
    st = replica.status()
    assert st.loaded and st.error is None and st.lag_changes == 0

    thread = replica._thread
    assert thread is not None and thread.is_alive()
    replica.stop()
    assert not thread.is_alive(), "stop() left the follower thread running"


# --------------------------------------------------------------------------- start-up race


def test_load_keeps_changes_made_while_loading(
    db: Database,
    writer: Banks,
    make_replica: Callable[..., IndexReplica],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Writes at every step of a load (after the change cursor is read, after the bank
    list is read, after the entries are read) are all in the index when load() returns."""
    writer.create("b")
    doomed = writer.add("b", [make_entry("pdq", pdq()) for _ in range(4)]).ids
    writer.add("b", [make_entry("md5", md5()) for _ in range(10)])
    steps: list[str] = []

    class RacingMatcher(Matcher):
        def __init__(self, database: Database, **kw: Any) -> None:
            # load() has read the newest change id; the bank list is not read yet
            steps.append("cursor read")
            writer.add("b", [make_entry("pdq", pdq()), make_entry("md5", md5())])
            writer.remove("b", ids=[doomed[0]])
            super().__init__(database, **kw)
            # entries are loaded; load() has not caught up with the change log yet
            steps.append("entries read")
            writer.add("b", [make_entry("pdq", pdq())])
            writer.add("new", [make_entry("pdq", pdq())])
            writer.remove("b", ids=[doomed[2]])
            writer.create("after")
            writer.add("after", [make_entry("pdq", pdq())])

        def _load(self) -> None:
            # the bank list is read; the entries are not
            steps.append("banks read")
            writer.create("new")
            writer.add("new", [make_entry("pdq", pdq()), make_entry("md5", md5())])
            writer.add("b", [make_entry("pdq", pdq())])
            writer.remove("b", ids=[doomed[1]])
            super()._load()

    monkeypatch.setattr(replica_module, "Matcher", RacingMatcher)
    replica = make_replica()
    replica.load()
    assert steps == ["cursor read", "banks read", "entries read"]
    assert_in_step(replica, db)  # without another sync()
    assert {"b", "new", "after"} <= set(replica.matcher.bank_names)
    assert replica.status().change_id == latest(db)


def test_load_while_another_process_writes(
    db: Database, writer: Banks, make_replica: Callable[..., IndexReplica]
) -> None:
    writer.create("b")
    writer.add("b", [make_entry("pdq", pdq()) for _ in range(5000)])
    stop = threading.Event()
    writes: list[float] = []
    failures: list[BaseException] = []

    def write() -> None:
        rng = random.Random(7)
        mine: list[int] = []
        try:
            while not stop.is_set():
                ids = writer.add("b", [make_entry("pdq", pdq()), make_entry("md5", md5())]).ids
                mine.extend(ids)
                if rng.random() < 0.3:
                    writer.remove("b", ids=[mine.pop(rng.randrange(len(mine)))])
                writes.append(time.monotonic())
        except BaseException as e:  # surfaced below
            failures.append(e)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        wait_until(lambda: len(writes) >= 3, "the writer to get going")
        replica = make_replica()
        started = time.monotonic()
        replica.load()
        finished = time.monotonic()
        wait_until(lambda: any(t > finished for t in writes), "a write after loading")
    finally:
        stop.set()
        thread.join()
    assert not failures, failures
    assert any(started < t < finished for t in writes), "no write overlapped the load"
    replica.sync()
    assert_in_step(replica, db)


# --------------------------------------------------------------------------- concurrency


@pytest.mark.postgres
def test_concurrent_writers_never_make_a_replica_skip_a_change(
    pg_url: str, make_replica_pg: Callable[..., IndexReplica], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four writers add and remove entries at once, each in a bank of its own, while the
    replica follows (and a fifth thread syncs it as fast as it can); each writer's
    transaction stays open a little after it appends to the change log, as a slow
    commit would."""
    record = changes.record

    def slow_record(conn: Any, op: str, **kw: Any) -> None:
        record(conn, op, **kw)
        time.sleep(random.uniform(0, 0.003))

    monkeypatch.setattr(changes, "record", slow_record)
    writers = [Database(pg_url) for _ in range(4)]
    try:
        for i in range(len(writers)):  # a bank each: the bank row lock does not queue them
            Banks(writers[0]).create(f"b{i}")
        replica = make_replica_pg()
        replica.start()
        done = threading.Event()
        failures: list[BaseException] = []

        def hammer() -> None:  # one more reader syncing as fast as it can
            while not done.is_set():
                try:
                    replica.sync()
                except BaseException as e:
                    failures.append(e)
                    return

        def write(database: Database, seed: int) -> None:
            rng = random.Random(seed)
            banks = Banks(database)
            mine: list[int] = []
            try:
                for _ in range(40):
                    batch = [make_entry("pdq", pdq()) for _ in range(rng.randint(1, 5))]
                    if rng.random() < 0.3:
                        batch.append(make_entry("md5", md5()))
                    mine.extend(banks.add(f"b{seed}", batch).ids)
                    if mine and rng.random() < 0.3:
                        banks.remove(f"b{seed}", ids=[mine.pop(rng.randrange(len(mine)))])
            except BaseException as e:
                failures.append(e)

        syncer = threading.Thread(target=hammer)
        syncer.start()
        threads = [threading.Thread(target=write, args=(d, i)) for i, d in enumerate(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done.set()
        syncer.join()
        assert not failures, failures
        wait_until(
            lambda: replica.status().change_id == latest(writers[0]), "the follower to catch up"
        )
        assert_in_step(replica, writers[0])
        assert len(stored(writers[0])) > 100
    finally:
        for d in writers:
            d.close()


@pytest.fixture()
def make_replica_pg(pg_url: str) -> Iterator[Callable[..., IndexReplica]]:
    database = Database(pg_url)
    made: list[IndexReplica] = []

    def make(**kw: Any) -> IndexReplica:
        replica = IndexReplica(database, **kw)
        made.append(replica)
        return replica

    yield make
    for replica in made:
        replica.stop()
    database.close()


def test_change_ids_become_visible_in_commit_order(db: Database) -> None:
    """A reader never sees a change id appear below one it has already seen: so a
    replica reading ``id > cursor`` cannot pass over a change that commits late.

    Writers hold their transaction open for a random while after appending, so that
    without the writers' lock later ids would regularly commit first."""
    n_writers, per_writer = 4, 40
    done = threading.Event()
    failures: list[BaseException] = []
    late: list[tuple[int, int]] = []  # (id that appeared, highest id seen before it)
    followed: list[int] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for i in range(per_writer):
                with db.session() as s:
                    changes.record(s.connection(), changes.ADD, entry_ids=[seed * 1000 + i])
                    time.sleep(rng.uniform(0, 0.004))
        except BaseException as e:
            failures.append(e)

    def watch() -> None:
        seen: set[int] = set()
        cursor = 0
        try:
            while True:
                finished = done.is_set()
                with db.engine.connect() as conn:
                    visible = changes.since(conn, 0, limit=1_000_000)
                    batch = changes.since(conn, cursor)
                ids = [c.id for c in visible]
                assert ids == sorted(ids) and len(ids) == len(set(ids))
                top = max(seen, default=0)
                late.extend((i, top) for i in ids if i not in seen and i < top)
                seen.update(ids)
                followed.extend(c.id for c in batch)  # a replica-style cursor
                if batch:
                    cursor = batch[-1].id
                if finished:
                    return
        except BaseException as e:
            failures.append(e)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=write, args=(i + 1,)) for i in range(n_writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    watcher.join()
    assert not failures, failures
    assert late == [], f"ids became visible after higher ones: {late[:10]}"
    with db.engine.connect() as conn:
        every = [c.id for c in changes.since(conn, 0, limit=1_000_000)]
    assert len(every) == n_writers * per_writer
    assert followed == every, "a cursor-following reader skipped or repeated a change"


# --------------------------------------------------------------------------- pruning


def test_pruning_the_whole_log_does_not_reuse_change_ids(
    db: Database, writer: Banks, make_replica: Callable[..., IndexReplica]
) -> None:
    writer.create("b")
    for _ in range(3):
        writer.add("b", [make_entry("pdq", pdq())])
    replica = make_replica()
    replica.load()
    cursor = replica.status().change_id
    assert cursor == latest(db) > 0

    with db.engine.begin() as conn:
        changes.prune(conn, datetime.now(UTC) + timedelta(days=1))
    value = pdq()
    writer.add("b", [make_entry("pdq", value)])
    assert latest(db) > cursor
    replica.sync()
    assert len(hits(replica, "pdq", value)) == 1
    assert_in_step(replica, db)


def test_a_reused_entry_id_leaves_no_ghost_in_the_index(
    request: pytest.FixtureRequest,
    db: Database,
    writer: Banks,
    make_replica: Callable[..., IndexReplica],
) -> None:
    """An entry removed and added again (same id in the index twice before its segment
    is rewritten) leaves no ghost row behind, and ids are never handed out again."""
    writer.create("b")
    writer.add("b", [make_entry("md5", md5())])
    replica = make_replica()
    replica.load()
    first, second = pdq(), pdq()
    for value in (first, second):
        writer.add("b", [make_entry("pdq", value)])
        replica.sync()
        assert len(hits(replica, "pdq", value)) == 1
        writer.remove("b", values=[("pdq", value)])
        replica.sync()
        assert hits(replica, "pdq", value) == set()
    assert_in_step(replica, db)
    writer.add("b", [make_entry("md5", md5())])  # may take the id of both removed entries
    replica.sync()
    assert matched(replica, "pdq", second) == []
    assert_in_step(replica, db)


def test_a_stopped_replica_never_starts_following(
    make_replica: Callable[..., IndexReplica],
) -> None:
    """Shutdown can come while the index is still loading in the background: the load
    must not start a follower thread afterwards."""
    import threading

    replica = make_replica()
    replica.stop()
    replica.start()  # what the background load does when it finishes
    assert replica.loaded
    assert not [t for t in threading.enumerate() if t.name == "safehold-replica" and t.is_alive()]

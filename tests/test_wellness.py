"""Reviewer wellness: exposure counters per day, daily limits, the team view."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import update

import safehold.access.users
from safehold.access.users import UserInfo, Users
from safehold.audit import AuditLog
from safehold.cases import Wellness
from safehold.cases.wellness import MAX_SECONDS, day_start
from safehold.errors import InvalidValue, NotFound
from safehold.store import Database
from safehold.store.models import Exposure, utcnow

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _cheap_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(safehold.access.users, "_hasher", cheap)


@pytest.fixture()
def users(db: Database) -> Users:
    return Users(db, AuditLog(db))


@pytest.fixture()
def rita(users: Users) -> UserInfo:
    return users.create("rita", PASSWORD, "reviewer")


def test_today_counts_distinct_items_and_minutes(db: Database, rita: UserInfo) -> None:
    w = Wellness(db)
    assert w.today(rita.id) == type(w.today(rita.id))(items=0, minutes=0.0, limit=200, paused=False)
    w.record(rita.id, 1, 10, 30)
    w.record(rita.id, 1, 10, 30)  # the same item again
    w.record(rita.id, 1, 11, 60)
    w.record(rita.id, None, None, 0)  # a reveal outside any case item counts on its own
    today = w.today(rita.id)
    assert (today.items, today.reveals, today.minutes) == (3, 4, 2.0)
    assert today.remaining == 197 and not today.paused
    assert today.to_dict()["minutes"] == 2.0


def test_yesterday_does_not_count(db: Database, rita: UserInfo) -> None:
    w = Wellness(db)
    w.record(rita.id, 1, 1, 10)
    with db.session() as s:
        s.execute(update(Exposure).values(at=day_start() - timedelta(seconds=1)))
    assert w.today(rita.id).items == 0
    assert len(w.since(rita.id, hours=48)) == 1


def test_limits(
    db: Database, rita: UserInfo, users: Users, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = Wellness(db)
    monkeypatch.setenv("SAFEHOLD_DAILY_REVEAL_LIMIT", "3")
    for item in range(3):
        w.record(rita.id, 1, item, 5)
    assert w.today(rita.id).paused
    users.set_daily_limit("rita", 10)
    mine = w.today(rita.id)
    assert (mine.limit, mine.paused) == (10, False)
    monkeypatch.setenv("SAFEHOLD_DAILY_REVEAL_LIMIT", "not a number")
    users.set_daily_limit("rita", None)
    assert w.today(rita.id).limit == 200


def test_record_checks_input(db: Database, rita: UserInfo) -> None:
    w = Wellness(db)
    for bad in (-1, float("nan"), "soon"):
        with pytest.raises(InvalidValue):
            w.record(rita.id, 1, 1, bad)  # type: ignore[arg-type]
    w.record(rita.id, 1, 1, 10**9)  # a tab left open counts at most MAX_SECONDS
    assert w.today(rita.id).minutes == MAX_SECONDS / 60
    with pytest.raises(NotFound):
        w.today(424242)


def test_team(db: Database, rita: UserInfo, users: Users) -> None:
    lee = users.create("lee", PASSWORD, "lead")
    users.create("aud", PASSWORD, "auditor")  # does not review: not listed
    users.create("gone", PASSWORD, "reviewer")
    users.disable("gone")
    users.create("other", PASSWORD, "reviewer", tenant="acme")
    w = Wellness(db)
    w.record(rita.id, 1, 1, 90)
    team = w.team("default")
    assert [(u.name, e.items) for u, e in team] == [("lee", 0), ("rita", 1)]
    assert team[0][0].id == lee.id
    assert utcnow() >= day_start()

"""Reviewer wellness: how much each reviewer has seen today, and a daily limit.

Every reveal of an item is recorded (:meth:`Wellness.record`). ``today`` sums the
reviewer's reveals since midnight UTC: distinct items seen and minutes of exposure.
When the items reach the reviewer's daily limit (their own, else
``SAFEHOLD_DAILY_REVEAL_LIMIT``, default 200), assignment pauses: ``Cases.next_case``
hands them no new case until the next day. Reviewers see their own counter; leads see
everyone's (:meth:`Wellness.team`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from safehold.access.users import UserInfo, default_daily_limit, user_info
from safehold.errors import InvalidValue, NotFound, preview
from safehold.store.db import Database
from safehold.store.models import Exposure as ExposureRow
from safehold.store.models import User, utcnow

MAX_SECONDS = 3600.0
"""One reveal counts at most this long (a tab left open is not an hour of exposure each time)."""


@dataclass(frozen=True)
class Exposure:
    """A reviewer's exposure today (UTC)."""

    items: int
    minutes: float
    limit: int
    paused: bool
    reveals: int = 0

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.items)

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "minutes": round(self.minutes, 1),
            "limit": self.limit,
            "paused": self.paused,
            "reveals": self.reveals,
            "remaining": self.remaining,
        }


def day_start(now: datetime | None = None) -> datetime:
    now = (now or utcnow()).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class Wellness:
    """Record reveals and report exposure per reviewer."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        user_id: int,
        case_id: int | None,
        item_id: int | None,
        seconds: float,
        *,
        session: Session | None = None,
    ) -> None:
        """One reveal of one item for ``seconds`` (in ``session``'s transaction if given)."""
        try:
            secs = float(seconds)
        except (TypeError, ValueError):
            raise InvalidValue("seconds must be a number") from None
        if not secs >= 0:  # also refuses NaN
            raise InvalidValue("seconds must be zero or more")
        row = ExposureRow(
            user_id=int(user_id),
            case_id=case_id,
            item_id=item_id,
            at=utcnow(),
            seconds=min(secs, MAX_SECONDS),
        )
        if session is not None:
            session.add(row)
            session.flush()
            return
        with self.db.session() as s:
            s.add(row)

    def today(self, user_id: int, *, session: Session | None = None) -> Exposure:
        if session is not None:
            return self._today(session, user_id)
        with self.db.session() as s:
            return self._today(s, user_id)

    def _today(self, s: Session, user_id: int) -> Exposure:
        user = s.get(User, int(user_id))
        if user is None:
            raise NotFound(f"no user with id {preview(user_id)}")
        return self._exposure(s, user_info(user))

    def _exposure(self, s: Session, user: UserInfo) -> Exposure:
        since = day_start()
        rows = s.execute(
            select(ExposureRow.case_id, ExposureRow.item_id, ExposureRow.seconds).where(
                ExposureRow.user_id == user.id, ExposureRow.at >= since
            )
        ).all()
        seen: set[tuple[Any, ...]] = set()
        for n, (case_id, item_id, _secs) in enumerate(rows):
            seen.add((case_id, item_id) if item_id is not None else ("reveal", n))
        minutes = sum(float(r[2] or 0.0) for r in rows) / 60.0
        limit = user.daily_limit or default_daily_limit()
        return Exposure(
            items=len(seen),
            minutes=minutes,
            limit=limit,
            paused=len(seen) >= limit,
            reveals=len(rows),
        )

    def team(self, tenant: str) -> list[tuple[UserInfo, Exposure]]:
        """Every active user of ``tenant`` who reviews, with today's exposure."""
        with self.db.session() as s:
            users = [
                user_info(u)
                for u in s.scalars(
                    select(User)
                    .where(User.tenant == tenant, User.disabled_at.is_(None))
                    .order_by(User.name)
                )
            ]
            return [(u, self._exposure(s, u)) for u in users if u.can("review")]

    def since(self, user_id: int, hours: float = 24.0) -> list[tuple[datetime, float]]:
        """(time, seconds) of the user's reveals in the last ``hours``."""
        start = utcnow() - timedelta(hours=hours)
        with self.db.session() as s:
            return [
                (at, float(sec))
                for at, sec in s.execute(
                    select(ExposureRow.at, ExposureRow.seconds)
                    .where(ExposureRow.user_id == int(user_id), ExposureRow.at >= start)
                    .order_by(ExposureRow.at)
                )
            ]

"""Console notifications (written by the ``notify`` action): the badge and the list.

A notice goes to a role (``to_role``) or one user (``to_user_id``) of a tenant. Reading
the list marks the viewer's personal notices read; role notices stay until someone of
that role has read them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select, update

from safehold.store.db import Database
from safehold.store.models import Notification, utcnow


def _mine(viewer: Any) -> Any:
    user = viewer.user
    return (Notification.tenant == user.tenant) & or_(
        Notification.to_user_id == user.id, Notification.to_role == user.role
    )


def unread_count(db: Database, viewer: Any) -> int:
    with db.session() as s:
        n = s.scalar(
            select(func.count(Notification.id)).where(_mine(viewer), Notification.read_at.is_(None))
        )
    return int(n or 0)


def recent(db: Database, viewer: Any, limit: int = 100) -> list[dict[str, Any]]:
    with db.session() as s:
        rows = s.scalars(
            select(Notification).where(_mine(viewer)).order_by(Notification.id.desc()).limit(limit)
        ).all()
        return [
            {
                "id": n.id,
                "message": n.message,
                "case_id": n.case_id,
                "event_id": n.event_id,
                "to": f"role {n.to_role}" if n.to_role else "you",
                "created_at": n.created_at,
                "read": n.read_at is not None,
            }
            for n in rows
        ]


def mark_read(db: Database, viewer: Any) -> None:
    with db.session() as s:
        s.execute(
            update(Notification)
            .where(_mine(viewer), Notification.read_at.is_(None))
            .values(read_at=utcnow())
        )

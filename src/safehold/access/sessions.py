"""Console sessions: a random cookie token, stored only as its SHA-256.

A session ends after ``SAFEHOLD_SESSION_IDLE_MINUTES`` (default 30) without a request,
after ``SAFEHOLD_SESSION_HOURS`` (default 12) in any case, when the user logs out, and
when the user is disabled, changes role or password. Each session carries its own CSRF
token, which every state-changing console request must send back.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from safehold.access.users import UserInfo, user_info
from safehold.audit import AuditLog
from safehold.settings import env_float
from safehold.store.db import Database
from safehold.store.models import User, UserSession, utcnow

TOUCH_SECONDS = 60.0
"""``last_seen_at`` is written at most this often per session."""


def idle_timeout() -> timedelta:
    return timedelta(minutes=env_float("SAFEHOLD_SESSION_IDLE_MINUTES", 30.0))


def absolute_timeout() -> timedelta:
    return timedelta(hours=env_float("SAFEHOLD_SESSION_HOURS", 12.0))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    user: UserInfo
    csrf: str
    id: int = 0
    created_at: datetime | None = None
    expires_at: datetime | None = None


class Sessions:
    """Create, look up and end console sessions."""

    def __init__(self, db: Database, audit: AuditLog | None = None) -> None:
        self.db = db
        self.audit = audit or AuditLog(db)

    def create(self, user: UserInfo) -> tuple[str, str]:
        """A new session for ``user``: ``(token, csrf)``. The token goes into the cookie."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        now = utcnow()
        with self.db.session() as s:
            s.add(
                UserSession(
                    token_hash=token_hash(token),
                    user_id=user.id,
                    csrf_token=csrf,
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + absolute_timeout(),
                )
            )
        return token, csrf

    def lookup(self, token: str | None) -> SessionInfo | None:
        """The live session of ``token`` (its user not disabled), else ``None``."""
        if not isinstance(token, str) or not token or len(token) > 256:
            return None
        digest = token_hash(token)
        now = utcnow()
        with self.db.session() as s:
            found = s.execute(
                select(UserSession, User)
                .join(User, User.id == UserSession.user_id)
                .where(UserSession.token_hash == digest)
            ).first()
            if found is None:
                return None
            sess, user = found
            if (
                sess.expires_at <= now
                or sess.last_seen_at + idle_timeout() <= now
                or user.disabled_at is not None
            ):
                s.execute(delete(UserSession).where(UserSession.id == sess.id))
                return None
            if (now - sess.last_seen_at).total_seconds() >= TOUCH_SECONDS:
                s.execute(
                    update(UserSession).where(UserSession.id == sess.id).values(last_seen_at=now)
                )
            return SessionInfo(
                user=user_info(user),
                csrf=sess.csrf_token,
                id=int(sess.id),
                created_at=sess.created_at,
                expires_at=sess.expires_at,
            )

    def revoke(self, token: str | None) -> bool:
        """End the session of ``token`` (log out): records ``logout``. True if it existed."""
        if not isinstance(token, str) or not token:
            return False
        with self.db.session() as s:
            found = s.execute(
                select(UserSession.id, User.name, User.tenant)
                .join(User, User.id == UserSession.user_id)
                .where(UserSession.token_hash == token_hash(token))
            ).first()
            if found is None:
                return False
            s.execute(delete(UserSession).where(UserSession.id == found[0]))
            self.audit.append(
                f"user:{found[1]}",
                "logout",
                object_type="user",
                object_id=found[1],
                tenant=found[2],
                session=s,
            )
        return True

    def revoke_user(self, user_id: int) -> int:
        """End every session of a user; returns how many there were."""
        with self.db.session() as s:
            result = s.execute(delete(UserSession).where(UserSession.user_id == int(user_id)))
            return int(getattr(result, "rowcount", 0) or 0)

    def prune(self) -> int:
        """Delete expired sessions."""
        now = utcnow()
        with self.db.session() as s:
            result = s.execute(
                delete(UserSession).where(
                    (UserSession.expires_at <= now)
                    | (UserSession.last_seen_at <= now - idle_timeout())
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

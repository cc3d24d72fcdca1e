"""Console users: names, roles and argon2id password hashes.

Roles and what they may do (:meth:`UserInfo.can`):

* ``reviewer`` — ``read`` cases and ``review``: work queues, reveal media, decide, comment;
* ``lead`` — a reviewer who may also ``lead``: assign cases, confirm or reject another
  reviewer's two-person decisions, reopen cases, see everyone's wellness counters;
* ``admin`` — everything, including ``admin`` (users, rules, webhooks) and ``audit``;
* ``auditor`` — ``read`` cases and ``audit`` (the audit log); never reveals media and
  never decides.

Every change to a user (created, role changed, disabled, password changed, settings)
writes an audit entry in the same transaction. A disabled user or a role change ends
the user's console sessions at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from safehold.audit import AuditLog, actor_of
from safehold.banks.entries import DEFAULT_TENANT, check_tenant
from safehold.errors import Conflict, InvalidValue, NotFound, Unauthorized, preview
from safehold.store.db import Database
from safehold.store.models import User, UserSession, utcnow

ROLES: tuple[str, ...] = ("reviewer", "lead", "admin", "auditor")
PERMISSIONS: dict[str, frozenset[str]] = {
    "reviewer": frozenset({"read", "review"}),
    "lead": frozenset({"read", "review", "lead"}),
    "admin": frozenset({"read", "review", "lead", "admin", "audit"}),
    "auditor": frozenset({"read", "audit"}),
}
NAME = re.compile(r"[a-z0-9._-]{1,64}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
BLUR_RANGE = (4, 64)
"""Allowed blur radii (pixels) of the default rendition: never unblurred by default."""
DEFAULT_BLUR = 24

_hasher = PasswordHasher()
_dummy: dict[str, str] = {}


def _dummy_hash() -> str:
    """A hash to verify against for unknown names, so they take as long as known ones."""
    key = repr(_hasher)
    if key not in _dummy:
        _dummy[key] = _hasher.hash("safehold-no-such-user-password")
    return _dummy[key]


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: str
    tenant: str
    blur: int
    daily_limit: int | None
    disabled: bool
    created_at: datetime | None = None
    last_login_at: datetime | None = None

    @property
    def permissions(self) -> frozenset[str]:
        return frozenset() if self.disabled else PERMISSIONS.get(self.role, frozenset())

    def can(self, permission: str) -> bool:
        """``read``, ``review``, ``lead``, ``admin`` or ``audit`` (never when disabled)."""
        return permission in self.permissions

    @property
    def actor(self) -> str:
        return f"user:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "tenant": self.tenant,
            "blur": self.blur,
            "daily_limit": self.daily_limit,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


def user_info(row: User) -> UserInfo:
    return UserInfo(
        id=int(row.id),
        name=row.name,
        role=row.role,
        tenant=row.tenant,
        blur=int(row.blur),
        daily_limit=row.daily_limit,
        disabled=row.disabled_at is not None,
        created_at=row.created_at,
        last_login_at=row.last_login_at,
    )


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidValue(
            f"invalid user name {preview(name)}: use 1-64 lower-case letters, digits, '.', "
            "'_' or '-'"
        )
    return name


def check_role(role: object) -> str:
    if role not in ROLES:
        raise InvalidValue(f"unknown role {preview(role)}: use one of {', '.join(ROLES)}")
    assert isinstance(role, str)
    return role


def check_password(password: object, name: str) -> str:
    if not isinstance(password, str) or not password:
        raise InvalidValue("the password is empty")
    if len(password) < MIN_PASSWORD:
        raise InvalidValue(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidValue(f"the password is too long: at most {MAX_PASSWORD} characters")
    if password.strip().lower() == name.lower():
        raise InvalidValue("the password must not be the user name")
    if "\x00" in password:
        raise InvalidValue("the password must not contain NUL")
    return password


def default_daily_limit() -> int:
    """``SAFEHOLD_DAILY_REVEAL_LIMIT`` (items a reviewer reveals a day; default 200)."""
    raw = os.environ.get("SAFEHOLD_DAILY_REVEAL_LIMIT", "")
    try:
        return max(1, int(raw)) if raw.strip() else 200
    except ValueError:
        return 200


class Users:
    """Create, authenticate and manage console users.

    Methods that change a user by name take ``tenant``: when given (the console passes
    the acting admin's tenant), a user of another tenant is NotFound. ``by`` is the actor
    recorded in the audit log: a :class:`UserInfo` or an actor string (``cli:LOGIN``)."""

    def __init__(self, db: Database, audit: AuditLog) -> None:
        self.db = db
        self.audit = audit

    # ----------------------------------------------------------------- reading

    def get(self, user_id: int) -> UserInfo:
        with self.db.session() as s:
            row = s.get(User, int(user_id))
            if row is None:
                raise NotFound(f"no user with id {preview(user_id)}")
            return user_info(row)

    def by_name(self, name: str, *, tenant: str | None = None) -> UserInfo:
        """The user named ``name`` (NotFound, also when ``tenant`` is given and differs)."""
        with self.db.session() as s:
            return user_info(self._row(s, name, tenant))

    def list(self, tenant: str | None = None, *, disabled: bool = True) -> list[UserInfo]:
        q = select(User).order_by(User.name)
        if tenant is not None:
            q = q.where(User.tenant == tenant)
        if not disabled:
            q = q.where(User.disabled_at.is_(None))
        with self.db.session() as s:
            return [user_info(r) for r in s.scalars(q)]

    @staticmethod
    def _row(s: Session, name: str, tenant: str | None = None) -> User:
        row = s.scalar(select(User).where(User.name == str(name)))
        if row is None or (tenant is not None and row.tenant != tenant):
            raise NotFound(f"no user named {preview(name)}; `safehold user list` shows them")
        return row

    # ----------------------------------------------------------------- writing

    def create(
        self,
        name: str,
        password: str,
        role: str,
        *,
        tenant: str = DEFAULT_TENANT,
        by: object = "cli",
    ) -> UserInfo:
        """A new user (name ``[a-z0-9._-]{1,64}``, password at least 12 characters)."""
        check_name(name)
        check_role(role)
        check_tenant(tenant)
        check_password(password, name)
        row = User(
            name=name,
            password_hash=_hasher.hash(password),
            role=role,
            tenant=tenant,
            blur=DEFAULT_BLUR,
            created_at=utcnow(),
        )
        try:
            with self.db.session() as s:
                if s.scalar(select(User.id).where(User.name == name)) is not None:
                    raise Conflict(f"a user named {name!r} exists already")
                s.add(row)
                s.flush()
                info = user_info(row)
                self.audit.append(
                    actor_of(by),
                    "user_create",
                    object_type="user",
                    object_id=name,
                    details={"role": role, "tenant": tenant},
                    tenant=tenant,
                    session=s,
                )
        except IntegrityError:
            raise Conflict(f"a user named {name!r} exists already") from None
        return info

    def authenticate(self, name: str, password: str) -> UserInfo:
        """The user if ``password`` is theirs and they are not disabled; else
        :class:`Unauthorized` (the same message and the same work for unknown names).
        Records ``login`` or ``login_failed`` in the audit log."""
        stored: str | None = None
        info: UserInfo | None = None
        valid_name = isinstance(name, str) and NAME.fullmatch(name) is not None
        if valid_name:
            with self.db.session() as s:
                row = s.scalar(select(User).where(User.name == name))
                if row is not None:
                    stored, info = row.password_hash, user_info(row)
        ok = False
        try:
            ok = _hasher.verify(
                stored or _dummy_hash(), password if isinstance(password, str) else ""
            )
        except (VerificationError, InvalidHashError):
            ok = False
        shown = name[:64] if isinstance(name, str) and valid_name else "?"
        if not ok or info is None or info.disabled or stored is None:
            reason = "disabled" if ok and info is not None and info.disabled else "bad credentials"
            self.audit.append(
                f"user:{shown}",
                "login_failed",
                object_type="user",
                object_id=shown,
                details={"reason": reason},
                tenant=info.tenant if info else DEFAULT_TENANT,
            )
            raise Unauthorized("wrong user name or password, or the user is disabled")
        now = utcnow()
        with self.db.session() as s:
            row = s.get(User, info.id)
            if row is None or row.disabled_at is not None:
                raise Unauthorized("wrong user name or password, or the user is disabled")
            row.last_login_at = now
            if _hasher.check_needs_rehash(stored):
                row.password_hash = _hasher.hash(password)
            info = user_info(row)
            self.audit.append(
                info.actor,
                "login",
                object_type="user",
                object_id=info.name,
                tenant=info.tenant,
                session=s,
            )
        return info

    def set_role(
        self, name: str, role: str, by: object = "cli", *, tenant: str | None = None
    ) -> UserInfo:
        """Change a user's role; their sessions end (they log in again with the new role)."""
        check_role(role)
        with self.db.session() as s:
            row = self._row(s, name, tenant)
            old = row.role
            row.role = role
            s.execute(delete(UserSession).where(UserSession.user_id == row.id))
            info = user_info(row)
            self.audit.append(
                actor_of(by),
                "role_change",
                object_type="user",
                object_id=row.name,
                details={"from": old, "to": role},
                tenant=row.tenant,
                session=s,
            )
        return info

    def disable(self, name: str, by: object = "cli", *, tenant: str | None = None) -> UserInfo:
        """Disable a user (idempotent): no more logins, sessions end, cases unassigned."""
        from safehold.store.models import Case

        with self.db.session() as s:
            row = self._row(s, name, tenant)
            if row.disabled_at is None:
                row.disabled_at = utcnow()
                s.execute(delete(UserSession).where(UserSession.user_id == row.id))
                for case in s.scalars(
                    select(Case).where(
                        Case.assignee_id == row.id, Case.state.in_(("new", "in_review"))
                    )
                ):
                    case.assignee_id = None
                self.audit.append(
                    actor_of(by),
                    "user_disable",
                    object_type="user",
                    object_id=row.name,
                    tenant=row.tenant,
                    session=s,
                )
            return user_info(row)

    def set_password(
        self, name: str, password: str, by: object = "cli", *, tenant: str | None = None
    ) -> UserInfo:
        """A new password; the user's other sessions end."""
        check_password(password, name)
        digest = _hasher.hash(password)
        with self.db.session() as s:
            row = self._row(s, name, tenant)
            row.password_hash = digest
            s.execute(delete(UserSession).where(UserSession.user_id == row.id))
            self.audit.append(
                actor_of(by),
                "password_change",
                object_type="user",
                object_id=row.name,
                tenant=row.tenant,
                session=s,
            )
            return user_info(row)

    def set_blur(self, user_id: int, px: int, by: object | None = None) -> UserInfo:
        """The user's blur radius (pixels, 4-64) for the default rendition."""
        lo, hi = BLUR_RANGE
        if isinstance(px, bool) or not isinstance(px, int) or not lo <= px <= hi:
            raise InvalidValue(f"blur must be a whole number of pixels from {lo} to {hi}")
        with self.db.session() as s:
            row = s.get(User, int(user_id))
            if row is None:
                raise NotFound(f"no user with id {preview(user_id)}")
            old = row.blur
            row.blur = px
            self.audit.append(
                actor_of(by) if by is not None else f"user:{row.name}",
                "settings_change",
                object_type="user",
                object_id=row.name,
                details={"blur": {"from": old, "to": px}},
                tenant=row.tenant,
                session=s,
            )
            return user_info(row)

    def set_daily_limit(
        self, name: str, n: int | None, by: object = "cli", *, tenant: str | None = None
    ) -> UserInfo:
        """Items the user may reveal a day before assignment pauses (None: the default)."""
        if n is not None and (
            isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100_000
        ):
            raise InvalidValue("the daily limit must be a whole number from 1 to 100000")
        with self.db.session() as s:
            row = self._row(s, name, tenant)
            old = row.daily_limit
            row.daily_limit = n
            self.audit.append(
                actor_of(by),
                "settings_change",
                object_type="user",
                object_id=row.name,
                details={"daily_limit": {"from": old, "to": n}},
                tenant=row.tenant,
                session=s,
            )
            return user_info(row)

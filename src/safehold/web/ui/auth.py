"""Console sign-in: session cookie, CSRF tokens, roles and the failed-login throttle.

* The session cookie ``safehold_session`` holds a random token (the database keeps
  only its SHA-256, :class:`safehold.access.sessions.Sessions`); it is ``HttpOnly``,
  ``SameSite=Strict``, ``Path=/ui`` and ``Secure`` when the request came over https.
* Every POST carries the session's CSRF token, as the form field ``csrf`` or the
  ``X-CSRF-Token`` header (htmx sends it from ``hx-headers`` on ``<body>``); it is
  compared with :func:`hmac.compare_digest` and anything else is refused with 403.
* The login form, which has no session yet, uses a double-submit token: a random
  value in the ``safehold_login`` cookie that the form must echo.
* Failed logins are limited per user name in this process (:class:`LoginThrottle`).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from starlette.responses import Response

from safehold.errors import Forbidden, RateLimited, SafeholdError
from safehold.settings import env_float
from safehold.web.service import Service

SESSION_COOKIE = "safehold_session"
LOGIN_COOKIE = "safehold_login"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
COOKIE_PATH = "/ui"


class LoginRequired(SafeholdError):
    """No session (or an expired one): the console sends the browser to the login page."""

    code = "login_required"
    status = 401


class CsrfRefused(Forbidden):
    code = "csrf_refused"


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of one request."""

    user: Any
    """The :class:`safehold.access.users.UserInfo` of the session."""
    csrf: str
    token: str

    @property
    def name(self) -> str:
        return str(self.user.name)

    @property
    def role(self) -> str:
        return str(self.user.role)

    @property
    def tenant(self) -> str:
        return str(self.user.tenant)

    @property
    def actor(self) -> str:
        return f"user:{self.user.name}"

    def can(self, permission: str) -> bool:
        return bool(self.user.can(permission))


def service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
        path=COOKIE_PATH,
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_https(request)
    )


def login_token(request: Request) -> str:
    """The double-submit token of the login form (reused while the cookie lives)."""
    current = request.cookies.get(LOGIN_COOKIE, "")
    if 20 <= len(current) <= 100 and current.replace("-", "").replace("_", "").isalnum():
        return current
    return secrets.token_urlsafe(24)


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
        path=COOKIE_PATH,
    )


def check_login_token(request: Request, submitted: str) -> None:
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not submitted or not hmac.compare_digest(cookie, submitted):
        raise CsrfRefused(
            "the sign-in form expired or was not sent by this console; reload the page and "
            "sign in again"
        )


def optional_viewer(request: Request) -> Viewer | None:
    """The session's user, or None (no cookie, unknown, expired or disabled)."""
    cached = getattr(request.state, "viewer", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 200:
        return None
    info = service(request).sessions.lookup(token)
    if info is None or getattr(info.user, "disabled", False):
        return None
    viewer = Viewer(user=info.user, csrf=str(info.csrf), token=token)
    request.state.viewer = viewer
    return viewer


def current_viewer(request: Request) -> Viewer:
    viewer = optional_viewer(request)
    if viewer is None:
        raise LoginRequired("sign in to use the console")
    return viewer


async def _submitted_csrf(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def csrf_viewer(request: Request) -> Viewer:
    """The signed-in user of a POST whose CSRF token matches the session's."""
    viewer = current_viewer(request)
    submitted = await _submitted_csrf(request)
    if not submitted or not hmac.compare_digest(submitted.encode(), viewer.csrf.encode()):
        raise CsrfRefused(
            "this form was not sent by your console session (missing or wrong CSRF token); "
            "reload the page and try again"
        )
    return viewer


def permission(name: str, *, post: bool = False) -> Callable[..., Any]:
    """A dependency admitting users whose role holds ``name`` (POSTs also need CSRF)."""

    if post:

        async def dependency_post(viewer: Viewer = Depends(csrf_viewer)) -> Viewer:
            _require(viewer, name)
            return viewer

        return dependency_post

    def dependency(viewer: Viewer = Depends(current_viewer)) -> Viewer:
        _require(viewer, name)
        return viewer

    return dependency


def _require(viewer: Viewer, name: str) -> None:
    if not viewer.can(name):
        raise Forbidden(
            f"your role ({viewer.role}) does not allow this page or action; "
            f"it needs the {name!r} permission"
        )


def can_read_cases(viewer: Viewer) -> bool:
    return viewer.can("review") or viewer.can("audit")


def read_cases(viewer: Viewer = Depends(current_viewer)) -> Viewer:
    """Reviewers, leads and admins work cases; auditors read them."""
    if not can_read_cases(viewer):
        raise Forbidden(f"your role ({viewer.role}) cannot read cases")
    return viewer


class LoginThrottle:
    """Failed sign-ins per user name: after ``limit`` failures within ``window`` seconds
    that name is refused (even with the right password) until the window has passed.

    In memory, per process (``SAFEHOLD_LOGIN_FAILURES``, ``SAFEHOLD_LOGIN_WINDOW``)."""

    def __init__(
        self, limit: int | None = None, window: float | None = None, max_names: int = 10_000
    ) -> None:
        self.limit = limit or int(env_float("SAFEHOLD_LOGIN_FAILURES", 5))
        self.window = window or env_float("SAFEHOLD_LOGIN_WINDOW", 900)
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_names

    def _recent(self, name: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(name, []) if now - t < self.window]
        if times:
            self._failures[name] = times
        else:
            self._failures.pop(name, None)
        return times

    def check(self, name: str) -> None:
        """Raise :class:`RateLimited` when ``name`` has too many recent failures."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(name.lower(), now)
            if len(times) >= self.limit:
                wait = self.window - (now - times[0])
                raise RateLimited(
                    f"too many failed sign-ins for this name; try again in "
                    f"{max(1, round(wait / 60))} minute(s) or ask an admin",
                    retry_after=wait,
                )

    def failed(self, name: str) -> None:
        now = time.monotonic()
        key = name.lower()
        with self._lock:
            times = self._recent(key, now)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
            while len(self._failures) > self._max:
                self._failures.popitem(last=False)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name.lower(), None)


def throttle(request: Request) -> LoginThrottle:
    """The app's throttle (one per application)."""
    state = request.app.state
    found: LoginThrottle | None = getattr(state, "login_throttle", None)
    if found is None:
        found = LoginThrottle()
        state.login_throttle = found
    return found

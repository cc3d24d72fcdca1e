"""Rendering console pages: the Jinja2 environment, security headers, error pages.

Every console route uses :class:`ConsoleRoute`, which adds the strict headers to each
response (``Content-Security-Policy``, ``X-Content-Type-Options``, ``Referrer-Policy``,
``X-Frame-Options``) and turns errors into HTML pages (or small fragments for htmx
requests) instead of the API's problem+json: a 403 page for a missing permission, the
login page for a missing session.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse, RedirectResponse, Response

from safehold import __version__
from safehold.access.ratelimit import retry_after
from safehold.errors import RateLimited, SafeholdError
from safehold.web.ui.auth import LoginRequired, optional_viewer

log = structlog.get_logger("safehold.web.ui")

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
CSP = "default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'; form-action 'self'"
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """A console page (or fragment) with the viewer and common values in its context."""
    viewer = optional_viewer(request)
    ctx: dict[str, Any] = {
        "viewer": viewer,
        "version": __version__,
        "now": datetime.now(UTC),
        "path": request.url.path,
        "notices": _notice_count(request, viewer),
    }
    ctx.update(context or {})
    return TEMPLATES.TemplateResponse(request, template, ctx, status_code=status, headers=headers)


def _notice_count(request: Request, viewer: Any) -> int:
    if viewer is None:
        return 0
    from safehold.web.ui.notices import unread_count

    try:
        return unread_count(request.app.state.service.db, viewer)
    except Exception:  # the badge must never break a page
        log.exception("notification count failed")
        return 0


def error_page(request: Request, exc: SafeholdError) -> Response:
    if isinstance(exc, LoginRequired):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = "/ui/login" + (f"?next={quote(target)}" if request.method == "GET" else "")
        if is_htmx(request):
            return Response(status_code=401, headers={"HX-Redirect": login})
        if request.method == "GET":
            return RedirectResponse(login, status_code=303)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(retry_after(exc.retry_after))
    template = "fragments/error.html" if is_htmx(request) else "error.html"
    return page(
        request,
        template,
        {"status": exc.status, "code": exc.code, "message": exc.message},
        status=exc.status,
        headers=headers,
    )


class ConsoleRoute(APIRoute):
    """An API route whose responses carry the console's headers and HTML errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await original(request)
            except SafeholdError as exc:
                response = error_page(request, exc)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
                message = f"{where or 'request'}: {first.get('msg', 'invalid value')}"
                response = page(
                    request,
                    "fragments/error.html" if is_htmx(request) else "error.html",
                    {"status": 422, "code": "invalid_value", "message": message},
                    status=422,
                )
            return secure(response)

        return handler


def fmt_time(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def relative(value: datetime | None, now: datetime | None = None) -> str:
    """``in 3 h`` / ``5 min ago`` (for SLA due times)."""
    if value is None:
        return "—"
    now = now or datetime.now(UTC)
    seconds = (value - now).total_seconds()
    ahead = seconds >= 0
    s = abs(seconds)
    if s < 60:
        text = f"{int(s)} s"
    elif s < 3600:
        text = f"{int(s // 60)} min"
    elif s < 86400 * 2:
        text = f"{s / 3600:.0f} h"
    else:
        text = f"{s / 86400:.0f} d"
    return f"in {text}" if ahead else f"{text} ago"


def overdue(value: datetime | None) -> bool:
    return value is not None and value < datetime.now(UTC)


def label_title(name: str | None) -> str:
    from safehold.taxonomy import LABELS

    if not name:
        return ""
    label = LABELS.get(name)
    return label.title if label else name


TEMPLATES.env.filters["when"] = fmt_time
TEMPLATES.env.filters["relative"] = relative
TEMPLATES.env.filters["overdue"] = overdue
TEMPLATES.env.filters["label_title"] = label_title

"""The review console: server-rendered pages (Jinja2 + htmx) under ``/ui``.

This module holds sign-in and the queue pages and includes the others
(:mod:`~safehold.web.ui.case_pages`, :mod:`~safehold.web.ui.admin_pages`,
:mod:`~safehold.web.ui.complaint_pages`). Every route
is a thin shell over the library (:class:`~safehold.web.service.Service`: users,
sessions, cases, wellness, audit); the role checks are the dependencies of
:mod:`~safehold.web.ui.auth`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from safehold.errors import RateLimited, Unauthorized
from safehold.taxonomy import LABELS
from safehold.web.ui import (
    admin_pages,
    case_pages,
    complaint_pages,
    preservation_pages,
    referral_pages,
)
from safehold.web.ui.auth import (
    Viewer,
    check_login_token,
    clear_session_cookie,
    csrf_viewer,
    current_viewer,
    login_token,
    optional_viewer,
    permission,
    read_cases,
    service,
    set_login_cookie,
    set_session_cookie,
    throttle,
)
from safehold.web.ui.notices import mark_read, recent
from safehold.web.ui.render import ConsoleRoute, page
from safehold.web.ui.views import STATES, page_items, page_next

router = APIRouter(prefix="/ui", include_in_schema=False, route_class=ConsoleRoute)
"""The review console: server-rendered pages (Jinja2 + htmx) under ``/ui``."""


def _safe_next(target: str | None) -> str:
    """Only console paths on this site (no ``//host``, no scheme) as a post-login target."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


# --- sign in / out ---------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, next: str = "/ui/") -> Response:
    if optional_viewer(request) is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    token = login_token(request)
    response = page(
        request, "login.html", {"login_token": token, "next": _safe_next(next), "name": ""}
    )
    set_login_cookie(response, request, token)
    return response


@router.post("/login")
def login(
    request: Request,
    name: str = Form("", max_length=200),
    password: str = Form("", max_length=1024),
    csrf: str = Form("", max_length=200),
    next: str = Form("/ui/", max_length=2000),
) -> Response:
    svc = service(request)
    check_login_token(request, csrf)
    name = name.strip()
    token = login_token(request)
    context: dict[str, Any] = {"login_token": token, "next": _safe_next(next), "name": name}
    limiter = throttle(request)
    try:
        limiter.check(name)
        user = svc.users.authenticate(name, password)
    except RateLimited as e:
        response = page(request, "login.html", {**context, "error": e.message}, status=429)
        response.headers["Retry-After"] = str(max(1, int(e.retry_after)))
        return response
    except Unauthorized:
        limiter.failed(name)
        response = page(
            request,
            "login.html",
            {**context, "error": "Wrong user name or password, or the account is disabled."},
            status=401,
        )
        set_login_cookie(response, request, token)
        return response
    limiter.succeeded(name)
    session_token, _csrf = svc.sessions.create(user)
    done = RedirectResponse(_safe_next(next), status_code=303)
    set_session_cookie(done, request, session_token)
    return done


@router.post("/logout")
def logout(request: Request, viewer: Viewer = Depends(csrf_viewer)) -> Response:
    svc = service(request)
    svc.sessions.revoke(viewer.token)
    response = page(
        request,
        "login.html",
        {
            "login_token": login_token(request),
            "next": "/ui/",
            "name": "",
            "message": "You are signed out.",
        },
    )
    request.state.viewer = None
    clear_session_cookie(response, request)
    return response


# --- queues ----------------------------------------------------------------------------


@router.get("/")
def queues(
    request: Request,
    q: str = Query("", max_length=64),
    overdue_only: bool = Query(False, alias="overdue"),
    viewer: Viewer = Depends(read_cases),
) -> Response:
    svc = service(request)
    counts = list(svc.cases.queue_counts(viewer.tenant))
    if q:
        counts = [c for c in counts if q.lower() in str(c.queue).lower()]
    if overdue_only:
        counts = [c for c in counts if c.overdue]
    mine: list[Any] = []
    if viewer.can("review"):
        mine = page_items(
            svc.cases.list_cases(viewer.tenant, assignee_id=viewer.user.id, state="in_review")
        )
    totals = {
        "open": sum(c.open for c in counts),
        "overdue": sum(c.overdue for c in counts),
        "new": sum(c.new for c in counts),
        "in_review": sum(c.in_review for c in counts),
    }
    exposure = svc.wellness.today(viewer.user.id) if viewer.can("review") else None
    return page(
        request,
        "queues.html",
        {
            "counts": counts,
            "mine": mine,
            "totals": totals,
            "q": q,
            "overdue_only": overdue_only,
            "exposure": exposure,
        },
    )


@router.get("/queue/{name}")
def queue(
    request: Request,
    name: str,
    state: str = Query("open", max_length=16),
    label: str = Query("", max_length=64),
    assignee: str = Query("", max_length=16),
    overdue_only: bool = Query(False, alias="overdue"),
    cursor: str | None = Query(None, max_length=200),
    viewer: Viewer = Depends(read_cases),
) -> Response:
    svc = service(request)
    filters: dict[str, Any] = {"queue": name, "limit": 50, "cursor": cursor or None}
    if state and state != "all":
        filters["state"] = state
    if label:
        filters["label"] = label
    if assignee == "me":
        filters["assignee_id"] = viewer.user.id
    if overdue_only:
        filters["overdue"] = True
    result = svc.cases.list_cases(viewer.tenant, **filters)
    params = {
        "state": state,
        "label": label,
        "assignee": assignee,
        **({"overdue": "true"} if overdue_only else {}),
    }
    next_cursor = page_next(result)
    return page(
        request,
        "queue.html",
        {
            "queue": name,
            "cases": page_items(result),
            "next_url": (
                f"/ui/queue/{quote(name)}?" + urlencode({**params, "cursor": next_cursor})
                if next_cursor
                else None
            ),
            "first_url": f"/ui/queue/{quote(name)}?" + urlencode(params) if cursor else None,
            "state": state,
            "label": label,
            "assignee": assignee,
            "overdue_only": overdue_only,
            "states": ("open", *STATES, "all"),
            "taxonomy": LABELS,
        },
    )


def _next(request: Request, viewer: Viewer, queue_name: str | None) -> Response:
    svc = service(request)
    found = svc.cases.next_case(viewer.user, queue=queue_name or None)
    if found is None:
        exposure = svc.wellness.today(viewer.user.id)
        return page(
            request,
            "next_empty.html",
            {"queue": queue_name, "exposure": exposure},
        )
    case_id = case_pages.case_id_of(found)
    return RedirectResponse(f"/ui/cases/{case_id}", status_code=303)


@router.get("/next")
def next_case(
    request: Request,
    queue: str = Query("", max_length=64),
    viewer: Viewer = Depends(permission("review")),
) -> Response:
    """Take the highest-priority open case of ``queue`` (or of any queue) and open it."""
    return _next(request, viewer, queue)


@router.post("/next")
def next_case_post(
    request: Request,
    queue: str = Form("", max_length=64),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    return _next(request, viewer, queue)


# --- the viewer's own page -------------------------------------------------------------


@router.get("/me")
def me(
    request: Request, saved: bool = Query(False), viewer: Viewer = Depends(current_viewer)
) -> Response:
    svc = service(request)
    user = svc.users.get(viewer.user.id)
    exposure = svc.wellness.today(viewer.user.id)
    return page(request, "me.html", {"user": user, "exposure": exposure, "saved": saved})


@router.post("/me/blur")
def set_blur(
    request: Request,
    blur: int = Form(..., ge=4, le=64),
    viewer: Viewer = Depends(csrf_viewer),
) -> Response:
    svc = service(request)
    svc.users.set_blur(viewer.user.id, blur)
    return RedirectResponse("/ui/me?saved=1", status_code=303)


@router.get("/notifications")
def notifications(request: Request, viewer: Viewer = Depends(current_viewer)) -> Response:
    db = service(request).db
    items = recent(db, viewer)
    mark_read(db, viewer)
    return page(request, "notifications.html", {"items": items})


router.include_router(case_pages.router)
router.include_router(admin_pages.router)
router.include_router(complaint_pages.router)
router.include_router(preservation_pages.router)
router.include_router(referral_pages.router)

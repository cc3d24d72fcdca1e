"""Oversight pages: the team's exposure (leads), users, rules and webhooks (admins),
and the audit log (auditors and admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from safehold.access.users import ROLES
from safehold.errors import Forbidden
from safehold.web.ui.auth import Viewer, csrf_viewer, current_viewer, permission, service
from safehold.web.ui.render import ConsoleRoute, page
from safehold.web.ui.views import field

router = APIRouter(route_class=ConsoleRoute)


# --- team ------------------------------------------------------------------------------


@router.get("/team")
def team(request: Request, viewer: Viewer = Depends(permission("lead"))) -> Response:
    svc = service(request)
    rows = list(svc.wellness.team(viewer.tenant))
    return page(request, "team.html", {"rows": rows})


@router.post("/team/limit")
def team_limit(
    request: Request,
    name: str = Form(..., max_length=64),
    limit: str = Form("", max_length=8),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    svc = service(request)
    value = int(limit) if limit.strip() else None
    svc.users.set_daily_limit(name, value)
    return RedirectResponse("/ui/team", status_code=303)


# --- users -----------------------------------------------------------------------------


@router.get("/admin/users")
def users(
    request: Request,
    done: str = Query("", max_length=200),
    viewer: Viewer = Depends(permission("admin")),
) -> Response:
    svc = service(request)
    return page(
        request,
        "users.html",
        {"users": list(svc.users.list(viewer.tenant)), "roles": ROLES, "done": done, "error": ""},
    )


def _users_error(request: Request, viewer: Viewer, message: str, status: int) -> Response:
    svc = service(request)
    return page(
        request,
        "users.html",
        {
            "users": list(svc.users.list(viewer.tenant)),
            "roles": ROLES,
            "done": "",
            "error": message,
        },
        status=status,
    )


@router.post("/admin/users")
def create_user(
    request: Request,
    name: str = Form(..., max_length=64),
    password: str = Form(..., max_length=1024),
    role: str = Form(..., max_length=16),
    viewer: Viewer = Depends(permission("admin", post=True)),
) -> Response:
    from safehold.errors import SafeholdError

    svc = service(request)
    try:
        svc.users.create(name, password, role, tenant=viewer.tenant, by=viewer.actor)
    except Forbidden:
        raise
    except SafeholdError as e:
        return _users_error(request, viewer, e.message, e.status)
    return RedirectResponse(f"/ui/admin/users?done=created+{name}", status_code=303)


def _same_tenant(svc: Any, viewer: Viewer, name: str) -> None:
    user = svc.users.by_name(name)
    if user is None or field(user, "tenant") != viewer.tenant:
        from safehold.errors import NotFound

        raise NotFound(f"no user {name!r} in your tenant")


@router.post("/admin/users/{name}/role")
def change_role(
    request: Request,
    name: str,
    role: str = Form(..., max_length=16),
    viewer: Viewer = Depends(permission("admin", post=True)),
) -> Response:
    svc = service(request)
    _same_tenant(svc, viewer, name)
    svc.users.set_role(name, role, by=viewer.actor)
    return RedirectResponse(f"/ui/admin/users?done=role+of+{name}+is+{role}", status_code=303)


@router.post("/admin/users/{name}/disable")
def disable_user(
    request: Request,
    name: str,
    viewer: Viewer = Depends(permission("admin", post=True)),
) -> Response:
    svc = service(request)
    _same_tenant(svc, viewer, name)
    if name == viewer.name:
        raise Forbidden("you cannot disable your own account here; ask another admin")
    svc.users.disable(name, by=viewer.actor)
    return RedirectResponse(f"/ui/admin/users?done=disabled+{name}", status_code=303)


# --- audit -----------------------------------------------------------------------------


def _auditor(viewer: Viewer = Depends(current_viewer)) -> Viewer:
    if not (viewer.can("audit") or viewer.can("admin")):
        raise Forbidden(f"your role ({viewer.role}) cannot read the audit log")
    return viewer


@router.get("/audit")
def audit(
    request: Request,
    actor: str = Query("", max_length=128),
    action: str = Query("", max_length=64),
    object: str = Query("", max_length=100),
    before: int | None = Query(None, ge=1),
    viewer: Viewer = Depends(_auditor),
) -> Response:
    svc = service(request)
    object_type, _, object_id = object.partition(":")
    entries = list(
        svc.audit.list(
            tenant=viewer.tenant,
            actor=actor or None,
            action=action or None,
            object_type=object_type or None,
            object_id=object_id or None,
            limit=50,
            before_id=before,
        )
    )
    older = int(field(entries[-1], "id")) if len(entries) == 50 else None
    return page(
        request,
        "audit.html",
        {
            "entries": entries,
            "actor": actor,
            "action": action,
            "object": object,
            "older": older,
            "verify": None,
        },
    )


async def _auditor_post(viewer: Viewer = Depends(csrf_viewer)) -> Viewer:
    return _auditor(viewer)


@router.post("/audit/verify")
def audit_verify(request: Request, viewer: Viewer = Depends(_auditor_post)) -> Response:
    return page(request, "fragments/verify.html", {"verify": service(request).audit.verify()})


# --- rules -----------------------------------------------------------------------------


@router.get("/rules")
def rules(
    request: Request,
    version: int | None = Query(None, ge=1),
    viewer: Viewer = Depends(permission("admin")),
) -> Response:
    svc = service(request)
    active = svc.rulesets.active(viewer.tenant)
    shown = svc.rulesets.get(version, viewer.tenant) if version else active
    return page(
        request,
        "rules.html",
        {
            "active": active,
            "shown": shown,
            "table": svc.rulesets.hit_table(shown),
            "versions": list(svc.rulesets.versions(viewer.tenant)),
        },
    )


# --- webhooks --------------------------------------------------------------------------


def _webhooks(request: Request) -> Any:
    from safehold.actions.webhooks import Webhooks

    svc = service(request)
    return Webhooks(svc.db, svc.jobs, svc.audit)


@router.get("/webhooks")
def webhooks(
    request: Request,
    status: str = Query("", max_length=16),
    viewer: Viewer = Depends(permission("admin")),
) -> Response:
    from safehold.actions.webhooks import STATUSES

    hooks = _webhooks(request)
    deliveries = hooks.list(tenant=viewer.tenant, status=status or None, limit=100)
    return page(
        request,
        "webhooks.html",
        {
            "deliveries": deliveries,
            "status": status,
            "states": STATUSES,
            "counts": hooks.counts(tenant=viewer.tenant),
        },
    )


@router.post("/webhooks/{delivery_id}/replay")
def webhook_replay(
    request: Request,
    delivery_id: int,
    viewer: Viewer = Depends(permission("admin", post=True)),
) -> Response:
    _webhooks(request).replay(delivery_id, tenant=viewer.tenant, by=viewer.actor)
    return RedirectResponse("/ui/webhooks", status_code=303)

"""The case page and what a reviewer does on it: reveal, decide, confirm, comment.

Media is only ever sent blurred and greyscale (at the viewer's blur strength) unless
the viewer revealed that item moments ago: the reveal (POST, CSRF, ``review``
permission) writes a ``view_media`` audit entry and an exposure record and answers
with a fragment whose image URL is signed for this session and expires after
``SAFEHOLD_REVEAL_SECONDS`` (:mod:`safehold.web.ui.reveal`); console.js blurs it again
when the time is up. Auditors read cases but cannot reveal or decide.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from safehold.cases.model import ItemInfo
from safehold.errors import Forbidden, NotFound
from safehold.taxonomy import LABELS
from safehold.web.ui import referral_pages, reveal
from safehold.web.ui.auth import Viewer, permission, read_cases, service
from safehold.web.ui.render import ConsoleRoute, is_htmx, page
from safehold.web.ui.views import ACTIONS, OPEN_STATES, field

router = APIRouter(route_class=ConsoleRoute)

MEDIA_HEADERS = {
    "Cache-Control": "no-store, private",
    "X-Content-Type-Options": "nosniff",
    "Content-Disposition": "inline",
    "Cross-Origin-Resource-Policy": "same-origin",
}
FRAMES = 8
"""Frames in a video's strip."""


def case_id_of(found: Any) -> int:
    """The id of a :class:`CaseView` (or of a case row)."""
    inner = field(found, "case")
    return int(field(inner, "id") if inner is not None else field(found, "id"))


# --- the case page ---------------------------------------------------------------------


@router.get("/cases/{case_id}")
def case_page(request: Request, case_id: int, viewer: Viewer = Depends(read_cases)) -> Response:
    svc = service(request)
    view = svc.cases.view(case_id, viewer.user)  # records view_case
    case = view.case
    items = [_item_view(svc, it) for it in view.items]
    users = {u.id: u for u in svc.users.list(viewer.tenant)}
    account = case.account_id
    history = svc.cases.account_history(viewer.tenant, account, limit=20) if account else None
    related = svc.cases.related(case_id, viewer.tenant)
    trail = svc.audit.list(object_type="case", object_id=str(case_id), limit=100)
    can_decide = viewer.can("review") and case.state in OPEN_STATES
    matched = [x for it in items for m in it["matches"] for x in m.get("labels") or []]
    suggested = _worst_label(list(case.labels) or matched)
    referral = referral_pages.panel_context(request, viewer, case_id)
    referral.pop("case")
    return page(
        request,
        "case.html",
        {
            **referral,
            "case": case,
            "view": view,
            "items": items,
            "decisions": view.decisions,
            "comments": view.comments,
            "users": users,
            "history": history,
            "related": related,
            "trail": list(trail),
            "can_reveal": viewer.can("review"),
            "can_decide": can_decide,
            "can_lead": viewer.can("lead"),
            "open_states": OPEN_STATES,
            "actions": ACTIONS,
            "taxonomy": LABELS,
            "suggested": suggested,
            "exposure": svc.wellness.today(viewer.user.id) if viewer.can("review") else None,
            "reveal_seconds": reveal.reveal_seconds(),
        },
    )


def _worst_label(labels: list[str]) -> str | None:
    known = [x for x in labels if x in LABELS]
    if not known:
        return None
    return max(known, key=lambda x: LABELS[x].severity)


def _item_view(svc: Any, item: ItemInfo) -> dict[str, Any]:
    kind = item.media_kind if item.media_id is not None else None
    return {
        "id": item.id,
        "item": item,
        "media_id": item.media_id,
        "kind": kind,
        "frames": _frames(kind),
        "info": svc.media.info(item.media_id) if item.media_id is not None else None,
        "matches": [m for m in item.matches if isinstance(m, dict)],
        "content_id": item.content_id,
        "sha256": item.sha256,
        "reports": item.reports,
        "added_at": item.added_at,
    }


def _frames(kind: str | None) -> list[int]:
    return list(range(FRAMES)) if kind == "video" else [-1]


# --- media -----------------------------------------------------------------------------


def _media(svc: Any, tenant: str, case_id: int, item_id: int) -> tuple[int, str]:
    """(media id, kind) of an item of a case of ``tenant``; NotFound otherwise."""
    item = svc.cases.item(item_id, tenant)
    if item.case_id != case_id or item.media_id is None:
        raise NotFound(f"case {case_id} has no item {item_id} with stored media")
    return int(item.media_id), str(item.media_kind or "image")


def _jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers=MEDIA_HEADERS)


@router.get("/cases/{case_id}/items/{item_id}/blurred")
def blurred(
    request: Request,
    case_id: int,
    item_id: int,
    frame: int = Query(-1, ge=-1, lt=FRAMES),
    viewer: Viewer = Depends(read_cases),
) -> Response:
    """The blurred greyscale rendition (the only one sent without a reveal)."""
    from safehold.actions import renditions

    svc = service(request)
    media_id, kind = _media(svc, viewer.tenant, case_id, item_id)
    path = svc.media.path(media_id)
    radius = int(field(viewer.user, "blur", 24) or 24)
    if kind == "video":
        strip = renditions.frame_strip(
            path, count=FRAMES, radius=radius, greyscale=True, limits=svc.limits
        )
        return _jpeg(strip[min(max(frame, 0), len(strip) - 1)])
    return _jpeg(renditions.blurred(path, kind, radius=radius, greyscale=True, limits=svc.limits))


@router.post("/cases/{case_id}/items/{item_id}/reveal")
def reveal_item(
    request: Request,
    case_id: int,
    item_id: int,
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    """Reveal one item for a few seconds: audited, counted, signed short-lived URLs."""
    svc = service(request)
    seconds = reveal.reveal_seconds()
    # view_media audit entry and exposure record, in one transaction
    item = svc.cases.reveal(case_id, item_id, viewer.user, seconds=float(seconds))
    if item.media_id is None:
        raise NotFound(f"item {item_id} of case {case_id} has no stored media to reveal")
    kind = str(item.media_kind or "image")
    expires = int(time.time()) + seconds
    frames = _frames(kind)
    urls = [
        reveal.signed_url(
            viewer.csrf,
            case_id=case_id,
            item_id=item_id,
            user_id=int(viewer.user.id),
            expires=expires,
            frame=f,
        )
        for f in frames
    ]
    return page(
        request,
        "fragments/media.html",
        {
            "case_id": case_id,
            "it": {"id": item_id, "kind": kind, "frames": frames},
            "revealed": list(zip(frames, urls, strict=True)),
            "seconds": seconds,
            "expires": expires,
            "can_reveal": True,
        },
    )


@router.get("/cases/{case_id}/items/{item_id}/revealed")
def revealed(
    request: Request,
    case_id: int,
    item_id: int,
    exp: int = Query(...),
    sig: str = Query(..., max_length=128),
    frame: int = Query(-1, ge=-1, lt=FRAMES),
    viewer: Viewer = Depends(permission("review")),
) -> Response:
    """The unblurred rendition, only through a fresh signed URL of this session."""
    from safehold.actions import renditions

    if not reveal.valid(
        viewer.csrf,
        item_id=item_id,
        user_id=int(viewer.user.id),
        frame=frame,
        expires=exp,
        signature=sig,
    ):
        raise Forbidden("this reveal link has expired or was not made for you; reveal again")
    svc = service(request)
    media_id, kind = _media(svc, viewer.tenant, case_id, item_id)
    path = svc.media.path(media_id)
    if kind == "video":
        strip = renditions.frame_strip(path, count=FRAMES, radius=0, greyscale=False, reveal=True)
        return _jpeg(strip[min(max(frame, 0), len(strip) - 1)])
    return _jpeg(renditions.revealed(path, kind, limits=svc.limits))


@router.get("/cases/{case_id}/items/{item_id}/figure")
def figure(
    request: Request, case_id: int, item_id: int, viewer: Viewer = Depends(read_cases)
) -> Response:
    """The blurred figure of an item (htmx swaps it back in after a reveal)."""
    svc = service(request)
    _media_id, kind = _media(svc, viewer.tenant, case_id, item_id)
    return page(
        request,
        "fragments/media.html",
        {
            "case_id": case_id,
            "it": {"id": item_id, "kind": kind, "frames": _frames(kind)},
            "revealed": None,
            "can_reveal": viewer.can("review"),
        },
    )


# --- decisions, comments, assignment ---------------------------------------------------


def _back(request: Request, case_id: int, anchor: str = "") -> Response:
    target = f"/ui/cases/{case_id}{anchor}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


@router.post("/cases/{case_id}/decide")
def decide(
    request: Request,
    case_id: int,
    action: str = Form(..., max_length=32),
    label: str = Form("", max_length=64),
    reason: str = Form("", max_length=4000),
    then: str = Form("", max_length=16),
    queue: str = Form("", max_length=64),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    svc = service(request)
    svc.cases.decide(case_id, viewer.user, label=label or None, action=action, reason=reason)
    if then == "next":
        target = "/ui/next" + (f"?queue={queue}" if queue else "")
        return RedirectResponse(target, status_code=303)
    return _back(request, case_id, "#decisions")


@router.post("/decisions/{decision_id}/confirm")
def confirm(
    request: Request,
    decision_id: int,
    case_id: int = Form(...),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    service(request).cases.confirm(decision_id, viewer.user)
    return _back(request, case_id, "#decisions")


@router.post("/decisions/{decision_id}/reject")
def reject(
    request: Request,
    decision_id: int,
    case_id: int = Form(...),
    reason: str = Form("", max_length=4000),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    service(request).cases.reject(decision_id, viewer.user, reason=reason)
    return _back(request, case_id, "#decisions")


@router.post("/cases/{case_id}/comments")
def comment(
    request: Request,
    case_id: int,
    body: str = Form(..., min_length=1, max_length=4000),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    service(request).cases.comment(case_id, viewer.user, body)
    return _back(request, case_id, "#comments")


@router.post("/cases/{case_id}/reopen")
def reopen(
    request: Request,
    case_id: int,
    reason: str = Form(..., min_length=1, max_length=4000),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    service(request).cases.reopen(case_id, viewer.user, reason)
    return _back(request, case_id)


@router.post("/cases/{case_id}/assign")
def assign(
    request: Request,
    case_id: int,
    user_id: int = Form(...),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    service(request).cases.assign(case_id, user_id, by=viewer.user)
    return _back(request, case_id)

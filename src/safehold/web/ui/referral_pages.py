"""The referral panel of the case page: propose a CyberTipline report, approve or reject
it (a different reviewer), send a failed one again, record what NCMEC said after a
lost answer (a lead). Every route is a thin shell over :mod:`safehold.refer.referrals`;
with htmx each answers the panel (errors inline), without it a redirect to the case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from starlette.responses import RedirectResponse, Response

from safehold.errors import Conflict, InvalidValue, NotFound
from safehold.refer.referrals import OPEN
from safehold.web.ui.auth import Viewer, permission, read_cases, service
from safehold.web.ui.render import ConsoleRoute, is_htmx, page

router = APIRouter(route_class=ConsoleRoute)


def incident_titles() -> dict[str, str]:
    from safehold.refer.ncmec import IncidentType

    return {t.name.lower(): t.value for t in IncidentType}


def panel_context(request: Request, viewer: Viewer, case_id: int) -> dict[str, Any]:
    """What the panel shows; also used by the case page to render it in place."""
    from safehold.refer.ncmec import FileAnnotation, ReportAnnotation

    svc = service(request)
    case = svc.cases.get(case_id, viewer.tenant).case
    referrals = svc.referrals.for_case(case.id, viewer.tenant)
    has_open = any(r.status in OPEN for r in referrals)
    ready = svc.vault is not None
    return {
        "case": case,
        "referrals": referrals,
        "case_ncmec_id": next((r.external_id for r in referrals if r.external_id), None),
        "can_propose": viewer.can("review") and not has_open and ready,
        "can_lead": viewer.can("lead"),
        "propose_hint": (
            "No referral. The evidence vault is not configured (SAFEHOLD_VAULT_KEY): "
            "configure it to refer cases to NCMEC."
            if not ready
            else "No referral."
        ),
        "incident_titles": incident_titles(),
        "report_annotations": [a.value for a in ReportAnnotation],
        "file_annotations": [a.value for a in FileAnnotation],
    }


def _panel(request: Request, viewer: Viewer, case_id: int, **extra: Any) -> Response:
    ctx = panel_context(request, viewer, case_id)
    ctx.update(extra)
    status = 422 if extra.get("referral_error") else 200
    headers = {"X-Inline-Error": "1"} if extra.get("referral_error") else None
    return page(request, "fragments/referral_panel.html", ctx, status=status, headers=headers)


def _act(request: Request, viewer: Viewer, case_id: int, action: Callable[[], str]) -> Response:
    try:
        done = action()
    except (Conflict, InvalidValue, NotFound) as e:
        if not is_htmx(request):
            raise
        return _panel(request, viewer, case_id, referral_error=e.message)
    if not is_htmx(request):
        return RedirectResponse(f"/ui/cases/{case_id}#referral-panel", status_code=303)
    return _panel(request, viewer, case_id, referral_done=done)


@router.get("/cases/{case_id}/referral")
def referral_panel(
    request: Request, case_id: int, viewer: Viewer = Depends(read_cases)
) -> Response:
    return _panel(request, viewer, case_id)


@router.post("/cases/{case_id}/referrals")
def propose(
    request: Request,
    case_id: int,
    incident_type: str = Form("child_pornography", max_length=64),
    annotations: list[str] = Form([]),
    file_annotations: list[str] = Form([]),
    escalate: str = Form("", max_length=300),
    notes: str = Form("", max_length=4000),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    def run() -> str:
        service(request).referrals.propose(
            case_id,
            viewer.user,
            incident_type=incident_type,
            annotations=annotations[:10],
            file_annotations=file_annotations[:20],
            escalate=escalate or None,
            notes=notes,
        )
        return "Proposed: a second reviewer approves it before it is sent."

    return _act(request, viewer, case_id, run)


def _case_of(request: Request, viewer: Viewer, referral_id: int) -> int:
    return service(request).referrals.get(referral_id, viewer.tenant).case_id


@router.post("/referrals/{referral_id}/approve")
def approve(
    request: Request,
    referral_id: int,
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    case_id = _case_of(request, viewer, referral_id)

    def run() -> str:
        r = service(request).referrals.approve(referral_id, viewer.user)
        return f"Approved: the files are preserved and the report is {r.status}."

    return _act(request, viewer, case_id, run)


@router.post("/referrals/{referral_id}/reject")
def reject(
    request: Request,
    referral_id: int,
    reason: str = Form("", max_length=2000),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    case_id = _case_of(request, viewer, referral_id)

    def run() -> str:
        service(request).referrals.reject(referral_id, viewer.user, reason)
        return "Rejected: nothing was sent."

    return _act(request, viewer, case_id, run)


@router.post("/referrals/{referral_id}/retry")
def retry(
    request: Request,
    referral_id: int,
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    case_id = _case_of(request, viewer, referral_id)

    def run() -> str:
        service(request).referrals.retry(referral_id, viewer.user)
        return "Queued to be sent again."

    return _act(request, viewer, case_id, run)


@router.post("/referrals/{referral_id}/resolve")
def resolve(
    request: Request,
    referral_id: int,
    report_id: str = Form("", max_length=18),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    case_id = _case_of(request, viewer, referral_id)

    def run() -> str:
        text = report_id.strip()
        if text and not text.isdigit():
            raise InvalidValue("NCMEC's report id is a number; leave it empty if none was opened")
        service(request).referrals.resolve_unknown(
            referral_id, viewer.user, int(text) if text else None
        )
        return "Recorded: sending continues."

    return _act(request, viewer, case_id, run)

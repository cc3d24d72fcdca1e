"""Preservation requests and law-enforcement packages in the console.

* ``/ui/preservation`` — the requests with their deadlines (overdue ones first and
  highlighted, then those due soon) and a form to record a new one (leads and admins).
* ``/ui/preservation/{id}`` — a request: its scope, its vault items and holds, its
  history; **Preserve now**, **Fulfil** (with a package made for it) and **Withdraw**.
* ``/ui/cases/{id}/package`` — export the case as a law-enforcement package: the
  recipient's age public key, a reason, optionally the request it answers and what to
  leave out. The package is made on the server in ``SAFEHOLD_EXPORT_DIR`` (default
  ``safehold-exports/`` next to the SQLite database; mode 0700) with an encrypted
  bundle (``.tar.age``, the whole package encrypted to the recipient); the page offers
  the manifest and the bundle for download.

Leads and admins act; auditors read the requests (not the packages). Every change goes
through :mod:`safehold.refer.preservation` and :mod:`safehold.refer.package`, which
write the audit entries; each download is audited here (``package_download``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import FileResponse, RedirectResponse, Response

from safehold.errors import Conflict, Forbidden, InvalidValue, NotFound, SafeholdError
from safehold.refer.package import (
    KINDS,
    Packages,
    check_export_id,
    export_root,
    file_sha256,
    new_export_id,
)
from safehold.refer.preservation import (
    DEFAULT_KINDS,
    SCOPE_KINDS,
    STATUSES,
    Preservations,
    RequestInfo,
    Scope,
    due_days,
)
from safehold.web.ui.auth import Viewer, current_viewer, permission, service
from safehold.web.ui.render import TEMPLATES, ConsoleRoute, page

router = APIRouter(route_class=ConsoleRoute)

DONE: dict[str, str] = {
    "recorded": "Request recorded. Preserve the account's data now: it is not frozen yet.",
    "preserved": "Preserved: the account's data in scope is in the vault, on legal hold.",
    "fulfilled": "Request fulfilled.",
    "withdrawn": "Request withdrawn: its legal holds were released.",
}
STATUS_FILTERS: tuple[str, ...] = (*STATUSES, "all")
"""``open``: open and preserved (not yet closed)."""
PACKAGE_WHAT = "law-enforcement package"


def _lead_or_auditor(viewer: Viewer = Depends(current_viewer)) -> Viewer:
    """Leads and admins work preservation requests; auditors read them."""
    if not (viewer.can("lead") or viewer.can("audit")):
        raise Forbidden(
            f"your role ({viewer.role}) does not allow this page: preservation requests are "
            "for leads and admins (auditors read them)"
        )
    return viewer


def _preservations(request: Request) -> Preservations:
    svc = service(request)
    return Preservations(svc.db, svc.audit, vault=svc.vault, media=svc.media)


def _packages(request: Request) -> Packages:
    svc = service(request)
    return Packages(
        svc.db, svc.audit, vault=svc.vault, cases=svc.cases, preservations=_preservations(request)
    )


def _message(e: SafeholdError) -> str:
    return e.message[:1].upper() + e.message[1:]


def _folder(case_id: int, export_id: str) -> str:
    return f"case-{int(case_id)}-{export_id}"


# --------------------------------------------------------------------------- the list


def _list_page(
    request: Request,
    viewer: Viewer,
    *,
    status: str = "open",
    form: dict[str, Any] | None = None,
    error: str = "",
    code: int = 200,
) -> Response:
    pres = _preservations(request)
    if status not in STATUS_FILTERS:
        raise InvalidValue(f"status: choose one of {', '.join(STATUS_FILTERS)}")
    now = datetime.now(UTC)
    if status == "open":
        rows = pres.open(viewer.tenant)
    else:
        rows = pres.list(viewer.tenant, status=None if status == "all" else status, limit=200)
    days = due_days()
    rows = sorted(rows, key=lambda r: (not r.overdue(now), not r.due_soon(days, now)))
    open_rows = pres.open(viewer.tenant)
    return page(
        request,
        "preservation.html",
        {
            "rows": rows,
            "status": status,
            "statuses": STATUS_FILTERS,
            "overdue_count": sum(1 for r in open_rows if r.overdue(now)),
            "soon_count": sum(1 for r in open_rows if r.due_soon(days, now)),
            "due_days": days,
            "kinds": SCOPE_KINDS,
            "form": form or {"kinds": list(DEFAULT_KINDS)},
            "error": error,
            "can_edit": viewer.can("lead"),
            "min_deadline": (now + timedelta(days=1)).date().isoformat(),
            "now": now,
        },
        status=code,
    )


@router.get("/preservation")
def preservation_list(
    request: Request,
    status: str = Query("open", max_length=16),
    viewer: Viewer = Depends(_lead_or_auditor),
) -> Response:
    return _list_page(request, viewer, status=status)


@router.post("/preservation")
def preservation_record(
    request: Request,
    reference: str = Form("", max_length=400),
    authority: str = Form("", max_length=600),
    account_id: str = Form("", max_length=600),
    deadline: str = Form("", max_length=40),
    since: str = Form("", max_length=40),
    until: str = Form("", max_length=40),
    kinds: list[str] = Form([], max_length=32),
    notes: str = Form("", max_length=8000),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    form = {
        "reference": reference,
        "authority": authority,
        "account_id": account_id,
        "deadline": deadline,
        "since": since,
        "until": until,
        "kinds": kinds,
        "notes": notes,
    }
    try:
        if len(kinds) > len(SCOPE_KINDS):
            raise InvalidValue("choose each kind of data at most once")
        scope = Scope.from_options(kinds, since, until) if kinds else None
        if scope is None:
            raise InvalidValue("choose at least one kind of data the request covers")
        req = _preservations(request).record(
            viewer.tenant,
            reference,
            authority,
            account_id,
            scope,
            deadline or None,
            viewer.actor,
            notes,
        )
    except (InvalidValue, Conflict) as e:
        return _list_page(request, viewer, form=form, error=_message(e), code=e.status)
    return RedirectResponse(f"/ui/preservation/{req.id}?done=recorded", status_code=303)


# --------------------------------------------------------------------------- a request


def _exports(
    request: Request, tenant: str, *, case_id: int | None = None, request_id: int | None = None
) -> list[dict[str, Any]]:
    """Packages made (from the audit log), newest first, with whether they still exist."""
    svc = service(request)
    entries = svc.audit.list(
        tenant=tenant,
        object_type="case",
        object_id=case_id,
        action="export",
        limit=200,
    )
    root = export_root(svc.db)
    out = []
    for e in entries:
        d = e.details
        if d.get("what") != PACKAGE_WHAT or not isinstance(d.get("export_id"), str):
            continue
        if request_id is not None and d.get("request_id") != request_id:
            continue
        cid = int(e.object_id or 0)
        folder = root / _folder(cid, d["export_id"])
        out.append(
            {
                "export_id": d["export_id"],
                "case_id": cid,
                "at": e.at,
                "by": e.actor,
                "reason": d.get("reason") or "",
                "request_reference": d.get("request_reference"),
                "recipient": d.get("recipient_fingerprint"),
                "files": d.get("files"),
                "available": (folder / "manifest.json").is_file(),
                "bundle": (root / f"{_folder(cid, d['export_id'])}.tar.age").is_file(),
            }
        )
    return out


def _request_page(
    request: Request,
    viewer: Viewer,
    request_id: int,
    *,
    done: str = "",
    error: str = "",
    code: int = 200,
) -> Response:
    pres = _preservations(request)
    req = pres.get(request_id, viewer.tenant)
    svc = service(request)
    items = []
    if svc.vault is not None:
        for item_id in req.vault_items:
            try:
                info = svc.vault.get(item_id, tenant=viewer.tenant)
            except NotFound:
                continue
            items.append(
                {
                    "item": info,
                    "held": any(h.reference == req.reference for h in info.holds),
                }
            )
    return page(
        request,
        "preservation_request.html",
        {
            "req": req,
            "items": items,
            "history": pres.history(req.id, viewer.tenant),
            "package": pres.package(req.id, viewer.tenant),
            "exports": _exports(request, viewer.tenant, request_id=req.id),
            "done": DONE.get(done, ""),
            "error": error,
            "can_edit": viewer.can("lead"),
            "vault": svc.vault is not None,
            "due_days": due_days(),
            "now": datetime.now(UTC),
        },
        status=code,
    )


@router.get("/preservation/{request_id}")
def preservation_page(
    request: Request,
    request_id: int,
    done: str = Query("", max_length=16),
    viewer: Viewer = Depends(_lead_or_auditor),
) -> Response:
    return _request_page(request, viewer, request_id, done=done)


def _act(request: Request, viewer: Viewer, request_id: int, run: Any, done: str) -> Response:
    try:
        run()
    except (InvalidValue, Conflict) as e:
        return _request_page(request, viewer, request_id, error=_message(e), code=e.status)
    except SafeholdError as e:  # the vault's key, a damaged item: say so on the page
        if isinstance(e, NotFound | Forbidden):
            raise
        return _request_page(request, viewer, request_id, error=_message(e), code=e.status)
    return RedirectResponse(f"/ui/preservation/{request_id}?done={done}", status_code=303)


@router.post("/preservation/{request_id}/preserve")
def preservation_preserve(
    request: Request,
    request_id: int,
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    pres = _preservations(request)
    pres.get(request_id, viewer.tenant)
    return _act(
        request,
        viewer,
        request_id,
        lambda: pres.preserve(request_id, viewer.actor, viewer.tenant),
        "preserved",
    )


@router.post("/preservation/{request_id}/fulfil")
def preservation_fulfil(
    request: Request,
    request_id: int,
    export_id: str = Form("", max_length=40),
    release_holds: bool = Form(False),
    note: str = Form("", max_length=8000),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    pres = _preservations(request)
    req = pres.get(request_id, viewer.tenant)
    package_dir: Path | None = None
    if export_id:
        check_export_id(export_id)
        found = next(
            (
                e
                for e in _exports(request, viewer.tenant, request_id=req.id)
                if e["export_id"] == export_id
            ),
            None,
        )
        if found is None or not found["available"]:
            return _request_page(
                request,
                viewer,
                request_id,
                error="That package was not made for this request, or is no longer on the server.",
                code=422,
            )
        package_dir = export_root(service(request).db) / _folder(found["case_id"], export_id)
    return _act(
        request,
        viewer,
        request_id,
        lambda: pres.fulfil(
            request_id,
            viewer.actor,
            package_dir,
            tenant=viewer.tenant,
            release_holds=release_holds,
            note=note,
        ),
        "fulfilled",
    )


@router.post("/preservation/{request_id}/withdraw")
def preservation_withdraw(
    request: Request,
    request_id: int,
    reason: str = Form("", max_length=8000),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    pres = _preservations(request)
    pres.get(request_id, viewer.tenant)
    return _act(
        request,
        viewer,
        request_id,
        lambda: pres.withdraw(request_id, viewer.actor, reason, tenant=viewer.tenant),
        "withdrawn",
    )


# --------------------------------------------------------------------------- packages


def _package_page(
    request: Request,
    viewer: Viewer,
    case_id: int,
    *,
    form: dict[str, Any] | None = None,
    result: Any = None,
    error: str = "",
    code: int = 200,
) -> Response:
    svc = service(request)
    view = svc.cases.get(case_id, viewer.tenant)
    pres = _preservations(request)
    requests = pres.open(viewer.tenant)
    # the case's account first: the requests a package of this case can answer
    requests.sort(key=lambda r: (r.account_id != view.case.account_id, r.id))
    return page(
        request,
        "package.html",
        {
            "case": view.case,
            "requests": requests,
            "kinds": KINDS,
            "form": form or {"exclude": []},
            "result": result,
            "exports": _exports(request, viewer.tenant, case_id=case_id),
            "vault": svc.vault is not None,
            "error": error,
        },
        status=code,
    )


@router.get("/cases/{case_id}/package")
def package_form(
    request: Request,
    case_id: int,
    request_id: int | None = Query(None, alias="request", ge=1),
    viewer: Viewer = Depends(permission("lead")),
) -> Response:
    form: dict[str, Any] = {"exclude": [], "request_id": request_id}
    return _package_page(request, viewer, case_id, form=form)


@router.post("/cases/{case_id}/package")
def package_make(
    request: Request,
    case_id: int,
    recipient: str = Form("", max_length=2000),
    reason: str = Form("", max_length=4000),
    request_id: str = Form("", max_length=20),
    exclude: list[str] = Form([], max_length=32),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    form: dict[str, Any] = {
        "recipient": recipient,
        "reason": reason,
        "request_id": int(request_id) if request_id.isdigit() else None,
        "exclude": exclude,
    }
    svc = service(request)
    svc.cases.get(case_id, viewer.tenant)  # 404 for another tenant's case
    try:
        if request_id and not request_id.isdigit():
            raise InvalidValue("choose a preservation request from the list")
        if len(exclude) > len(KINDS):
            raise InvalidValue("choose each kind of data at most once")
        packages = _packages(request)
        export_id = new_export_id()
        root = export_root(svc.db)
        result = packages.export(
            case_id,
            root / _folder(case_id, export_id),
            recipients=recipient,
            by=viewer.actor,
            reason=reason,
            tenant=viewer.tenant,
            request_id=int(request_id) if request_id else None,
            exclude=exclude,
            seal_archive=True,
            export_id=export_id,
        )
    except SafeholdError as e:
        if isinstance(e, Forbidden):
            raise
        return _package_page(request, viewer, case_id, form=form, error=_message(e), code=e.status)
    return _package_page(request, viewer, case_id, form=form, result=result)


def _package_dir(request: Request, viewer: Viewer, case_id: int, export_id: str) -> Path:
    svc = service(request)
    svc.cases.get(case_id, viewer.tenant)
    check_export_id(export_id)
    folder = export_root(svc.db) / _folder(case_id, export_id)
    if not (folder / "manifest.json").is_file():
        raise NotFound(f"no package {export_id} of case {case_id} on the server")
    return folder


def _audit_download(
    request: Request, viewer: Viewer, case_id: int, export_id: str, what: str, path: Path
) -> None:
    service(request).audit.append(
        viewer.actor,
        "package_download",
        object_type="case",
        object_id=case_id,
        details={"export_id": export_id, "file": what, "sha256": file_sha256(path)},
        tenant=viewer.tenant,
    )


@router.get("/cases/{case_id}/package/{export_id}/manifest.json")
def package_manifest(
    request: Request,
    case_id: int,
    export_id: str,
    viewer: Viewer = Depends(permission("lead")),
) -> Response:
    folder = _package_dir(request, viewer, case_id, export_id)
    path = folder / "manifest.json"
    _audit_download(request, viewer, case_id, export_id, "manifest.json", path)
    return FileResponse(
        path,
        media_type="application/json",
        filename=f"{folder.name}-manifest.json",
        headers={"Cache-Control": "no-store, private"},
    )


@router.get("/cases/{case_id}/package/{export_id}/bundle")
def package_bundle(
    request: Request,
    case_id: int,
    export_id: str,
    viewer: Viewer = Depends(permission("lead")),
) -> Response:
    folder = _package_dir(request, viewer, case_id, export_id)
    path = folder.with_name(folder.name + ".tar.age")
    if not path.is_file():
        raise NotFound(f"package {export_id} has no encrypted bundle on the server")
    _audit_download(request, viewer, case_id, export_id, "bundle", path)
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=path.name,
        headers={"Cache-Control": "no-store, private"},
    )


def request_label(r: RequestInfo) -> str:
    return f"#{r.id} {r.reference} ({r.authority}) · account {r.account_id}"


TEMPLATES.env.filters["request_label"] = request_label

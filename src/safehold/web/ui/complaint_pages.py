"""Complaint handling in the console (the hotline and regulator side of reports).

* ``/ui/complaints`` — open complaints by stage, queue, category, flags and SLA, with
  the counts per stage, the median time of each stage and "take next".
* ``/ui/cases/{id}/complaint`` — the complaint panel of a case page (loaded by htmx
  and swapped after every action): the reports, their URLs with each URL's notices,
  the stage clocks, the workflow (start investigation, resolve with an outcome,
  reopen, recategorise) and the messages to each reporter.
* ``/ui/notices`` and ``/ui/notices/{id}`` — takedown notices and block requests:
  edit the draft, send it by e-mail or record it as sent, recheck, close.
* ``/ui/blocklist`` — what is blocked now, and downloads (plain, RPZ), each audited.
* ``/ui/notice-templates`` and ``/ui/hosts`` — the notice templates and the host
  contacts (leads and admins change them; auditors read them).

Every change goes through :mod:`safehold.intake` (which checks the role again and
writes the audit entry); this module only reads directly, to list complaints with
their reports' categories and flags. Reporters' contact details are shown only to
roles that review, never to auditors. Reported URLs are shown as text, never as links.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from sqlalchemy import String, and_, cast, func, or_, select
from sqlalchemy.sql.elements import ColumnElement
from starlette.responses import RedirectResponse, Response

from safehold.cases.model import OPEN_STATES, CaseInfo, case_info
from safehold.cases.service import _decode_cursor, _encode_cursor
from safehold.errors import Conflict, Forbidden, InvalidValue, NotFound
from safehold.intake import blocklist
from safehold.intake.categories import (
    AGE_BANDS,
    CATEGORIES,
    GENDERS,
    RELATIONS,
    REPORT_QUEUES,
    countries,
)
from safehold.intake.complaints import StageClock
from safehold.intake.mail import mail_configured
from safehold.intake.model import OUTCOMES, ReportInfo
from safehold.intake.notices import STATUSES as NOTICE_STATUSES
from safehold.intake.notices import NoticeInfo
from safehold.intake.templates import (
    BUILTIN_TEMPLATES,
    KINDS,
    MAX_BODY,
    MAX_SUBJECT,
    SAMPLE_CONTEXT,
    TEMPLATE_VARIABLES,
    check_jurisdiction,
    check_kind,
    check_language,
    render,
)
from safehold.intake.triage import SPAM_QUEUE
from safehold.store.models import Case, CaseItem, Report, ReportUrl, User, utcnow
from safehold.taxonomy import LABELS
from safehold.web.ui.auth import Viewer, current_viewer, permission, read_cases, service
from safehold.web.ui.render import TEMPLATES, ConsoleRoute, is_htmx, page

router = APIRouter(route_class=ConsoleRoute)

COMPLAINT_QUEUES: tuple[str, ...] = (*REPORT_QUEUES, SPAM_QUEUE)
OPEN_STAGES: tuple[str, ...] = ("assess", "investigate")
STAGE_FILTERS: tuple[str, ...] = ("open", "assess", "investigate", "resolved", "all")
FLAG_FILTERS: dict[str, str] = {
    "duplicate": "duplicate (joined an open complaint)",
    "reported_before": "reported before (a resolved complaint had it)",
    "spam": "any spam flag",
    "spam:empty": "spam: empty",
    "spam:many_links": "spam: many links",
    "spam:repeated_text": "spam: repeated text",
}
PAGE_SIZE = 50
MAX_CSV_BYTES = 1_000_000
DRAFTS: dict[str, tuple[str, str]] = {
    "takedown": ("takedown", "url"),
    "block-url": ("block", "url"),
    "block-host": ("block", "host"),
}
"""The draft buttons of a URL: (notice kind, scope)."""
DEMOGRAPHIC_QUESTIONS: dict[str, tuple[str, dict[str, str] | None]] = {
    "age_band": ("Age of the person", AGE_BANDS),
    "gender": ("Gender of the person", GENDERS),
    "relation": ("The reporter", RELATIONS),
    "country": ("Reporter's country", None),
}
PANEL_DONE: dict[str, str] = {
    "investigate": "Investigation started: the complaint is assigned to you.",
    "resolve": "Resolved. The reporter sees that the report is resolved.",
    "reopen": "Reopened for investigation.",
    "recategorise": "Recategorised: the complaint moved to the category's queue.",
}
NOTICE_DONE: dict[str, str] = {
    "save": "Draft saved.",
    "email": "Queued for e-mail: it is sent by the job worker.",
    "manual": "Recorded as sent. Rechecks are scheduled.",
    "up": "Recorded: the content is still up. The next recheck is scheduled.",
    "gone": "Recorded: the content is gone. The notice is closed as removed.",
    "cancelled": "Notice cancelled.",
    "removed": "Notice closed as removed.",
    "redraft": "Drafted again; the previous draft was cancelled.",
}
TEMPLATE_DONE: dict[str, str] = {
    "saved": "Template saved. New notices use it.",
    "reset": "Your template was removed; the built-in one applies again.",
    "unchanged": "There was no saved template to reset.",
}
HOST_DONE: dict[str, str] = {
    "saved": "Contact saved.",
    "deleted": "Contact deleted.",
    "imported": "Contacts imported.",
}


# --------------------------------------------------------------------------- helpers


def duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3 h 20 min``, ``2 d 4 h``."""
    if seconds is None:
        return "—"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400 * 2:
        hours, minutes = divmod(s // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(s // 3600, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def outcome_title(key: str | None) -> str:
    return OUTCOMES.get(key or "", key or "")


TEMPLATES.env.filters["duration"] = duration
TEMPLATES.env.filters["outcome"] = outcome_title


def _lead_or_auditor(viewer: Viewer = Depends(current_viewer)) -> Viewer:
    """Leads and admins work templates and contacts; auditors read them."""
    if not (viewer.can("lead") or viewer.can("audit")):
        raise Forbidden(
            f"your role ({viewer.role}) does not allow this page: notice templates and host "
            "contacts are for leads and admins"
        )
    return viewer


def _show_contact(viewer: Viewer) -> bool:
    """Reporters' contact details: for roles that review, never for auditors."""
    return viewer.can("review") and viewer.role != "auditor"


def _redirect(target: str, request: Request) -> Response:
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _choices(request: Request, tenant: str) -> tuple[list[str], list[str]]:
    """Jurisdictions and languages that have a template."""
    items = service(request).templates.list(tenant)
    jurisdictions = sorted({t.jurisdiction for t in items}, key=lambda j: (j != "default", j))
    return jurisdictions, sorted({t.language for t in items})


# --------------------------------------------------------------------------- the list


@dataclass(frozen=True)
class Facts:
    """What the complaints list shows about a case's reports."""

    reports: int
    categories: list[str]
    flags: list[str]
    platforms: list[str]
    hosts: list[str]
    withdrawn: int


def _like_flag(flag: str) -> str:
    name = flag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f'%"{name}:%' if flag == "spam" else f'%"{name}"%'


def _list_complaints(
    request: Request,
    tenant: str,
    *,
    stage: str,
    queue: str,
    category: str,
    flag: str,
    overdue: bool,
    cursor: str | None,
    limit: int | None = None,
) -> tuple[list[CaseInfo], str | None]:
    """Complaint cases by priority, then SLA due time, then id (as the queues)."""
    limit = limit or PAGE_SIZE
    db = service(request).db
    conds: list[ColumnElement[bool]] = [Case.tenant == tenant, Case.kind == "complaint"]
    if stage == "open":
        conds.append(Case.stage.in_(OPEN_STAGES))
    elif stage != "all":
        conds.append(Case.stage == stage)
    if queue:
        conds.append(Case.queue == queue)
    if category:
        conds.append(
            Case.id.in_(
                select(Report.case_id).where(Report.tenant == tenant, Report.category == category)
            )
        )
    if flag:
        conds.append(
            Case.id.in_(
                select(Report.case_id).where(
                    Report.tenant == tenant,
                    cast(Report.flags, String).like(_like_flag(flag), escape="\\"),
                )
            )
        )
    if overdue:
        conds += [
            Case.stage.in_(OPEN_STAGES),
            Case.sla_due_at.is_not(None),
            Case.sla_due_at < utcnow(),
        ]
    if cursor:
        prio, due, cid = _decode_cursor(cursor)
        if due is None:
            after = and_(Case.sla_due_at.is_(None), Case.id > cid)
        else:
            after = or_(
                Case.sla_due_at > due,
                Case.sla_due_at.is_(None),
                and_(Case.sla_due_at == due, Case.id > cid),
            )
        conds.append(or_(Case.priority < prio, and_(Case.priority == prio, after)))
    q = (
        select(Case)
        .where(*conds)
        .order_by(Case.priority.desc(), Case.sla_due_at.asc().nulls_last(), Case.id.asc())
        .limit(limit + 1)
    )
    with db.session() as s:
        rows = list(s.scalars(q))
        more = len(rows) > limit
        rows = rows[:limit]
        ids = [int(r.id) for r in rows]
        names = {
            int(i): str(n)
            for i, n in s.execute(
                select(User.id, User.name).where(
                    User.id.in_({r.assignee_id for r in rows if r.assignee_id is not None})
                )
            )
        }
        items = {
            int(c): int(n)
            for c, n in s.execute(
                select(CaseItem.case_id, func.count())
                .where(CaseItem.case_id.in_(ids))
                .group_by(CaseItem.case_id)
            )
        }
        cases = [
            case_info(
                r,
                assignee=names.get(r.assignee_id) if r.assignee_id is not None else None,
                items=items.get(int(r.id), 0),
            )
            for r in rows
        ]
    return cases, (_encode_cursor(cases[-1]) if more and cases else None)


def _facts(request: Request, tenant: str, ids: list[int]) -> dict[int, Facts]:
    if not ids:
        return {}
    acc: dict[int, dict[str, Any]] = {
        i: {"reports": 0, "categories": [], "flags": [], "platforms": [], "hosts": [], "w": 0}
        for i in ids
    }

    def add(into: list[str], value: str) -> None:
        if value and value not in into:
            into.append(value)

    with service(request).db.session() as s:
        for cid, category, flags, platform, withdrawn in s.execute(
            select(
                Report.case_id, Report.category, Report.flags, Report.platform, Report.withdrawn_at
            ).where(Report.tenant == tenant, Report.case_id.in_(ids))
        ):
            if cid is None:
                continue
            a = acc[int(cid)]
            a["reports"] += 1
            a["w"] += int(withdrawn is not None)
            add(a["categories"], str(category))
            for f in flags or []:
                add(a["flags"], str(f))
            add(a["platforms"], str(platform or ""))
        for cid, host in s.execute(
            select(ReportUrl.case_id, ReportUrl.host).where(ReportUrl.case_id.in_(ids)).distinct()
        ):
            if cid is not None:
                add(acc[int(cid)]["hosts"], str(host))
    return {
        i: Facts(a["reports"], a["categories"], a["flags"], a["platforms"], a["hosts"], a["w"])
        for i, a in acc.items()
    }


def _check_filter(value: str, allowed: Any, what: str) -> str:
    if value and value not in allowed:
        raise InvalidValue(f"unknown {what} {value[:40]!r}: use one of {', '.join(allowed)}")
    return value


@router.get("/complaints")
def complaints(
    request: Request,
    stage: str = Query("open", max_length=16),
    queue: str = Query("", max_length=64),
    category: str = Query("", max_length=64),
    flag: str = Query("", max_length=32),
    overdue_only: bool = Query(False, alias="overdue"),
    number: str = Query("", max_length=40),
    cursor: str | None = Query(None, max_length=200),
    viewer: Viewer = Depends(read_cases),
) -> Response:
    svc = service(request)
    error = ""
    if number.strip():
        try:
            found = svc.reports.by_number(number.strip(), viewer.tenant)
        except NotFound:
            error = "No report has that number (check the letters and digits)."
        else:
            if found.case_id is None:
                error = "That number is for hashes made on a device, not for a complaint."
            else:
                return RedirectResponse(f"/ui/cases/{found.case_id}", status_code=303)
    _check_filter(stage or "open", STAGE_FILTERS, "stage")
    _check_filter(queue, COMPLAINT_QUEUES, "queue")
    _check_filter(category, CATEGORIES, "category")
    _check_filter(flag, FLAG_FILTERS, "flag")
    cases, next_cursor = _list_complaints(
        request,
        viewer.tenant,
        stage=stage or "open",
        queue=queue,
        category=category,
        flag=flag,
        overdue=overdue_only,
        cursor=cursor or None,
    )
    params = {
        "stage": stage,
        "queue": queue,
        "category": category,
        "flag": flag,
        **({"overdue": "true"} if overdue_only else {}),
    }
    counts = [c for c in svc.cases.queue_counts(viewer.tenant) if c.queue in COMPLAINT_QUEUES]
    return page(
        request,
        "complaints.html",
        {
            "cases": cases,
            "facts": _facts(request, viewer.tenant, [c.id for c in cases]),
            "summary": svc.complaints.summary(viewer.tenant),
            "counts": counts,
            "stage": stage or "open",
            "queue": queue,
            "category": category,
            "flag": flag,
            "overdue_only": overdue_only,
            "number": number if error else "",
            "error": error,
            "stages": STAGE_FILTERS,
            "queues": COMPLAINT_QUEUES,
            "categories": CATEGORIES,
            "flags": FLAG_FILTERS,
            "outcomes": OUTCOMES,
            "next_url": (
                "/ui/complaints?" + urlencode({**params, "cursor": next_cursor})
                if next_cursor
                else None
            ),
            "first_url": "/ui/complaints?" + urlencode(params) if cursor else None,
        },
        status=404 if error.startswith("No report") else 200,
    )


def _queues_by_urgency(request: Request, viewer: Viewer) -> list[str]:
    """Complaint queues with a case the viewer may take, most urgent first."""
    me = int(viewer.user.id)
    with service(request).db.session() as s:
        rows = s.execute(
            select(Case.queue, func.max(Case.priority), func.min(Case.sla_due_at))
            .where(
                Case.tenant == viewer.tenant,
                Case.kind == "complaint",
                Case.state.in_(OPEN_STATES),
                or_(Case.assignee_id.is_(None), Case.assignee_id == me),
            )
            .group_by(Case.queue)
        ).all()
    # min() of a timestamp comes back naive on SQLite: compare without the zone
    ordered = sorted(
        rows,
        key=lambda r: (-int(r[1] or 0), r[2].replace(tzinfo=None) if r[2] else datetime.max),
    )
    return [str(r[0]) for r in ordered]


@router.post("/complaints/next")
def complaints_next(
    request: Request,
    queue: str = Form("", max_length=64),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    """Take the most urgent open complaint (of ``queue``, or of every complaint queue)."""
    svc = service(request)
    _check_filter(queue, COMPLAINT_QUEUES, "queue")
    for name in [queue] if queue else _queues_by_urgency(request, viewer):
        found = svc.cases.next_case(viewer.user, queue=name)
        if found is not None:
            return RedirectResponse(f"/ui/cases/{found.case.id}", status_code=303)
    return page(
        request,
        "next_empty.html",
        {"queue": queue or "the complaint queues", "exposure": svc.wellness.today(viewer.user.id)},
    )


# --------------------------------------------------------------------------- the panel


def _demographics(answers: dict[str, str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in answers.items():
        question, words = DEMOGRAPHIC_QUESTIONS.get(key, (key, None))
        if key == "country":
            out.append((question, countries().get(value, value)))
        else:
            out.append((question, (words or {}).get(value, value)))
    return out


def _report_view(r: ReportInfo, show_contact: bool) -> dict[str, Any]:
    category = CATEGORIES.get(r.category)
    contact = dict(r.contact) if (show_contact and r.contact) else None
    return {
        "id": r.id,
        "number": r.display_number,
        "category": r.category,
        "category_title": category.title if category else r.category,
        "status": r.status,
        "withdrawn": r.withdrawn_at is not None,
        "withdrawn_at": r.withdrawn_at,
        "source": r.source,
        "description": r.description,
        "platform": r.platform,
        "username": r.username,
        "about": _demographics(r.demographics),
        "contact": contact,
        "has_email": bool(contact and contact.get("email")),
        "language": r.language,
        "flags": r.flags,
        "created_at": r.created_at,
        "files": r.files,
        "urls": len(r.urls),
        "messages": r.messages,
    }


def _suggested_outcome(notices: list[NoticeInfo]) -> str:
    statuses = {(n.kind, n.status) for n in notices}
    if ("takedown", "removed") in statuses:
        return "removed_by_host"
    if ("takedown", "sent") in statuses or ("takedown", "queued") in statuses:
        return "takedown_notice_sent"
    if ("block", "sent") in statuses:
        return "url_block_requested"
    return ""


def _clock_view(c: StageClock) -> dict[str, Any]:
    return {
        "stage": c.stage,
        "started_at": c.started_at,
        "ended_at": c.ended_at,
        "running": c.ended_at is None,
        "seconds": c.seconds,
        "target": c.target.total_seconds() if c.target is not None else None,
        "overdue": c.overdue,
        "user": c.user,
    }


def _panel_context(request: Request, viewer: Viewer, case_id: int) -> dict[str, Any]:
    svc = service(request)
    case = svc.cases.get(case_id, viewer.tenant).case
    if case.kind != "complaint":
        raise NotFound(f"case {case.id} is not a complaint (it was opened by a scan)")
    show_contact = _show_contact(viewer)
    reports = svc.reports.for_case(case.id, viewer.tenant)
    notice_rows = svc.notices.for_case(case.id, viewer.tenant)
    urls: dict[str, dict[str, Any]] = {}
    for r in reports:
        for u in r.urls:
            row = urls.setdefault(
                u.canonical,
                {
                    "id": u.id,
                    "url": u.url,
                    "canonical": u.canonical,
                    "host": u.host,
                    "domain": u.domain,
                    "reports": [],
                    "notices": [],
                },
            )
            if r.display_number not in row["reports"]:
                row["reports"].append(r.display_number)
    others: list[NoticeInfo] = []
    for n in notice_rows:
        if n.url in urls:
            urls[n.url]["notices"].append(n)
        else:
            others.append(n)
    jurisdictions, languages = _choices(request, viewer.tenant)
    return {
        "case": case,
        "reports": [_report_view(r, show_contact) for r in reports],
        "urls": list(urls.values()),
        "other_notices": others,
        "clocks": [_clock_view(c) for c in svc.complaints.clocks(case.id, viewer.tenant)],
        "outcomes": OUTCOMES,
        "suggested_outcome": _suggested_outcome(notice_rows),
        "categories": CATEGORIES,
        "taxonomy": LABELS,
        "jurisdictions": jurisdictions,
        "languages": languages,
        "mail": mail_configured(),
        "can_review": viewer.can("review"),
        "can_lead": viewer.can("lead"),
        "show_contact": show_contact,
        "stages": ("assess", "investigate", "resolved"),
        "error": "",
        "error_at": "",
        "done": "",
        "done_at": "",
        "form": {},
        "oob": False,
        "standalone": False,
    }


def _panel(
    request: Request,
    viewer: Viewer,
    case_id: int,
    *,
    status: int = 200,
    **extra: Any,
) -> Response:
    """The panel as an htmx fragment, or on a page of its own (no JavaScript)."""
    ctx = _panel_context(request, viewer, case_id)
    ctx.update(extra)
    headers = {"X-Inline-Error": "1"} if ctx.get("error") else None
    if is_htmx(request):
        return page(request, "fragments/complaint_panel.html", ctx, status=status, headers=headers)
    ctx["standalone"] = True
    return page(request, "complaint.html", ctx, status=status)


@router.get("/cases/{case_id}/complaint")
def complaint_panel(
    request: Request,
    case_id: int,
    done: str = Query("", max_length=32),
    viewer: Viewer = Depends(read_cases),
) -> Response:
    """The case page loads this with htmx (the page itself recorded ``view_case``);
    opened on its own (without JavaScript) it is a page, and records ``view_case``."""
    if not is_htmx(request):
        svc = service(request)
        if svc.cases.get(case_id, viewer.tenant).case.kind == "complaint":
            svc.cases.view(case_id, viewer.user)
    return _panel(
        request,
        viewer,
        case_id,
        done=PANEL_DONE.get(done, ""),
        done_at="workflow" if done in PANEL_DONE else "",
    )


def _act(
    request: Request,
    viewer: Viewer,
    case_id: int,
    at: str,
    action: Callable[[], str],
    form: dict[str, Any],
) -> Response:
    """Run one change; answer the panel with its result, or the error inline."""
    try:
        done = action()
    except (Conflict, InvalidValue) as e:
        return _panel(
            request,
            viewer,
            case_id,
            status=e.status,
            error=e.message[:1].upper() + e.message[1:],
            error_at=at,
            form=form,
        )
    if not is_htmx(request):
        key = next((k for k, v in PANEL_DONE.items() if v == done), "")
        query = f"?done={key}" if key else ""
        return RedirectResponse(f"/ui/cases/{case_id}/complaint{query}", status_code=303)
    return _panel(request, viewer, case_id, done=done, done_at=at, oob=True)


@router.post("/cases/{case_id}/complaint/investigate")
def start_investigation(
    request: Request,
    case_id: int,
    note: str = Form("", max_length=4000),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    def run() -> str:
        service(request).complaints.start_investigation(case_id, viewer.user, note)
        return PANEL_DONE["investigate"]

    return _act(request, viewer, case_id, "workflow", run, {"note": note})


@router.post("/cases/{case_id}/complaint/resolve")
def resolve(
    request: Request,
    case_id: int,
    outcome: str = Form("", max_length=64),
    reason: str = Form("", max_length=4000),
    label: str = Form("", max_length=64),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    def run() -> str:
        if not outcome:
            raise InvalidValue("choose an outcome")
        service(request).complaints.resolve(
            case_id, viewer.user, outcome=outcome, reason=reason, label=label or None
        )
        return PANEL_DONE["resolve"]

    form = {"outcome": outcome, "reason": reason, "label": label}
    return _act(request, viewer, case_id, "workflow", run, form)


@router.post("/cases/{case_id}/complaint/reopen")
def reopen(
    request: Request,
    case_id: int,
    reason: str = Form("", max_length=4000),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    def run() -> str:
        service(request).complaints.reopen(case_id, viewer.user, reason)
        return PANEL_DONE["reopen"]

    return _act(request, viewer, case_id, "workflow", run, {"reopen_reason": reason})


@router.post("/cases/{case_id}/complaint/recategorise")
def recategorise(
    request: Request,
    case_id: int,
    category: str = Form("", max_length=64),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    def run() -> str:
        service(request).complaints.recategorise(case_id, viewer.user, category)
        return PANEL_DONE["recategorise"]

    return _act(request, viewer, case_id, "workflow", run, {"category": category})


@router.post("/cases/{case_id}/complaint/reports/{report_id}/message")
def message_reporter(
    request: Request,
    case_id: int,
    report_id: int,
    body: str = Form("", max_length=6000),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    svc = service(request)

    def run() -> str:
        report = svc.reports.get(report_id, viewer.tenant)
        if report.case_id != case_id:
            raise NotFound(f"case {case_id} has no report {report_id}")
        sent = svc.reports.message(report_id, viewer.user, body)
        told = (
            " An e-mail tells them there is a message (the e-mail does not contain it)."
            if sent.email_status == "queued"
            else ""
        )
        return f"Message sent to the reporter of {report.display_number}.{told}"

    return _act(request, viewer, case_id, f"messages-{report_id}", run, {"message": body})


@router.post("/cases/{case_id}/complaint/notices")
def draft_notice(
    request: Request,
    case_id: int,
    url_id: int = Form(...),
    what: str = Form("takedown", max_length=16),
    jurisdiction: str = Form("", max_length=32),
    language: str = Form("", max_length=16),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    """Draft a takedown notice or a block request for one URL; opens the draft."""
    if what not in DRAFTS:
        raise InvalidValue("draft a takedown notice or a block request (this URL or its host)")
    kind, scope = DRAFTS[what]
    try:
        notice = service(request).notices.draft(
            case_id,
            viewer.user,
            kind=kind,
            url_id=url_id,
            scope=scope,
            jurisdiction=jurisdiction or None,
            language=language or None,
        )
    except (Conflict, InvalidValue) as e:
        return _panel(request, viewer, case_id, status=e.status, error=e.message, error_at="urls")
    return _redirect(f"/ui/notices/{notice.id}", request)


# --------------------------------------------------------------------------- notices


@router.get("/notices")
def notices_list(
    request: Request,
    kind: str = Query("", max_length=16),
    status: str = Query("", max_length=16),
    due: bool = Query(False),
    before: int | None = Query(None, ge=1),
    viewer: Viewer = Depends(read_cases),
) -> Response:
    svc = service(request)
    _check_filter(kind, KINDS, "kind")
    _check_filter(status, NOTICE_STATUSES, "status")
    rows, older = svc.notices.list(
        viewer.tenant,
        kind=kind or None,
        status=status or None,
        due=due,
        limit=PAGE_SIZE,
        before=before,
    )
    due_now, _ = svc.notices.list(viewer.tenant, due=True, limit=500)
    params = {"kind": kind, "status": status, **({"due": "true"} if due else {})}
    return page(
        request,
        "notices.html",
        {
            "rows": rows,
            "kind": kind,
            "status": status,
            "due_only": due,
            "due_count": len(due_now),
            "kinds": KINDS,
            "statuses": NOTICE_STATUSES,
            "older_url": "/ui/notices?" + urlencode({**params, "before": older}) if older else None,
            "first_url": "/ui/notices?" + urlencode(params) if before else None,
        },
    )


def _notice_page(
    request: Request,
    viewer: Viewer,
    notice_id: int,
    *,
    status: int = 200,
    error: str = "",
    done: str = "",
    form: dict[str, str] | None = None,
) -> Response:
    svc = service(request)
    notice = svc.notices.get(notice_id, viewer.tenant)
    case = svc.cases.get(notice.case_id, viewer.tenant).case if notice.case_id else None
    jurisdictions, languages = _choices(request, viewer.tenant)
    trail = svc.audit.list(
        tenant=viewer.tenant, object_type="notice", object_id=str(notice.id), limit=50
    )
    return page(
        request,
        "notice.html",
        {
            "n": notice,
            "case": case,
            "contact": svc.contacts.lookup(viewer.tenant, notice.host),
            "mail": mail_configured(),
            "can_review": viewer.can("review"),
            "jurisdictions": jurisdictions,
            "languages": languages,
            "trail": trail,
            "error": error,
            "done": NOTICE_DONE.get(done, ""),
            "form": form or {},
        },
        status=status,
    )


@router.get("/notices/{notice_id}")
def notice_page(
    request: Request,
    notice_id: int,
    done: str = Query("", max_length=16),
    viewer: Viewer = Depends(read_cases),
) -> Response:
    return _notice_page(request, viewer, notice_id, done=done)


def _notice_act(
    request: Request,
    viewer: Viewer,
    notice_id: int,
    done: str,
    action: Callable[[], None],
    form: dict[str, str] | None = None,
) -> Response:
    try:
        action()
    except (Conflict, InvalidValue) as e:
        message = e.message[:1].upper() + e.message[1:]
        return _notice_page(request, viewer, notice_id, status=e.status, error=message, form=form)
    return RedirectResponse(f"/ui/notices/{notice_id}?done={done}", status_code=303)


@router.post("/notices/{notice_id}/edit")
def notice_edit(
    request: Request,
    notice_id: int,
    subject: str = Form("", max_length=MAX_SUBJECT + 100),
    body: str = Form("", max_length=MAX_BODY + 1000),
    recipient_email: str = Form("", max_length=300),
    recipient_name: str = Form("", max_length=300),
    then: str = Form("save", max_length=16),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    """Save the draft; then (``then``) send it by e-mail or record it as sent manually."""
    svc = service(request)
    if then not in ("save", "email", "manual"):
        raise InvalidValue("save the draft, send it by e-mail or record it as sent manually")

    def run() -> None:
        current = svc.notices.get(notice_id, viewer.tenant)
        changes = {
            "subject": subject,
            "body": body.replace("\r\n", "\n"),
            "recipient_email": recipient_email.strip(),
            "recipient_name": recipient_name.strip(),
        }
        if any(getattr(current, k) != v for k, v in changes.items()):
            svc.notices.edit(notice_id, viewer.user, **changes)
        if then != "save":
            svc.notices.send(notice_id, viewer.user, via=then)

    form = {
        "subject": subject,
        "body": body,
        "recipient_email": recipient_email,
        "recipient_name": recipient_name,
    }
    return _notice_act(request, viewer, notice_id, then, run, form)


@router.post("/notices/{notice_id}/send")
def notice_send(
    request: Request,
    notice_id: int,
    via: str = Form("manual", max_length=16),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    """Record a queued e-mail as sent another way (or send a draft as it is)."""

    def run() -> None:
        service(request).notices.send(notice_id, viewer.user, via=via)

    return _notice_act(request, viewer, notice_id, "manual" if via == "manual" else "email", run)


@router.post("/notices/{notice_id}/check")
def notice_check(
    request: Request,
    notice_id: int,
    result: str = Form(..., max_length=8),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    """A person rechecked the URL: still ``up``, or ``gone`` (removal confirmed)."""
    if result not in ("up", "gone"):
        raise InvalidValue("record the recheck as up (still there) or gone (removed)")

    def run() -> None:
        service(request).notices.record_check(notice_id, viewer.user, result=result)

    return _notice_act(request, viewer, notice_id, result, run)


@router.post("/notices/{notice_id}/close")
def notice_close(
    request: Request,
    notice_id: int,
    status: str = Form(..., max_length=16),
    note: str = Form("", max_length=2000),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    def run() -> None:
        service(request).notices.close(notice_id, viewer.user, status=status, note=note)

    return _notice_act(request, viewer, notice_id, status, run)


@router.post("/notices/{notice_id}/redraft")
def notice_redraft(
    request: Request,
    notice_id: int,
    jurisdiction: str = Form("", max_length=32),
    language: str = Form("", max_length=16),
    viewer: Viewer = Depends(permission("review", post=True)),
) -> Response:
    """Draft the notice again from another jurisdiction's or language's template; the
    old draft is cancelled (drafts keep the template they were made from)."""
    svc = service(request)
    old = svc.notices.get(notice_id, viewer.tenant)
    try:
        if old.status != "draft" or old.case_id is None:
            raise Conflict(f"notice {old.id} is {old.status}: only drafts are drafted again")
        new = svc.notices.draft(
            old.case_id,
            viewer.user,
            kind=old.kind,
            url=old.url,
            scope=old.scope,
            jurisdiction=jurisdiction or None,
            language=language or None,
        )
        svc.notices.close(
            old.id, viewer.user, status="cancelled", note=f"drafted again as {new.id}"
        )
    except (Conflict, InvalidValue) as e:
        return _notice_page(request, viewer, notice_id, status=e.status, error=e.message)
    return RedirectResponse(f"/ui/notices/{new.id}?done=redraft", status_code=303)


# --------------------------------------------------------------------------- block list


DOWNLOADS = {"plain": "blocklist.txt", "rpz": "blocklist.rpz.zone"}


@router.get("/blocklist")
def blocklist_page(
    request: Request,
    fmt: str = Query("", alias="format", max_length=8),
    zone: str = Query(blocklist.DEFAULT_ZONE, max_length=253),
    include_url_hosts: bool = Query(False),
    viewer: Viewer = Depends(read_cases),
) -> Response:
    """The entries blocked now; with ``format`` (plain or rpz) a download, audited."""
    svc = service(request)
    error = ""
    if fmt:
        try:
            if fmt not in DOWNLOADS:
                raise InvalidValue("download the block list as plain or rpz")
            text = blocklist.export(
                svc.db, viewer.tenant, fmt, zone=zone, include_url_hosts=include_url_hosts
            )
        except InvalidValue as e:
            error = e.message[:1].upper() + e.message[1:]
        else:
            entries = sum(1 for line in text.splitlines() if line and line[0] not in "#;$@*")
            svc.audit.append(
                viewer.actor,
                "export",
                object_type="blocklist",
                object_id=fmt,
                details={
                    "format": fmt,
                    "zone": zone if fmt == "rpz" else None,
                    "include_url_hosts": include_url_hosts if fmt == "rpz" else None,
                    "lines": entries,
                },
                tenant=viewer.tenant,
            )
            return Response(
                text,
                media_type="text/plain; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{DOWNLOADS[fmt]}"'},
            )
    items = blocklist.entries(svc.db, viewer.tenant)
    return page(
        request,
        "blocklist.html",
        {
            "entries": items,
            "zone": zone,
            "include_url_hosts": include_url_hosts,
            "url_blocks": sum(1 for e in items if e.scope != "host"),
            "error": error,
        },
        status=422 if error else 200,
    )


# --------------------------------------------------------------------------- templates


def _templates_page(
    request: Request,
    viewer: Viewer,
    *,
    key: tuple[str, str, str] | None = None,
    subject: str | None = None,
    body: str | None = None,
    preview: tuple[str, str] | None = None,
    error: str = "",
    done: str = "",
    status: int = 200,
) -> Response:
    svc = service(request)
    items = svc.templates.list(viewer.tenant)
    editing: dict[str, Any] | None = None
    if key is not None:
        kind, jurisdiction, language = key
        exact = next(
            (t for t in items if (t.kind, t.jurisdiction, t.language) == key),
            None,
        )
        base = exact or svc.templates.get(viewer.tenant, kind, jurisdiction, language)
        editing = {
            "kind": kind,
            "jurisdiction": jurisdiction,
            "language": language,
            "subject": base.subject if subject is None else subject,
            "body": base.body if body is None else body,
            "saved": exact is not None and not exact.builtin,
            "builtin": key in BUILTIN_TEMPLATES,
            "updated_at": exact.updated_at if exact else None,
            "updated_by": exact.updated_by if exact else None,
            "based_on": None if exact else (base.kind, base.jurisdiction, base.language),
        }
    return page(
        request,
        "notice_templates.html",
        {
            "items": items,
            "editing": editing,
            "variables": TEMPLATE_VARIABLES,
            "sample": SAMPLE_CONTEXT,
            "kinds": KINDS,
            "preview": preview,
            "error": error,
            "done": TEMPLATE_DONE.get(done, ""),
            "can_edit": viewer.can("lead"),
            "max_subject": MAX_SUBJECT,
            "max_body": MAX_BODY,
        },
        status=status,
    )


def _template_key(kind: str, jurisdiction: str, language: str) -> tuple[str, str, str]:
    return check_kind(kind), check_jurisdiction(jurisdiction), check_language(language)


@router.get("/notice-templates")
def notice_templates(
    request: Request,
    kind: str = Query("", max_length=16),
    jurisdiction: str = Query("", max_length=32),
    language: str = Query("", max_length=16),
    done: str = Query("", max_length=16),
    viewer: Viewer = Depends(_lead_or_auditor),
) -> Response:
    key = _template_key(kind, jurisdiction or "default", language or "en") if kind else None
    return _templates_page(request, viewer, key=key, done=done)


def _preview(subject: str, body: str) -> tuple[str, str]:
    if len(subject) > MAX_SUBJECT or len(body) > MAX_BODY:
        raise InvalidValue(
            f"the template is too long: at most {MAX_SUBJECT} characters of subject "
            f"and {MAX_BODY} of body"
        )
    return render(subject, body.replace("\r\n", "\n"), dict(SAMPLE_CONTEXT))


@router.post("/notice-templates/preview")
def notice_template_preview(
    request: Request,
    kind: str = Form(..., max_length=16),
    jurisdiction: str = Form(..., max_length=32),
    language: str = Form(..., max_length=16),
    subject: str = Form("", max_length=MAX_SUBJECT + 100),
    body: str = Form("", max_length=MAX_BODY + 1000),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    """Render the edited template with the sample values (in the sandbox)."""
    error = ""
    shown: tuple[str, str] | None = None
    try:
        shown = _preview(subject, body)
    except InvalidValue as e:
        error = e.message[:1].upper() + e.message[1:]
    if is_htmx(request):
        return page(request, "fragments/template_preview.html", {"preview": shown, "error": error})
    key = _template_key(kind, jurisdiction, language)
    return _templates_page(
        request, viewer, key=key, subject=subject, body=body, preview=shown, error=error
    )


@router.post("/notice-templates/save")
def notice_template_save(
    request: Request,
    kind: str = Form(..., max_length=16),
    jurisdiction: str = Form(..., max_length=32),
    language: str = Form(..., max_length=16),
    subject: str = Form("", max_length=MAX_SUBJECT + 100),
    body: str = Form("", max_length=MAX_BODY + 1000),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    key = _template_key(kind, jurisdiction, language)
    try:
        service(request).templates.save(
            viewer.tenant,
            kind=key[0],
            jurisdiction=key[1],
            language=key[2],
            subject=subject,
            body=body.replace("\r\n", "\n"),
            by=viewer.user,
        )
    except InvalidValue as e:
        return _templates_page(
            request,
            viewer,
            key=key,
            subject=subject,
            body=body,
            error=e.message[:1].upper() + e.message[1:],
            status=e.status,
        )
    query = urlencode({"kind": key[0], "jurisdiction": key[1], "language": key[2]})
    return RedirectResponse(f"/ui/notice-templates?{query}&done=saved", status_code=303)


@router.post("/notice-templates/reset")
def notice_template_reset(
    request: Request,
    kind: str = Form(..., max_length=16),
    jurisdiction: str = Form(..., max_length=32),
    language: str = Form(..., max_length=16),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    key = _template_key(kind, jurisdiction, language)
    removed = service(request).templates.reset(
        viewer.tenant, kind=key[0], jurisdiction=key[1], language=key[2], by=viewer.user
    )
    query = urlencode({"kind": key[0], "jurisdiction": key[1], "language": key[2]})
    done = "reset" if removed else "unchanged"
    return RedirectResponse(f"/ui/notice-templates?{query}&done={done}", status_code=303)


# --------------------------------------------------------------------------- host contacts


CONTACT_FORM = ("domain", "name", "email", "abuse_url", "jurisdiction", "notes")


def _hosts_page(
    request: Request,
    viewer: Viewer,
    *,
    form: dict[str, str] | None = None,
    csv_text: str = "",
    error: str = "",
    error_at: str = "",
    done: str = "",
    count: int | None = None,
    status: int = 200,
) -> Response:
    message = HOST_DONE.get(done, "")
    if done == "imported" and count is not None:
        message = f"{count} contact{'' if count == 1 else 's'} imported."
    return page(
        request,
        "hosts.html",
        {
            "contacts": service(request).contacts.list(viewer.tenant),
            "form": form or {},
            "csv_text": csv_text,
            "error": error,
            "error_at": error_at,
            "done": message,
            "can_edit": viewer.can("lead"),
        },
        status=status,
    )


@router.get("/hosts")
def hosts(
    request: Request,
    edit: str = Query("", max_length=253),
    done: str = Query("", max_length=16),
    count: int | None = Query(None, ge=0),
    viewer: Viewer = Depends(_lead_or_auditor),
) -> Response:
    form: dict[str, str] = {}
    if edit:
        found = next(
            (c for c in service(request).contacts.list(viewer.tenant) if c.domain == edit), None
        )
        if found is None:
            raise NotFound(f"no contact for {edit[:80]!r}")
        form = {k: str(getattr(found, k)) for k in CONTACT_FORM}
    return _hosts_page(request, viewer, form=form, done=done, count=count)


@router.post("/hosts")
def hosts_put(
    request: Request,
    domain: str = Form("", max_length=300),
    name: str = Form("", max_length=300),
    email: str = Form("", max_length=300),
    abuse_url: str = Form("", max_length=2100),
    jurisdiction: str = Form("default", max_length=40),
    notes: str = Form("", max_length=4100),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    form = {
        "domain": domain,
        "name": name,
        "email": email,
        "abuse_url": abuse_url,
        "jurisdiction": jurisdiction,
        "notes": notes,
    }
    try:
        service(request).contacts.put(viewer.tenant, **form, by=viewer.user)
    except InvalidValue as e:
        message = e.message[:1].upper() + e.message[1:]
        return _hosts_page(
            request, viewer, form=form, error=message, error_at="form", status=e.status
        )
    return RedirectResponse("/ui/hosts?done=saved", status_code=303)


@router.post("/hosts/delete")
def hosts_delete(
    request: Request,
    domain: str = Form(..., max_length=300),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    try:
        removed = service(request).contacts.delete(viewer.tenant, domain, by=viewer.user)
    except InvalidValue as e:
        return _hosts_page(request, viewer, error=e.message, status=e.status)
    if not removed:
        raise NotFound(f"no contact for {domain[:80]!r}")
    return RedirectResponse("/ui/hosts?done=deleted", status_code=303)


@router.post("/hosts/import")
def hosts_import(
    request: Request,
    csv_text: str = Form("", max_length=MAX_CSV_BYTES),
    file: UploadFile | None = File(None),
    viewer: Viewer = Depends(permission("lead", post=True)),
) -> Response:
    """Rows of ``domain,name,email,abuse_url,jurisdiction,notes``, pasted or uploaded;
    every row is checked first and a bad row imports nothing."""
    text = csv_text
    try:
        if file is not None and file.filename:
            raw = file.file.read(MAX_CSV_BYTES + 1)
            if len(raw) > MAX_CSV_BYTES:
                raise InvalidValue(f"the file is too large: at most {MAX_CSV_BYTES:,} bytes")
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise InvalidValue("the file is not UTF-8 text: save it as CSV (UTF-8)") from None
        if not text.strip():
            raise InvalidValue("paste CSV rows or choose a CSV file to import")
        count = service(request).contacts.import_csv(viewer.tenant, text, by=viewer.user)
    except InvalidValue as e:
        message = e.message[:1].upper() + e.message[1:]
        return _hosts_page(
            request, viewer, csv_text=text, error=message, error_at="import", status=e.status
        )
    return RedirectResponse(f"/ui/hosts?done=imported&count={count}", status_code=303)

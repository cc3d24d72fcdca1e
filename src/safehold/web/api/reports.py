"""Reports and the URL block list over HTTP.

* ``POST /v1/reports`` (scope ``reports``) — a partner (another hotline, a platform's
  user-report pipeline, an NGO) sends a report; it is triaged like one from the public
  portal and answered with its receipt.
* ``GET /v1/reports`` and ``GET /v1/reports/{number}`` (scope ``reports``) — the
  tenant's reports, newest first; contact details only for ``admin`` keys.
* ``GET /v1/complaints/summary`` (scope ``reports``) — complaints per stage, overdue,
  median stage times and outcomes.
* ``GET /v1/blocklist`` (scope ``blocklist``) — the URL block list as a plain list,
  an RPZ zone or JSON, for network operators; every download is audited.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safehold.access.keys import ApiKeyInfo
from safehold.intake import NewReport, blocklist
from safehold.intake.categories import CATEGORIES
from safehold.intake.fields import MAX_DESCRIPTION, MAX_LINE, MAX_URLS
from safehold.intake.model import ReportInfo
from safehold.web.problems import responses
from safehold.web.security import require, service

router = APIRouter(tags=["reports"])


class ReportIn(BaseModel):
    """A report. Only ``category`` and one of ``urls``, ``platform``, ``username`` or
    ``description`` are needed; everything else is optional."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(
        max_length=64, description="one of: " + ", ".join(CATEGORIES), examples=["grooming"]
    )
    urls: list[Annotated[str, Field(max_length=2048)]] = Field(
        default_factory=list, max_length=MAX_URLS, description="web addresses (http/https)"
    )
    platform: str = Field("", max_length=MAX_LINE)
    username: str = Field("", max_length=MAX_LINE)
    description: str = Field("", max_length=MAX_DESCRIPTION)
    demographics: dict[str, str] = Field(
        default_factory=dict,
        description="optional: age_band, gender, relation, country (see docs/api.md)",
    )
    contact: dict[str, str] | None = Field(None, description="optional: name, email, phone")
    language: str = Field("en", max_length=16)
    source: str = Field(
        "partner", max_length=64, description="where it came from (e.g. partner:netsafe)"
    )


def _public(info: ReportInfo, key: ApiKeyInfo) -> dict[str, Any]:
    out = info.to_dict()
    if not key.allows("admin"):
        out.pop("contact", None)
    return out


@router.post(
    "/v1/reports",
    status_code=201,
    summary="Send a report",
    responses=responses(401, 403, 413, 415, 422, 429),
)
async def create_report(
    request: Request, body: ReportIn, key: ApiKeyInfo = Depends(require("reports"))
) -> dict[str, Any]:
    """Triaged into a complaint case (same URL → same case). The answer carries the
    receipt (``number`` and ``secret``, shown once) and the case it joined."""
    svc = service(request)
    report = NewReport(
        category=body.category,
        urls=body.urls,
        platform=body.platform,
        username=body.username,
        description=body.description,
        demographics=body.demographics,
        contact=body.contact,
        language=body.language,
        source=body.source,
    )
    receipt = await run_in_threadpool(svc.reports.submit, report, tenant=key.tenant)
    info = await run_in_threadpool(svc.reports.get, receipt.report_id, key.tenant)
    return {**receipt.to_dict(), "case_id": receipt.case_id, "flags": info.flags}


@router.get(
    "/v1/reports", summary="List the tenant's reports", responses=responses(401, 403, 422, 429)
)
def list_reports(
    request: Request,
    key: ApiKeyInfo = Depends(require("reports")),
    kind: Annotated[str | None, Query(pattern="^(report|hashes)$")] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    flag: Annotated[str | None, Query(max_length=64, description="e.g. duplicate, spam")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> dict[str, Any]:
    """Newest first; ``next_before`` pages on."""
    items, more = service(request).reports.list(
        key.tenant, kind=kind, category=category, flag=flag, limit=limit, before=before
    )
    return {"reports": [_public(i, key) for i in items], "next_before": more}


@router.get(
    "/v1/reports/{number}",
    summary="One report by its number",
    responses=responses(401, 403, 404, 422, 429),
)
def get_report(
    request: Request,
    number: Annotated[str, Path(max_length=32, description="R-XXXX-XXXX or H-XXXX-XXXX")],
    key: ApiKeyInfo = Depends(require("reports")),
) -> dict[str, Any]:
    return {"report": _public(service(request).reports.by_number(number, key.tenant), key)}


@router.get(
    "/v1/complaints/summary",
    summary="Complaints per stage, overdue, median stage times, outcomes",
    responses=responses(401, 403, 429),
)
def complaints_summary(
    request: Request, key: ApiKeyInfo = Depends(require("reports"))
) -> dict[str, Any]:
    return service(request).complaints.summary(key.tenant).to_dict()


@router.get(
    "/v1/blocklist",
    summary="The URL block list (plain, RPZ or JSON)",
    responses={
        **responses(401, 403, 422, 429),
        200: {"content": {"text/plain": {}, "application/json": {}}, "description": "the list"},
    },
    response_model=None,
)
def get_blocklist(
    request: Request,
    key: ApiKeyInfo = Depends(require("blocklist")),
    format: Annotated[str, Query(pattern="^(plain|rpz|json)$")] = "plain",
    zone: Annotated[str, Query(max_length=253)] = blocklist.DEFAULT_ZONE,
    include_url_hosts: bool = False,
) -> PlainTextResponse | JSONResponse:
    """``plain``: one URL (or host) per line; ``rpz``: a DNS response-policy zone of the
    blocked hosts (URL blocks only with ``include_url_hosts``, which blocks their whole
    host); ``json``: the entries with their notice and case."""
    svc = service(request)
    text = blocklist.export(
        svc.db, key.tenant, format, zone=zone, include_url_hosts=include_url_hosts
    )
    svc.audit.append(
        f"key:{key.key_id}",
        "export",
        object_type="blocklist",
        object_id=format,
        details={"zone": zone if format == "rpz" else None},
        tenant=key.tenant,
    )
    if format == "json":
        import json

        return JSONResponse(json.loads(text))
    name = "blocklist.rpz" if format == "rpz" else "blocklist.txt"
    return PlainTextResponse(
        text, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )

"""Webhook deliveries of the caller's tenant: ``/v1/webhooks/deliveries`` (scope ``admin``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from safehold.access.keys import ApiKeyInfo
from safehold.actions.webhooks import STATUSES, Webhooks
from safehold.errors import InvalidValue
from safehold.web.problems import responses
from safehold.web.security import require, service

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _webhooks(request: Request) -> Webhooks:
    svc = service(request)
    return Webhooks(svc.db, svc.jobs, svc.audit)


@router.get(
    "/deliveries",
    summary="List the tenant's webhook deliveries, newest first",
    responses=responses(401, 403, 422, 429),
)
def list_deliveries(
    request: Request,
    key: ApiKeyInfo = Depends(require("admin")),
    status: Annotated[
        str | None, Query(max_length=16, description=f"one of {', '.join(STATUSES)}")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="only ids below this (paging)")
    ] = None,
) -> dict[str, Any]:
    """Each delivery: its status (pending, sending, retrying, delivered, dead), attempts,
    the last HTTP status or error and when it is tried next. ``status=dead`` lists the
    dead letters, which ``POST .../{id}/replay`` sends again."""
    if status is not None and status not in STATUSES:
        raise InvalidValue(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
    hooks = _webhooks(request)
    items = hooks.list(tenant=key.tenant, status=status, limit=limit, before_id=before)
    return {
        "deliveries": [d.to_dict() for d in items],
        "counts": hooks.counts(tenant=key.tenant),
    }


@router.post(
    "/deliveries/{delivery_id}/replay",
    summary="Send a webhook delivery again",
    responses=responses(401, 403, 404, 409, 422, 429),
)
def replay_delivery(
    request: Request,
    delivery_id: Annotated[int, Path(ge=1, le=2**63 - 1, description="the delivery's id")],
    key: ApiKeyInfo = Depends(require("admin")),
) -> dict[str, Any]:
    """From the start of the retry schedule (audited as ``webhook_replay``); 409 while
    it is being sent."""
    info = _webhooks(request).replay(delivery_id, tenant=key.tenant, by=f"key:{key.key_id}")
    return {"delivery": info.to_dict()}

"""Operations: liveness, readiness and Prometheus metrics (no key needed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from safehold import __version__
from safehold.web.problems import problem, responses
from safehold.web.security import service

router = APIRouter(tags=["operations"])

READY_LAG_SECONDS = 10.0
"""A replica that has not caught up with the change log for this long is not ready."""


@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", summary="Liveness: the process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz",
    summary="Readiness: database reachable, index loaded and caught up",
    responses=responses(503),
)
def readyz(request: Request) -> Any:
    svc = service(request)
    status = svc.replica.status()
    index = status.to_dict()
    if index.get("error"):  # no database host or name for unauthenticated callers
        index["error"] = str(index["error"]).split(":", 1)[0]
    checks: dict[str, Any] = {"index": index}
    problems = []
    try:
        with svc.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:
        checks["database"] = f"unreachable: {type(e).__name__}"
        problems.append("the database cannot be reached")
    if not status.loaded:
        problems.append("the index is still loading")
    elif status.lag_seconds is None or status.lag_seconds > READY_LAG_SECONDS:
        problems.append(
            f"the index has not caught up with the change log for {READY_LAG_SECONDS:g} s"
        )
    if problems:
        return problem(503, "not_ready", "; ".join(problems), checks=checks)
    return JSONResponse({"status": "ready", **checks})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    svc = service(request)
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)

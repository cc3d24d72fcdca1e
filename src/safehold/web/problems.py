"""Errors as problem+json (RFC 9457).

Every error the service returns has ``type`` (a stable URI per error code:
``https://safehold.dev/problems/<code>``), ``title``, ``status`` and ``detail`` (what
was wrong and what to do). Validation errors add ``errors``: one item per bad field
with its location. The codes are those of :mod:`safehold.errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from safehold.access.ratelimit import retry_after
from safehold.errors import RateLimited, SafeholdError, Unauthorized

PROBLEM_BASE = "https://safehold.dev/problems/"
MEDIA_TYPE = "application/problem+json"

log = structlog.get_logger("safehold.web")

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["type", "title", "status", "detail"],
}


def problem(
    status: int,
    code: str | None,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code if code else "about:blank",
        "title": code.replace("_", " ") if code else title,
        "status": status,
        "detail": detail,
    }
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problems a route can return."""
    return {
        s: {
            "description": HTTPStatus(s).phrase,
            "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
        }
        for s in statuses
    }


def install(app: FastAPI) -> None:
    """Register the exception handlers that turn every error into problem+json."""

    @app.exception_handler(SafeholdError)
    async def _safehold(request: Request, exc: SafeholdError) -> JSONResponse:
        headers: dict[str, str] = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(retry_after(exc.retry_after))
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="safehold"'
        extra = {"errors": exc.details["errors"]} if "errors" in exc.details else {}
        return problem(exc.status, exc.code, exc.message, headers=headers, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "location": [str(p) for p in e.get("loc", ())],
                "message": str(e.get("msg", "")),
            }
            for e in exc.errors()[:100]
        ]
        first = errors[0] if errors else {"location": [], "message": "invalid request"}
        where = ".".join(first["location"]) or "request"
        return problem(
            422,
            "validation_error",
            f"{where}: {first['message']}"
            + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""),
            errors=errors,
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {400: "malformed_body", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code
        )
        return problem(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", path=request.url.path)
        return problem(
            500,
            "internal_error",
            "the service failed unexpectedly; the error is logged. Try again, and report it "
            "if it persists.",
        )

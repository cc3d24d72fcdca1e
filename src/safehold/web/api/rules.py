"""The tenant's rules: ``/v1/rules`` (scope ``admin``).

``GET /v1/rules`` shows the active version with hit counts; ``PUT /v1/rules`` stores a
new version (YAML as ``application/yaml``, or JSON ``{"source": "..."}``) and activates
it; ``POST /v1/rules/test`` replays rules against recent events without storing them.
A rule file with problems is a 422 whose ``errors`` carry ``line``, ``column`` and
``message`` each. Stored versions can be listed, read and activated again.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from safehold.access.keys import ApiKeyInfo
from safehold.errors import InvalidValue, SafeholdError, TooLarge
from safehold.rules.language import MAX_SOURCE_BYTES, decode_source, parse_duration, parse_rules
from safehold.rules.replay import MAX_LIMIT, replay
from safehold.web.problems import responses
from safehold.web.security import require, service

router = APIRouter(prefix="/v1/rules", tags=["rules"])

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml", "text/plain")
MAX_BODY = 8 * MAX_SOURCE_BYTES
"""A JSON body may escape the source (``\\u00e9``); the source itself is limited after."""


class UnsupportedMediaType(SafeholdError):
    code = "unsupported_media_type"
    status = 415


def _body_doc(extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/yaml": {
                    "schema": {"type": "string", "description": "a rule file (YAML)"}
                },
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["source"],
                        "properties": {
                            "source": {"type": "string", "description": "a rule file (YAML)"},
                            **extra,
                        },
                    }
                },
            },
        }
    }


PUT_BODY = _body_doc(
    {
        "note": {"type": "string", "maxLength": 2000},
        "activate": {"type": "boolean", "default": True},
    }
)
TEST_BODY = _body_doc({})


async def _source(request: Request) -> tuple[str, dict[str, Any]]:
    """The rule source of the body, and the other fields of a JSON body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("", "application/json", *YAML_TYPES):
        raise UnsupportedMediaType(
            f'send the rules as application/yaml or as JSON {{"source": ...}}, not {ctype[:60]!r}'
        )
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise TooLarge(f"the body is larger than {MAX_BODY} bytes")
    if ctype != "application/json":
        return decode_source(bytes(raw), "<body>"), {}
    try:
        body = json.loads(bytes(raw))
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidValue(f"the body is not valid JSON: {e}") from None
    if not isinstance(body, dict) or not isinstance(body.get("source"), str):
        raise InvalidValue('a JSON body must be an object with "source": the rule file as text')
    unknown = sorted(set(body) - {"source", "note", "activate"})
    if unknown:
        raise InvalidValue(
            f"unknown field {unknown[0][:40]!r} in the body; valid: source, note, activate"
        )
    return body["source"], {k: v for k, v in body.items() if k != "source"}


def _active(svc: Any, tenant: str) -> dict[str, Any]:
    stored = svc.rulesets.active(tenant)
    return {**stored.to_dict(), "rules": svc.rulesets.hit_table(stored)}


@router.get(
    "",
    summary="The active rules with hit counts",
    responses=responses(401, 403, 429),
)
def get_rules(request: Request, key: ApiKeyInfo = Depends(require("admin"))) -> dict[str, Any]:
    """Version 0 (``builtin: true``) is the built-in default until rules are stored."""
    return _active(service(request), key.tenant)


@router.put(
    "",
    summary="Store new rules and make them active",
    openapi_extra=PUT_BODY,
    responses=responses(400, 401, 403, 413, 415, 422, 429),
)
async def put_rules(
    request: Request,
    key: ApiKeyInfo = Depends(require("admin")),
    note: Annotated[str | None, Query(max_length=2000, description="why this version")] = None,
    activate: Annotated[bool, Query(description="make it the active version")] = True,
) -> dict[str, Any]:
    """The body is the rule file (``application/yaml``) or ``{"source", "note",
    "activate"}``. A file with problems is a 422 listing each with its line and column."""
    svc = service(request)
    source, fields = await _source(request)
    note = fields.get("note", note)
    activate = fields.get("activate", activate)
    if note is not None and not isinstance(note, str):
        raise InvalidValue("note must be text")
    if not isinstance(activate, bool):
        raise InvalidValue("activate must be true or false")
    stored = await run_in_threadpool(
        svc.rulesets.save,
        source,
        tenant=key.tenant,
        created_by=f"key:{key.key_id}",
        note=note,
        activate=activate,
        filename="<body>",
    )
    return {**stored.to_dict(), "rules": svc.rulesets.hit_table(stored)}


@router.post(
    "/test",
    summary="Replay rules against recent events (nothing is stored or acted on)",
    openapi_extra=TEST_BODY,
    responses=responses(400, 401, 403, 413, 415, 422, 429),
)
async def test_rules(
    request: Request,
    key: ApiKeyInfo = Depends(require("admin")),
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="newest events first")] = 1000,
    since: Annotated[
        str | None, Query(max_length=32, description="only events younger than this: 24h, 7d")
    ] = None,
) -> dict[str, Any]:
    """Per rule: how many of the recent events it would fire on; how many decisions
    would change (``"old -> new"``) with up to 20 example event ids."""
    svc = service(request)
    source, _ = await _source(request)
    ruleset = await run_in_threadpool(parse_rules, source, filename="<body>")
    age = timedelta(seconds=parse_duration(since)) if since else None
    report = await run_in_threadpool(
        replay, svc.db, ruleset, tenant=key.tenant, limit=limit, since=age
    )
    return {**report.to_dict(), "mode": ruleset.mode, "default": ruleset.default}


Version = Annotated[int, Path(ge=0, le=2**31 - 1, description="0 is the built-in rules")]


@router.get(
    "/versions",
    summary="The stored versions of the tenant's rules, newest first",
    responses=responses(401, 403, 429),
)
def list_versions(request: Request, key: ApiKeyInfo = Depends(require("admin"))) -> dict[str, Any]:
    versions = service(request).rulesets.versions(key.tenant)
    return {"versions": [v.to_dict(source=False) for v in versions]}


@router.get(
    "/versions/{version}",
    summary="One stored version with its source and hit counts",
    responses=responses(401, 403, 404, 422, 429),
)
def get_version(
    request: Request, version: Version, key: ApiKeyInfo = Depends(require("admin"))
) -> dict[str, Any]:
    svc = service(request)
    stored = svc.rulesets.get(version, key.tenant)
    return {**stored.to_dict(), "rules": svc.rulesets.hit_table(stored)}


@router.post(
    "/versions/{version}/activate",
    summary="Make a stored version the active one (0: the built-in rules)",
    responses=responses(401, 403, 404, 422, 429),
)
def activate_version(
    request: Request, version: Version, key: ApiKeyInfo = Depends(require("admin"))
) -> dict[str, Any]:
    svc = service(request)
    stored = svc.rulesets.activate(version, key.tenant, by=f"key:{key.key_id}")
    return {**stored.to_dict(), "rules": svc.rulesets.hit_table(stored)}

"""``POST /v1/scan`` (hash an upload and match it) and ``POST /v1/lookup`` (match hashes)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safehold.access.keys import ApiKeyInfo
from safehold.actions.dispatch import Outcome
from safehold.banks.entries import check_bank_name
from safehold.banks.matcher import MatchResult
from safehold.errors import InvalidValue, SafeholdError
from safehold.hashing import ContentHashes, hash_file
from safehold.rules.context import Context
from safehold.signals import get_signal_type
from safehold.web.problems import responses
from safehold.web.security import require, service
from safehold.web.upload import receive_upload

router = APIRouter(prefix="/v1", tags=["scanning"])

MAX_LOOKUP = 1000
MAX_ID = 256
MAX_ACCOUNT = 16 * 1024
"""Bytes of the ``account`` JSON object (account signals for the rules)."""
MAX_REPORTS = 1_000_000_000


def decision(result: MatchResult) -> str:
    """The lookup decision (no rules run on bare hash values): ``match`` or ``no_match``."""
    return "match" if result.matches else "no_match"


def _reports(value: str | int | None) -> int:
    if value is None or value == "":
        return 0
    try:
        n = int(str(value).strip())
    except ValueError:
        raise InvalidValue("reports must be a whole number of reports (0 or more)") from None
    if not 0 <= n <= MAX_REPORTS:
        raise InvalidValue(f"reports must be between 0 and {MAX_REPORTS}")
    return n


def _no_constants(name: str) -> Any:
    raise InvalidValue(f"account: {name} is not a JSON number")


def _account(raw: str | None) -> dict[str, Any]:
    """The caller's account signals: a JSON object of at most 16 KiB."""
    if raw is None or raw.strip() == "":
        return {}
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_ACCOUNT:
        raise InvalidValue(f"account must be a JSON object of at most {MAX_ACCOUNT} bytes")
    try:
        value = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, RecursionError) as e:
        if isinstance(e, InvalidValue):
            raise
        raise InvalidValue("account must be a JSON object (of account signals)") from None
    if not isinstance(value, dict):
        raise InvalidValue("account must be a JSON object (of account signals)")
    for k in value:
        if not 1 <= len(k) <= 64 or "\x00" in k:
            raise InvalidValue("account: each field name must be 1 to 64 characters")
    return value


def _banks_param(raw: list[str] | None) -> list[str] | None:
    """``banks`` as repeated values and/or comma-separated lists; ``None`` when not given."""
    if not raw:
        return None
    names = [n.strip() for item in raw for n in item.split(",") if n.strip()]
    return [check_bank_name(n) for n in names] or None  # 422, not an echo in a 404


def _check_id(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_ID or "\x00" in value:
        raise InvalidValue(f"{name} must be at most {MAX_ID} characters without NUL")
    return value


class ScanMedia(BaseModel):
    kind: str
    format: str
    bytes: int
    width: int | None = None
    height: int | None = None


class ScanResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    content_id: str | None = None
    account_id: str | None = None
    decision: str = Field(description="'block', 'hold' or 'allow': the active rules' decision")
    rules: list[str] = Field(default=[], description="names of the rules that fired")
    actions: list[str] = Field(
        default=[], description="side effects queued: review, webhook, preserve, notify"
    )
    event_id: int | None = Field(default=None, description="the recorded event (rule input)")
    media: ScanMedia
    signals: dict[str, Any] = Field(description="md5, sha256 and pdq/pdq_quality or vpdq frames")
    matches: list[dict[str, Any]]
    notes: list[str] = []


SCAN_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "content_id": {"type": "string", "maxLength": MAX_ID},
                        "account_id": {"type": "string", "maxLength": MAX_ID},
                        "banks": {"type": "string", "description": "comma-separated bank names"},
                        "reports": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "how many reports name this content",
                        },
                        "account": {
                            "type": "string",
                            "maxLength": MAX_ACCOUNT,
                            "description": "JSON object of account signals for the rules",
                        },
                    },
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "video/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/scan",
    response_model=ScanResponse,
    response_model_exclude_none=True,
    openapi_extra=SCAN_BODY,
    responses=responses(401, 403, 404, 413, 415, 422, 429, 503),
    summary="Hash an image or video and match it against the banks",
)
async def scan(
    request: Request,
    key: ApiKeyInfo = Depends(require("scan")),
    content_id: Annotated[str | None, Query(max_length=MAX_ID)] = None,
    account_id: Annotated[str | None, Query(max_length=MAX_ID)] = None,
    banks: Annotated[list[str] | None, Query(description="bank names to match")] = None,
    reports: Annotated[
        int | None, Query(ge=0, le=MAX_REPORTS, description="reports naming this content")
    ] = None,
    account: Annotated[
        str | None, Query(max_length=MAX_ACCOUNT, description="JSON object: account signals")
    ] = None,
) -> dict[str, Any]:
    """Upload in the multipart field ``file`` (or as the raw body with its Content-Type).
    ``content_id``, ``account_id``, ``banks``, ``reports`` and ``account`` (a JSON
    object of account signals) may be form fields or query parameters. The active rules
    decide (``block``, ``hold`` or ``allow``) and may queue actions (a review case, a
    webhook ...). The upload is streamed to a bounded temporary file, kept in the media
    store only when a rule asks for review or preservation, and deleted after the decision."""
    svc = service(request)
    svc.matcher_ready()
    if banks:  # an unknown bank is refused before the upload is read
        svc.replica.matcher.check_banks(_banks_param(banks), key.tenant)
    upload = await receive_upload(request, svc.limits, svc.tmpdir)
    try:
        content_id = _check_id("content_id", upload.field("content_id") or content_id)
        account_id = _check_id("account_id", upload.field("account_id") or account_id)
        form_banks = upload.fields.get("banks")
        chosen = _banks_param(form_banks) if form_banks else _banks_param(banks)
        n_reports = _reports(upload.field("reports") or reports)
        signals = _account(upload.field("account") or account)
        hashes = await run_in_threadpool(_hash, svc, str(upload.path))
        result = await run_in_threadpool(
            svc.replica.matcher.match_content, hashes, banks=chosen, tenant=key.tenant
        )
        found = result.to_dict()
        media = {
            "kind": hashes.kind,
            "format": hashes.format,
            "bytes": hashes.size,
            "width": hashes.width,
            "height": hashes.height,
        }
        ctx = Context(
            tenant=key.tenant,
            content_id=content_id,
            account_id=account_id,
            matches=found["matches"],
            reports=n_reports,
            account=signals,
            media=media,
            signals=hashes.to_json(),
        )
        outcome: Outcome = await run_in_threadpool(
            svc.policy.decide, ctx, upload_path=str(upload.path), hashes=hashes
        )
    finally:
        upload.discard()
    svc.metrics.scans.labels(outcome.decision).inc()
    out: dict[str, Any] = {
        "content_id": content_id,
        "account_id": account_id,
        "decision": outcome.decision,
        "rules": outcome.fired,
        "actions": outcome.actions,
        "event_id": outcome.event_id,
        "media": media,
        "signals": hashes.to_json(),
        **found,
    }
    out["notes"] = [*found.get("notes", []), *outcome.notes]
    return out


def _hash(svc: Any, path: str) -> ContentHashes:
    with svc.hashing:  # bounded concurrency: each decode may use hundreds of MB
        try:
            dihedral = any(b.dihedral for b in svc.replica.matcher.banks.values())
            return hash_file(path, limits=svc.limits, dihedral=dihedral)
        except SafeholdError as e:  # say "the upload", not the temporary file's name
            e.message = e.message.replace(path, "the upload")
            e.args = (e.message,)
            raise


class SignalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal_type: str = Field(max_length=32, examples=["pdq"])
    value: str = Field(max_length=1_000_000)


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signals: list[SignalIn] | None = Field(
        default=None, max_length=MAX_LOOKUP, description=f"up to {MAX_LOOKUP} values"
    )
    signal_type: str | None = Field(
        default=None, max_length=32, description="shorthand: one type for all of `values`"
    )
    values: list[str] | None = Field(default=None, max_length=MAX_LOOKUP)
    banks: list[str] | None = Field(default=None, max_length=1000)


class LookupResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    signal_type: str
    value: str
    decision: str
    matches: list[dict[str, Any]]


class LookupResponse(BaseModel):
    results: list[LookupResult]


@router.post(
    "/lookup",
    response_model=LookupResponse,
    responses=responses(401, 403, 404, 422, 429, 503),
    summary="Match signal values computed elsewhere (on the device)",
)
def lookup(
    request: Request, body: LookupRequest, key: ApiKeyInfo = Depends(require("scan"))
) -> dict[str, Any]:
    """Look up to 1000 hash values in one call, in order: ``{"signals": [{"signal_type":
    "pdq", "value": "..."}]}`` or ``{"signal_type": "md5", "values": [...]}``."""
    svc = service(request)
    svc.matcher_ready()
    items: list[tuple[str, str]] = [(s.signal_type, s.value) for s in body.signals or []]
    if body.values is not None:
        if not body.signal_type:
            raise InvalidValue("`values` needs `signal_type` (or send `signals`)")
        items.extend((body.signal_type, v) for v in body.values)
    if not items:
        raise InvalidValue("nothing to look up: send `signals` or `signal_type` + `values`")
    if len(items) > MAX_LOOKUP:
        raise InvalidValue(f"at most {MAX_LOOKUP} values per call; split the batch")
    errors: list[dict[str, Any]] = []
    groups: dict[str, list[int]] = {}
    normalized: list[str] = [""] * len(items)
    types: list[str] = [""] * len(items)
    for i, (st_name, value) in enumerate(items):
        try:
            st = get_signal_type(st_name)
            normalized[i], types[i] = st.normalize(value), st.name
            groups.setdefault(st.name, []).append(i)
        except SafeholdError as e:
            errors.append({"index": i, "message": e.message})
    if errors:
        raise InvalidValue(
            f"{len(errors)} of {len(items)} values are not valid (first: item "
            f"{errors[0]['index']}: {errors[0]['message']}); nothing was looked up",
            errors=errors[:100],
        )
    banks = [check_bank_name(b) for b in body.banks] if body.banks else None
    results: list[dict[str, Any]] = [{} for _ in items]
    for st_name, idx in groups.items():
        found = svc.replica.matcher.lookup(
            st_name, [normalized[i] for i in idx], banks=banks, tenant=key.tenant
        )
        svc.metrics.lookups.labels(st_name).inc(len(idx))
        for i, res in zip(idx, found, strict=True):
            results[i] = {
                "signal_type": types[i],
                "value": normalized[i],
                "decision": decision(res),
                **res.to_dict(),
            }
    return {"results": results}

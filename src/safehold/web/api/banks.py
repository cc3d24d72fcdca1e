"""Banks and their entries: ``/v1/banks``.

A tenant's key sees its own banks and those shared with it (read-only), and changes
only its own. Lists are paginated with opaque cursors: pass ``next_cursor`` back as
``cursor`` until it is ``null``.
"""

from __future__ import annotations

import base64
import codecs
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from safehold.access.keys import ApiKeyInfo
from safehold.banks.entries import BANK_NAME, MAX_NOTE, TENANT, EntryInput, make_entry
from safehold.banks.formats import EXPORT_FORMATS, parse, write
from safehold.banks.repository import audit_export
from safehold.errors import (
    ImportFailed,
    InvalidValue,
    NotFound,
    SafeholdError,
    TooLarge,
)
from safehold.web.problems import responses
from safehold.web.security import require, service
from safehold.web.upload import receive_upload

router = APIRouter(prefix="/v1/banks", tags=["banks"])

# Path values are checked before they reach the database (PostgreSQL refuses NUL in text).
BankName = Annotated[
    str, Path(max_length=100, pattern=f"^{BANK_NAME.pattern}$", description="the bank's name")
]
TenantName = Annotated[
    str, Path(max_length=64, pattern=f"^{TENANT.pattern}$", description="the other tenant")
]
MAX_JSON_ENTRIES = 10_000
MAX_IMPORT_BYTES = 512 * 1024 * 1024
MAX_JSON_BODY = 64 * 1024 * 1024


def encode_cursor(value: str | int) -> str:
    raw = json.dumps({"after": value}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type) -> Any:
    if not cursor:
        return kind()
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))["after"]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError
        if isinstance(value, str) and (len(value) > 100 or "\x00" in value):
            raise ValueError  # a bank name: never longer, never NUL (PostgreSQL refuses it)
        if isinstance(value, int) and not 0 <= value < 2**63:
            raise ValueError  # an entry id (BIGINT)
        return value
    except Exception:
        raise InvalidValue(
            "invalid cursor: pass back the `next_cursor` of the previous page unchanged"
        ) from None


class BankCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=100, examples=["csam-known"])
    kind: Literal["block", "negative"] = "block"
    description: str = Field(default="", max_length=4000)
    thresholds: dict[str, int] = Field(default_factory=dict, examples=[{"pdq": 31}])
    dihedral: bool = False


class BankUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["block", "negative"] | None = None
    description: str | None = Field(default=None, max_length=4000)
    thresholds: dict[str, int] | None = None
    dihedral: bool | None = None


class EntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal_type: str = Field(max_length=32, examples=["pdq"])
    value: str = Field(max_length=1_000_000)
    labels: list[str] = Field(default_factory=list, max_length=50)
    source: str | None = Field(default=None, max_length=64)
    external_id: str | None = Field(default=None, max_length=256)
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class EntriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: list[EntryIn] = Field(max_length=MAX_JSON_ENTRIES)


class RemoveValue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal_type: str = Field(max_length=32)
    value: str = Field(max_length=1_000_000)


class RemoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(
        default_factory=list, max_length=100_000
    )
    values: list[RemoveValue] = Field(default_factory=list, max_length=100_000)


class Page(BaseModel):
    model_config = ConfigDict(extra="allow")

    next_cursor: str | None


def _bank_json(info: Any, key: ApiKeyInfo) -> dict[str, Any]:
    return info.to_dict(viewer=key.tenant)  # type: ignore[no-any-return]


@router.get("", summary="List banks", responses=responses(401, 403, 422, 429))
def list_banks(
    request: Request,
    key: ApiKeyInfo = Depends(require("banks:read")),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    """The banks this key's tenant owns or has been shared, in name order."""
    svc = service(request)
    after = decode_cursor(cursor, str)
    page = svc.banks.list(tenant=key.tenant, after=after, limit=limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return {
        "banks": [_bank_json(b, key) for b in page],
        "next_cursor": encode_cursor(page[-1].name) if more else None,
    }


@router.post(
    "", status_code=201, summary="Create a bank", responses=responses(401, 403, 409, 422, 429)
)
def create_bank(
    request: Request, body: BankCreate, key: ApiKeyInfo = Depends(require("banks:write"))
) -> dict[str, Any]:
    svc = service(request)
    info = svc.banks.create(
        body.name,
        kind=body.kind,
        description=body.description,
        thresholds=body.thresholds,
        dihedral=body.dihedral,
        tenant=key.tenant,
    )
    svc.replica.sync()
    return _bank_json(info, key)


@router.get("/{name}", summary="Show a bank", responses=responses(401, 403, 404, 422, 429))
def get_bank(
    request: Request, name: BankName, key: ApiKeyInfo = Depends(require("banks:read"))
) -> dict[str, Any]:
    return _bank_json(service(request).banks.get(name, tenant=key.tenant), key)


@router.patch(
    "/{name}", summary="Change a bank's settings", responses=responses(401, 403, 404, 422, 429)
)
def update_bank(
    request: Request,
    name: BankName,
    body: BankUpdate,
    key: ApiKeyInfo = Depends(require("banks:write")),
) -> dict[str, Any]:
    svc = service(request)
    info = svc.banks.update(
        name,
        kind=body.kind,
        description=body.description,
        thresholds=body.thresholds,
        dihedral=body.dihedral,
        tenant=key.tenant,
    )
    svc.replica.sync()
    return _bank_json(info, key)


@router.delete(
    "/{name}",
    summary="Delete a bank and its entries",
    responses=responses(401, 403, 404, 422, 429),
)
def delete_bank(
    request: Request, name: BankName, key: ApiKeyInfo = Depends(require("banks:write"))
) -> dict[str, Any]:
    svc = service(request)
    n = svc.banks.delete(name, tenant=key.tenant, by=f"key:{key.key_id}")
    svc.replica.sync()
    return {"deleted": name, "entries": n}


# ------------------------------------------------------------------ entries


@router.get(
    "/{name}/entries", summary="List a bank's entries", responses=responses(401, 403, 404, 422, 429)
)
def list_entries(
    request: Request,
    name: BankName,
    key: ApiKeyInfo = Depends(require("banks:read")),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    signal_type: Annotated[str | None, Query(max_length=32)] = None,
) -> dict[str, Any]:
    """Entries in id order; ``signal_type`` filters."""
    svc = service(request)
    after = decode_cursor(cursor, int)
    if signal_type:
        from safehold.signals import get_signal_type

        signal_type = get_signal_type(signal_type).name
    page = svc.banks.entries(
        name, signal_type=signal_type, after=after, limit=limit + 1, tenant=key.tenant
    )
    more = len(page) > limit
    page = page[:limit]
    return {
        "entries": [e.to_dict() for e in page],
        "next_cursor": encode_cursor(page[-1].id) if more else None,
    }


@router.get(
    "/{name}/entries/{entry_id:int}",
    summary="Show one entry",
    responses=responses(401, 403, 404, 422, 429),
)
def get_entry(
    request: Request,
    name: BankName,
    entry_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    key: ApiKeyInfo = Depends(require("banks:read")),
) -> dict[str, Any]:
    svc = service(request)
    page = svc.banks.entries(name, after=entry_id - 1, limit=1, tenant=key.tenant)
    if not page or page[0].id != entry_id:
        raise NotFound(f"bank {name!r} has no entry {entry_id}")
    return page[0].to_dict()


ADD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/EntryIn"},
                        {"$ref": "#/components/schemas/EntriesIn"},
                    ]
                }
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "JSON lines, one entry per line"}
            },
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": "CSV with signal_type,value,labels,... (or any import format)",
                }
            },
        },
    }
}


@router.post(
    "/{name}/entries",
    status_code=201,
    summary="Add entries (one, a JSON list, or a JSONL/CSV file)",
    openapi_extra=ADD_BODY,
    responses=responses(401, 403, 404, 413, 422, 429),
)
async def add_entries(
    request: Request,
    name: BankName,
    key: ApiKeyInfo = Depends(require("banks:write")),
    skip_invalid: Annotated[bool, Query(description="import the good rows of a file")] = False,
    format: Annotated[
        str, Query(max_length=16, description="file format (auto-detected by default)")
    ] = "auto",
) -> dict[str, Any]:
    """``application/json``: one entry object or ``{"entries": [...]}`` (up to 10,000).
    ``application/x-ndjson`` or ``text/csv``: a bulk file in any import format, streamed
    to disk; a file with bad rows imports nothing (and lists them) unless
    ``skip_invalid=true``. Adding an entry that exists updates its labels and notes."""
    svc = service(request)
    # 404/403 before reading (and storing) a body of up to 512 MB
    await run_in_threadpool(svc.banks.check_writable, name, tenant=key.tenant)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    report: dict[str, Any] = {}
    if ctype in ("application/json", ""):
        entries = await _json_entries(request)
    else:
        entries, report = await _file_entries(request, svc, format, skip_invalid)
    result = await run_in_threadpool(
        svc.banks.add, name, entries, added_by=f"key:{key.key_id}", tenant=key.tenant
    )
    await run_in_threadpool(svc.replica.sync)
    out: dict[str, Any] = {**result.to_dict(), **report}
    if len(entries) <= 1000:  # the id of each entry given, in the order given
        by_digest = await run_in_threadpool(svc.banks.ids_for, name, [e.digest for e in entries])
        out["ids"] = [by_digest[e.digest] for e in entries if e.digest in by_digest]
    return out


async def _json_entries(request: Request) -> list[EntryInput]:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_JSON_BODY:
            raise TooLarge(
                f"a JSON body may be at most {MAX_JSON_BODY} bytes; send large imports as "
                "JSONL or CSV (Content-Type application/x-ndjson or text/csv)"
            )
    try:
        body = json.loads(bytes(raw))
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidValue(f"the body is not valid JSON: {e}") from None
    try:
        if isinstance(body, dict) and "entries" in body:
            items = EntriesIn.model_validate(body).entries
        elif isinstance(body, list):
            items = EntriesIn.model_validate({"entries": body}).entries
        else:
            items = [EntryIn.model_validate(body)]
    except ValueError as e:
        raise InvalidValue(f"invalid entry: {str(e).splitlines()[0]} ({_first_error(e)})") from None
    out, errors = [], []
    for i, item in enumerate(items):
        try:
            out.append(
                make_entry(
                    item.signal_type,
                    item.value,
                    item.labels,
                    item.source,
                    item.external_id,
                    item.note,
                )
            )
        except SafeholdError as e:
            errors.append({"index": i, "message": e.message})
    if errors:
        raise ImportFailed(
            f"{len(errors)} of {len(items)} entries are not valid (first: entry "
            f"{errors[0]['index']}: {errors[0]['message']}); nothing was added",
            errors=errors[:100],
        )
    return out


def _first_error(e: ValueError) -> str:
    errs = getattr(e, "errors", None)
    if callable(errs):
        first = errs()[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg', '')}"
    return str(e)


async def _file_entries(
    request: Request, svc: Any, fmt: str, skip_invalid: bool
) -> tuple[list[EntryInput], dict[str, Any]]:
    from dataclasses import replace

    limits = replace(svc.limits, max_image_bytes=MAX_IMPORT_BYTES, max_video_bytes=0)
    upload = await receive_upload(request, limits, svc.tmpdir)
    try:

        def read() -> Any:
            with open(upload.path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
                return parse(f, fmt)

        parsed = await run_in_threadpool(read)
    finally:
        upload.discard()
    if parsed.error_count and not skip_invalid:
        raise ImportFailed(
            f"{parsed.error_count} of {parsed.rows} rows are not valid (first: line "
            f"{parsed.errors[0].line}: {parsed.errors[0].message}); nothing was imported. "
            "Fix them, or pass skip_invalid=true to import the good rows",
            errors=[e.to_dict() for e in parsed.errors],
        )
    report = {"format": parsed.format, "rows": parsed.rows, "skipped": parsed.error_count}
    if parsed.error_count:
        report["errors"] = [e.to_dict() for e in parsed.errors]
    return parsed.entries, report


@router.delete(
    "/{name}/entries/{entry_id:int}",
    summary="Remove one entry",
    responses=responses(401, 403, 404, 422, 429),
)
def remove_entry(
    request: Request,
    name: BankName,
    entry_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    key: ApiKeyInfo = Depends(require("banks:write")),
) -> dict[str, Any]:
    svc = service(request)
    removed = svc.banks.remove(name, ids=[entry_id], tenant=key.tenant)
    if not removed:
        raise NotFound(f"bank {name!r} has no entry {entry_id}")
    svc.replica.sync()
    return {"removed": len(removed), "ids": removed}


@router.post(
    "/{name}/entries/remove",
    summary="Remove entries by id or by value",
    responses=responses(401, 403, 404, 422, 429),
)
def remove_entries(
    request: Request,
    name: BankName,
    body: RemoveIn,
    key: ApiKeyInfo = Depends(require("banks:write")),
) -> dict[str, Any]:
    from safehold.signals import get_signal_type

    svc = service(request)
    values = []
    for v in body.values:
        st = get_signal_type(v.signal_type)
        values.append((st.name, st.normalize(v.value)))
    removed = svc.banks.remove(name, ids=body.ids, values=values, tenant=key.tenant)
    svc.replica.sync()
    return {"removed": len(removed), "ids": removed[:1000]}


@router.get(
    "/{name}/export",
    summary="Export a bank's entries (streamed)",
    responses={
        200: {
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
                "text/plain": {"schema": {"type": "string"}},
            }
        },
        **responses(401, 403, 404, 422, 429),
    },
)
def export_bank(
    request: Request,
    name: BankName,
    key: ApiKeyInfo = Depends(require("banks:read")),
    format: Annotated[str, Query(max_length=16, description=", ".join(EXPORT_FORMATS))] = "jsonl",
) -> StreamingResponse:
    svc = service(request)
    if format not in EXPORT_FORMATS:
        raise InvalidValue(
            f"cannot export as {format[:40]!r}; use one of: {', '.join(EXPORT_FORMATS)}"
        )
    svc.banks.get(name, tenant=key.tenant)  # 404 before the stream starts
    audit_export(svc.db, name, format, by=f"key:{key.key_id}", tenant=key.tenant)
    media = {"jsonl": "application/x-ndjson", "csv": "text/csv"}.get(format, "text/plain")

    def chunks() -> Iterator[bytes]:
        buf = io.StringIO()
        first = True
        encoder = codecs.getincrementalencoder("utf-8")("surrogateescape")
        batch = []
        for record in svc.banks.iter_entries(name, tenant=key.tenant):
            batch.append(record)
            if len(batch) >= 2000:
                _write(batch, buf, format, first)
                first, batch = False, []
                yield encoder.encode(buf.getvalue())
                buf.seek(0)
                buf.truncate()
        if batch or first:
            _write(batch, buf, format, first)
            yield encoder.encode(buf.getvalue())

    ext = {"jsonl": "jsonl", "csv": "csv"}.get(format, "txt")
    return StreamingResponse(
        chunks(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{ext}"'},
    )


def _write(batch: list[Any], buf: io.StringIO, fmt: str, first: bool) -> None:
    if fmt == "csv" and not first:
        tmp = io.StringIO()
        write(batch, tmp, fmt)
        buf.write(tmp.getvalue().split("\n", 1)[1])  # the header only once
    else:
        write(batch, buf, fmt)


# ------------------------------------------------------------------ shares


@router.put(
    "/{name}/shares/{tenant}",
    summary="Share a bank read-only with another tenant",
    responses=responses(401, 403, 404, 422, 429),
)
def share_bank(
    request: Request,
    name: BankName,
    tenant: TenantName,
    key: ApiKeyInfo = Depends(require("admin")),
) -> dict[str, Any]:
    svc = service(request)
    info = svc.banks.share(name, tenant, tenant=key.tenant, by=f"key:{key.key_id}")
    svc.replica.sync()
    return _bank_json(info, key)


@router.delete(
    "/{name}/shares/{tenant}",
    summary="Stop sharing a bank with a tenant",
    responses=responses(401, 403, 404, 422, 429),
)
def unshare_bank(
    request: Request,
    name: BankName,
    tenant: TenantName,
    key: ApiKeyInfo = Depends(require("admin")),
) -> dict[str, Any]:
    svc = service(request)
    info = svc.banks.unshare(name, tenant, tenant=key.tenant, by=f"key:{key.key_id}")
    svc.replica.sync()
    return _bank_json(info, key)

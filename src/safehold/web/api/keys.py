"""API keys of the caller's tenant: ``/v1/keys`` (scope ``admin``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from safehold.access.keys import SCOPES, ApiKeyInfo
from safehold.web.problems import responses
from safehold.web.security import require, service

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[str] = Field(min_length=1, max_length=len(SCOPES), examples=[["scan"]])
    name: str = Field(default="", max_length=100)
    rate: float | None = Field(
        default=None, ge=0, le=1_000_000, description="requests/second; 0 = unlimited"
    )
    burst: int | None = Field(default=None, ge=1, le=10_000_000)


@router.get("", summary="List the tenant's API keys", responses=responses(401, 403, 429))
def list_keys(request: Request, key: ApiKeyInfo = Depends(require("admin"))) -> dict[str, Any]:
    return {"keys": [k.to_dict() for k in service(request).keys.list(tenant=key.tenant)]}


@router.post(
    "",
    status_code=201,
    summary="Create an API key for the tenant (shown once)",
    responses=responses(401, 403, 422, 429),
)
def create_key(
    request: Request, body: KeyCreate, key: ApiKeyInfo = Depends(require("admin"))
) -> dict[str, Any]:
    """The response holds ``key``: store it now, it cannot be shown again."""
    secret, info = service(request).keys.create(
        scopes=body.scopes,
        tenant=key.tenant,
        name=body.name,
        rate=body.rate,
        burst=body.burst,
        created_by=f"key:{key.key_id}",
    )
    return {"key": secret, **info.to_dict()}


@router.delete(
    "/{key_id}", summary="Revoke an API key", responses=responses(401, 403, 404, 422, 429)
)
def revoke_key(
    request: Request,
    key_id: Annotated[
        str, Path(max_length=32, pattern=r"^[0-9a-f]{12}$", description="the key's id")
    ],
    key: ApiKeyInfo = Depends(require("admin")),
) -> dict[str, Any]:
    svc = service(request)
    info = svc.keys.revoke(key_id, tenant=key.tenant, by=f"key:{key.key_id}")
    return info.to_dict()

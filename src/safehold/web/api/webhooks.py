"""/v1/webhooks routes (placeholder until its helper lands)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["webhooks"])

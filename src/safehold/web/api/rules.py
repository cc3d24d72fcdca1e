"""/v1/rules routes (placeholder until its helper lands)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["rules"])

"""VEE thresholds over HTTP (under /api/v1): the built-in defaults and overrides, one
override set (audited), the thresholds in force for a meter. The abnormal events and
manual readings VEE's rules feed have their own routers (events/api.py, readings/api.py)."""
from __future__ import annotations

from typing import Literal

import psycopg
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db
from askue.headend.auth.permissions import Principal
from askue.headend.vee import overrides

router = APIRouter(tags=["vee"])


class ThresholdBody(BaseModel):
    scope: Literal["default", "resource", "model", "organisation"]
    name: str | None = Field(None, max_length=200, description="resource, model or organisation code")
    resource: str | None = Field(None, max_length=50, description="narrows an organisation override")
    settings: dict = Field(..., description="threshold: value, e.g. {\"spike_factor\": 4}")


@router.get("/vee/thresholds")
async def list_thresholds(principal: Principal = Depends(require_principal),
                          conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Built-in defaults and the stored overrides (an organisation sees its own only)."""
    return await overrides.list_overrides(conn, principal)


@router.put("/vee/thresholds")
async def set_threshold(body: ThresholdBody, principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Store one override (validated); org_admin only for its own organisation."""
    await overrides.set_override(conn, principal, body.scope, body.name, body.resource, body.settings)
    return {"scope": body.scope, "name": body.name, "resource": body.resource, "settings": body.settings}


@router.get("/meters/{code}/thresholds")
async def meter_thresholds(code: str, principal: Principal = Depends(require_principal),
                           conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """The thresholds in force for one meter after every override."""
    return await overrides.for_meter(conn, principal, code)

"""Commands over HTTP (under /api/v1): give a command to a meter or a gateway, follow it.
A thin adapter over commands/service.py; the dispatcher sends it and records the answer."""
from __future__ import annotations

from datetime import datetime

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db
from askue.headend.auth.permissions import Principal
from askue.headend.commands import service
from askue.headend.storage import meta

router = APIRouter(tags=["commands"])


class MeterCommand(BaseModel):
    command: str = Field(..., description="poll_now, read_profile, read_clock, sync_clock, relay_disconnect, "
                                          "relay_reconnect")
    start: datetime | None = Field(None, description="read_profile: from (with a UTC offset)")
    end: datetime | None = Field(None, description="read_profile: to (with a UTC offset)")
    confirm: bool = Field(False, description="relay commands are refused (409 needs_confirmation) without it")
    expires_in_s: float | None = Field(None, description="how long it may wait for the gateway and its answer "
                                                         "(default: the head-end's command_ttl_s)")


class GatewayCommand(BaseModel):
    command: str = Field(..., description="poll_now (every meter of the gateway), reload_config")
    expires_in_s: float | None = None


def _ttl(request: Request) -> float:
    return request.app.state.settings.command_ttl_s


@router.post("/meters/{code}/commands", status_code=202)
async def meter_command(code: str, body: MeterCommand, request: Request,
                        principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Queue a command for the meter's gateway (202: accepted, not yet carried out; follow it
    at /commands/{id}). Relay commands need `confirm: true`."""
    row = await service.send(conn, principal, body.command, meter=code, start=body.start, end=body.end,
                             confirm=body.confirm, expires_in_s=body.expires_in_s, default_ttl_s=_ttl(request))
    return service.as_json(row, await meta.timezone(conn))


@router.post("/gateways/{gateway_id}/commands", status_code=202)
async def gateway_command(gateway_id: str, body: GatewayCommand, request: Request,
                          principal: Principal = Depends(require_principal),
                          conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """Queue a gateway-wide command: poll every meter now, or reload the configuration."""
    row = await service.send(conn, principal, body.command, gateway=gateway_id, expires_in_s=body.expires_in_s,
                             default_ttl_s=_ttl(request))
    return service.as_json(row, await meta.timezone(conn))


@router.get("/meters/{code}/commands")
async def meter_commands(code: str, limit: int = Query(20, ge=1, le=500),
                         principal: Principal = Depends(require_principal),
                         conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    tz = await meta.timezone(conn)
    return {"items": [service.as_json(r, tz) for r in await service.list_commands(conn, principal, meter=code,
                                                                                 limit=limit)]}


@router.get("/gateways/{gateway_id}/commands")
async def gateway_commands(gateway_id: str, limit: int = Query(20, ge=1, le=500),
                           principal: Principal = Depends(require_principal),
                           conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    tz = await meta.timezone(conn)
    return {"items": [service.as_json(r, tz) for r in await service.list_commands(conn, principal,
                                                                                 gateway=gateway_id, limit=limit)]}


@router.get("/commands/{command_id}")
async def get_command(command_id: int, principal: Principal = Depends(require_principal),
                      conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    """One command: its state (pending, sent, done, failed, expired) and result."""
    return service.as_json(await service.get(conn, principal, command_id), await meta.timezone(conn))

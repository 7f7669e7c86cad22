"""Gateways: online state, version, queue depth, last seen, health."""
from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query

from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db
from askue.headend.api.pagination import decode_cursor, page
from askue.headend.auth.permissions import Principal
from askue.headend.storage.queries import gateways as gq

router = APIRouter(tags=["gateways"])


@router.get("/gateways")
async def list_gateways(cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                        principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    after = decode_cursor(cursor, 1)
    rows = await gq.list_gateways(conn, principal.scope, after[0] if after else None, limit + 1)
    return page(rows, limit, lambda r: [r["id"]])


@router.get("/gateways/{gateway_id}")
async def get_gateway(gateway_id: str, principal: Principal = Depends(require_principal),
                      conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    row = await gq.get_gateway(conn, gateway_id, principal.scope)
    if row is None:
        raise HTTPException(404, f"gateway {gateway_id!r} not found")
    return row

"""Registry lists: organisations, sites (houses), accounts (ЛС)."""
from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, Query

from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db
from askue.headend.api.pagination import decode_cursor, page
from askue.headend.auth.permissions import Principal
from askue.headend.storage.queries import registry as rq

router = APIRouter(tags=["registry"])
Limit = Annotated[int, Query(ge=1, le=1000)]


async def _page(name: str, q: str | None, cursor: str | None, limit: int, principal: Principal,
                conn: psycopg.AsyncConnection) -> dict:
    after = decode_cursor(cursor, 1)
    rows = await rq.list_registry(conn, name, principal.scope, q, after[0] if after else None, limit + 1)
    return page(rows, limit, lambda r: [r["code"]])


@router.get("/organisations")
async def organisations(q: str | None = None, cursor: str | None = None, limit: Limit = 100,
                        principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    return await _page("organisations", q, cursor, limit, principal, conn)


@router.get("/sites")
async def sites(q: str | None = None, cursor: str | None = None, limit: Limit = 100,
                principal: Principal = Depends(require_principal), conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    return await _page("sites", q, cursor, limit, principal, conn)


@router.get("/accounts")
async def accounts(q: str | None = None, cursor: str | None = None, limit: Limit = 100,
                   principal: Principal = Depends(require_principal),
                   conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    return await _page("accounts", q, cursor, limit, principal, conn)

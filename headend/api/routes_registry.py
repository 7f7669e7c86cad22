"""Registry lists: organisations, sites (houses), accounts (ЛС)."""
from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Depends, Query
from psycopg.rows import dict_row

from askue.headend.api.auth import require_principal
from askue.headend.api.deps import db
from askue.headend.api.pagination import decode_cursor, page
from askue.headend.auth.permissions import Principal

router = APIRouter(tags=["registry"])
Limit = Annotated[int, Query(ge=1, le=1000)]

_LISTS = {
    "organisations": ("SELECT o.code, o.name, o.kind, o.inn FROM organisations o", "o.id", "o.code",
                      ["o.name"]),
    "sites": ("SELECT s.code, s.kind, s.name, s.address, s.lat, s.lon, o.code AS org_code, p.code AS parent_code "
              "FROM sites s LEFT JOIN organisations o ON o.id = s.org_id LEFT JOIN sites p ON p.id = s.parent_id",
              "s.org_id", "s.code", ["s.name", "s.address"]),
    "accounts": ("SELECT a.code, a.flat, a.subscriber, a.phone, a.email, o.code AS org_code, s.code AS site_code, "
                 "s.address FROM accounts a LEFT JOIN organisations o ON o.id = a.org_id "
                 "LEFT JOIN sites s ON s.id = a.site_id", "a.org_id", "a.code", ["a.subscriber", "s.address"]),
}


async def _list(name: str, q: str | None, cursor: str | None, limit: int, principal: Principal,
                conn: psycopg.AsyncConnection) -> dict:
    base, org_col, key_col, search_cols = _LISTS[name]
    scope_sql, params = principal.scope.sql(org_col)
    conds = [scope_sql]
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append("(" + " OR ".join(f"{c} ILIKE %s" for c in [key_col, *search_cols]) + ")")
        params += [like] * (1 + len(search_cols))
    after = decode_cursor(cursor, 1)
    if after:
        conds.append(f"{key_col} > %s")
        params.append(after[0])
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"{base} WHERE {' AND '.join(conds)} ORDER BY {key_col} LIMIT %s", [*params, limit + 1])
        rows = await cur.fetchall()
    return page(rows, limit, lambda r: [r["code"]])


@router.get("/organisations")
async def organisations(q: str | None = None, cursor: str | None = None, limit: Limit = 100,
                        principal: Principal = Depends(require_principal),
                        conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    return await _list("organisations", q, cursor, limit, principal, conn)


@router.get("/sites")
async def sites(q: str | None = None, cursor: str | None = None, limit: Limit = 100,
                principal: Principal = Depends(require_principal), conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    return await _list("sites", q, cursor, limit, principal, conn)


@router.get("/accounts")
async def accounts(q: str | None = None, cursor: str | None = None, limit: Limit = 100,
                   principal: Principal = Depends(require_principal),
                   conn: psycopg.AsyncConnection = Depends(db)) -> dict:
    return await _list("accounts", q, cursor, limit, principal, conn)

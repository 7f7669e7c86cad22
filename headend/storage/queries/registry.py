"""Registry lists (organisations, sites/houses, accounts) with search, scoped to a principal."""
from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Scope

# name -> (SELECT, organisation column, key column, columns searched besides the key)
LISTS = {
    "organisations": ("SELECT o.code, o.name, o.kind, o.inn FROM organisations o", "o.id", "o.code",
                      ["o.name"]),
    "sites": ("SELECT s.code, s.kind, s.name, s.address, s.lat, s.lon, o.code AS org_code, p.code AS parent_code "
              "FROM sites s LEFT JOIN organisations o ON o.id = s.org_id LEFT JOIN sites p ON p.id = s.parent_id",
              "s.org_id", "s.code", ["s.name", "s.address"]),
    "accounts": ("SELECT a.code, a.flat, a.subscriber, a.phone, a.email, o.code AS org_code, s.code AS site_code, "
                 "s.address FROM accounts a LEFT JOIN organisations o ON o.id = a.org_id "
                 "LEFT JOIN sites s ON s.id = a.site_id", "a.org_id", "a.code", ["a.subscriber", "s.address"]),
}


async def list_registry(conn: psycopg.AsyncConnection, name: str, scope: Scope, q: str | None,
                        after_code: str | None, limit: int) -> list[dict]:
    """Rows of one registry list in code order; `q` searches the code and the named columns."""
    base, org_col, key_col, search_cols = LISTS[name]
    scope_sql, params = scope.sql(org_col)
    conds = [scope_sql]
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append("(" + " OR ".join(f"{c} ILIKE %s" for c in [key_col, *search_cols]) + ")")
        params += [like] * (1 + len(search_cols))
    if after_code is not None:
        conds.append(f"{key_col} > %s")
        params.append(after_code)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"{base} WHERE {' AND '.join(conds)} ORDER BY {key_col} LIMIT %s", [*params, limit])
        return await cur.fetchall()


async def visible_organisations(conn: psycopg.AsyncConnection, scope: Scope) -> list[dict]:
    cond, params = scope.sql("o.id")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT o.id, o.code, o.name FROM organisations o WHERE {cond} ORDER BY o.name, o.code",
                          params)
        return await cur.fetchall()


async def houses(conn: psycopg.AsyncConnection, scope: Scope, org_code: str | None = None) -> list[dict]:
    """Sites that have meters (houses, substations), for a filter."""
    cond, params = scope.sql("s.org_id")
    extra = ""
    if org_code:
        extra = " AND o.code = %s"
        params.append(org_code)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT s.code, s.name, s.address, s.kind, o.code AS org_code FROM sites s "
            f"LEFT JOIN organisations o ON o.id = s.org_id WHERE {cond}{extra} "
            "AND EXISTS (SELECT 1 FROM meters m WHERE m.site_id = s.id) ORDER BY s.address, s.code", params)
        return await cur.fetchall()

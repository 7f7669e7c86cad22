"""Accounts (ЛС) for the «Абоненты и расход» page and the account card, scoped to a principal."""
from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Scope


def _like(q: str) -> str:
    return "%" + q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_accounts(conn: psycopg.AsyncConnection, scope: Scope, q: str | None, limit: int | None,
                        offset: int = 0) -> tuple[list[dict], int]:
    """(a page of accounts ordered by subscriber, the number matching); `q` searches the
    account code, subscriber, address and the serial numbers of its meters."""
    cond, params = scope.accounts("a")
    conds = [cond]
    if q and q.strip():
        conds.append("(a.code ILIKE %s OR a.subscriber ILIKE %s OR s.address ILIKE %s OR EXISTS "
                     "(SELECT 1 FROM meters m WHERE m.account_id = a.id AND m.serial ILIKE %s))")
        params += [_like(q)] * 4
    page = "" if limit is None else " LIMIT %s OFFSET %s"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT a.id, a.code, a.flat, a.subscriber, a.phone, a.email, o.code AS org_code, o.name AS org_name, "
            "s.code AS site_code, s.address, count(*) OVER () AS total FROM accounts a "
            "LEFT JOIN organisations o ON o.id = a.org_id LEFT JOIN sites s ON s.id = a.site_id "
            f"WHERE {' AND '.join(conds)} ORDER BY a.subscriber NULLS FIRST, s.address, a.flat, a.code{page}",
            [*params, *([] if limit is None else [limit, offset])])
        rows = await cur.fetchall()
    return rows, (rows[0]["total"] if rows else 0)


async def get_account(conn: psycopg.AsyncConnection, scope: Scope, code: str) -> dict | None:
    cond, params = scope.accounts("a")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT a.id, a.code, a.flat, a.subscriber, a.phone, a.email, o.code AS org_code, o.name AS org_name, "
            "s.code AS site_code, s.address FROM accounts a LEFT JOIN organisations o ON o.id = a.org_id "
            f"LEFT JOIN sites s ON s.id = a.site_id WHERE a.code = %s AND {cond}", [code, *params])
        return await cur.fetchone()


async def meters_of(conn: psycopg.AsyncConnection, scope: Scope, account_ids: list[int]) -> list[dict]:
    """The meters of some accounts (in service first), with what the account views show."""
    cond, params = scope.meters("m")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT m.id, m.code, m.serial, m.model, m.resource, m.tariff_zones, m.status, m.is_balance, "
            "m.installed_at, m.verified_at, m.verification_due, m.decommissioned_at, m.last_contact, "
            f"m.account_id FROM meters m WHERE m.account_id = ANY(%s) AND {cond} "
            "ORDER BY m.account_id, m.status = 'decommissioned', m.resource, m.code", [account_ids, *params])
        return await cur.fetchall()

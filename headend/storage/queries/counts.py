"""Counts for the page header and the menu badges, scoped to a principal."""
from __future__ import annotations

from datetime import datetime

import psycopg

from askue.headend.auth.permissions import Scope
from askue.headend.contact import SILENT_AFTER


async def subscribers(conn: psycopg.AsyncConnection, scope: Scope) -> int:
    """Accounts (ЛС) of the principal's organisations: «Абонентов: N»."""
    cond, params = scope.sql("a.org_id")
    cur = await conn.execute(f"SELECT count(*) FROM accounts a WHERE {cond}", params)
    return (await cur.fetchone())[0]


async def silent_meters(conn: psycopg.AsyncConnection, scope: Scope, now: datetime) -> int:
    """Meters in service never heard or silent longer than the no-contact threshold."""
    cond, params = scope.sql("m.org_id")
    cur = await conn.execute(
        f"SELECT count(*) FROM meters m WHERE m.status <> 'decommissioned' "
        f"AND (m.last_contact IS NULL OR m.last_contact < %s) AND {cond}", [now - SILENT_AFTER, *params])
    return (await cur.fetchone())[0]

"""What every report needs: the organisations it covers and its days as times."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

import psycopg

from askue.headend.auth.permissions import Principal, Scope
from askue.headend.errors import Invalid
from askue.headend.reports.params import Params


async def scope_of(conn: psycopg.AsyncConnection, principal: Principal, org: str | None) -> Scope:
    """The principal's organisations, or the one chosen among them (another is refused)."""
    if org is None:
        return principal.scope
    cond, params = principal.scope.sql("id")
    cur = await conn.execute(f"SELECT id FROM organisations WHERE code = %s AND {cond}", [org, *params])
    row = await cur.fetchone()
    if row is None:
        raise Invalid("org", f"organisation {org!r} not found", "организация не найдена")
    return Scope(frozenset({row[0]}))


def bounds(p: Params, tz: tzinfo) -> tuple[datetime, datetime]:
    """The selected local days as [start, end) times."""
    return (datetime.combine(p.start, time(0), tz), datetime.combine(p.end + timedelta(days=1), time(0), tz))


def period_text(p: Params, lang: str) -> tuple[str, str]:
    label = "Период" if lang != "en" else "Period"
    return label, f"{p.start:%d.%m.%Y} – {p.end:%d.%m.%Y}"


async def org_text(conn: psycopg.AsyncConnection, p: Params, lang: str) -> tuple[str, str]:
    label = "Организация" if lang != "en" else "Organisation"
    if p.org is None:
        return label, "все доступные" if lang != "en" else "all visible"
    cur = await conn.execute("SELECT name FROM organisations WHERE code = %s", (p.org,))
    row = await cur.fetchone()
    return label, row[0] if row else p.org


def today_in(tz: tzinfo) -> date:
    return datetime.now(tz).date()

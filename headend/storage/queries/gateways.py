"""Gateways and their health, scoped to what a principal may see."""
from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Scope

_COLS = """g.id, g.name, g.online, g.version, g.started_at, g.state_at, g.last_seen, g.last_seq, g.meters,
    g.queue_depth, g.oldest_unsent_s, g.health, g.health_at,
    (SELECT count(*) FROM meters m WHERE m.gateway_id = g.id) AS meters_known"""


def visible(scope: Scope) -> tuple[str, list]:
    """The condition on `g` (gateways) for the gateways a scope sees."""
    # an organisation sees the gateways assigned to it and those that read its meters
    if scope.everything:
        return "TRUE", []
    own, p1 = scope.sql("g.org_id")
    reads, p2 = scope.sql("m.org_id")
    return f"({own} OR EXISTS (SELECT 1 FROM meters m WHERE m.gateway_id = g.id AND {reads}))", p1 + p2


async def list_gateways(conn: psycopg.AsyncConnection, scope: Scope, after: str | None,
                        limit: int) -> list[dict]:
    cond, params = visible(scope)
    extra = " AND g.id > %s" if after is not None else ""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLS} FROM gateways g WHERE {cond}{extra} ORDER BY g.id LIMIT %s",
                          [*params, *([after] if after is not None else []), limit])
        return await cur.fetchall()


async def get_gateway(conn: psycopg.AsyncConnection, gw: str, scope: Scope) -> dict | None:
    cond, params = visible(scope)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLS} FROM gateways g WHERE g.id = %s AND {cond}", [gw, *params])
        return await cur.fetchone()

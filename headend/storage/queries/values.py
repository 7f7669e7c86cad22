"""Stored values of one meter by time range, in (ts, kind, obis) order for cursor paging."""
from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from askue.headend.storage.values import TABLES


async def meter_values(conn: psycopg.AsyncConnection, meter_id: int, kinds: list[str], start: datetime | None,
                       end: datetime | None, obis: str | None, after: tuple[datetime, str, str] | None,
                       limit: int) -> list[dict]:
    parts, params = [], []
    for kind in kinds:
        table = TABLES[kind]  # kinds are validated by the caller against KINDS
        period = "period_s" if kind == "interval" else "NULL::int AS period_s"
        conds = ["meter_id = %s"]
        params.append(meter_id)
        for cond, val in (("ts >= %s", start), ("ts < %s", end), ("obis = %s", obis)):
            if val is not None:
                conds.append(cond)
                params.append(val)
        if after is not None:
            conds.append("(ts, %s::text, obis) > (%s, %s::text, %s)")
            params += [kind, after[0], after[1], after[2]]
        parts.append(f"(SELECT ts, '{kind}'::text AS kind, obis, value, ts_source, received_at, quality, reasons, "
                     f"source, gateway_id, seq, {period} FROM {table} WHERE {' AND '.join(conds)} "
                     f"ORDER BY ts, obis LIMIT %s)")
        params.append(limit)
    sql = "SELECT * FROM (" + " UNION ALL ".join(parts) + ") v ORDER BY ts, kind, obis LIMIT %s"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, [*params, limit])
        return await cur.fetchall()


async def hourly_profile(conn: psycopg.AsyncConnection, meter_id: int, start: datetime,
                         end: datetime) -> list[dict]:
    """A meter's load-profile energy per hour in [start, end) — every profile channel
    (1.0.q.29.0.255, water and heat profiles too), as the meter reported it (no multiplier),
    with the number of intervals in the hour. The interval ending on the hour belongs to the
    hour before (the rollups' rule)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT obis, hour, value, n FROM rollup_interval_hourly WHERE meter_id = %s AND hour >= %s "
            "AND hour < %s AND split_part(obis, '.', 4) = '29' ORDER BY obis, hour", (meter_id, start, end))
        return await cur.fetchall()


async def count_values(conn: psycopg.AsyncConnection, meter_id: int, kind: str, start: datetime | None,
                       end: datetime | None) -> int:
    """How many values of one kind a meter has in [start, end)."""
    table = TABLES[kind]
    conds, params = ["meter_id = %s"], [meter_id]
    for cond, val in (("ts >= %s", start), ("ts < %s", end)):
        if val is not None:
            conds.append(cond)
            params.append(val)
    cur = await conn.execute(f"SELECT count(*) FROM {table} WHERE {' AND '.join(conds)}", params)
    return (await cur.fetchone())[0]

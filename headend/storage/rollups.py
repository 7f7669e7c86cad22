"""Consumption rollups on plain PostgreSQL, kept current from newly inserted rows.

The ingest path calls `add_inserted()` inside its transaction with the rows the
batch really inserted (ON CONFLICT skipped duplicates are not there), so adding
them to the buckets is exact and replays add nothing. Late and out-of-order
rows simply land in their own bucket. Interval timestamps are the END of the
integration period (DLMS profile convention), so a bucket takes an interval by
its start, `ts - period_s`. Whoever changes stored values in place (VEE edits,
an estimate replaced by a real value) calls `recompute()` for the range.

On TimescaleDB the same relation names are views over continuous aggregates
and these functions do nothing.
"""
from __future__ import annotations

from datetime import datetime

import psycopg

# Source relation must have: meter_id, obis, kind, ts, value, period_s.
_INTERVAL_SQL = """
INSERT INTO {target} AS r (meter_id, obis, {bucket_col}, value, n)
SELECT meter_id, obis, {bucket} AS b, sum(value), count(*)
FROM {source} WHERE kind = 'interval'
GROUP BY meter_id, obis, b ORDER BY meter_id, obis, b
ON CONFLICT (meter_id, obis, {bucket_col}) DO UPDATE SET value = r.value + EXCLUDED.value, n = r.n + EXCLUDED.n
"""

_REGISTER_SQL = """
INSERT INTO {target} AS r (meter_id, obis, {bucket_col}, first_ts, first_value, last_ts, last_value, n)
SELECT meter_id, obis, {bucket} AS b, min(ts), (array_agg(value ORDER BY ts))[1],
       max(ts), (array_agg(value ORDER BY ts DESC))[1], count(*)
FROM {source} WHERE kind = 'register'
GROUP BY meter_id, obis, b ORDER BY meter_id, obis, b
ON CONFLICT (meter_id, obis, {bucket_col}) DO UPDATE SET
    first_value = CASE WHEN EXCLUDED.first_ts < r.first_ts THEN EXCLUDED.first_value ELSE r.first_value END,
    first_ts = least(r.first_ts, EXCLUDED.first_ts),
    last_value = CASE WHEN EXCLUDED.last_ts >= r.last_ts THEN EXCLUDED.last_value ELSE r.last_value END,
    last_ts = greatest(r.last_ts, EXCLUDED.last_ts),
    n = r.n + EXCLUDED.n
"""

_START = "(ts - make_interval(secs => period_s))"
INTERVAL_BUCKETS = {
    "rollup_interval_hourly": ("hour", f"(date_trunc('hour', {_START} AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s)"),
    "rollup_interval_daily": ("day", f"({_START} AT TIME ZONE %(tz)s)::date"),
    "rollup_interval_monthly": ("month", f"date_trunc('month', {_START} AT TIME ZONE %(tz)s)::date"),
}
REGISTER_BUCKETS = {
    "rollup_register_daily": ("day", "(ts AT TIME ZONE %(tz)s)::date"),
    "rollup_register_monthly": ("month", "date_trunc('month', ts AT TIME ZONE %(tz)s)::date"),
}


_PREV_SQL = """
UPDATE {target} r SET prev_value = p.v FROM (
    SELECT k.meter_id, k.obis, k.b,
           (SELECT x.last_value FROM {target} x WHERE x.meter_id = k.meter_id AND x.obis = k.obis
              AND x.{col} < k.b ORDER BY x.{col} DESC LIMIT 1) AS v
    FROM (SELECT DISTINCT meter_id, obis, b FROM t
          UNION
          SELECT t.meter_id, t.obis, n.{col} FROM (SELECT DISTINCT meter_id, obis, b FROM t) t
          CROSS JOIN LATERAL (SELECT x.{col} FROM {target} x WHERE x.meter_id = t.meter_id AND x.obis = t.obis
                              AND x.{col} > t.b ORDER BY x.{col} LIMIT 1) n) k
) p
WHERE r.meter_id = p.meter_id AND r.obis = p.obis AND r.{col} = p.b AND r.prev_value IS DISTINCT FROM p.v
"""


async def fix_prev(conn: psycopg.AsyncConnection, source: str, tz: str) -> None:
    """Refresh prev_value of the register buckets `source`'s rows touched, and of the bucket after each.

    A new row can change its bucket's last reading (the next bucket's prev) or create a
    bucket (its own prev, and the next one's). `source` has meter_id, obis, kind, ts.
    """
    for target, (col, bucket) in REGISTER_BUCKETS.items():
        await conn.execute(
            f"WITH t AS (SELECT meter_id, obis, {bucket} AS b FROM {source} WHERE kind = 'register') "
            + _PREV_SQL.format(target=target, col=col), {"tz": tz})


def statements(kind: str, source: str) -> list[str]:
    """Rollup upserts fed from `source` for one kind (parameter %(tz)s); usable as CTEs of the merge."""
    if kind == "interval":
        return [_INTERVAL_SQL.format(target=t, bucket_col=c, bucket=b, source=source)
                for t, (c, b) in INTERVAL_BUCKETS.items()]
    if kind == "register":
        return [_REGISTER_SQL.format(target=t, bucket_col=c, bucket=b, source=source)
                for t, (c, b) in REGISTER_BUCKETS.items()]
    return []


async def add_inserted(conn: psycopg.AsyncConnection, source: str, tz: str) -> None:
    """Add rows of `source` (a temp table of newly inserted values) to every rollup."""
    for target, (col, bucket) in INTERVAL_BUCKETS.items():
        await conn.execute(_INTERVAL_SQL.format(target=target, bucket_col=col, bucket=bucket, source=source),
                           {"tz": tz})
    for target, (col, bucket) in REGISTER_BUCKETS.items():
        await conn.execute(_REGISTER_SQL.format(target=target, bucket_col=col, bucket=bucket, source=source),
                           {"tz": tz})


async def recompute(conn: psycopg.AsyncConnection, meter_id: int, obis: str, start: datetime, end: datetime,
                    tz: str) -> None:
    """Rebuild every bucket of one channel touching [start, end) from the stored values.

    For changes made in place (edits, estimates replaced); inserts go through add_inserted().
    """
    mode = await (await conn.execute("SELECT value FROM askue_meta WHERE key = 'storage_mode'")).fetchone()
    if mode and mode[0] == "timescale":
        return  # continuous aggregates follow the data by themselves (refresh policy, real-time part)
    # whole local months, so every bucket rebuilt is rebuilt from complete data
    lo_row = await (await conn.execute(
        "SELECT date_trunc('month', %(s)s AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s, "
        "(date_trunc('month', %(e)s AT TIME ZONE %(tz)s) + interval '1 month') AT TIME ZONE %(tz)s",
        {"s": start, "e": end, "tz": tz})).fetchone()
    lo, hi = lo_row
    async with conn.transaction():  # the temp table empties at commit: keep it in one transaction
        p = {"m": meter_id, "o": obis, "lo": lo, "hi": hi, "tz": tz}
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS _recompute (meter_id bigint, obis text, kind text, "
                           "ts timestamptz, value double precision, period_s integer) ON COMMIT DELETE ROWS")
        await conn.execute("DELETE FROM _recompute")
        await conn.execute(
            "INSERT INTO _recompute SELECT meter_id, obis, 'interval', ts, value, period_s FROM intervals "
            "WHERE meter_id = %(m)s AND obis = %(o)s AND ts - make_interval(secs => period_s) >= %(lo)s "
            "AND ts - make_interval(secs => period_s) < %(hi)s "
            "UNION ALL SELECT meter_id, obis, 'register', ts, value, NULL FROM register_readings "
            "WHERE meter_id = %(m)s AND obis = %(o)s AND ts >= %(lo)s AND ts < %(hi)s", p)
        for target, (col, _bucket) in {**INTERVAL_BUCKETS, **REGISTER_BUCKETS}.items():
            bounds = ("%(lo)s", "%(hi)s") if col == "hour" else \
                ("(%(lo)s AT TIME ZONE %(tz)s)::date", "(%(hi)s AT TIME ZONE %(tz)s)::date")
            await conn.execute(f"DELETE FROM {target} WHERE meter_id = %(m)s AND obis = %(o)s "
                               f"AND {col} >= {bounds[0]} AND {col} < {bounds[1]}", p)
        await add_inserted(conn, "_recompute", tz)
        await fix_prev(conn, "_recompute", tz)

"""Keep the storage engineer's derived structures right when billing writes values
itself (manual readings, imported files): month partitions exist before the insert
(plain PostgreSQL mode), consumption rollups are rebuilt for what was touched (both
modes: register rollups are kept by triggers there too)."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import psycopg


async def _mode_tz(conn: psycopg.AsyncConnection) -> tuple[str, str]:
    cur = await conn.execute("SELECT key, value FROM askue_meta WHERE key IN ('storage_mode', 'timezone')")
    meta = dict(await cur.fetchall())
    return meta.get("storage_mode", "plain"), meta.get("timezone", "Europe/Moscow")


async def ensure_partitions(conn: psycopg.AsyncConnection, table: str, stamps: Iterable[datetime]) -> None:
    mode, _ = await _mode_tz(conn)
    if mode != "plain":
        return
    for month in sorted({t.astimezone(UTC).date().replace(day=1) for t in stamps}):
        await conn.execute("SELECT askue_ensure_month_partition(%s, %s)", (table, month))


async def refresh_rollups(conn: psycopg.AsyncConnection, rows: Iterable[tuple[int, str, datetime]]) -> None:
    """Rebuild the rollup buckets of every (meter, channel) in `rows` over the range touched."""
    try:
        from askue.headend.storage import rollups
    except ImportError:  # storage without rollups: nothing to keep current
        return
    spans: dict[tuple[int, str], tuple[datetime, datetime]] = {}
    for mid, obis, ts in rows:
        lo, hi = spans.get((mid, obis), (ts, ts))
        spans[(mid, obis)] = (min(lo, ts), max(hi, ts))
    for (mid, obis), (lo, hi) in spans.items():
        await rollups.recompute(conn, mid, obis, lo, hi)

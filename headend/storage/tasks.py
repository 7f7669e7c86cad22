"""The storage background task (BACKGROUND_TASKS): fold the signed changes writers
append to rollup_consumption_pending into rollup_consumption_daily, so the daily
consumption screens read a few rows per house and day (migration 0007); and once a month
has ended, fold its daily register buckets into the monthly rollup (migration 0052: the
ingest keeps only days for the months still open)."""
from __future__ import annotations

import asyncio
import logging

import psycopg

log = logging.getLogger(__name__)


async def compact_consumption(conn: psycopg.AsyncConnection) -> int:
    """One compaction pass in its own transaction; returns the pending rows folded."""
    async with conn.transaction():
        cur = await conn.execute("SELECT askue_consumption_compact()")
        return (await cur.fetchone())[0]


async def close_months(conn: psycopg.AsyncConnection) -> int:
    """Fold every ended month still open into the monthly register rollup, in its own
    transaction; returns the monthly buckets written (0 on almost every call)."""
    async with conn.transaction():
        cur = await conn.execute("SELECT askue_rollup_close_months()")
        n = (await cur.fetchone())[0]
    if n:
        log.info("register rollups: %d monthly buckets folded from the days of the months that ended", n)
    return n


async def rollup_task(pool, settings, interval_s: float = 5) -> None:
    while True:
        try:
            async with pool.connection() as conn:
                await compact_consumption(conn)
                await close_months(conn)
        except psycopg.OperationalError as e:
            log.warning("consumption rollup compaction: database unavailable (%s); next try in %.0fs", e, interval_s)
        except Exception:
            log.exception("consumption rollup compaction failed; next try in %.0fs", interval_s)
        await asyncio.sleep(interval_s)

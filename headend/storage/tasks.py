"""The storage background task (BACKGROUND_TASKS): fold the signed changes writers
append to rollup_consumption_pending into rollup_consumption_daily, so the daily
consumption screens read a few rows per house and day (migration 0007)."""
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


async def rollup_task(pool, settings, interval_s: float = 5) -> None:
    while True:
        try:
            async with pool.connection() as conn:
                await compact_consumption(conn)
        except psycopg.OperationalError as e:
            log.warning("consumption rollup compaction: database unavailable (%s); next try in %.0fs", e, interval_s)
        except Exception:
            log.exception("consumption rollup compaction failed; next try in %.0fs", interval_s)
        await asyncio.sleep(interval_s)

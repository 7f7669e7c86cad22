"""The billing background task (BACKGROUND_TASKS): prune the feed's change log and turn
changes to closed months into recalculation records without anyone having to ask."""
from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import psycopg

from . import feed, snapshots

log = logging.getLogger(__name__)

AUTHOR = "askue"
REASON = "показания изменились после закрытия периода / readings changed after the period was closed"


async def auto_recalculate(conn: psycopg.AsyncConnection, since: datetime,
                           lookback: timedelta = snapshots.LOOKBACK) -> list[dict]:
    """Recalculate every closed month whose register readings changed after `since`
    (the feed's change log says which). Records only real differences."""
    cur = await conn.execute(
        """SELECT p.org_id, p.month FROM billing_periods p
           WHERE p.state = 'closed' AND EXISTS (
               SELECT 1 FROM billing_changes c
               CROSS JOIN LATERAL unnest(c.meter_ids, c.ts) AS k(meter_id, ts)
               JOIN meters m ON m.id = k.meter_id
               WHERE c.at >= %s AND m.org_id = p.org_id
                 AND k.ts >= p.month::timestamp AT TIME ZONE 'UTC' - %s - interval '1 day'
                 AND k.ts < (p.month + interval '1 month')::timestamp AT TIME ZONE 'UTC' + %s + interval '1 day')
           ORDER BY p.month""", (since, lookback, lookback))
    made: list[dict] = []
    for org_id, month in await cur.fetchall():
        made += await snapshots.recalculate(conn, org_id, month, AUTHOR, REASON)
    return made


async def billing_task(pool, settings, interval_s: float = 600) -> None:
    last = datetime.now(UTC) - timedelta(days=1)
    while True:
        started = datetime.now(UTC)
        try:
            async with pool.connection() as conn:
                await conn.set_autocommit(True)
                pruned = await feed.prune(conn)
                made = await auto_recalculate(conn, last - timedelta(minutes=5))  # overlap: commits lag `at`
                if pruned or made:
                    log.info("billing: pruned %d change-log entries, %d recalculation record(s)", pruned, len(made))
            last = started
        except Exception:  # keep the head-end running; the next round retries from the same point
            log.exception("billing background task failed")
        await asyncio.sleep(interval_s)

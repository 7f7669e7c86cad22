"""Consumption rollups: who keeps them, and the one call for changes made in place.

Plain PostgreSQL: statement triggers on register_readings and intervals add every
inserted row to the hourly/daily/monthly rollups once per statement (migration
0007: `askue_rollup_registers_added`, `askue_rollup_intervals_added`), so every writer — the ingest COPY, the ON CONFLICT
merge, manual readings, estimates, file imports — keeps them current, and rows an
ON CONFLICT DO NOTHING skipped add nothing. Late and out-of-order rows land in their
own bucket; each register bucket keeps the previous bucket's last reading
(prev_value) beside it, and the daily consumption per organisation and house
(rollup_consumption_daily) follows the daily register rollup by its own triggers.

TimescaleDB: the register rollups and the daily consumption are the same tables
kept by the same triggers (migration 0020; hypertables take statement triggers with
transition tables); the interval rollups are views over continuous aggregates, which
their refresh policy keeps current (real-time aggregation above the watermark).

Monthly register buckets are kept for closed months only (migration 0052): the open
months (from rollup_register_months.open_from) live in the daily rollup, which the
consumption queries sum by month, and the storage task (tasks.close_months) folds a month
from its days once it has ended.

Whoever changes or deletes stored values in place (VEE edits, an estimate replaced
by a real value) calls `recompute()` for the range.
"""
from __future__ import annotations

from datetime import datetime

import psycopg


async def recompute(conn: psycopg.AsyncConnection, meter_id: int, obis: str, start: datetime,
                    end: datetime) -> None:
    """Rebuild every bucket of one channel in the whole local months around [start, end]
    (local to the database's time zone, fixed at its first migration)."""
    await conn.execute("SELECT askue_rollup_rebuild(%s, %s, %s, %s)", (meter_id, obis, start, end))

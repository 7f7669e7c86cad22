"""Benchmark: cost of the billing feed's change-log trigger on register inserts, and the
feed's paging rate. Prints one JSON object.

    .venv/bin/python bench/headend_billing_feed.py [--rows 200000]

Starts its own PostgreSQL in a temporary directory. Inserts `rows` register readings in
statements of 2,000 (as an ingest merge does) with the billing trigger disabled
(baseline), enabled, and disabled again (the two baselines bracket the measured run on
this noisy machine), then pages the whole feed with pages of 5,000. Other triggers on
register_readings (VEE's) are disabled in all runs so only the billing trigger is measured.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path

import psycopg

from askue.devservices.postgres import PgCluster, timescaledb_installed
from askue.headend.billing import feed
from askue.headend.storage.migrations import apply

BATCH = 2000


def trigger_share(dsn: str, rows: int, offset: int) -> tuple[float, float]:
    """Server-side time of the inserts and of the billing trigger within them, from
    EXPLAIN ANALYZE of the same statements: a same-run figure that machine load does not
    skew the way wall-clock rates between runs are skewed."""
    total = trig = 0.0
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("ALTER TABLE register_readings DISABLE TRIGGER USER")
        c.execute("ALTER TABLE register_readings ENABLE TRIGGER billing_changes_ins")
        for b in range(rows // BATCH):
            plan = c.execute("""EXPLAIN (ANALYZE, FORMAT JSON) INSERT INTO register_readings
                                    (meter_id, obis, ts, received_at, value)
                                SELECT (g %% 1000) + 1, '1.0.1.8.0.255',
                                       timestamptz '2024-01-01' + make_interval(secs => g + %s), now(), g
                                FROM generate_series(1, %s) g ON CONFLICT DO NOTHING""",
                             (offset + b * BATCH, BATCH)).fetchone()[0][0]
            total += plan["Execution Time"]
            trig += sum(t["Time"] for t in plan.get("Triggers", []) if t["Trigger Name"] == "billing_changes_ins")
    return total, trig


def insert_rate(dsn: str, rows: int, offset: int, billing_trigger: bool) -> float:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("ALTER TABLE register_readings DISABLE TRIGGER USER")
        if billing_trigger:
            c.execute("ALTER TABLE register_readings ENABLE TRIGGER billing_changes_ins")
        c.execute("SELECT askue_ensure_month_partition('register_readings', '2024-01-01')")
        t = time.perf_counter()
        for b in range(rows // BATCH):
            c.execute("""INSERT INTO register_readings (meter_id, obis, ts, received_at, value)
                         SELECT (g %% 1000) + 1, '1.0.1.8.0.255', timestamptz '2024-01-01' + make_interval(secs => g + %s),
                                now(), g
                         FROM generate_series(1, %s) g ON CONFLICT DO NOTHING""", (offset + b * BATCH, BATCH))
        return rows / (time.perf_counter() - t)


async def page_rate(dsn: str, limit: int = 5000) -> tuple[int, float]:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    cursor, n, t = feed.Cursor(), 0, time.perf_counter()
    while True:
        page = await feed.fetch_page(conn, cursor, limit=limit)
        n += len(page.items)
        cursor = feed.Cursor.decode(page.next_cursor)
        if not page.has_more:
            break
    await conn.close()
    return n, n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="askue-bench-"))
    tmp.chmod(0o755)
    modes = ["plain", "timescale"] if timescaledb_installed() else ["plain"]
    cluster = PgCluster(tmp / "pg", timescaledb="timescale" in modes)
    cluster.start()
    try:
        figures, notes = [], []
        for mode in modes:
            # plain PostgreSQL logs a statement's rows from its transition table; TimescaleDB, by a row trigger
            where = "TimescaleDB (row trigger)" if mode == "timescale" else "plain PostgreSQL (statement trigger)"
            dsn, bare = cluster.create_database(f"bench_{mode}"), cluster.create_database(f"bare_{mode}")
            for d in (dsn, bare):
                apply(d, mode=mode)
                with psycopg.connect(d, autocommit=True) as c:
                    c.execute("INSERT INTO meters (code) SELECT 'm' || g FROM generate_series(1, 1000) g")
            # the baseline's database has no billing trigger at all: on a hypertable, DISABLE TRIGGER
            # does not reach the row triggers its chunks carry
            with psycopg.connect(bare, autocommit=True) as c:
                c.execute("DROP TRIGGER billing_changes_ins ON register_readings")
            base1 = insert_rate(bare, args.rows, 0, False)
            with_trigger = insert_rate(dsn, args.rows, 10_000_000, True)
            base2 = insert_rate(bare, args.rows, 20_000_000, False)
            total_ms, trigger_ms = trigger_share(dsn, args.rows, 30_000_000)
            delivered, feed_rate = asyncio.run(page_rate(dsn))
            baseline = (base1 + base2) / 2
            figures += [
                {"name": f"{where}: register inserts with the billing change-log trigger",
                 "value": round(with_trigger), "unit": "rows/s", "baseline": round(baseline),
                 "baseline_name": "same inserts, no billing trigger", "ratio": round(with_trigger / baseline, 3)},
                {"name": f"{where}: server time share of the billing trigger", "value": round(trigger_ms / total_ms, 3),
                 "unit": "of insert time", "baseline": round(total_ms), "baseline_name": "server ms for the inserts"},
                {"name": f"{where}: billing feed paging rate (pages of 5,000)", "value": round(feed_rate),
                 "unit": "rows/s"},
            ]
            notes.append(f"{mode}: {delivered} feed rows delivered")
        print(json.dumps({"name": "headend_billing_feed", "figures": figures,
                          "notes": f"{args.rows} register rows in statements of {BATCH}; " + "; ".join(notes)
                                   + "; other triggers (rollups, VEE) disabled so only the billing trigger is "
                                     "measured"}))
    finally:
        cluster.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

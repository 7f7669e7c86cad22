"""The meter table «Абоненты и приборы учёта» for an organisation of 1,000 meters (of
10,000): p95 latency of a page of 25 in address order, sorted by the latest reading's time
(a probe of every meter's main register), all 1,000 rows with their readings per tariff,
and the page header's counts — next to the API's plain meter list (100 rows, no readings)
measured in the same run as the baseline.

Loaded: 10 organisations × 1,000 meters (100 houses each of 10 accounts), two-tariff
electricity meters with A+ total, T1 and T2 read once a day for 60 days (1.8 M rows), 5 % of
meters silent for a week, one open event per 50 meters. Storage mode: TimescaleDB where
installed, else plain PostgreSQL (ASKUE_BENCH_MODE overrides).
Env: ASKUE_BENCH_METERS (default 10000), ASKUE_BENCH_RUNS (default 30).
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from askue.devservices.postgres import PgCluster, timescaledb_installed
from askue.headend.auth.permissions import Scope
from askue.headend.storage import migrations
from askue.headend.storage.queries import counts
from askue.headend.storage.queries import meter_table as mt
from askue.headend.storage.queries import meters as mq

METERS = int(os.environ.get("ASKUE_BENCH_METERS", "10000"))
RUNS = int(os.environ.get("ASKUE_BENCH_RUNS", "30"))
DAYS = 60

LOAD = """
INSERT INTO organisations (code, name) SELECT 'org' || o, 'УК ' || o FROM generate_series(1, %(orgs)s::int) o;
INSERT INTO sites (code, org_id, address) SELECT 'h' || h, 1 + (h - 1) / 100, 'ул. Тестовая, ' || h
    FROM generate_series(1, %(houses)s::int) h;
INSERT INTO accounts (code, org_id, site_id, flat, subscriber) SELECT 'LS' || a, 1 + (a - 1) / 1000,
    1 + (a - 1) / 10, (a %% 10)::text, 'Абонент ' || a FROM generate_series(1, %(meters)s::int) a;
INSERT INTO meters (code, serial, model, resource, org_id, site_id, account_id, digits, tariff_zones, status,
                    installed_at, verified_at, verification_due, last_contact)
    SELECT 'm' || m, 'S' || m, 'Меркурий 234', 'electricity', 1 + (m - 1) / 1000, 1 + (m - 1) / 10, m, 6, 2,
           'active', date '2024-01-10', date '2024-01-10', date '2040-01-10',
           now() - CASE WHEN m %% 20 = 0 THEN interval '7 days' ELSE interval '10 minutes' END
    FROM generate_series(1, %(meters)s::int) m;
INSERT INTO abnormal_events (kind, severity, meter_id, org_id, title, dedup_key)
    SELECT 'no_contact', 'warning', m, 1 + (m - 1) / 1000, 'Нет связи', 'b' || m
    FROM generate_series(1, %(meters)s::int, 50) m;
"""
READINGS = """
INSERT INTO register_readings (meter_id, obis, ts, received_at, value, gateway_id)
SELECT m, '1.0.1.8.' || z || '.255', now() - d * interval '1 day', now() - d * interval '1 day',
       1000 + (%(days)s - d) * CASE z WHEN 0 THEN 10 WHEN 1 THEN 6 ELSE 4 END, 'gw1'
FROM generate_series(%(lo)s::int, %(hi)s::int) m, generate_series(0, 2) z, generate_series(0, %(days)s - 1) d
"""


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) >= 2 else xs[0]


async def timed(fn, runs: int) -> float:
    out = []
    for i in range(runs):
        t0 = time.perf_counter()
        await fn(i)
        out.append((time.perf_counter() - t0) * 1000)
    return p95(out)


async def measure(dsn: str) -> dict:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    orgs = max(1, METERS // 1000)
    now = datetime.now(UTC)

    def scope(i: int) -> Scope:
        return Scope(frozenset({1 + i % orgs}))

    async def page25(i):
        await mt.meter_table(conn, scope(i), mt.MeterTableQuery(), now)

    async def by_reading(i):
        await mt.meter_table(conn, scope(i), mt.MeterTableQuery(sort="reading_time", desc=True), now)

    async def everything(i):
        await mt.meter_table(conn, scope(i), mt.MeterTableQuery(limit=None), now)

    async def header(i):
        await counts.subscribers(conn, scope(i))
        await counts.silent_meters(conn, scope(i), now)

    async def baseline(i):
        await mq.list_meters(conn, mq.MeterFilter(), scope(i), None, 100)

    for fn in (page25, baseline):  # warm the caches once
        await fn(0)
    figures = {"page25": await timed(page25, RUNS), "by_reading": await timed(by_reading, RUNS),
               "all_rows": await timed(everything, max(5, RUNS // 3)), "header": await timed(header, RUNS),
               "baseline": await timed(baseline, RUNS)}
    await conn.close()
    return figures


def main() -> None:
    mode = os.environ.get("ASKUE_BENCH_MODE") or ("timescale" if timescaledb_installed() else "plain")
    with tempfile.TemporaryDirectory(prefix="askue-bench-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        cluster = PgCluster(tmp / "pg", timescaledb=mode == "timescale")
        cluster.start()
        try:
            dsn = cluster.create_database("meter_table")
            # storage's own migrations: the table reads meters, accounts, houses, readings and events
            migrations.apply(dsn, max_number=99, timezone="Europe/Moscow", mode=mode)
            with psycopg.connect(dsn, autocommit=True) as c:
                for stmt in LOAD.split(";")[:-1]:
                    c.execute(stmt, {"orgs": max(1, METERS // 1000), "houses": max(1, METERS // 10),
                                     "meters": METERS})
                for lo in range(1, METERS + 1, 1000):
                    c.execute(READINGS, {"lo": lo, "hi": min(lo + 999, METERS), "days": DAYS})
                c.execute("ANALYZE")
            f = asyncio.run(measure(dsn))
        finally:
            cluster.stop("immediate")
    base = f["baseline"]
    figures = [{"name": f"meter table, {label} (p95)", "value": round(f[key], 1), "unit": "ms",
                "baseline": round(base, 1), "baseline_name": "API meter list, 100 rows (p95)",
                "ratio": round(f[key] / base, 1) if base else None}
               for key, label in (("page25", "page of 25 by address"), ("by_reading", "25 by latest reading"),
                                  ("all_rows", "all 1,000 rows with readings"), ("header", "header counts"))]
    print(json.dumps({"name": "headend_meter_table", "figures": figures,
                      "notes": f"{METERS} meters, {orgs_note()}; storage mode {mode}"}))


def orgs_note() -> str:
    return f"{max(1, METERS // 1000)} organisations of 1,000, 3 registers × {DAYS} daily readings"


if __name__ == "__main__":
    main()

"""Daily consumption of an organisation of 1,000 meters over a month, p95 latency.

Loaded first: 10,000 meters (10 organisations × 1,000, 100 houses each of 10
accounts) × 31 days of half-hourly A+ register readings = 14.9 M rows in
register_readings (plain PostgreSQL mode, monthly partition), inserted 500
meters per statement so the tables' own triggers build the per-meter rollups
and the organisation/house daily consumption exactly as for ingest, then the
head-end's compaction pass folds the latter (askue_consumption_compact).
Measured: the API's consumption query (askue.headend.storage.queries.consumption)
for one organisation by day over the month, rotating organisations. Baselines in
the same run: the same figures straight from register_readings without rollups,
and summed from the per-meter daily rollups (the query's path for other levels).
Storage migrations only (0001–0099): VEE's and billing's insert triggers would
make loading take far longer and do not touch this read path.
Env: ASKUE_BENCH_METERS (default 10000), ASKUE_BENCH_RUNS (default 40).
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from askue.devservices.postgres import PgCluster
from askue.headend.auth.permissions import Scope
from askue.headend.storage import migrations
from askue.headend.storage.queries import consumption as cq

METERS = int(os.environ.get("ASKUE_BENCH_METERS", "10000"))
RUNS = int(os.environ.get("ASKUE_BENCH_RUNS", "40"))
PER_ORG = min(1000, METERS)
TZ = "Europe/Moscow"

LOAD = """
INSERT INTO organisations (code, name) SELECT 'org' || o, 'УК ' || o FROM generate_series(1, %(orgs)s::int) o;
INSERT INTO sites (code, org_id, address) SELECT 'h' || h, 1 + (h - 1) / 100, 'ул. Тестовая, ' || h
    FROM generate_series(1, %(houses)s::int) h;
INSERT INTO accounts (code, org_id, site_id) SELECT 'LS' || a, 1 + (a - 1) / 1000, 1 + (a - 1) / 10
    FROM generate_series(1, %(meters)s::int) a;
INSERT INTO meters (code, resource, org_id, site_id, account_id, digits, status)
    SELECT 'm' || m, 'electricity', 1 + (m - 1) / 1000, 1 + (m - 1) / 10, m, 6, 'active'
    FROM generate_series(1, %(meters)s::int) m;
"""
READINGS = """
INSERT INTO register_readings (meter_id, obis, ts, received_at, value, gateway_id)
SELECT m, '1.0.1.8.0.255', t, t + interval '7 s', 1000 + m %% 97 + k * (0.05 + (m %% 13) * 0.01), 'gw' || (m %% 50)
FROM generate_series(%(lo)s::int, %(hi)s::int) m,
     LATERAL (SELECT k, timestamptz '2026-03-01 00:30+03' + (k - 1) * interval '30 min' AS t
              FROM generate_series(1, 31 * 48) k) s
"""
# The same daily figures without rollups: last reading per local day from the raw table.
RAW = """
WITH last AS (
    SELECT DISTINCT ON (r.meter_id, d) r.meter_id, (r.ts AT TIME ZONE %(tz)s)::date AS d, r.value
    FROM register_readings r JOIN meters m ON m.id = r.meter_id
    WHERE m.org_id = (SELECT id FROM organisations WHERE code = %(org)s) AND r.obis = '1.0.1.8.0.255'
      AND r.ts >= (%(start)s::date - 1)::timestamp AT TIME ZONE %(tz)s AND r.ts < %(end)s::timestamp AT TIME ZONE %(tz)s
    ORDER BY r.meter_id, d, r.ts DESC
), delta AS (
    SELECT d, value - lag(value) OVER (PARTITION BY meter_id ORDER BY d) AS v FROM last
)
SELECT d, sum(v) FROM delta WHERE d >= %(start)s AND v IS NOT NULL GROUP BY d ORDER BY d
"""


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) >= 20 else max(xs)


async def measure(dsn: str, orgs: int) -> tuple[list[float], list[float], list[float], bool]:
    fast, raw, per_meter = [], [], []
    same = True
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        for i in range(RUNS):
            org = f"org{1 + i % orgs}"
            q = cq.ConsumptionQuery(level="organisation", key=org, granularity="day", start=date(2026, 3, 1),
                                    end=date(2026, 4, 1))
            t = time.perf_counter()
            rows = await cq.consumption(conn, q, Scope(None))
            fast.append(time.perf_counter() - t)
            async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                t = time.perf_counter()
                await cur.execute("SELECT set_config('work_mem', '64MB', true)")
                await cur.execute(cq._sql(q, "TRUE"), {"key": org, "start": q.start, "end": q.end, "resource": None,
                                                       "is_balance": False})
                slow = await cur.fetchall()
                per_meter.append(time.perf_counter() - t)
            same &= len(slow) == len(rows) and all(
                a["bucket"] == b["bucket"] and a["meters"] == b["meters"]
                and abs(a["value"] - b["value"]) < 1e-6 * max(1, abs(b["value"])) for a, b in zip(rows, slow, strict=False))
            if i < max(4, RUNS // 4):  # the baseline is slow: fewer runs
                t = time.perf_counter()
                cur = await conn.execute(RAW, {"org": org, "tz": TZ, "start": date(2026, 3, 2),
                                               "end": date(2026, 4, 1)})
                base = await cur.fetchall()
                raw.append(time.perf_counter() - t)
                # same figures from 2 March on (the rollup query also counts 1 March from its first reading)
                mine = {r["bucket"]: r["value"] for r in rows if r["bucket"] >= date(2026, 3, 2)}
                same &= len(base) == len(mine) and all(abs(mine[d] - v) < 1e-6 * max(1, abs(v)) for d, v in base)
            await conn.rollback()
    return fast, raw, per_meter, same


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="askue-bench-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        cluster = PgCluster(tmp / "pg")
        cluster.start()
        try:
            dsn = cluster.create_database("cons")
            migrations.apply(dsn, max_number=99, timezone=TZ)
            orgs = max(1, METERS // PER_ORG)
            t0 = time.perf_counter()
            with psycopg.connect(dsn, autocommit=True) as conn:
                for stmt in LOAD.split(";")[:-1]:
                    conn.execute(stmt, {"orgs": orgs, "houses": -(-METERS // 10), "meters": METERS})
                conn.execute("SELECT askue_ensure_month_partition('register_readings', '2026-03-01')")
                conn.execute("SELECT askue_ensure_month_partition('register_readings', '2026-02-01')")
                for lo in range(1, METERS + 1, 500):
                    conn.execute(READINGS, {"lo": lo, "hi": min(METERS, lo + 499)})
                folded = conn.execute("SELECT askue_consumption_compact()").fetchone()[0]
                conn.execute("VACUUM ANALYZE")
                rows = conn.execute("SELECT count(*) FROM register_readings").fetchone()[0]
            load_s = time.perf_counter() - t0
            fast, raw, per_meter, same = asyncio.run(measure(dsn, orgs))
        finally:
            cluster.stop("immediate")
    fp95, rp95, mp95 = p95(fast) * 1000, p95(raw) * 1000, p95(per_meter) * 1000
    print(json.dumps({
        "name": "headend_consumption_query",
        "figures": [
            {"name": "daily consumption, organisation of 1,000 meters, one month: p95", "value": round(fp95, 1),
             "unit": "ms", "baseline": round(rp95, 1), "baseline_name": "same figures from raw register_readings",
             "ratio": round(rp95 / fp95, 1), "target": "<= 100 ms", "ok": fp95 <= 100 and same},
            {"name": "same, against summing the per-meter daily rollups", "value": round(fp95, 1), "unit": "ms",
             "baseline": round(mp95, 1), "baseline_name": "per-meter daily rollups of the organisation's meters",
             "ratio": round(mp95 / fp95, 1)},
        ],
        "notes": f"{METERS} meters x 31 days half-hourly = {rows} readings loaded through the value tables' "
                 f"triggers in {load_s:.0f} s ({folded} pending consumption rows folded); {len(fast)} runs "
                 f"(median {statistics.median(fast) * 1000:.1f} ms), baseline {len(raw)} runs; figures equal to the "
                 f"baselines: {same}",
    }))


if __name__ == "__main__":
    main()

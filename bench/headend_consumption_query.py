"""Consumption of an organisation of 1,000 meters: a month by day, month and year totals, p95
latency, on plain PostgreSQL and on TimescaleDB (when installed), each next to baselines
measured in the same run.

Loaded per storage mode: 10,000 meters (10 organisations × 1,000, 100 houses each of 10
accounts); March 2026 as half-hourly A+ register readings (14.9 M rows) and the eleven
months before it as one reading a day at local midnight (3.3 M rows), inserted 500
meters per statement so the tables' own triggers build the per-meter rollups and the
organisation/house daily consumption exactly as for ingest; then the head-end's
compaction pass folds the latter (askue_consumption_compact), and on TimescaleDB the
compression policy compresses every chunk older than 60 days (all of it).
Measured: the API's consumption query (askue.headend.storage.queries.consumption) for
one organisation, rotating organisations — by day over March, the March total
(granularity month) and the totals of 2025 and 2026 (granularity year). Baselines in the
same run: the same figures straight from register_readings without rollups, and the
daily figures summed from the per-meter daily rollups (the query's path for other levels).
Storage migrations only (0001–0099): VEE's and billing's insert triggers would make
loading take far longer and do not touch this read path.
Env: ASKUE_BENCH_METERS (default 10000), ASKUE_BENCH_RUNS (default 40),
ASKUE_BENCH_MODES (default: plain and, where installed, timescale).
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from askue.devservices.postgres import PgCluster
from askue.headend.auth.permissions import Scope
from askue.headend.storage import migrations
from askue.headend.storage.queries import consumption as cq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.lib.pg import modes_from_env, temp_cluster  # noqa: E402

METERS = int(os.environ.get("ASKUE_BENCH_METERS", "10000"))
RUNS = int(os.environ.get("ASKUE_BENCH_RUNS", "40"))
PER_ORG = min(1000, METERS)
TZ = "Europe/Moscow"
DAILY_DAYS = 334  # 2025-04-01 .. 2026-02-28, one reading a day

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
# A meter uses 48 × (0.05 + (m % 13) × 0.01) kWh a day, evenly; March half-hourly, before it daily.
READINGS = """
INSERT INTO register_readings (meter_id, obis, ts, received_at, value, gateway_id)
SELECT m, '1.0.1.8.0.255', t, t + interval '7 s', 20000 + m %% 97 + k * (0.05 + (m %% 13) * 0.01), 'gw' || (m %% 50)
FROM generate_series(%(lo)s::int, %(hi)s::int) m,
     LATERAL (SELECT k, timestamptz '2026-03-01 00:30+03' + (k - 1) * interval '30 min' AS t
              FROM generate_series(1, 31 * 48) k) s
"""
DAILY = """
INSERT INTO register_readings (meter_id, obis, ts, received_at, value, gateway_id)
SELECT m, '1.0.1.8.0.255', timestamptz '2026-03-01 00:00+03' - d * interval '1 day',
       timestamptz '2026-03-01 00:00+03' - d * interval '1 day' + interval '7 s',
       20000 + m %% 97 - d * 48 * (0.05 + (m %% 13) * 0.01), 'gw' || (m %% 50)
FROM generate_series(%(lo)s::int, %(hi)s::int) m, generate_series(1, %(days)s::int) d
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
# Totals between local midnights without rollups: per meter, the last reading before each bound
# (a primary-key probe per meter and bound), the first reading standing in where there is none.
RAW_TOTALS = """
SELECT b.lo, sum(coalesce(hi.value, 0) - coalesce(lo.value, first.value)) AS total
FROM meters m
CROSS JOIN unnest(%(bounds)s::date[], %(bounds_hi)s::date[]) AS b(lo, hi)
LEFT JOIN LATERAL (SELECT value FROM register_readings r WHERE r.meter_id = m.id AND r.obis = '1.0.1.8.0.255'
                   AND r.ts < b.lo::timestamp AT TIME ZONE %(tz)s ORDER BY r.ts DESC LIMIT 1) lo ON true
LEFT JOIN LATERAL (SELECT value FROM register_readings r WHERE r.meter_id = m.id AND r.obis = '1.0.1.8.0.255'
                   AND r.ts < b.hi::timestamp AT TIME ZONE %(tz)s ORDER BY r.ts DESC LIMIT 1) hi ON true
LEFT JOIN LATERAL (SELECT value FROM register_readings r WHERE r.meter_id = m.id AND r.obis = '1.0.1.8.0.255'
                   AND r.ts >= b.lo::timestamp AT TIME ZONE %(tz)s ORDER BY r.ts LIMIT 1) first ON true
WHERE m.org_id = (SELECT id FROM organisations WHERE code = %(org)s)
GROUP BY b.lo ORDER BY b.lo
"""
MONTH = (date(2026, 3, 1), date(2026, 4, 1))
YEARS = (date(2025, 1, 1), date(2027, 1, 1))


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) >= 20 else max(xs)


def _close(a: float, b: float) -> bool:
    return abs(a - b) < 1e-6 * max(1, abs(b))


async def _timed(fn, times: list[float]):
    t = time.perf_counter()
    out = await fn()
    times.append(time.perf_counter() - t)
    return out


async def measure(dsn: str, orgs: int) -> dict:
    t: dict[str, list[float]] = {k: [] for k in ("day", "raw_day", "per_meter", "month", "raw_month", "year",
                                                 "raw_year")}
    same = True
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        async def query(q: cq.ConsumptionQuery) -> list[dict]:
            return await cq.consumption(conn, q, Scope(None))

        async def raw(sql: str, params: dict) -> list:
            return await (await conn.execute(sql, params)).fetchall()

        async def per_meter(q: cq.ConsumptionQuery) -> list[dict]:
            async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                await cur.execute("SELECT set_config('work_mem', '64MB', true)")
                await cur.execute(cq._sql(q, "TRUE"), {"key": q.key, "start": q.start, "end": q.end,
                                                       "resource": None, "is_balance": False})
                return await cur.fetchall()

        for i in range(RUNS):
            org = f"org{1 + i % orgs}"
            day_q = cq.ConsumptionQuery(level="organisation", key=org, granularity="day", start=MONTH[0], end=MONTH[1])
            rows = await _timed(lambda q=day_q: query(q), t["day"])
            slow = await _timed(lambda q=day_q: per_meter(q), t["per_meter"])
            same &= len(slow) == len(rows) and all(
                a["bucket"] == b["bucket"] and a["meters"] == b["meters"] and _close(a["value"], b["value"])
                for a, b in zip(rows, slow, strict=False))
            month = await _timed(lambda o=org: query(cq.ConsumptionQuery(
                level="organisation", key=o, granularity="month", start=MONTH[0], end=MONTH[1])), t["month"])
            year = await _timed(lambda o=org: query(cq.ConsumptionQuery(
                level="organisation", key=o, granularity="year", start=YEARS[0], end=YEARS[1])), t["year"])
            if i < max(4, RUNS // 4):  # the baselines are slow: fewer runs
                base = await _timed(lambda o=org: raw(RAW, {"org": o, "tz": TZ, "start": date(2026, 3, 2),
                                                            "end": MONTH[1]}), t["raw_day"])
                # same figures from 2 March on (the rollup query also counts 1 March from its first reading)
                mine = {r["bucket"]: r["value"] for r in rows if r["bucket"] >= date(2026, 3, 2)}
                same &= len(base) == len(mine) and all(_close(mine[d], v) for d, v in base)
                base_m = await _timed(lambda o=org: raw(RAW_TOTALS, {
                    "org": o, "tz": TZ, "bounds": [MONTH[0]], "bounds_hi": [MONTH[1]]}), t["raw_month"])
                base_y = await _timed(lambda o=org: raw(RAW_TOTALS, {
                    "org": o, "tz": TZ, "bounds": [date(2025, 1, 1), date(2026, 1, 1)],
                    "bounds_hi": [date(2026, 1, 1), date(2027, 1, 1)]}), t["raw_year"])
                same &= [_close(r["value"], b[1]) for r, b in zip(month, base_m, strict=True)] == [True]
                same &= len(year) == 2 and all(_close(r["value"], b[1]) for r, b in zip(year, base_y, strict=True))
            await conn.rollback()
    return {"times": t, "same": same}


def load(cluster: PgCluster, mode: str) -> tuple[str, dict]:
    dsn = cluster.create_database(f"cons_{mode}")
    migrations.apply(dsn, max_number=99, timezone=TZ, mode=mode)
    orgs = max(1, METERS // PER_ORG)
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        if mode == "timescale":  # the bench runs the compression itself, once the data is in
            conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                         "WHERE job_id >= 1000")
        for stmt in LOAD.split(";")[:-1]:
            conn.execute(stmt, {"orgs": orgs, "houses": -(-METERS // 10), "meters": METERS})
        for y, m in [(2025, m) for m in range(1, 13)] + [(2026, m) for m in range(1, 5)]:
            conn.execute("SELECT askue_ensure_month_partition('register_readings', %s)", (date(y, m, 1),))
        for lo in range(1, METERS + 1, 500):
            hi = min(METERS, lo + 499)
            conn.execute(DAILY, {"lo": lo, "hi": hi, "days": DAILY_DAYS})
            conn.execute(READINGS, {"lo": lo, "hi": hi})
        folded = conn.execute("SELECT askue_consumption_compact()").fetchone()[0]
        load_s = time.perf_counter() - t0
        compress_s = None
        if mode == "timescale":
            t1 = time.perf_counter()
            for (job,) in conn.execute("SELECT job_id FROM timescaledb_information.jobs "
                                       "WHERE proc_name = 'policy_compression'").fetchall():
                conn.execute(f"CALL run_job({job})")
            compress_s = time.perf_counter() - t1
        conn.execute("VACUUM ANALYZE")
        rows = conn.execute("SELECT count(*) FROM register_readings").fetchone()[0]
    return dsn, {"rows": rows, "load_s": load_s, "folded": folded, "compress_s": compress_s}


def figures(mode: str, res: dict, same: bool) -> list[dict]:
    t = res["times"]
    ms = {k: p95(v) * 1000 for k, v in t.items()}
    where = "TimescaleDB" if mode == "timescale" else "plain PostgreSQL"
    base = "compressed register_readings" if mode == "timescale" else "register_readings"
    return [
        {"name": f"{where}: daily consumption, organisation of 1,000 meters, one month: p95",
         "value": round(ms["day"], 1), "unit": "ms", "baseline": round(ms["raw_day"], 1),
         "baseline_name": f"same figures from raw {base}", "ratio": round(ms["raw_day"] / ms["day"], 1),
         "target": "<= 100 ms", "ok": ms["day"] <= 100 and same},
        {"name": f"{where}: same, against summing the per-meter daily rollups", "value": round(ms["day"], 1),
         "unit": "ms", "baseline": round(ms["per_meter"], 1),
         "baseline_name": "per-meter daily rollups of the organisation's meters",
         "ratio": round(ms["per_meter"] / ms["day"], 1)},
        {"name": f"{where}: month total of an organisation: p95", "value": round(ms["month"], 1), "unit": "ms",
         "baseline": round(ms["raw_month"], 1), "baseline_name": f"same total from raw {base}",
         "ratio": round(ms["raw_month"] / ms["month"], 1), "target": "<= 100 ms", "ok": ms["month"] <= 100 and same},
        {"name": f"{where}: year totals of an organisation (2025, 2026): p95", "value": round(ms["year"], 1),
         "unit": "ms", "baseline": round(ms["raw_year"], 1), "baseline_name": f"same totals from raw {base}",
         "ratio": round(ms["raw_year"] / ms["year"], 1), "target": "<= 100 ms", "ok": ms["year"] <= 100 and same},
    ]


def main() -> None:
    modes = modes_from_env()
    figs, notes = [], []
    with temp_cluster("timescale" in modes) as cluster:
        for mode in modes:
            dsn, info = load(cluster, mode)
            res = asyncio.run(measure(dsn, max(1, METERS // PER_ORG)))
            figs += figures(mode, res, res["same"])
            cluster.drop_database(f"cons_{mode}")
            notes.append(
                f"{mode}: {info['rows']} readings loaded through the value tables' triggers in "
                f"{info['load_s']:.0f} s ({info['folded']} pending consumption rows folded"
                + (f"; compression policy {info['compress_s']:.0f} s" if info["compress_s"] is not None else "")
                + f"); {len(res['times']['day'])} runs (daily median "
                f"{statistics.median(res['times']['day']) * 1000:.1f} ms), baselines "
                f"{len(res['times']['raw_day'])} runs; figures equal to the baselines: {res['same']}")
    if "timescale" not in modes:
        notes.append("TimescaleDB is not installed here: plain PostgreSQL only")
    print(json.dumps({
        "name": "headend_consumption_query",
        "figures": figs,
        "notes": f"{METERS} meters: March 2026 half-hourly, the 11 months before daily. " + "; ".join(notes),
    }))


if __name__ == "__main__":
    main()

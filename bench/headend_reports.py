"""The operators' reports for an organisation of 1,000 meters, next to the consumption query
of the same organisation (the overview page's query) measured in the same run.

Loaded (all migrations, the suite's storage mode: TimescaleDB where installed): 3 organisations
× 100 houses × 10 meters (9 flats and a balance meter, 3,000 meters); 40 days of one register
reading a day at local midnight; the last 7 days as half-hour profile intervals, every 37th
interval missing; 2,000 dead letters and 2,000 refused manual readings over the week; 1 % of
the register readings marked by VEE with a blocking reason. Inserted by SQL so the value
tables' own triggers build the rollups as for ingest; on TimescaleDB the continuous aggregates'
refresh policies then run once, as they keep doing in production.

Measured per report (askue.headend.reports.run, the pages' and API's call), rotating the
organisations: rejected readings (7 days), completeness (7 days by house), house balance
(30 days), coverage, verification; and the completeness report rendered as PDF. p95 over
ASKUE_BENCH_RUNS (default 10). Env: ASKUE_BENCH_REPORT_METERS (default 3000, a multiple of
1000), ASKUE_BENCH_MODES (default: timescale where installed, else plain).
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from askue.devservices.postgres import PgCluster
from askue.headend.auth.permissions import Principal, Scope
from askue.headend.reports import documents, run
from askue.headend.storage import migrations
from askue.headend.storage.queries import consumption as cq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.lib.pg import modes_from_env, temp_cluster  # noqa: E402

METERS = int(os.environ.get("ASKUE_BENCH_REPORT_METERS", "3000"))
RUNS = int(os.environ.get("ASKUE_BENCH_RUNS", "10"))
PER_ORG = min(1000, METERS)
TZ = "Europe/Moscow"
TODAY = datetime.now(ZoneInfo(TZ)).date()

LOAD = """
INSERT INTO organisations (code, name) SELECT 'org' || o, 'УК ' || o FROM generate_series(1, %(orgs)s::int) o;
INSERT INTO sites (code, org_id, address) SELECT 'h' || h, 1 + (h - 1) / 100, 'ул. Тестовая, ' || h
    FROM generate_series(1, %(houses)s::int) h;
INSERT INTO accounts (code, org_id, site_id, flat) SELECT 'LS' || a, 1 + (a - 1) / 1000, 1 + (a - 1) / 10, a %% 10
    FROM generate_series(1, %(meters)s::int) a WHERE a %% 10 <> 0;
INSERT INTO gateways (id, org_id, online) SELECT 'gw-h' || h, 1 + (h - 1) / 100, true FROM generate_series(1, %(houses)s::int) h;
INSERT INTO meters (code, resource, org_id, site_id, account_id, digits, status, is_balance, multiplier, gateway_id,
                    installed_at, verification_due)
    SELECT 'm' || m, 'electricity', 1 + (m - 1) / 1000, 1 + (m - 1) / 10, CASE WHEN m %% 10 <> 0 THEN
           (SELECT id FROM accounts WHERE code = 'LS' || m) END, 6, 'active', m %% 10 = 0,
           CASE WHEN m %% 10 = 0 THEN 20 ELSE 1 END, 'gw-h' || (1 + (m - 1) / 10), DATE '2020-01-01',
           %(today)s::date - 30 + m %% 400
    FROM generate_series(1, %(meters)s::int) m;
"""
DAILY = """
INSERT INTO register_readings (meter_id, obis, ts, received_at, value, gateway_id)
SELECT m, '1.0.1.8.0.255', (%(today)s::date - d)::timestamp AT TIME ZONE 'Europe/Moscow',
       (%(today)s::date - d)::timestamp AT TIME ZONE 'Europe/Moscow' + interval '7 s',
       20000 - d * (CASE WHEN m %% 10 = 0 THEN 3 ELSE 5 + m %% 7 END), 'gw-h' || (1 + (m - 1) / 10)
FROM generate_series(%(lo)s::int, %(hi)s::int) m, generate_series(0, 39) d
"""
PROFILE = """
INSERT INTO intervals (meter_id, obis, ts, received_at, value, gateway_id, period_s)
SELECT m, '1.0.1.29.0.255', t, t + interval '30 s', 0.2, 'gw-h' || (1 + (m - 1) / 10), 1800
FROM generate_series(%(lo)s::int, %(hi)s::int) m,
     LATERAL (SELECT k, (%(today)s::date - 7)::timestamp AT TIME ZONE 'Europe/Moscow' + k * interval '30 min' AS t
              FROM generate_series(1, 7 * 48) k) s
WHERE (m + k) %% 37 <> 0
"""
REFUSALS = """
INSERT INTO dead_letters (received_at, topic, gateway_id, payload, reason)
SELECT now() - i * interval '5 min', 'askue/v1/gw-h' || (1 + i %% %(houses)s) || '/data', 'gw-h' || (1 + i %% %(houses)s),
       convert_to('{"v":1,"gateway_id":"gw","seq":1,"values":[{"meter_id":"m' || (1 + i %% %(meters)s) || '"}]}', 'UTF8'),
       'DataMessage: Expected `float`, got `str` - at `$.values[0].value`'
FROM generate_series(1, 2000) i;
INSERT INTO rejected_readings (at, source, actor, org_id, meter_id, meter_ref, obis, value, ts, field, message,
                               message_ru)
SELECT now() - i * interval '5 min', 'manual', 'op' || (i %% 3), 1 + (i %% %(meters)s) / 1000, 1 + i %% %(meters)s,
       'm' || (1 + i %% %(meters)s), '1.0.1.8.0.255', 10, now() - i * interval '5 min', 'value',
       'reading 10 is below the previous one', 'показание 10 меньше предыдущего'
FROM generate_series(1, 2000) i;
UPDATE register_readings SET reasons = '{spike}' WHERE meter_id %% 10 = 3 AND ts > now() - interval '10 days';
"""


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) >= 20 else max(xs)


def load(cluster: PgCluster, mode: str) -> tuple[str, dict]:
    dsn = cluster.create_database(f"rep_{mode}")
    migrations.apply(dsn, timezone=TZ, mode=mode)
    orgs = max(1, METERS // PER_ORG)
    params = {"orgs": orgs, "houses": METERS // 10, "meters": METERS, "today": TODAY}
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        if mode == "timescale":
            conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                         "WHERE job_id >= 1000")
        for stmt in LOAD.split(";")[:-1]:
            conn.execute(stmt, params)
        first = (TODAY - timedelta(days=45)).replace(day=1)
        months = {first, TODAY.replace(day=1), (first + timedelta(days=32)).replace(day=1)}
        for table in ("register_readings", "intervals"):
            for m in sorted(months):
                conn.execute("SELECT askue_ensure_month_partition(%s, %s)", (table, m))
        for lo in range(1, METERS + 1, 500):
            hi = min(METERS, lo + 499)
            conn.execute(DAILY, {**params, "lo": lo, "hi": hi})
            conn.execute(PROFILE, {**params, "lo": lo, "hi": hi})
        for stmt in REFUSALS.split(";")[:-1]:
            conn.execute(stmt, params)
        conn.execute("SELECT askue_consumption_compact()")
        if mode == "timescale":  # what the refresh policies keep doing in production, once
            for (job,) in conn.execute("SELECT job_id FROM timescaledb_information.jobs "
                                       "WHERE proc_name = 'policy_refresh_continuous_aggregate'").fetchall():
                conn.execute(f"CALL run_job({job})")
        conn.execute("VACUUM ANALYZE")
        counts = conn.execute("SELECT (SELECT count(*) FROM register_readings), (SELECT count(*) FROM intervals)"
                              ).fetchone()
    return dsn, {"registers": counts[0], "intervals": counts[1], "load_s": time.perf_counter() - t0}


async def measure(dsn: str, orgs: int) -> dict:
    tz = ZoneInfo(TZ)
    names = ("rejected", "completeness", "balance", "coverage", "verification", "pdf", "consumption")
    t: dict[str, list[float]] = {k: [] for k in names}
    rows: dict[str, int] = {}
    week = {"from": (TODAY - timedelta(days=6)).isoformat(), "to": TODAY.isoformat()}
    month = {"from": (TODAY - timedelta(days=30)).isoformat(), "to": (TODAY - timedelta(days=1)).isoformat()}
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for i in range(RUNS):
            org = 1 + i % orgs
            who = Principal("bench", "org_admin", frozenset({org}))
            for name, raw in (("rejected", week), ("completeness", week), ("balance", month), ("coverage", {}),
                              ("verification", {"unknown": "1"})):
                t0 = time.perf_counter()
                report = await run(conn, who, name, raw, "ru", tz)
                t[name].append(time.perf_counter() - t0)
                rows[name] = sum(len(s.rows) for s in report.sections)
                if name == "completeness":
                    t0 = time.perf_counter()
                    documents.to_pdf(report, "ru", tz)
                    t["pdf"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await cq.consumption(conn, cq.ConsumptionQuery(level="organisation", key=f"org{org}", granularity="day",
                                                           start=TODAY - timedelta(days=30), end=TODAY),
                                 Scope(frozenset({org})))
            t["consumption"].append(time.perf_counter() - t0)
    return {"times": t, "rows": rows}


def figures(mode: str, res: dict) -> list[dict]:
    ms = {k: p95(v) * 1000 for k, v in res["times"].items()}
    base = ms["consumption"]
    where = "TimescaleDB" if mode == "timescale" else "plain PostgreSQL"
    titles = {"rejected": "rejected readings, 7 days", "completeness": "completeness by house, 7 days",
              "balance": "house balance, 30 days", "coverage": "coverage", "verification": "verification due",
              "pdf": "completeness as PDF (rendering only)"}
    return [{"name": f"{where}: report «{titles[k]}», organisation of 1,000 meters: p95", "value": round(ms[k], 1),
             "unit": "ms", "baseline": round(base, 1),
             "baseline_name": "daily consumption of the organisation over 30 days (overview query)",
             "ratio": round(ms[k] / base, 1), "target": "<= 2000 ms", "ok": ms[k] <= 2000} for k in titles]


def main() -> None:
    modes = modes_from_env(default_both=False)
    figs, notes = [], []
    with temp_cluster("timescale" in modes) as cluster:
        for mode in modes:
            dsn, info = load(cluster, mode)
            res = asyncio.run(measure(dsn, max(1, METERS // PER_ORG)))
            figs += figures(mode, res)
            cluster.drop_database(f"rep_{mode}")
            notes.append(f"{mode}: {info['registers']} register readings and {info['intervals']} intervals "
                         f"loaded in {info['load_s']:.0f} s; rows per report: "
                         + ", ".join(f"{k} {v}" for k, v in res["rows"].items()) + f"; {RUNS} runs")
    print(json.dumps({"name": "headend_reports", "figures": figs,
                      "notes": f"{METERS} meters; " + "; ".join(notes)}))


if __name__ == "__main__":
    main()

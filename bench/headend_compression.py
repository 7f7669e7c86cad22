"""TimescaleDB compression of a month of interval data: bytes on disk before and after the
compression policy, against the same month on plain PostgreSQL, and one meter's month of
profile read back from compressed chunks against the row store (same run).

Data: March 2026 of half-hourly load profiles (A+ and R+ energy per interval, kWh with
three decimals following a daily shape with per-meter noise), 2,000 meters on 50
gateways, received a few seconds to a minute after each interval's end, as gateways
deliver them: 5.95 M rows in `intervals`. Storage migrations only (0001–0099). The
TimescaleDB database's compression policy (segment by meter, order by channel and time)
is run through TimescaleDB's job runner (CALL run_job), as its scheduler would.
Env: ASKUE_BENCH_COMPRESS_METERS (default 2000), ASKUE_BENCH_RUNS (default 40).
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from askue.devservices.postgres import PgCluster, timescaledb_installed
from askue.headend.storage import migrations

METERS = int(os.environ.get("ASKUE_BENCH_COMPRESS_METERS", "2000"))
RUNS = int(os.environ.get("ASKUE_BENCH_RUNS", "40"))
MONTH_START = "2026-03-01 00:00+03"

LOAD = """
INSERT INTO meters (code, resource, status) SELECT 'm' || m, 'electricity', 'active'
FROM generate_series(1, %(meters)s::int) m
"""
# Energy per half hour: a daily shape (night low, evening peak) scaled per meter, with noise.
INTERVALS = """
INSERT INTO intervals (meter_id, obis, ts, received_at, value, gateway_id, seq, period_s)
SELECT m, o.obis, t, t + make_interval(secs => 3 + (hashint4(m * 7919 + k) & 63)),
       round(((0.15 + 0.05 * (m %% 9)) * o.scale
              * (1 + 0.8 * sin(pi() * ((k %% 48) - 14) / 24.0) ^ 2 + 0.3 * random()))::numeric, 3)::float8,
       'gw' || (m %% 50), (k - 1) / 2, 1800
FROM generate_series(%(lo)s::int, %(hi)s::int) m,
     (VALUES ('1.0.1.29.0.255', 1.0), ('1.0.3.29.0.255', 0.35)) o(obis, scale),
     LATERAL (SELECT k, %(start)s::timestamptz + k * interval '30 min' AS t FROM generate_series(1, 31 * 48) k) s
"""
PROFILE = """
SELECT ts, value FROM intervals WHERE meter_id = %s AND obis = '1.0.1.29.0.255'
  AND ts > %s::timestamptz AND ts <= %s::timestamptz + interval '31 days' ORDER BY ts
"""


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) >= 20 else max(xs)


def load(cluster: PgCluster, mode: str) -> tuple[str, float]:
    dsn = cluster.create_database(f"cmp_{mode}")
    migrations.apply(dsn, max_number=99, mode=mode)
    t = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        if mode == "timescale":
            conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                         "WHERE job_id >= 1000")
        conn.execute(LOAD, {"meters": METERS})
        for month in ("2026-03-01", "2026-04-01"):
            conn.execute("SELECT askue_ensure_month_partition('intervals', %s)", (month,))
        for lo in range(1, METERS + 1, 250):
            conn.execute(INTERVALS, {"lo": lo, "hi": min(METERS, lo + 249), "start": MONTH_START})
        conn.execute("VACUUM ANALYZE intervals")
    return dsn, time.perf_counter() - t


def profile_reads(dsn: str) -> list[float]:
    times = []
    with psycopg.connect(dsn) as conn:
        for i in range(RUNS):
            t = time.perf_counter()
            rows = conn.execute(PROFILE, (1 + (i * 37) % METERS, MONTH_START, MONTH_START)).fetchall()
            times.append(time.perf_counter() - t)
            assert len(rows) == 31 * 48, len(rows)
    return times


def main() -> None:
    if not timescaledb_installed():
        print(json.dumps({"name": "headend_compression", "figures": [],
                          "notes": "TimescaleDB is not installed here: nothing to measure"}))
        return
    with tempfile.TemporaryDirectory(prefix="askue-bench-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        cluster = PgCluster(tmp / "pg", timescaledb=True)
        cluster.start()
        try:
            plain_dsn, plain_load_s = load(cluster, "plain")
            with psycopg.connect(plain_dsn) as conn:
                rows = conn.execute("SELECT count(*) FROM intervals").fetchone()[0]
                plain_bytes = conn.execute("SELECT pg_total_relation_size('intervals_202603') "
                                           "+ pg_total_relation_size('intervals_202604')").fetchone()[0]
            cluster.drop_database("cmp_plain")
            dsn, ts_load_s = load(cluster, "timescale")
            with psycopg.connect(dsn, autocommit=True) as conn:
                before = conn.execute("SELECT total_bytes FROM hypertable_detailed_size('intervals')").fetchone()[0]
                uncompressed = profile_reads(dsn)
                job = conn.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = "
                                   "'policy_compression' AND hypertable_name = 'intervals'").fetchone()[0]
                t = time.perf_counter()
                conn.execute(f"CALL run_job({job})")
                compress_s = time.perf_counter() - t
                chunks = conn.execute("SELECT count(*) FILTER (WHERE is_compressed), count(*) FROM "
                                      "timescaledb_information.chunks WHERE hypertable_name = 'intervals'").fetchone()
                conn.execute("VACUUM ANALYZE intervals")
                after = conn.execute("SELECT total_bytes FROM hypertable_detailed_size('intervals')").fetchone()[0]
                stats = conn.execute("SELECT before_compression_total_bytes, after_compression_total_bytes "
                                     "FROM hypertable_compression_stats('intervals')").fetchone()
                assert conn.execute("SELECT count(*) FROM intervals").fetchone()[0] == rows
            compressed = profile_reads(dsn)
        finally:
            cluster.stop("immediate")
    mb = 2 ** 20
    ratio = before / after
    print(json.dumps({
        "name": "headend_compression",
        "figures": [
            {"name": "compression ratio of a month of interval data (row store / compressed, table + indexes)",
             "value": round(ratio, 1), "unit": "x", "target": "measured (docs/scaling.md had assumed 10x)"},
            {"name": "a month of interval data on disk, TimescaleDB compressed", "value": round(after / mb, 1),
             "unit": "MB", "baseline": round(plain_bytes / mb, 1),
             "baseline_name": "same rows on plain PostgreSQL (monthly partition, table + indexes)",
             "ratio": round(after / plain_bytes, 3)},
            {"name": "bytes per interval value, compressed", "value": round(after / rows, 1), "unit": "B",
             "baseline": round(before / rows, 1), "baseline_name": "same hypertable before compression",
             "ratio": round(after / before, 3)},
            {"name": "one meter's month of profile (1,488 values) from compressed chunks: p95",
             "value": round(p95(compressed) * 1000, 2), "unit": "ms", "baseline": round(p95(uncompressed) * 1000, 2),
             "baseline_name": "same reads before compression", "ratio": round(p95(compressed) / p95(uncompressed), 2)},
            {"name": "compression policy run, values per second", "value": round(rows / compress_s), "unit": "1/s"},
        ],
        "notes": f"{METERS} meters x 2 channels x 31 days half-hourly = {rows} rows; loaded in {plain_load_s:.0f} s "
                 f"(plain) and {ts_load_s:.0f} s (TimescaleDB); compression policy {compress_s:.0f} s, "
                 f"{chunks[0]} of {chunks[1]} chunks compressed; TimescaleDB's own compression stats: "
                 f"{stats[0] / mb:.0f} MB before, {stats[1] / mb:.0f} MB after (heap, indexes and TOAST of the "
                 f"chunks); {RUNS} profile reads each way",
    }))


if __name__ == "__main__":
    main()

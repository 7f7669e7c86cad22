"""Cost of the VEE batch hook on the ingest path: merge.write of the same batches
with no hooks (baseline) and with askue.headend.vee.live:batch_hook, in one run on a
private PostgreSQL cluster. Batches: 1,000 meters × 20 register reads (A+ total and two
tariff registers) + one voltage each = 20,000 values per batch, live data (last hour).
Env: ASKUE_BENCH_VEE_BATCHES (default 10).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from askue.contract import DataMessage, Value
from askue.devservices.postgres import PgCluster
from askue.headend.ingest import merge
from askue.headend.ingest.batch import Pending
from askue.headend.storage import migrations
from askue.headend.vee import live

BATCHES = int(os.environ.get("ASKUE_BENCH_VEE_BATCHES", "10"))
METERS = 1000
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=50)


def batch(b: int, t0: datetime = T0) -> Pending:
    vals: list[Value] = []
    for m in range(METERS):
        for k in range(5):
            t = t0 + timedelta(seconds=10 * (5 * b + k))
            rx = t + timedelta(seconds=2)
            base = 1000.0 + m + 0.01 * (5 * b + k)
            vals += [Value(meter_id=f"m{m:05d}", obis="1.0.1.8.0.255", kind="register", value=base, unit="kWh",
                           received_at=rx, meter_time=t),
                     Value(meter_id=f"m{m:05d}", obis="1.0.1.8.1.255", kind="register", value=base * 0.6,
                           unit="kWh", received_at=rx, meter_time=t),
                     Value(meter_id=f"m{m:05d}", obis="1.0.1.8.2.255", kind="register", value=base * 0.4,
                           unit="kWh", received_at=rx, meter_time=t),
                     Value(meter_id=f"m{m:05d}", obis="1.0.32.7.0.255", kind="instant", value=231.0, unit="V",
                           received_at=rx, meter_time=t)]
    p = Pending()
    p.data.append(DataMessage(v=1, gateway_id="gw1", seq=b, sent_at=T0, values=vals))
    p.seen["gw1"] = T0
    p.n_values = len(vals)
    return p


async def run(dsn: str, hooks: list, t0: datetime = T0, trigger: bool = True) -> float:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    if not trigger:
        await conn.execute("ALTER TABLE register_readings DISABLE TRIGGER register_readings_replace_estimate")
    ctx = merge.MergeContext(hooks=hooks)
    await merge.write(conn, ctx, batch(0, t0))  # warm-up: meters created, partitions made
    batches = [batch(b, t0) for b in range(1, BATCHES + 1)]
    n = sum(p.n_values for p in batches)
    t = time.perf_counter()
    for p in batches:
        await merge.write(conn, ctx, p)
    elapsed = time.perf_counter() - t
    await conn.close()
    return n / elapsed


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="askue-bench-vee-"))
    os.chmod(tmp, 0o755)
    cluster = PgCluster(tmp / "pg")
    cluster.start()
    try:
        dsns = {n: cluster.create_database(n) for n in ("base", "vee", "old_off", "old_on")}
        for d in dsns.values():
            migrations.apply(d)  # the default: TimescaleDB where it is installed
        mode = cluster.psql("SELECT value FROM askue_meta WHERE key = 'storage_mode'", dbname="base").strip()
        base = asyncio.run(run(dsns["base"], []))
        with_vee = asyncio.run(run(dsns["vee"], [live.batch_hook]))
        old = T0 - timedelta(days=3)  # backfill: rows older than an hour fire the replace-estimate trigger
        old_off = asyncio.run(run(dsns["old_off"], [], old, trigger=False))
        old_on = asyncio.run(run(dsns["old_on"], [], old))
    finally:
        cluster.stop("immediate")
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"name": "headend_vee_hook", "figures": [
        {"name": "merge with VEE batch hook", "value": round(with_vee), "unit": "values/s",
         "baseline": round(base), "baseline_name": "merge without hooks", "ratio": round(with_vee / base, 3)},
        {"name": "merge of 3-day-old rows with the replace-estimate trigger", "value": round(old_on),
         "unit": "values/s", "baseline": round(old_off), "baseline_name": "same rows, trigger disabled",
         "ratio": round(old_on / old_off, 3)}],
        "notes": f"{BATCHES} batches of {METERS * 20} values, {METERS} meters; same cluster, same run; "
                 f"storage mode {mode}"}))


if __name__ == "__main__":
    main()

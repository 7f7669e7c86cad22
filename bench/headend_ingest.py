"""Head-end ingest throughput of the consumer alone (secondary figure; what users get is
bench/headend_ingest_live.py: the real process, every hook on, live-shaped traffic):
publish → committed rows, against raw COPY and a naive per-row INSERT consumer.

The consumer runs in this process without after-insert hooks (no VEE), on messages of
500 register values with about 8 readings per meter and batch: kind to the rollups.

All three in the same run, on a private PostgreSQL cluster and mosquitto:
- end to end: a publisher process sends data messages (QoS 1, 500 register
  values each) to mosquitto; the real consumer (askue.headend.ingest) batches,
  COPYs into register_readings (the merge path when values are already stored),
  the triggers update the rollups, and it acks; timed
  from the first publish to the last commit;
- raw COPY: the same rows COPYed straight into register_readings with the
  table's own triggers (billing change log, rollups, which since migration 0007
  are part of every insert) but no dedup, no meter status, no MQTT — the ceiling;
  and again with every trigger disabled (the bare table: what the storage engine
  alone costs);
- naive: a consumer doing one INSERT … ON CONFLICT DO NOTHING per value and a
  commit per message, on a slice of the data (it is slow).
The end-to-end run and the raw COPY are measured on plain PostgreSQL and, where it is
installed, on TimescaleDB (hypertables; same rollup triggers, the billing change log
by a row trigger there), on one server with TimescaleDB loaded.
Env: ASKUE_BENCH_READINGS (default 300000).
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from askue.contract import DataMessage, Value, encode
from askue.devservices.mosquitto import Mosquitto
from askue.devservices.postgres import PgCluster, timescaledb_installed
from askue.headend.app import open_pool
from askue.headend.config import Settings
from askue.headend.ingest import merge
from askue.headend.ingest.consumer import Consumer
from askue.headend.storage import migrations

N = int(os.environ.get("ASKUE_BENCH_READINGS", "300000"))
PER_MSG = 500
NAIVE_N = min(N, 20000)
# Live data: every reading within the last hour, as gateways deliver it. (Rows older than
# an hour also fire VEE's per-row replace-estimate trigger; see the notes.)
STEP_S = 20
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=55)

PUBLISHER = r"""
import sys, time, paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
msgs = []
with open(path, "rb") as f:
    for line in f:
        topic, _, body = line.rstrip(b"\n").partition(b" ")
        msgs.append((topic.decode(), body))
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
c.max_inflight_messages_set(1000)
c.max_queued_messages_set(0)
c.connect(host, port)
c.loop_start()
print(time.time(), flush=True)
infos = [c.publish(t, b, qos=1) for t, b in msgs]
for i in infos:
    i.wait_for_publish()
c.loop_stop()
c.disconnect()
"""


def make_messages(n: int) -> list[tuple[str, bytes, list[Value]]]:
    """2,000 meters on 50 gateways (40 each), register readings STEP_S apart, 500 values per message."""
    meters, gateways = 2000, 50
    per_gw = meters // gateways
    steps = -(-n // meters)
    out = []
    for g in range(gateways):
        gw = f"gw{g}"
        vals: list[Value] = []
        for step in range(steps):
            t = T0 + timedelta(seconds=STEP_S * step)
            for m in range(per_gw):
                if g * per_gw * steps + step * per_gw + m >= n:
                    break
                vals.append(Value(meter_id=f"{gw}-m{m}", obis="1.0.1.8.0.255", kind="register",
                                  value=1000.0 + step * 0.5 + m, unit="kWh", received_at=t + timedelta(seconds=7),
                                  meter_time=t))
        for k in range(0, len(vals), PER_MSG):
            chunk = vals[k:k + PER_MSG]
            msg = DataMessage(v=1, gateway_id=gw, seq=k // PER_MSG, sent_at=T0, values=chunk)
            out.append((f"askue/v1/{gw}/data", encode(msg), chunk))
    # interleave gateways as they would arrive
    out.sort(key=lambda x: (x[2][0].meter_time, x[0]))
    return out


async def end_to_end(cluster: PgCluster, broker: Mosquitto, msgs, tmp: Path, mode: str = "plain") -> dict:
    dsn = cluster.create_database(f"e2e_{mode}")
    migrations.apply(dsn, mode=mode)
    s = Settings(dsn=dsn, mqtt_host=broker.host, mqtt_port=broker.port, mqtt_group=f"bench-{mode}",
                 mqtt_client_id=f"bench-consumer-{mode}", pool_max=2)
    pool = await open_pool(s, configure=merge.prepare_connection)
    c = Consumer(s, pool, merge.MergeContext())
    task = asyncio.create_task(c.run())
    await asyncio.wait_for(c.stats.connected.wait(), 10)
    data = tmp / "msgs.bin"
    with open(data, "wb") as f:
        for topic, body, _ in msgs:
            f.write(topic.encode() + b" " + body + b"\n")
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER, broker.host, str(broker.port), str(data)],
                           stdout=subprocess.PIPE, text=True)
    start_line = await asyncio.to_thread(pub.stdout.readline)
    t_start = float(start_line)
    while c.stats.values < N:
        await asyncio.sleep(0.01)
    t_end = c.stats.last_commit.timestamp()
    await asyncio.to_thread(pub.wait)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pool.close()
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT count(*) FROM register_readings").fetchone()[0]
    assert rows == N, f"end to end stored {rows} of {N}"
    return {"seconds": t_end - t_start, "rows": rows, "batches": c.stats.batches}


def raw_copy(cluster: PgCluster, msgs, bare: bool = False, mode: str = "plain") -> dict:
    dsn = cluster.create_database(f"{'rawbare' if bare else 'rawcopy'}_{mode}")
    migrations.apply(dsn, mode=mode)
    if bare:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE register_readings DISABLE TRIGGER USER")
    rows = []
    with psycopg.connect(dsn) as conn:
        ids = {}
        for _, _, vals in msgs:
            for v in vals:
                ids.setdefault(v.meter_id, len(ids) + 1)
        for table, month in {("register_readings", datetime(v.meter_time.year, v.meter_time.month, 1).date())
                             for _, _, vals in msgs for v in vals[:1] + vals[-1:]}:
            conn.execute("SELECT askue_ensure_month_partition(%s, %s)", (table, month))
        conn.commit()
        rows = [(ids[v.meter_id], v.obis, v.meter_time, v.received_at, v.value) for _, _, vals in msgs for v in vals]
        t = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy("COPY register_readings (meter_id, obis, ts, received_at, value) FROM STDIN "
                          "(FORMAT BINARY)") as copy:
                copy.set_types(("int8", "text", "timestamptz", "timestamptz", "float8"))
                for r in rows:
                    copy.write_row(r)
        conn.commit()
        took = time.perf_counter() - t
    return {"seconds": took, "rows": len(rows)}


def naive(cluster: PgCluster, msgs) -> dict:
    """One INSERT per value, one commit per message: what a first try looks like."""
    dsn = cluster.create_database("naive")
    migrations.apply(dsn, mode="plain")
    done = 0
    with psycopg.connect(dsn) as conn:
        t = time.perf_counter()
        for _, _body, vals in msgs:
            for v in vals:
                row = conn.execute("SELECT id FROM meters WHERE code = %s", (v.meter_id,)).fetchone()
                mid = row[0] if row else conn.execute(
                    "INSERT INTO meters (code, status) VALUES (%s, 'unassigned') RETURNING id", (v.meter_id,)
                ).fetchone()[0]
                conn.execute("INSERT INTO register_readings (meter_id, obis, ts, received_at, value, gateway_id) "
                             "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                             (mid, v.obis, v.meter_time, v.received_at, v.value, "gw"))
                done += 1
            conn.commit()
            if done >= NAIVE_N:
                break
        took = time.perf_counter() - t
    return {"seconds": took, "rows": done}


def main() -> None:
    msgs = make_messages(N)
    with tempfile.TemporaryDirectory(prefix="askue-bench-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        timescale = timescaledb_installed()
        cluster = PgCluster(tmp / "pg", timescaledb=timescale)
        broker = Mosquitto(tmp / "mq")
        cluster.start()
        broker.start()
        try:
            e2e = asyncio.run(end_to_end(cluster, broker, msgs, tmp))
            raw = raw_copy(cluster, msgs)
            bare = raw_copy(cluster, msgs, bare=True)
            nv = naive(cluster, msgs)
            if timescale:
                ts_e2e = asyncio.run(end_to_end(cluster, broker, msgs, tmp, mode="timescale"))
                ts_raw = raw_copy(cluster, msgs, mode="timescale")
        finally:
            broker.stop()
            cluster.stop("immediate")
    e2e_rate = e2e["rows"] / e2e["seconds"]
    raw_rate = raw["rows"] / raw["seconds"]
    bare_rate = bare["rows"] / bare["seconds"]
    naive_rate = nv["rows"] / nv["seconds"]
    timescale_figures = []
    if timescale:
        ts_rate, ts_raw_rate = ts_e2e["rows"] / ts_e2e["seconds"], ts_raw["rows"] / ts_raw["seconds"]
        timescale_figures = [
            {"name": "secondary: the same on TimescaleDB", "value": round(ts_rate),
             "unit": "readings/s", "baseline": round(e2e_rate), "baseline_name": "same run on plain PostgreSQL",
             "ratio": round(ts_rate / e2e_rate, 3)},
            {"name": "secondary: TimescaleDB against raw COPY into the hypertable", "value": round(ts_rate),
             "unit": "readings/s", "baseline": round(ts_raw_rate),
             "baseline_name": "raw COPY into register_readings (hypertable, its triggers)",
             "ratio": round(ts_rate / ts_raw_rate, 3)},
        ]
    print(json.dumps({
        "name": "headend_ingest",
        "figures": [
            {"name": "secondary: in-process consumer, no hooks, messages of 500: publish → committed",
             "value": round(e2e_rate), "unit": "readings/s",
             "baseline": round(raw_rate), "baseline_name": "raw COPY into register_readings",
             "ratio": round(e2e_rate / raw_rate, 3)},
            {"name": "secondary: the same against the bare table", "value": round(e2e_rate), "unit": "readings/s",
             "baseline": round(bare_rate), "baseline_name": "raw COPY, every trigger of register_readings disabled",
             "ratio": round(e2e_rate / bare_rate, 3)},
            {"name": "secondary: the same against a naive per-row INSERT consumer", "value": round(e2e_rate), "unit": "readings/s",
             "baseline": round(naive_rate), "baseline_name": f"naive per-row INSERT ({nv['rows']} readings)",
             "ratio": round(e2e_rate / naive_rate, 1)},
            *timescale_figures,
        ],
        "notes": f"{N} register readings in {len(msgs)} messages of {PER_MSG}, QoS 1, {e2e['batches']} batches; "
                 f"2000 meters auto-created as unassigned; rollups updated by the value tables' triggers in both the "
                 f"end-to-end run and the raw COPY; {os.cpu_count()} cores shared; "
                 + (f"TimescaleDB: {ts_e2e['batches']} batches" if timescale else "TimescaleDB not installed here"),
    }))


if __name__ == "__main__":
    main()

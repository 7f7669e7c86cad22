"""Two real ingest workers (`askue headend run --ingest-only`) in one MQTT shared-subscription
group on mosquitto: one is SIGKILLed mid-stream and started again, and every value sent is
stored exactly once with its value; both workers took part."""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from headend_helpers import T0, payload, reg

from askue.devservices.headend_process import HeadendProcess

GATEWAYS, METERS, ROUNDS = 10, 20, 30  # 6,000 values in 300 messages


def _publish(port: int, sent: list[int], stop: threading.Event) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="scaleout-pub", protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        for r in range(ROUNDS):
            for g in range(GATEWAYS):
                vals = [reg(f"g{g}-m{m}", 1000.0 + 10 * r + m, T0 + timedelta(minutes=5 * r)) for m in range(METERS)]
                c.publish(f"askue/v1/g{g}/data", payload(vals, gw=f"g{g}", seq=r), qos=1).wait_for_publish(10)
                sent[0] += 1
            time.sleep(0.05)  # a stream, not a burst: the kill lands in the middle of it
            if stop.is_set():
                return
    finally:
        c.loop_stop()
        c.disconnect()


def _count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM register_readings").fetchone()[0]


def _wait(cond, timeout: float, what: str, workers: list[HeadendProcess]) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n" + "\n".join(w.text()[-2000:] for w in workers))
        time.sleep(0.1)


def test_a_worker_killed_mid_stream_loses_and_doubles_nothing(pg_dsn: str, fresh_broker, tmp_path: Path) -> None:
    workers = [HeadendProcess(pg_dsn, fresh_broker.port, tmp_path / f"w{k}.log", args=("--ingest-only", "--no-migrate"),
                              env={"ASKUE_MQTT_GROUP": "ingest", "ASKUE_MQTT_CLIENT_ID": f"ingest-{k}"})
               for k in range(2)]
    stop = threading.Event()
    sent = [0]
    pub = threading.Thread(target=_publish, args=(fresh_broker.port, sent, stop), daemon=True)
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.wait_subscribed()
        pub.start()
        total = GATEWAYS * METERS * ROUNDS
        _wait(lambda: _count(pg_dsn) > total // 4, 60, "a quarter of the values stored", workers)
        took_part = workers[0].metrics().get("askue_headend_ingest_messages_total", 0)
        workers[0].kill9()  # mid-stream: its unacknowledged messages stay in its session
        killed_at = sent[0]
        time.sleep(1.0)
        assert pub.is_alive() and sent[0] > killed_at, "the stream goes on while a worker is down"
        workers[0].start()  # the same client id: the broker hands it its session's messages
        pub.join(120)
        _wait(lambda: _count(pg_dsn) >= total, 120, "every value stored", workers)
        time.sleep(0.5)
        with psycopg.connect(pg_dsn) as conn:
            rows = conn.execute("SELECT m.code, r.ts, r.value FROM register_readings r "
                                "JOIN meters m ON m.id = r.meter_id").fetchall()
        assert len(rows) == total  # the natural key is the primary key: each value at most once
        expected = {(f"g{g}-m{m}", T0 + timedelta(minutes=5 * r), 1000.0 + 10 * r + m)
                    for r in range(ROUNDS) for g in range(GATEWAYS) for m in range(METERS)}
        assert {(c, ts, v) for c, ts, v in rows} == expected
        assert took_part > 0 and workers[1].metrics().get("askue_headend_ingest_messages_total", 0) > 0, \
            "both workers took part"
    finally:
        stop.set()
        for w in workers:
            w.stop()

"""A restarted head-end must receive every message published after (and during) its restart.

The ingest subscribes through an MQTT 5 shared subscription with a persistent session, so
the broker keeps queuing a share of the messages for a session as long as it exists. A
restarted process that comes back under a different client id leaves its old session
behind as a silent member of the group: the broker keeps handing it messages nobody reads.
"""
from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from faultkit import Child, askue_argv, db_count

from askue.contract import Topics
from askue.contract.payloads import SCHEMA_VERSION, DataMessage, Value, encode

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]


async def _wait(pred, timeout: float, what: str, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert child.alive(), f"head-end died waiting for {what}\n{child.tail()}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{child.tail()}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
async def test_restarted_headend_receives_every_message(sig: int, tmp_path: Path, pg_dsn: str,
                                                        fresh_broker) -> None:
    headend = Child("headend", askue_argv("headend", "--dsn", pg_dsn, "run", "--ingest-only", "--no-migrate",
                                          "--mqtt-host", fresh_broker.host, "--mqtt-port", str(fresh_broker.port)),
                    tmp_path / "headend.log", env={"ASKUE_MQTT_GROUP": "restart"})
    try:
        for n in (1, 2):
            headend.start()
            await _wait(lambda n=n: headend.text().count("subscribed to") >= n, 60, "the subscription", headend)
            if n == 1:
                headend.signal(sig)
                try:
                    await asyncio.to_thread(headend.proc.wait, 45)  # type: ignore[union-attr]
                except subprocess.TimeoutExpired:
                    pytest.fail(f"head-end did not exit within 45 s of signal {sig}\n{headend.tail(120)}")
        _publish(fresh_broker, 20)
        await _wait(lambda: db_count(pg_dsn) == 20, 30, "all 20 values in the database", headend)
    finally:
        await asyncio.to_thread(headend.stop)


async def test_broker_restart_while_headend_is_down_loses_nothing(tmp_path: Path, pg_dsn: str,
                                                                 fresh_broker) -> None:
    """mosquitto (2.0) restores persistent sessions and their plain subscriptions from its
    persistence file, so messages published after a broker restart wait for the head-end."""
    headend = Child("headend", askue_argv("headend", "--dsn", pg_dsn, "run", "--ingest-only", "--no-migrate",
                                          "--mqtt-host", fresh_broker.host, "--mqtt-port", str(fresh_broker.port)),
                    tmp_path / "headend.log")
    try:
        headend.start()
        await _wait(lambda: "subscribed to" in headend.text(), 60, "the subscription", headend)
        await asyncio.to_thread(headend.stop)
        await asyncio.to_thread(fresh_broker.restart)
        _publish(fresh_broker, 20)
        headend.start()
        await _wait(lambda: db_count(pg_dsn) == 20, 30, "all 20 values in the database", headend)
    finally:
        await asyncio.to_thread(headend.stop)


def _publish(broker, n: int) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="restart-pub", protocol=mqtt.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    t0 = datetime.now(UTC).replace(microsecond=0)
    for i in range(n):
        v = Value(meter_id=f"r{i % 4}", obis="1.0.1.8.0.255", kind="register", value=float(i), unit="kWh",
                  received_at=t0, meter_time=t0 + timedelta(seconds=i))
        msg = DataMessage(v=SCHEMA_VERSION, gateway_id="gw-r", seq=i + 1, sent_at=t0, values=[v])
        pub.publish(Topics().data("gw-r"), encode(msg), qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()

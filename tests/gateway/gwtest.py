"""Helpers for gateway tests (imported by the test modules as `gwtest`): protocol-true Modbus simulators, a real MQTT subscriber
that records everything the gateway publishes, and config files."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from askue.contract import Topics, decode_command_result, decode_data, decode_health, decode_state
from askue.drivers.modbus.simulator import make_session_factory
from askue.drivers.sim.line import serve_tcp
from askue.drivers.sim.meter import Faults, SimMeter

MODEL = "schneider-iem3255"


def sim_meters(n: int, prefix: str = "m", first_unit: int = 1, **kw: Any) -> dict[int, SimMeter]:
    return {first_unit + i: SimMeter(id=f"{prefix}{first_unit + i:03d}", serial=f"{7000 + first_unit + i}",
                                     model=MODEL, address=first_unit + i, seed=first_unit + i, **kw)
            for i in range(n)}


async def start_modbus_tcp(meters: dict[int, SimMeter]) -> tuple[asyncio.Server, int]:
    server = await serve_tcp(make_session_factory(meters, transport="tcp"), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def meter_entries(meters: dict[int, SimMeter], bus: str, schedules: dict[str, Any],
                  **extra: Any) -> list[dict[str, Any]]:
    return [{"id": m.id, "bus": bus, "driver": "modbus", "model": MODEL, "address": unit, "serial": m.serial,
             "schedules": schedules, **extra} for unit, m in meters.items()]


def gateway_config(tmp: Path, gw_id: str, broker_port: int, buses: list[dict], meters: list[dict],
                   **sections: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "gateway": {"id": gw_id, "health_interval_s": 1, "shutdown_flush_s": 10},
        "broker": {"host": "127.0.0.1", "port": broker_port, "reconnect_max_s": 2, "keepalive_s": 5},
        "store": {"path": str(tmp / f"{gw_id}.db"), "synchronous": "NORMAL"},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "buses": buses,
        "meters": meters,
    }
    for k, v in sections.items():
        cfg[k] = {**cfg.get(k, {}), **v}
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@dataclass
class Collector:
    """A real MQTT 5 subscriber with a persistent session: it keeps receiving across a
    broker restart, as the head-end would."""

    host: str
    port: int
    gateway_id: str
    root: str = "askue"
    messages: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.topics = Topics(self.root)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-collector-{self.gateway_id}",
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()

    def _on_connect(self, client, userdata, flags, rc, props) -> None:
        if not rc.is_failure:
            client.subscribe(f"{self.root}/v1/{self.gateway_id}/#", qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))

    def start(self) -> Collector:
        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = 3600
        self.client.connect_async(self.host, self.port, keepalive=5, clean_start=False, properties=p)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("test collector could not subscribe")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def of(self, kind: str) -> list[bytes]:
        t = f"{self.root}/v1/{self.gateway_id}/{kind}"
        with self._lock:
            return [p for topic, p in self.messages if topic == t]

    def data(self):
        return [decode_data(p) for p in self.of("data")]

    def states(self):
        return [decode_state(p) for p in self.of("state")]

    def health(self):
        return [decode_health(p) for p in self.of("health")]

    def results(self):
        return [decode_command_result(p) for p in self.of("cmd/result")]

    def values(self) -> list:
        return [v for msg in self.data() for v in msg.values]

    def send(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)


async def wait_until(pred: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(step)


class VirtualClock:
    """A wall clock a test moves by hand (shared by a simulated meter and a gateway), so days
    of outage take no time."""

    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


__all__ = ["Collector", "Faults", "MODEL", "VirtualClock", "gateway_config", "meter_entries", "sim_meters",
           "start_modbus_tcp", "wait_until", "write_config"]

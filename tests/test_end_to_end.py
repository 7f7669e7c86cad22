"""The thin end-to-end slice: a simulated electricity meter serving Modbus TCP on
loopback → `askue gateway` → mosquitto → `askue headend` → PostgreSQL → REST API.
Every value the simulator served must come out of the API exactly, with the
meter's own time and the gateway's receive time."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from askue.devservices.ports import free_port
from askue.drivers.sim.fleet import Fleet, FleetSpec

REGISTERS = {"1.0.1.8.0.255", "1.0.1.8.1.255", "1.0.1.8.2.255"}
VOLTAGE = "1.0.32.7.0.255"


def _askue(*args: str) -> list[str]:
    return [sys.executable, "-m", "askue.cli", *args]


def _spawn(argv: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


async def test_simulated_meter_to_api_exact_values(tmp_path: Path, pg_dsn: str, mqtt_broker) -> None:
    fleet = await Fleet(FleetSpec.model_validate({
        "seed": 3,
        "lines": [{"protocol": "modbus", "transport": "tcp", "port": 0, "meters": [
            {"id": "e2e-1", "serial": "31400001", "address": 1, "model": "schneider-iem3255",
             "tariffs": "two_zone", "mean_power": 2.0}]}],
    })).start()
    meter = fleet.meters[0]
    api_port = free_port()
    gw_cfg = tmp_path / "gw.yaml"
    gw_cfg.write_text(yaml.safe_dump({
        "gateway": {"id": "gw-e2e"},
        "broker": {"host": mqtt_broker.host, "port": mqtt_broker.port},
        "store": {"path": str(tmp_path / "gw.db")},
        "metrics": {"port": 0},
        "buses": [{"id": "tcp1", "type": "tcp", "host": "127.0.0.1", "port": fleet.lines[0].port}],
        "meters": [{"id": "e2e-1", "bus": "tcp1", "driver": "modbus", "address": 1, "serial": "31400001",
                    "model": "schneider-iem3255",
                    "schedules": {"register": "2s", "instant": "2s", "interval": None, "events": None}}],
    }))
    token = subprocess.run(_askue("headend", "--dsn", pg_dsn, "token", "create", "--name", "e2e", "--role", "admin"),
                           capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    env = {**os.environ, "ASKUE_MQTT_GROUP": f"e2e{os.getpid()}"}
    headend = subprocess.Popen(
        _askue("headend", "--dsn", pg_dsn, "run", "--mqtt-host", mqtt_broker.host, "--mqtt-port",
               str(mqtt_broker.port), "--api-port", str(api_port)),
        stdout=open(tmp_path / "headend.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True, env=env)
    # The broker keeps messages only for subscriptions that exist: the head-end subscribes
    # (persistent session) before the first gateway publishes, as in the demo and in production.
    deadline = time.monotonic() + 30
    while "subscribed to" not in (tmp_path / "headend.log").read_text(errors="replace"):
        assert headend.poll() is None and time.monotonic() < deadline, (tmp_path / "headend.log").read_text()
        await asyncio.sleep(0.1)
    gateway = _spawn(_askue("gateway", "--config", str(gw_cfg)), tmp_path / "gateway.log")
    started = datetime.now(UTC)
    try:
        api = f"http://127.0.0.1:{api_port}/api/v1"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=headers, timeout=5) as client:
            # Wait until at least two polls' worth of every channel arrived.
            deadline = time.monotonic() + 60
            items: list[dict] = []
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                if gateway.poll() is not None or headend.poll() is not None:
                    break
                try:
                    r = await client.get(f"{api}/meters/e2e-1/readings", params={"limit": 1000})
                except httpx.TransportError:
                    continue
                if r.status_code == 200:
                    items = r.json()["items"]
                    got = {i["obis"] for i in items}
                    if REGISTERS | {VOLTAGE} <= got and len(items) >= 2 * (len(REGISTERS) + 1):
                        break
            _stop(gateway)  # no more reads: the simulator's record is now complete for what was sent
            await asyncio.sleep(1.0)
            r = await client.get(f"{api}/meters/e2e-1/readings", params={"limit": 10000})
            assert r.status_code == 200, r.text
            items = r.json()["items"]
    finally:
        _stop(gateway)
        _stop(headend)
        await fleet.stop()
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in tmp_path.glob("*.log"))
    assert items, f"no readings reached the API\n{logs}"

    api_values = {(i["obis"], datetime.fromisoformat(i["meter_time"])): i for i in items}
    served = [(obis, t, v) for kind, obis, t, v in meter.served if obis in REGISTERS | {VOLTAGE}]
    assert {o for o, _, _ in served} == REGISTERS | {VOLTAGE}
    # Every served value arrived exactly (same meter time, same value); nothing else arrived.
    for obis, t, v in served:
        item = api_values.get((obis, t))
        if item is None:
            # The gateway stopped between reading and storing this last poll: only the newest may miss.
            assert t == max(tt for o, tt, _ in served if o == obis), f"{obis} at {t} missing\n{logs}"
            continue
        assert item["value"] == v, (obis, t, item["value"], v)
        received = datetime.fromisoformat(item["received_at"])
        assert started - timedelta(seconds=5) <= received <= datetime.now(UTC)
        assert abs((received - t).total_seconds()) < 5  # the simulated clock does not drift here
        assert item["quality"] == "A"
    served_keys = {(o, t) for o, t, _ in served}
    extra = [k for k in api_values if k[0] in REGISTERS | {VOLTAGE} and k not in served_keys]
    assert not extra, f"values the meter never served: {extra[:5]}"
    # A+ total equals the sum of the tariff registers in every poll, as the meter reported it.
    by_time: dict[datetime, dict[str, float]] = {}
    for obis, t, v in served:
        by_time.setdefault(t, {})[obis] = v
    for regs in by_time.values():
        if REGISTERS <= set(regs):
            assert regs["1.0.1.8.0.255"] == pytest.approx(regs["1.0.1.8.1.255"] + regs["1.0.1.8.2.255"], abs=0.01)

"""Commands from the head-end over a real broker, carried out against protocol-true
simulators (DLMS/COSEM over the TCP wrapper, Modbus TCP), each answered on …/cmd/result."""
from __future__ import annotations

import asyncio
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from gwtest import (
    MODEL,
    gateway_config,
    meter_entries,
    sim_meters,
    start_modbus_tcp,
    wait_until,
    write_config,
)

from askue.contract import Topics
from askue.contract.payloads import Command, encode
from askue.drivers.dlms.simulator import make_session_factory as dlms_factory
from askue.drivers.sim.line import serve_tcp
from askue.drivers.sim.meter import Faults, SimMeter
from askue.gateway.config import load_config
from askue.gateway.service import Gateway

OFF = {"register": None, "interval": None, "instant": None, "events": None}
GW = "gw-cmd"


@pytest.fixture
async def rig(tmp_path, mqtt_broker, collector_factory):
    dlms = SimMeter(id="d1", serial="01234567", password="12345678", address=17,
                    faults=Faults(clock_jump_at=datetime.now(UTC) - timedelta(hours=1), clock_jump_s=-40))
    dserver = await serve_tcp(dlms_factory({17: dlms}, transport="tcp"))
    mb = sim_meters(2)
    mserver, mport = await start_modbus_tcp(mb)
    raw = gateway_config(
        tmp_path, GW, mqtt_broker.port,
        buses=[{"id": "dl", "type": "tcp", "host": "127.0.0.1", "port": dserver.sockets[0].getsockname()[1],
                "timeout_s": 2.0},
               {"id": "mb", "type": "tcp", "host": "127.0.0.1", "port": mport}],
        meters=[{"id": "d1", "bus": "dl", "driver": "dlms", "address": 17, "serial": "01234567",
                 "password": "12345678", "schedules": OFF}] + meter_entries({1: mb[1]}, "mb", OFF))
    path = write_config(tmp_path / "gw.yaml", raw)
    col = collector_factory(mqtt_broker.host, mqtt_broker.port, GW)
    gw = Gateway(load_config(path), path)
    await gw.start()
    await wait_until(lambda: gw.publisher.connected.is_set(), 10, "connect")
    try:
        yield gw, col, dlms, mb, raw, path
    finally:
        await gw.stop()
        dserver.close()
        mserver.close()


async def command(col, cmd: str, cid: str, topic_gw: str = GW, **args):
    col.send(Topics().cmd(topic_gw), encode(Command(v=1, id=cid, cmd=cmd, args=args)))
    await wait_until(lambda: any(r.id == cid for r in col.results()), 30, f"result of {cmd} {cid}")
    return next(r for r in col.results() if r.id == cid)


async def test_clock_relay_profile_and_poll_commands(rig):
    gw, col, dlms, mb, _raw, _path = rig
    r = await command(col, "read_clock", "c1", meter_id="d1")
    assert r.ok, r.error
    assert -45 < r.result["drift_s"] < -35, "the meter's clock runs 40 s behind"
    before = len(dlms.journal)
    r = await command(col, "sync_clock", "c2", meter_id="d1")
    assert r.ok, r.error
    assert abs(r.result["drift_s"]) < 3
    assert any(e.journal_obis == "0.0.99.98.3.255" for e in dlms.journal[before:]), "time set journalled"

    r = await command(col, "relay_disconnect", "c3", meter_id="d1")
    assert r.ok and dlms.relay_connected is False
    r = await command(col, "relay_reconnect", "c4", meter_id="d1")
    assert r.ok and dlms.relay_connected is True

    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=3)
    r = await command(col, "read_profile", "c5", meter_id="d1", start=start.isoformat(), end=end.isoformat())
    assert r.ok, r.error
    expected = dlms.profile(start, end)
    assert len(expected) == 6 and r.result["values"] >= 6  # the profile has several channels
    await wait_until(lambda: sum(v.kind == "interval" for v in col.values()) >= r.result["values"], 10,
                     "profile values")
    got = sorted((v.meter_time, v.value) for v in col.values() if v.obis == "1.0.1.29.0.255")
    assert got == [(t, pytest.approx(e)) for t, e in expected]
    assert all(v.period_s == 1800 for v in col.values() if v.kind == "interval")

    r = await command(col, "poll_now", "c6")
    assert r.ok and r.result["polled"] == 2, r.result
    await wait_until(lambda: {v.meter_id for v in col.values() if v.kind == "register"} == {"d1", mb[1].id}, 10,
                     "registers of both meters")


async def test_bad_commands_get_clear_errors_and_others_are_ignored(rig):
    gw, col, dlms, mb, _raw, _path = rig
    r = await command(col, "set_clock", "e1", meter_id=mb[1].id, time=datetime.now(UTC).isoformat())
    assert not r.ok and "Unsupported" in r.error
    r = await command(col, "read_clock", "e2", meter_id="nope")
    assert not r.ok and "'nope' is not configured" in r.error
    r = await command(col, "read_profile", "e3", meter_id="d1", start="2026-11-01T00:00:00", end="x")
    assert not r.ok and "needs a UTC offset" in r.error
    col.send(Topics().cmd(GW), b'{"v":1,"id":"e4","cmd":"format_disk"}')
    await wait_until(lambda: any(r.id == "e4" for r in col.results()), 10, "rejection")
    r = next(r for r in col.results() if r.id == "e4")
    assert not r.ok and "$.cmd" in r.error
    col.send(Topics().cmd(GW), b"\xff garbage")  # no id: logged, nothing to answer, nothing breaks

    # the same command delivered twice (QoS 1 redelivery) switches the relay once
    relay_entries = sum(e.journal_obis == "0.0.99.98.2.255" for e in dlms.journal)
    payload = encode(Command(v=1, id="dup1", cmd="relay_disconnect", args={"meter_id": "d1"}))
    col.send(Topics().cmd(GW), payload)
    col.send(Topics().cmd(GW), payload)
    await wait_until(lambda: sum(r.id == "dup1" for r in col.results()) == 2, 30, "two answers")
    assert sum(e.journal_obis == "0.0.99.98.2.255" for e in dlms.journal) == relay_entries + 1

    # a command for another gateway, or on a data topic, is not ours
    col.send(Topics().cmd("gw-other"), encode(Command(v=1, id="x1", cmd="poll_now")))
    col.send(Topics().data(GW), encode(Command(v=1, id="x2", cmd="poll_now")))
    r = await command(col, "read_clock", "after", meter_id="d1")
    assert r.ok and not any(r.id in ("x1", "x2") for r in col.results())


async def test_reload_config_by_command_and_metrics_endpoint(rig):
    gw, col, dlms, mb, raw, path = rig
    raw["meters"].append({"id": mb[2].id, "bus": "mb", "driver": "modbus", "model": MODEL, "address": 2,
                          "serial": mb[2].serial, "schedules": {**OFF, "register": 1}})
    raw["broker"]["batch_values"] = 7  # needs a restart: reported, not applied
    write_config(path, raw)
    r = await command(col, "reload_config", "r1")
    assert r.ok, r.error
    assert r.result["changes"] == {"meters_added": [mb[2].id]} and r.result["restart_needed"] == ["broker"]
    await wait_until(lambda: any(v.meter_id == mb[2].id for v in col.values()), 10, "the new meter's values")

    path.write_text(path.read_text().replace("driver: modbus", "driver: modbsu"))
    r = await command(col, "reload_config", "r2")
    assert not r.ok and "meters[1].driver" in r.error and mb[2].id in gw.meter_ids(), "bad config: old one kept"

    port = gw.metrics.port
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                                   .read().decode())
    assert f'askue_gateway_queue_depth{{gateway="{GW}"}}' in body
    assert f'askue_gateway_bus_requests_total{{bus="mb",gateway="{GW}"}}' in body  # prometheus_client sorts labels
    assert 'askue_gateway_meter_clock_drift_seconds{' in body and "askue_gateway_memory_rss_bytes" in body
    for line in body.splitlines():
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2 and float(line.rsplit(" ", 1)[1]) >= -1e9
    await wait_until(lambda: bool(col.health()), 10, "a health message")
    h = col.health()[-1]
    assert h.memory_rss_bytes and h.disk_free_bytes and "mb" in h.buses


async def test_an_expired_command_is_answered_and_not_carried_out(rig):
    gw, col, dlms, _mb, _raw, _path = rig
    past = datetime.now(UTC) - timedelta(seconds=1)
    col.send(Topics().cmd(GW), encode(Command(v=1, id="late1", cmd="relay_disconnect", args={"meter_id": "d1"},
                                              expires_at=past)))
    await wait_until(lambda: any(r.id == "late1" for r in col.results()), 10, "the refusal")
    r = next(r for r in col.results() if r.id == "late1")
    assert not r.ok and r.error.startswith("Expired:") and dlms.relay_connected is True
    future = datetime.now(UTC) + timedelta(minutes=5)
    col.send(Topics().cmd(GW), encode(Command(v=1, id="soon1", cmd="read_clock", args={"meter_id": "d1"},
                                              expires_at=future)))
    await wait_until(lambda: any(r.id == "soon1" for r in col.results()), 30, "the answer")
    assert next(r for r in col.results() if r.id == "soon1").ok

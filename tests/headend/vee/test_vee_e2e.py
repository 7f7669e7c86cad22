"""End to end through the live path: protocol-true Modbus TCP simulators with injected
faults → gateway → mosquitto → head-end ingest → VEE batch hook → abnormal events.

A meter whose register rolls over its six digits raises nothing (its stored value
carries the `rollover` reason); a meter whose register steps back by 50 kWh raises
exactly one reverse_reading; a clean meter raises nothing."""
from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from askue.devservices.ports import free_port
from askue.drivers.modbus.simulator import make_session_factory
from askue.drivers.sim.line import serve_tcp
from askue.drivers.sim.meter import Faults, SimMeter
from askue.gateway.config import GatewayConfig
from askue.gateway.service import Gateway
from askue.headend.app import run_headend
from askue.headend.config import Settings

MODEL = "schneider-iem3255"
A_PLUS = "1.0.1.8.0.255"


async def _headend_subscribed(dsn: str, broker, gw: str) -> None:
    """Publish a probe until the head-end stored it: data published before its shared
    subscription exists would be dropped by the broker, as in production before first start."""
    import aiomqtt

    from askue.contract import DataMessage, Topics, Value, encode

    now = datetime.now(UTC)
    probe = encode(DataMessage(v=1, gateway_id=gw, seq=0, sent_at=now, values=[
        Value(meter_id=f"{gw}-probe", obis="0.0.96.1.0.255", kind="instant", value=1.0, unit="",
              received_at=now)]))
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)

    async def stored() -> bool:
        cur = await conn.execute("SELECT 1 FROM meters WHERE code = %s", (f"{gw}-probe",))
        return await cur.fetchone() is not None

    async with aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
        deadline = time.monotonic() + 30
        while not await stored():
            if time.monotonic() > deadline:
                raise AssertionError("the head-end never stored the probe message")
            await pub.publish(Topics().data(gw), probe, qos=1)
            await asyncio.sleep(0.3)
    await conn.close()


async def _wait(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_simulator_faults_become_events_through_the_live_path(pg_dsn: str, mqtt_broker, tmp_path) -> None:
    now = datetime.now(UTC)
    rolling = SimMeter(id="vee-roll", serial="9001", model=MODEL, address=1, seed=1, digits=6, mean_power=3600.0)
    # put the register 4 kWh below its capacity: at ~1 kWh/s it rolls over within seconds
    rolling.start_value = 10 ** 6 - 4.0 - (rolling.registers(now)[0] - rolling.start_value)
    reverse = SimMeter(id="vee-rev", serial="9002", model=MODEL, address=2, seed=2, digits=6,
                       faults=Faults(reverse_step_at=now + timedelta(seconds=4), reverse_step=50.0))
    clean = SimMeter(id="vee-ok", serial="9003", model=MODEL, address=3, seed=3, digits=6)
    sims = {1: rolling, 2: reverse, 3: clean}
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # the registry knows the digit capacity
        for m in sims.values():
            conn.execute("INSERT INTO meters (code, serial, resource, digits, status) "
                         "VALUES (%s, %s, 'electricity', 6, 'active')", (m.id, m.serial))
    server = await serve_tcp(make_session_factory(sims, transport="tcp"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cfg = GatewayConfig.model_validate({
        "gateway": {"id": "gw-vee", "health_interval_s": 5, "shutdown_flush_s": 5},
        "broker": {"host": mqtt_broker.host, "port": mqtt_broker.port, "reconnect_max_s": 2, "keepalive_s": 5},
        "store": {"path": str(tmp_path / "gw.db"), "synchronous": "NORMAL"},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "buses": [{"id": "tcp1", "type": "tcp", "host": "127.0.0.1", "port": port, "timeout_s": 1.0}],
        "meters": [{"id": m.id, "bus": "tcp1", "driver": "modbus", "model": MODEL, "address": a, "serial": m.serial,
                    "schedules": {"register": 1, "instant": None, "interval": None, "events": None}}
                   for a, m in sims.items()],
    })
    settings = Settings(dsn=pg_dsn, mqtt_host=mqtt_broker.host, mqtt_port=mqtt_broker.port, mqtt_group="vee-e2e",
                        mqtt_client_id="vee-e2e-w", api_port=free_port(), batch_linger_s=0.05)
    headend = asyncio.create_task(run_headend(settings, api=False))
    await _headend_subscribed(pg_dsn, mqtt_broker, cfg.gateway.id)
    gw = Gateway(cfg)
    await gw.start()
    conn = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)

    async def values(code: str) -> list[tuple]:
        cur = await conn.execute("SELECT r.ts, r.value, r.reasons FROM register_readings r JOIN meters m "
                                 "ON m.id = r.meter_id WHERE m.code = %s AND r.obis = %s ORDER BY r.ts", (code, A_PLUS))
        return await cur.fetchall()

    async def events() -> list[tuple]:
        cur = await conn.execute("SELECT m.code, e.kind, e.evidence || jsonb_build_object('obis', e.obis) FROM abnormal_events e "
                                 "JOIN meters m ON m.id = e.meter_id ORDER BY e.id")
        return await cur.fetchall()

    try:
        async def rolled() -> bool:
            vs = await values("vee-roll")
            return any(b[1] < a[1] for a, b in zip(vs, vs[1:], strict=False)) and len(vs) >= 3

        async def reversed_() -> bool:
            return any(k == "reverse_reading" and c == "vee-rev" for c, k, _ in await events())

        try:
            await _wait(rolled, 60, "the six-digit register to roll over")
        except AssertionError as e:
            raise AssertionError(f"{e}: stored {(await values('vee-roll'))[-5:]}, "
                                 f"served {[x for x in rolling.served if x[1] == A_PLUS][-5:]}, "
                                 f"rev {(await values('vee-rev'))[-3:]}") from None
        await _wait(reversed_, 60, "the reverse step to be raised")
        await asyncio.sleep(3)  # more reads after the step: still one event
    finally:
        await gw.stop()
        server.close()
        headend.cancel()
        try:
            await headend
        except asyncio.CancelledError:
            pass
    evs = await events()
    # A− is a register of its own in the simulator: it rolls over with its own capacity, so
    # the rolling meter raises nothing at all; the stepped meter raises one event on A+.
    # The step is one instant, but a poll reads the total and the tariff registers in separate
    # requests: a poll that straddles the instant sees the tariffs drop one poll before the
    # total, and then each group raises its own event. Either way every register is in one event
    # only, however many reads followed.
    on_a_plus = [(c, k, e) for c, k, e in evs if e["obis"].startswith("1.0.1.8.")]
    text = "\n".join(map(str, evs))
    assert on_a_plus and all((c, k) == ("vee-rev", "reverse_reading") for c, k, _ in on_a_plus), text
    assert not [c for c, _, e in evs if not e["obis"].startswith("1.0.1.8.")], text
    covered = [o for _, _, e in on_a_plus for o in (e["obis"], *e.get("also", []))]
    assert len(covered) == len(set(covered)), text
    assert {"1.0.1.8.0.255", "1.0.1.8.1.255", "1.0.1.8.2.255"} <= set(covered), text
    if len(on_a_plus) == 1:  # the usual case: the tariff registers in the total's event
        assert on_a_plus[0][2]["obis"] == "1.0.1.8.0.255", text
    ev = next(e for _, _, e in on_a_plus if e["obis"] == "1.0.1.8.0.255")
    assert ev["previous"] - ev["current"] == pytest.approx(50.0, abs=1.0)
    roll = await values("vee-roll")
    wrapped = [r for a, r in zip(roll, roll[1:], strict=False) if r[1] < a[1]]
    assert wrapped and all(r[2] == ["rollover"] for r in wrapped)
    served = {round(v, 6) for (_k, obis, _t, v) in rolling.served if obis == A_PLUS}
    assert {round(r[1], 6) for r in roll} <= served, "stored values are the ones the simulator served"
    assert all(r[2] == [] for r in await values("vee-ok"))
    await conn.close()


@pytest.mark.slow
async def test_dlms_tamper_journal_and_clock_jump_become_events(pg_dsn: str, mqtt_broker, tmp_path) -> None:
    """СПОДЭС simulator: a magnetic-field entry in the external-influence journal and a
    meter clock 400 s behind arrive through the gateway as tamper and clock_drift events."""
    from askue.drivers.dlms.simulator import make_session_factory as dlms_factory

    now = datetime.now(UTC)
    sim = SimMeter(id="vee-dlms", serial="01234567", password="12345678", address=17,
                   faults=Faults(tamper_at=now - timedelta(minutes=20), clock_jump_at=now - timedelta(hours=1),
                                 clock_jump_s=-400))
    server = await serve_tcp(dlms_factory({17: sim}, transport="tcp"), "127.0.0.1", 0)
    cfg = GatewayConfig.model_validate({
        "gateway": {"id": "gw-vee-dlms", "health_interval_s": 5, "shutdown_flush_s": 5},
        "broker": {"host": mqtt_broker.host, "port": mqtt_broker.port, "reconnect_max_s": 2, "keepalive_s": 5},
        "store": {"path": str(tmp_path / "gw.db"), "synchronous": "NORMAL"},
        "metrics": {"host": "127.0.0.1", "port": 0},
        "buses": [{"id": "dl", "type": "tcp", "host": "127.0.0.1", "port": server.sockets[0].getsockname()[1],
                   "timeout_s": 2.0}],
        "meters": [{"id": sim.id, "bus": "dl", "driver": "dlms", "address": 17, "serial": sim.serial,
                    "password": "12345678", "clock_check_s": None,
                    "schedules": {"register": 2, "instant": None, "interval": None, "events": 2}}],
    })
    settings = Settings(dsn=pg_dsn, mqtt_host=mqtt_broker.host, mqtt_port=mqtt_broker.port, mqtt_group="vee-e2e2",
                        mqtt_client_id="vee-e2e2-w", api_port=free_port(), batch_linger_s=0.05)
    headend = asyncio.create_task(run_headend(settings, api=False))
    await _headend_subscribed(pg_dsn, mqtt_broker, cfg.gateway.id)
    gw = Gateway(cfg)
    await gw.start()
    conn = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)

    async def events() -> list[tuple]:
        cur = await conn.execute("SELECT e.kind, e.obis, e.evidence FROM abnormal_events e JOIN meters m "
                                 "ON m.id = e.meter_id WHERE m.code = %s ORDER BY e.id", (sim.id,))
        return await cur.fetchall()

    async def both() -> bool:
        return {"tamper", "clock_drift"} <= {k for k, _, _ in await events()}

    try:
        try:
            await _wait(both, 60, "tamper and clock_drift events")
        except AssertionError as e:
            cur = await conn.execute("SELECT obis, ts, value FROM meter_events")
            raise AssertionError(f"{e}: {await events()}; journal {await cur.fetchall()}") from None
        await asyncio.sleep(4)  # more polls: nothing raised twice
    finally:
        await gw.stop()
        server.close()
        headend.cancel()
        try:
            await headend
        except asyncio.CancelledError:
            pass
    evs = await events()
    tamper = [e for k, _, e in evs if k == "tamper"]
    assert [(t["code"], t["journal"]) for t in tamper] == [(1, "external influence journal")]  # code 2 (end) not raised
    drift = [e for k, _, e in evs if k == "clock_drift"]
    assert len(drift) == 1 and -420 < drift[0]["drift_s"] < -380
    await conn.close()

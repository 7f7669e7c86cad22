"""Day- and month-start registers from the meter's billing profiles (DLMS/СПОДЭС 1.0.98.2.0.255 /
1.0.98.1.0.255) through the gateway: marked with their archive, stamped with the boundary,
backfilled from meter memory through the gap ledger after a 3-day gateway outage that crosses
a month start, each boundary stored once. The transformer ratios read on connect reach the
meter status.

The meter and the gateway share a virtual wall clock, so days of outage take no time.
"""
from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import msgspec
from gwtest import gateway_config, wait_until
from test_backfill import VirtualClock

from askue.contract.payloads import Value
from askue.devservices.ports import free_port
from askue.drivers.dlms.simulator import make_session_factory
from askue.drivers.sim.line import serve_tcp
from askue.drivers.sim.meter import MSK, SimMeter
from askue.gateway.config import GatewayConfig
from askue.gateway.service import Gateway
from askue.gateway.store import Store

A_PLUS = "1.0.1.8.0.255"


def archived(path) -> list[Value]:
    s = Store(path)
    dec = msgspec.json.Decoder(Value)
    out = [v for v in (dec.decode(b) for b in s.all_bodies()) if v.archive is not None]
    s.close()
    return out


def msk(*a: int) -> datetime:
    return datetime(*a, tzinfo=MSK).astimezone(UTC)


async def test_day_and_month_starts_backfilled_across_an_outage(tmp_path):
    clock = VirtualClock(datetime(2026, 10, 30, 12, 7, 30, tzinfo=UTC))
    meter = SimMeter(id="d1", serial="01234567", password="12345678", address=17, now=clock, history_days=40,
                     options={"ct_ratio": 40, "vt_ratio": 100})
    server = await serve_tcp(make_session_factory({17: meter}, transport="tcp"))
    raw = gateway_config(
        tmp_path, "gw-arch", free_port(),  # no broker: the store keeps everything
        buses=[{"id": "dl", "type": "tcp", "host": "127.0.0.1", "port": server.sockets[0].getsockname()[1],
                "timeout_s": 2}],
        meters=[{"id": "d1", "bus": "dl", "driver": "dlms", "address": 17, "serial": "01234567",
                 "password": "12345678", "retries": 0, "backoff_max_s": 1,
                 "schedules": {"register": 1, "instant": None, "events": None, "interval": None}}],
        metrics={"port": None}, gateway={"shutdown_flush_s": 0})
    cfg = GatewayConfig.model_validate(raw)
    db = tmp_path / "gw-arch.db"

    async def run_until(day: datetime, month: datetime) -> Gateway:
        gw = Gateway(cfg, now=clock)
        await gw.start()
        try:
            await wait_until(lambda: (gw.store.ledger_for_meter("d1").get("day_start") == day
                                      and gw.store.ledger_for_meter("d1").get("month_start") == month), 30,
                             f"day start {day} and month start {month} in the ledger")
        finally:
            await gw.stop()
        return gw

    # First start: the latest day start and month start.
    gw = await run_until(msk(2026, 10, 30), msk(2026, 10, 1))
    status = gw.workers["dl"].meters["d1"].status()
    assert (status.ct_ratio, status.vt_ratio) == (40.0, 100.0)

    # The gateway is off for 3 days and a month start: on restart the ledger says where to resume.
    clock.t += timedelta(days=3)
    await run_until(msk(2026, 11, 2), msk(2026, 11, 1))
    server.close()

    values = archived(db)
    keys = Counter((v.archive, v.obis, v.meter_time) for v in values)
    assert max(keys.values()) == 1, "each boundary stored once"
    days = sorted({v.meter_time for v in values if v.archive == "day_start"})
    assert days == [msk(2026, 10, 30), msk(2026, 10, 31), msk(2026, 11, 1), msk(2026, 11, 2)]
    months = sorted({v.meter_time for v in values if v.archive == "month_start"})
    assert months == [msk(2026, 10, 1), msk(2026, 11, 1)]
    # Every value is the meter's register at that boundary (the simulator's own model).
    for v in values:
        if v.obis == A_PLUS:
            assert v.kind == "register" and v.unit == "kWh"
            assert abs(v.value - meter.registers(v.meter_time)[0]) < 1e-9
    assert {v.obis for v in values} == {f"1.0.{q}.8.{t}.255" for q in (1, 2, 3, 4) for t in range(5)}


async def test_meter_without_archives_keeps_its_register_polls(tmp_path):
    clock = VirtualClock(datetime(2026, 10, 30, 12, 7, 30, tzinfo=UTC))
    meter = SimMeter(id="d2", serial="01234568", password="12345678", address=17, now=clock,
                     options={"billing_profiles": False})
    server = await serve_tcp(make_session_factory({17: meter}, transport="tcp"))
    raw = gateway_config(
        tmp_path, "gw-noarch", free_port(),
        buses=[{"id": "dl", "type": "tcp", "host": "127.0.0.1", "port": server.sockets[0].getsockname()[1],
                "timeout_s": 2}],
        meters=[{"id": "d2", "bus": "dl", "driver": "dlms", "address": 17, "password": "12345678",
                 "schedules": {"register": 1, "instant": None, "events": None, "interval": None}}],
        metrics={"port": None}, gateway={"shutdown_flush_s": 0})
    gw = Gateway(GatewayConfig.model_validate(raw), now=clock)
    await gw.start()
    try:
        state = gw.workers["dl"].meters["d2"]
        await wait_until(lambda: state.polls >= 3, 30, "three register polls")
        assert state.unsupported == {"day_start", "month_start"}
        assert state.last_error is None
        assert (state.ct_ratio, state.vt_ratio) == (1.0, 1.0)
    finally:
        await gw.stop()
        server.close()
    assert not archived(tmp_path / "gw-noarch.db")

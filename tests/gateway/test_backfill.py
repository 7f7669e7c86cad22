"""Gap ledger and backfill against the DLMS/COSEM simulator (profile 1.0.99.1.0.255 read
by range): after a gateway outage and after a meter outage the missing intervals are read
from the meter's own memory, so no interval is lost while the meter still holds it.

The meter and the gateway share a virtual wall clock, so hours of outage take no time;
polling itself runs on the real clock.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from gwtest import VirtualClock, gateway_config, wait_until

from askue.contract.payloads import Value
from askue.devservices.ports import free_port
from askue.drivers.dlms.simulator import make_session_factory
from askue.drivers.sim.line import serve_tcp
from askue.drivers.sim.meter import SimMeter
from askue.gateway.config import GatewayConfig
from askue.gateway.service import Gateway
from askue.gateway.store import Store

A_PLUS = "1.0.1.29.0.255"


def stored_intervals(path) -> dict[datetime, float]:
    s = Store(path)
    dec = msgspec.json.Decoder(Value)
    out = {}
    for body in s.all_bodies():
        v = dec.decode(body)
        if v.obis == A_PLUS:
            out[v.meter_time] = v.value
    s.close()
    return out


async def test_profile_backfill_after_gateway_and_meter_outages(tmp_path):
    clock = VirtualClock(datetime(2026, 11, 10, 12, 7, 30, tzinfo=UTC))
    meter = SimMeter(id="d1", serial="01234567", password="12345678", address=17, now=clock, history_days=5)
    server = await serve_tcp(make_session_factory({17: meter}, transport="tcp"))
    raw = gateway_config(
        tmp_path, "gw-fill", free_port(),  # no broker: the store keeps everything
        buses=[{"id": "dl", "type": "tcp", "host": "127.0.0.1", "port": server.sockets[0].getsockname()[1],
                "timeout_s": 2}],
        meters=[{"id": "d1", "bus": "dl", "driver": "dlms", "address": 17, "serial": "01234567",
                 "password": "12345678", "profile_initial_days": 0.5, "profile_chunk_intervals": 8,
                 "retries": 0, "backoff_max_s": 1,
                 "schedules": {"register": None, "instant": None, "events": None, "interval": 1}}],
        metrics={"port": None}, gateway={"shutdown_flush_s": 0})
    cfg = GatewayConfig.model_validate(raw)
    db = tmp_path / "gw-fill.db"
    first = clock.t - timedelta(days=0.5)

    def expected(until: datetime) -> dict[datetime, float]:
        return dict(meter.profile(first, until))

    async def run_until_caught_up() -> None:
        gw = Gateway(cfg, now=clock)
        await gw.start()
        try:
            await wait_until(lambda: gw.store.ledger("d1", A_PLUS)[0] is not None and
                             gw.store.ledger("d1", A_PLUS)[0] >= clock.t - timedelta(minutes=30), 60,
                             "the profile to be read up to now")
        finally:
            await gw.stop()

    # First start: half a day of profile, read in chunks of 8 intervals.
    await run_until_caught_up()
    got = stored_intervals(db)
    assert len(got) == 24 and got == expected(clock.t + timedelta(seconds=1))

    # The gateway is off for 6 h 20 min: on restart the ledger says where to resume.
    clock.t += timedelta(hours=6, minutes=20)
    await run_until_caught_up()
    got = stored_intervals(db)
    assert got == expected(clock.t + timedelta(seconds=1)) and len(got) == 24 + 12

    # The meter is silent for 3 h while the gateway runs; then answers again.
    gw = Gateway(cfg, now=clock)
    meter.faults.silent = True
    await gw.start()
    try:
        w = gw.workers["dl"]
        await wait_until(lambda: w.meters["d1"].failures >= 1, 30, "the silent meter to be noticed")
        clock.t += timedelta(hours=3)
        meter.faults.silent = False
        await wait_until(lambda: gw.store.ledger("d1", A_PLUS)[0] >= clock.t - timedelta(minutes=30), 60,
                         "backfill after the meter outage")
    finally:
        await gw.stop()
        server.close()
    got = stored_intervals(db)
    assert got == expected(clock.t + timedelta(seconds=1)) and len(got) == 24 + 12 + 6
    # every interval end is on the half hour: nothing shifted, nothing doubled
    assert all(t.minute in (0, 30) and t.second == 0 for t in got)

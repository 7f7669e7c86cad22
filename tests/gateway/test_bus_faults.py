"""One RS-485 bus (Modbus RTU over a pty) with ten meters, one of them silent and one
sending garbage: the other eight keep their schedule, the two are reported and backed off."""
from __future__ import annotations

import asyncio
from collections import defaultdict

import msgspec
import pytest
from gwtest import gateway_config, meter_entries, sim_meters, wait_until

from askue.contract.payloads import Value
from askue.devservices.ports import free_port
from askue.drivers.modbus.simulator import make_session_factory
from askue.drivers.sim.line import PtyServer
from askue.drivers.sim.meter import Faults
from askue.gateway.config import GatewayConfig
from askue.gateway.service import Gateway

pytestmark = pytest.mark.faults

PERIOD = 2.0
TIMEOUT = 0.3


async def test_silent_and_garbage_meters_do_not_stall_the_bus(tmp_path):
    sims = sim_meters(10)
    sims[3].faults = Faults(silent=True)
    sims[7].faults = Faults(garbage_rate=1.0)
    pty = await PtyServer(make_session_factory(sims, transport="serial"), tmp_path / "ttyRS485").start()
    raw = gateway_config(
        tmp_path, "gw-bus", free_port(),  # no broker: polling must not care
        buses=[{"id": "rs485-1", "type": "serial", "device": str(tmp_path / "ttyRS485"), "baudrate": 9600,
                "timeout_s": TIMEOUT, "inter_frame_gap_s": 0.005}],
        meters=meter_entries(sims, "rs485-1", {"register": PERIOD, "interval": None, "events": None},
                             retries=1, options={"frame_timeout": 0.1}),
        metrics={"port": None})
    gw = Gateway(GatewayConfig.model_validate(raw))
    await gw.start()
    w = gw.workers["rs485-1"]
    try:
        await wait_until(lambda: min(w.meters[m.id].polls for u, m in sims.items() if u not in (3, 7)) >= 6, 60,
                         "six polls of every healthy meter")
    finally:
        await gw.stop()
        await pty.stop()

    dec = msgspec.json.Decoder(Value)
    from askue.gateway.store import Store

    store = Store(tmp_path / "gw-bus.db")
    reads: dict[str, set] = defaultdict(set)
    for body in store.all_bodies():
        v = dec.decode(body)
        reads[v.meter_id].add(v.received_at)
    store.close()
    healthy = [m.id for u, m in sims.items() if u not in (3, 7)]
    assert set(reads) == set(healthy), "the silent and the garbage meter produced no values"
    for mid in healthy:
        times = sorted(reads[mid])
        gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
        # The schedule is 2 s; one pass of the faulty pair costs at most 2 × (1 + retries) × timeout.
        assert max(gaps) <= PERIOD + 4 * TIMEOUT + 0.8, f"{mid}: polls {gaps} s apart"
    silent, garbage = w.meters[sims[3].id], w.meters[sims[7].id]
    assert silent.last_error and "MeterTimeout" in silent.last_error
    assert garbage.last_error and "FrameError" in garbage.last_error
    assert w.stats.timeouts >= 2 and w.stats.crc_errors >= 2
    assert silent.failures >= 1 and silent.polls == 0 and garbage.polls == 0
    # back-off: the faulty meters were tried less often than the healthy ones were polled
    healthy_polls = min(w.meters[m].polls for m in healthy)
    assert silent.failures < healthy_polls and garbage.failures < healthy_polls
    statuses = {s.meter_id: s for s in gw.statuses({sims[3].id, sims[7].id, healthy[0]})}
    assert not statuses[sims[3].id].ok and statuses[healthy[0]].ok
    await asyncio.sleep(0)


async def test_replaced_meter_is_reported_not_read(tmp_path):
    """A meter swapped on site (new serial at the configured address): the gateway reports
    the identity mismatch and reads nothing from it; the other meter goes on."""
    from datetime import UTC, datetime, timedelta

    from gwtest import start_modbus_tcp

    sims = sim_meters(2)
    sims[2].faults = Faults(replaced_at=datetime.now(UTC) - timedelta(hours=1))
    server, port = await start_modbus_tcp(sims)
    raw = gateway_config(
        tmp_path, "gw-id", free_port(),
        buses=[{"id": "tcp1", "type": "tcp", "host": "127.0.0.1", "port": port}],
        meters=meter_entries(sims, "tcp1", {"register": 1, "interval": None, "events": None}),
        metrics={"port": None})
    gw = Gateway(GatewayConfig.model_validate(raw))
    await gw.start()
    w = gw.workers["tcp1"]
    try:
        await wait_until(lambda: w.meters[sims[2].id].last_error is not None and w.meters[sims[1].id].polls >= 3,
                         30, "the mismatch to be reported")
    finally:
        await gw.stop()
        server.close()
    bad = w.meters[sims[2].id]
    assert "IdentityMismatch" in bad.last_error and f"configured serial '{sims[2].serial}'" in bad.last_error
    assert f"meter reports '{sims[2].serial}'" not in bad.last_error
    assert bad.polls == 0 and w.stats.identity_mismatches >= 1
    assert not any(k == "register" for k, *_ in sims[2].served), "nothing was read from the wrong meter"

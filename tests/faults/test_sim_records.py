"""The fault suite trusts each simulator's record (SimMeter.served) as the truth of what a
meter handed out. Here every driver of the fleet reads its simulator once, directly, and
every reading it returns must be in the record under the same (OBIS, meter time) with the
same value — otherwise the suite's "in the database exactly once" check would compare
against times no reader ever sees (a value must carry the meter time its reader gives it)."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from faultkit import PLAN, fleet_spec

from askue.drivers.base import Capability, MeterSpec, get_driver
from askue.drivers.sim.fleet import Fleet, FleetSpec
from askue.drivers.transport import SerialTransport, TcpTransport

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("key", [p.key for p in PLAN if p.key not in ("mbb", "mbc", "mbd")])
async def test_every_reading_is_in_the_simulator_record(key: str, tmp_path) -> None:
    spec = fleet_spec(tmp_path / "tty")
    i = [p.key for p in PLAN].index(key)
    plan = PLAN[i]
    line = spec["lines"][i]
    line["meters"] = line["meters"][:2]
    fleet = await Fleet(FleetSpec.model_validate({**spec, "lines": [line]})).start()
    try:
        sim = fleet.meters[-1]
        # Time runs fast in the meter (0.3 s per look at its clock), so a reader's clock read and
        # its later value reads fall into different seconds, as they do on a busy machine.
        ticks = iter(range(10**9))
        base = datetime.now(UTC)
        sim.now = lambda: base + timedelta(seconds=0.3 * next(ticks))
        transport = TcpTransport("127.0.0.1", fleet.lines[0].port) if plan.transport == "tcp" \
            else SerialTransport(fleet.lines[0].pty)
        meter = line["meters"][-1]
        drv = get_driver(plan.protocol)(transport, MeterSpec(
            id=meter["id"], driver=plan.protocol, address=meter["address"], serial=meter["serial"],
            model=plan.model, password=plan.password, options={"timeout": 5.0, "resource": meter["resource"]}))
        try:
            await drv.connect()
            readings = await drv.read_registers()
            if Capability.INSTANT in drv.capabilities:
                readings += await drv.read_instant()
            if Capability.PROFILE in drv.capabilities:
                now = datetime.now(UTC)
                readings += await drv.read_profile(now - timedelta(hours=1), now)
            if Capability.EVENTS in drv.capabilities:
                readings += await drv.read_events(None)
        finally:
            await drv.close()
            await transport.close()
    finally:
        await fleet.stop()
    assert readings
    record: dict[tuple[str, datetime | None], list[float]] = {}
    for _kind, obis, t, v in sim.served:
        record.setdefault((obis, t), []).append(v)
    wrong = [(r.obis, r.meter_time, r.value) for r in readings
             if not any(math.isclose(r.value, v, rel_tol=1e-9, abs_tol=1e-9)
                        for v in record.get((r.obis, r.meter_time), []))]
    assert not wrong, f"readings not in the simulator's record as read: {wrong[:5]}; record: {sim.served[:5]}"

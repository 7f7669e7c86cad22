"""The M-Bus driver over a line that damages the simulator's answers: every outcome is a
result or a typed DriverError, never another exception or a hang."""
from __future__ import annotations

import asyncio

from damaged_line import MutatingLine, mutations, mutator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from askue.drivers.base import MeterSpec, get_driver
from askue.drivers.errors import DriverError
from askue.drivers.mbus.simulator import make_session_factory
from askue.drivers.sim.meter import SimMeter

# Telegram shapes of real meters (simulator options): LVAR text, VIF 0x7B, multi-telegram
# answers with a strict FCB, extension-table and accumulated energy, an invalid clock.
SHAPES = [{}, {"text_records": True, "unknown_vif": True}, {"records_per_telegram": 3, "strict_fcb": True},
          {"energy_vif": "mwh", "time_invalid": True}, {"energy_vif": "kwh_accumulation", "records_per_telegram": 4}]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.integers(0, 4), mutations(120), max_size=3), st.sampled_from(SHAPES))
def test_damaged_answers_give_result_or_typed_error(chosen, shape):
    meter = SimMeter(id="h1", serial="70000001", resource="heat", mean_power=0.02, options=shape)
    session = make_session_factory({1: meter}, transport="serial")()

    async def run() -> None:
        line = MutatingLine(session, mutator(chosen))
        drv = get_driver("mbus")(line, MeterSpec(id="h1", driver="mbus", address=1, serial="70000001",
                                                 options={"timeout": 0.02, "resource": "heat"}))
        try:
            await drv.connect()
            await drv.read_registers()
            await drv.read_instant()
        except DriverError:
            pass

    asyncio.run(asyncio.wait_for(run(), 10))

"""The Mercury driver over a line that damages the simulator's answers: every outcome is a
result or a typed DriverError, never another exception or a hang."""
from __future__ import annotations

import asyncio

from damaged_line import MutatingLine, mutations, mutator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from askue.drivers.base import MeterSpec, get_driver
from askue.drivers.errors import DriverError
from askue.drivers.mercury.simulator import make_session_factory
from askue.drivers.sim.meter import SimMeter


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.integers(0, 12), mutations(30), max_size=3))
def test_damaged_answers_give_result_or_typed_error(chosen):
    meter = SimMeter(id="m1", serial="40000001", password="111111")
    session = make_session_factory({1: meter}, transport="serial")()

    async def run() -> None:
        line = MutatingLine(session, mutator(chosen))
        drv = get_driver("mercury")(line, MeterSpec(id="m1", driver="mercury", address=1, serial="40000001",
                                                    password="111111", options={"timeout": 0.02}))
        try:
            await drv.connect()
            await drv.read_registers()
            await drv.read_instant()
        except DriverError:
            pass

    asyncio.run(asyncio.wait_for(run(), 10))

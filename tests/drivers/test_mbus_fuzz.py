"""The M-Bus driver over a line that damages the simulator's answers: every outcome is a
result or a typed DriverError, never another exception or a hang."""
from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from askue.drivers.base import MeterSpec, get_driver
from askue.drivers.errors import DriverError
from askue.drivers.mbus.simulator import make_session_factory
from askue.drivers.sim.meter import SimMeter
from askue.drivers.transport import Transport


class _Writer:
    def __init__(self, line: MutatingLine):
        self.line = line
        self.closed = False

    def write(self, data: bytes) -> None:
        self.line.on_request(data)

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


class MutatingLine(Transport):
    """An in-memory line: each request goes to a simulator session; answer number i passes
    through `mutate(i, bytes)` before the driver sees it."""

    def __init__(self, session, mutate):
        super().__init__()
        self.session, self.mutate, self.count = session, mutate, 0

    async def open(self) -> None:
        self._reader = asyncio.StreamReader()
        self._writer = _Writer(self)  # type: ignore[assignment]

    def on_request(self, data: bytes) -> None:
        for reply in self.session.feed(data):
            out = self.mutate(self.count, reply.data)
            self.count += 1
            if out:
                assert self._reader is not None
                self._reader.feed_data(out)


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 120)),
    st.tuples(st.just("flip"), st.integers(0, 120), st.integers(1, 255)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("replace"), st.binary(max_size=24)),
    st.tuples(st.just("drop"),),
)


def apply(m: tuple, data: bytes) -> bytes:
    kind = m[0]
    if kind == "truncate":
        return data[:m[1]]
    if kind == "flip":
        b = bytearray(data)
        if b:
            b[m[1] % len(b)] ^= m[2]
        return bytes(b)
    if kind == "append":
        return data + m[1]
    if kind == "replace":
        return m[1]
    return b""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.integers(0, 4), mutation, max_size=3))
def test_damaged_answers_give_result_or_typed_error(mutations):
    meter = SimMeter(id="h1", serial="70000001", resource="heat", mean_power=0.02)
    session = make_session_factory({1: meter}, transport="serial")()

    def mutate(i: int, data: bytes) -> bytes:
        return apply(mutations[i], data) if i in mutations else data

    async def run() -> None:
        line = MutatingLine(session, mutate)
        drv = get_driver("mbus")(line, MeterSpec(id="h1", driver="mbus", address=1, serial="70000001",
                                                 options={"timeout": 0.02, "resource": "heat"}))
        try:
            await drv.connect()
            await drv.read_registers()
            await drv.read_instant()
        except DriverError:
            pass

    asyncio.run(asyncio.wait_for(run(), 10))

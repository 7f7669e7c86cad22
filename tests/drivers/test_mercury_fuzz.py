"""The Mercury driver and its decoders fed damaged answers: every outcome is a result or a
typed DriverError, never another exception or a hang.

* each decoder of the meter's memory (ratios, variant, last profile record, profile record,
  journal record) gets 10,000 seeded byte mutations of documented answers, both as a whole
  frame through check_reply and as bare data;
* the profile window search runs on 10,000 seeded rings of mutated records;
* the driver reads registers, instant values, profile and journals from the simulator over a
  line that damages chosen answers.
"""
from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from damaged_line import MutatingLine, mutations, mutator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from askue.drivers.base import MeterSpec, get_driver
from askue.drivers.errors import DriverError
from askue.drivers.mercury import frames as f
from askue.drivers.mercury import journals, params
from askue.drivers.mercury import profile as prof
from askue.drivers.mercury.simulator import make_session_factory
from askue.drivers.sim.meter import Faults, SimMeter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
from mutation import FUZZ, mutate_bytes, run_mutations, seeds  # noqa: E402


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def frame(data: bytes, address: int = 1) -> bytes:
    return f.with_crc(bytes([address]) + data)


def _ok(fn: Callable[..., object], *args: object) -> None:
    try:
        fn(*args)
    except DriverError:
        pass


def _decoder(decode: Callable[[bytes], object], lengths: tuple[int, ...]) -> Callable[[bytes], None]:
    """parse(data): the data through the decoder, and the frame through check_reply then the decoder."""
    def parse(data: bytes) -> None:
        _ok(decode, data[1:-2])
        for n in lengths:
            try:
                body = f.check_reply(data, data[0] if data else 1, n, "fuzz")
            except DriverError:
                continue
            decode(body)
        decode(data)  # raw bytes of any length: a result or a typed error

    return parse


# Documented answers (test_mercury_frames.py names their sources) and the simulator's.
RECORD = h("08 10 30 02 12 26 1E 23 01 FF FF 10 00 FF FF")
CASES = {
    "ratios": ([frame(h("00 01 00 01")), frame(h("00 3C 01 90"))], params.decode_ratios, (params.RATIOS_LEN,)),
    "variant": ([frame(h("B4 E3 C2 97 DF 58")), frame(h("00 04 00"))], params.decode_variant, params.VARIANT_LENS),
    "last record 128k": ([frame(h("00 01 0A 09 00 04 03 08 1E"))],
                         lambda d: prof.decode_last_record(d, prof.LARGE), (prof.LAST_RECORD_LEN,)),
    "last record 64k": ([frame(h("7F F0 09 23 30 01 12 26 1E")), frame(h("00 00 04 00 00 00 00 00 1E"))],
                        lambda d: prof.decode_last_record(d, prof.SMALL), (prof.LAST_RECORD_LEN,)),
    "profile record": ([frame(RECORD), frame(prof.EMPTY_RECORD)], prof.decode_record, (prof.RECORD_REPLY_LEN,)),
    "journal record": ([frame(h("00 00 10 01 12 26 30 15 10 01 12 26")), frame(bytes(12))],
                       journals.decode_journal_record, (journals.JOURNAL_REPLY_LEN,)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_memory_decoders_give_a_result_or_a_typed_error(name: str) -> None:
    samples, decode, lengths = CASES[name]
    seen = run_mutations(samples, _decoder(decode, lengths), DriverError)
    assert seen["typed"] > 1000 and seen["ok"] > 0, seen


def _drive(coro):
    """Run a coroutine that never really waits (its fetch answers at once) without a loop."""
    try:
        coro.send(None)
    except StopIteration as e:
        return e.value
    raise AssertionError("the window search waited on something")


@pytest.mark.slow
@FUZZ
@given(seeds)
def test_window_search_on_damaged_rings(seed: int) -> None:
    rng = random.Random(seed)
    layout = prof.SMALL
    top_index = rng.randrange(64)
    base = datetime(2026, 12, 1, 12, 0)
    ring: dict[int, prof.Record] = {}
    for p in range(64):  # the 64 newest records, some damaged, some from a wrong clock or gap
        stamp = base - timedelta(minutes=30 * p + (rng.choice((0, 0, 0, 30, 90)) if rng.random() < 0.2 else 0))
        data = prof.encode_record(8, stamp, 30, (rng.randrange(100), 0, 5, 0))
        if rng.random() < 0.3:
            data = mutate_bytes(data, rng)
        try:
            ring[(top_index - p) % layout.capacity] = prof.decode_record(data)
        except DriverError:
            ring[(top_index - p) % layout.capacity] = prof.decode_record(prof.EMPTY_RECORD)
    top = prof.LastRecord(top_index, rng.choice((0, 1)), base, 30)

    async def fetch(index: int) -> prof.Record:
        return ring.get(index) or prof.decode_record(prof.EMPTY_RECORD)

    def end_of(r: prof.Record) -> datetime | None:
        return None if r.stamp is None else r.stamp.replace(tzinfo=UTC)

    start = base.replace(tzinfo=UTC) - timedelta(minutes=rng.randrange(-60, 40 * 30))
    end = start + timedelta(minutes=rng.randrange(0, 40 * 30))
    budget = rng.randrange(1, 120)
    w = _drive(prof.read_window(fetch, top, base.replace(tzinfo=UTC), layout, end_of, start, end, budget))
    ends = [s.end for s in w.slices]
    assert all(start <= e < end for e in ends) and len(set(ends)) == len(ends)
    assert w.reads <= budget


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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.integers(0, 40), mutations(20), max_size=4))
def test_damaged_memory_answers_give_result_or_typed_error(chosen):
    now = datetime.now(UTC)
    meter = SimMeter(id="m1", serial="40000001", password="111111", faults=Faults(
        power_cuts_at=now - timedelta(hours=2), power_cuts=2))
    session = make_session_factory({1: meter}, transport="serial")()

    async def run() -> None:
        line = MutatingLine(session, mutator(chosen))
        drv = get_driver("mercury")(line, MeterSpec(id="m1", driver="mercury", address=1, serial="40000001",
                                                    password="111111", options={"timeout": 0.02, "tariffs": 1,
                                                                                "journals": [1]}))
        for step in (drv.connect(), drv.read_profile(now - timedelta(hours=3), now), drv.read_events(None),
                     drv.read_registers()):
            try:
                await step
            except DriverError:
                pass

    asyncio.run(asyncio.wait_for(run(), 20))

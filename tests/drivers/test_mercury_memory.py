"""The Меркурий driver reading the meter's memory from the simulator over a pty: power profile
(both memory layouts, a wrapped ring, a reset clock), day/month-start energy, journals (and a
journal that overflowed), transformer ratios.

Expectations come from the SimMeter model (its energy per period, its registers at a
boundary, its journal), not from the simulator's frames: the frames are what is under test.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from askue.drivers.base import Capability, Kind, MeterSpec, get_driver
from askue.drivers.errors import DriverError, MeterTimeout, Unsupported
from askue.drivers.mercury import profile as prof
from askue.drivers.mercury.simulator import make_session_factory
from askue.drivers.sim.line import PtyServer, serve_tcp
from askue.drivers.sim.meter import MSK, Faults, JournalEntry, SimMeter
from askue.drivers.transport import SerialTransport, TcpTransport

NOW = datetime(2026, 11, 18, 10, 7, 30, tzinfo=UTC)
A_PLUS = "1.0.1.29.0.255"


class Clock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def sim(addr: int, clock: Clock, **kw) -> SimMeter:
    return SimMeter(id=f"m{addr}", serial=f"{40000000 + addr:08d}", address=addr, password="111111", now=clock,
                    seed=addr, **kw)


def spec(addr: int, **options) -> MeterSpec:
    return MeterSpec(id=f"m{addr}", driver="mercury", address=addr, serial=f"{40000000 + addr:08d}",
                     password="111111", model=options.pop("model", None), options={"timeout": 1.0, **options})


@pytest.fixture
async def line(tmp_path):
    """line(meters) -> a SerialTransport to a pty the simulator serves."""
    started: list[tuple[PtyServer, SerialTransport]] = []

    async def make(meters: dict[int, SimMeter]) -> SerialTransport:
        path = tmp_path / f"tty{len(started)}"
        pty = await PtyServer(make_session_factory(meters, transport="serial"), path).start()
        t = SerialTransport(str(path))
        started.append((pty, t))
        return t

    yield make
    for pty, t in started:
        await t.close()
        await pty.stop()


def model_profile(m: SimMeter, start: datetime, end: datetime) -> dict[datetime, float]:
    return dict(m.profile(start, end))


def by_obis(readings, obis: str) -> dict[datetime, float]:
    return {r.meter_time: r.value for r in readings if r.obis == obis}


async def test_profile_of_a_230_and_a_234_with_the_period_they_keep(line):
    clock = Clock(NOW)
    m230 = sim(1, clock, period_s=1800)
    m234 = sim(2, clock, period_s=900, model="Меркурий 234 ARTM-03")
    t = await line({1: m230, 2: m234})
    start, end = NOW - timedelta(hours=6), NOW
    for m, s, period in ((m230, spec(1), 1800), (m234, spec(2, model="Меркурий 234 ARTM-03"), 900)):
        drv = get_driver("mercury")(t, s)
        assert drv.layout is (prof.LARGE if m is m234 else prof.SMALL)
        await drv.connect()
        readings = await drv.read_profile(start, end)
        await drv.close()
        want = model_profile(m, start, end)
        got = by_obis(readings, A_PLUS)
        assert list(got) == list(want) and len(want) == 6 * 3600 // period
        # Counts hold 1/(2 × 1000 imp/kWh): the values equal the model's to that resolution.
        assert all(abs(got[k] - want[k]) <= 0.0005 for k in want)
        assert {r.period_s for r in readings} == {period}
        assert {r.obis for r in readings} == {f"1.0.{q}.29.0.255" for q in (1, 2, 3, 4)}
        assert all(r.kind is Kind.INTERVAL and r.unit == ("kWh" if ".1.29" in r.obis or ".2.29" in r.obis
                                                           else "kvarh") for r in readings)
        r_plus = by_obis(readings, "1.0.3.29.0.255")
        assert all(abs(r_plus[k] - 0.25 * got[k]) <= 0.001 for k in got)
        # Only the window's records were read: each served once.
        served = Counter(mt for kind, obis, mt, _v in m.served if kind == "interval" and obis == A_PLUS)
        assert set(served) == set(want) and set(served.values()) == {1}


async def test_profile_window_edges_and_an_empty_window(line):
    clock = Clock(NOW)
    m = sim(3, clock)
    t = await line({3: m})
    drv = get_driver("mercury")(t, spec(3))
    await drv.connect()
    last = NOW.replace(minute=0, second=0)  # the last period ended at 10:00 UTC
    got = by_obis(await drv.read_profile(last - timedelta(minutes=30), last), A_PLUS)
    assert list(got) == [last - timedelta(minutes=30)]  # [start, end): the end is not included
    assert await drv.read_profile(last + timedelta(seconds=1), NOW) == []  # nothing ended yet
    assert await drv.read_profile(NOW + timedelta(days=1), NOW + timedelta(days=2)) == []
    # Before the meter's memory began: only what it holds.
    got = by_obis(await drv.read_profile(m.epoch - timedelta(days=5), m.epoch + timedelta(hours=2)), A_PLUS)
    assert list(got) == [m.epoch + timedelta(minutes=30 * k) for k in (1, 2, 3)]


async def test_a_wrapped_ring_keeps_the_newest_4096_records(line, caplog):
    # One-minute periods for three days: 4,320 records in a 4,096-record ring.
    clock = Clock(NOW)
    m = sim(4, clock, period_s=60)
    t = await line({4: m})
    drv = get_driver("mercury")(t, spec(4))
    await drv.connect()
    done = m.completed_intervals()
    assert done > 4096
    oldest_end = m.interval_end(done - 4096)  # the oldest record still in memory
    caplog.set_level(logging.WARNING, "askue.drivers.mercury")
    got = by_obis(await drv.read_profile(oldest_end - timedelta(minutes=30), oldest_end + timedelta(minutes=5)),
                  A_PLUS)
    assert list(got) == [oldest_end + timedelta(minutes=k) for k in range(5)]
    assert "no longer in the meter's memory" in caplog.text
    # Across the end of the address space (record 4095 → record 0).
    wrap_end = m.interval_end(4095)
    want = model_profile(m, wrap_end - timedelta(minutes=3), wrap_end + timedelta(minutes=3))
    got = by_obis(await drv.read_profile(wrap_end - timedelta(minutes=3), wrap_end + timedelta(minutes=3)), A_PLUS)
    assert list(got) == list(want) and len(got) == 6
    assert all(abs(got[k] - want[k]) <= 0.0005 for k in want)


async def test_a_234_ring_beyond_64_kib(line):
    # 128 KiB memory: records from 4,096 on sit above address 0xFFFF (memory byte 0x83).
    clock = Clock(NOW)
    m = sim(5, clock, period_s=60, model="Меркурий 234")
    t = await line({5: m})
    drv = get_driver("mercury")(t, spec(5, model="Меркурий 234"))
    await drv.connect()
    assert m.completed_intervals() - 1 > 4096  # the last record's address is above 0xFFFF
    want = model_profile(m, NOW - timedelta(minutes=20), NOW)
    got = by_obis(await drv.read_profile(NOW - timedelta(minutes=20), NOW), A_PLUS)
    assert list(got) == list(want) and len(got) == 20


async def test_a_reset_clock_loses_only_the_periods_it_stamped_wrong(line):
    clock = Clock(NOW)
    reset_at, synced_at = NOW - timedelta(hours=3), NOW - timedelta(hours=1, minutes=10)
    m = sim(6, clock, faults=Faults(clock_reset_at=reset_at))
    t = await line({6: m})
    drv = get_driver("mercury")(t, spec(6))
    await drv.connect()
    # While the clock is wrong the meter stamps its periods in January 2000: nothing real to read.
    clock.t = synced_at - timedelta(minutes=1)
    assert (await drv.read_clock()).astimezone(MSK).year == 2000
    assert await drv.read_profile(NOW - timedelta(hours=6), NOW) == []
    # Someone sets the clock right; the periods since carry real times again.
    clock.t = synced_at
    m.set_clock(synced_at)
    clock.t = NOW
    got = by_obis(await drv.read_profile(NOW - timedelta(hours=6), NOW), A_PLUS)
    want = model_profile(m, NOW - timedelta(hours=6), NOW)
    lost = {k for k in want if reset_at < k <= synced_at}  # ended while the clock was wrong
    assert lost and set(got) == set(want) - lost
    events = await drv.read_events(None)
    sets = [e for e in events if e.obis == "0.0.99.98.3.255"]
    assert [(e.value, e.meter_time) for e in sets] == [(3.0, synced_at.replace(microsecond=0))]  # time set


async def test_energy_at_day_and_month_start(line):
    clock = Clock(NOW)
    m = sim(7, clock, history_days=400)
    t = await line({7: m})
    drv = get_driver("mercury")(t, spec(7))
    await drv.connect()
    assert Capability.ARCHIVES in drv.capabilities
    local_today = NOW.astimezone(MSK).date()
    midnight = datetime(local_today.year, local_today.month, local_today.day, tzinfo=MSK)
    days = await drv.read_archive("day_start", NOW - timedelta(days=5), NOW)
    months = await drv.read_archive("month_start", NOW - timedelta(days=400), NOW)
    assert not [r for r in await drv.read_registers() if r.archive]  # registers stay live values
    expected = {
        "day_start": [midnight - timedelta(days=1), midnight],  # the meter keeps two days
        # One value per month number: the 1st of each of the last twelve months.
        "month_start": [datetime(2025, 12, 1, tzinfo=MSK)] + [datetime(2026, mm, 1, tzinfo=MSK) for mm in range(1, 12)],
    }
    for archive, readings in (("day_start", days), ("month_start", months)):
        stamps = sorted({r.meter_time for r in readings})
        assert stamps == [b.astimezone(UTC) for b in expected[archive]]
        assert all(r.archive == archive and r.kind is Kind.REGISTER for r in readings)
        for at in stamps:
            model = m.registers(at)
            rows = {r.obis: r.value for r in readings if r.meter_time == at}
            assert rows["1.0.1.8.0.255"] == pytest.approx(model[0], abs=0.001)
            assert rows["1.0.1.8.1.255"] == pytest.approx(model[1], abs=0.001)
            assert rows["1.0.1.8.2.255"] == pytest.approx(model[2], abs=0.001)
            assert rows["1.0.1.8.1.255"] + rows["1.0.1.8.2.255"] == pytest.approx(rows["1.0.1.8.0.255"], abs=0.002)
            assert len(rows) == 4 * 5 and rows["1.0.3.8.0.255"] == pytest.approx(0.25 * rows["1.0.1.8.0.255"],
                                                                                 abs=0.002)
    # A window asks only for the boundaries in it.
    m.served.clear()
    only = await drv.read_archive("month_start", datetime(2026, 10, 15, tzinfo=UTC), NOW)
    assert {r.meter_time for r in only} == {datetime(2026, 11, 1, tzinfo=MSK).astimezone(UTC)}
    assert {t for k, _o, t, _v in m.served if k == "register"} == {datetime(2026, 11, 1, tzinfo=MSK).astimezone(UTC)}
    # Before the meter's history there is no value, and switched off there is no read.
    t2 = await line({14: sim(14, clock, history_days=1)})
    young = get_driver("mercury")(t2, spec(14))
    await young.connect()
    assert {r.meter_time for r in await young.read_archive("month_start", NOW - timedelta(days=400), NOW)} == set()
    off = get_driver("mercury")(t, spec(7, archives=False))
    with pytest.raises(Unsupported, match="options.archives"):
        await off.read_archive("day_start", NOW - timedelta(days=2), NOW)


async def test_journals_as_spodes_entries(line):
    clock = Clock(NOW)
    cuts = NOW - timedelta(hours=5)
    m = sim(8, clock, faults=Faults(power_cuts_at=cuts, power_cuts=2, cover_open_at=NOW - timedelta(hours=2)))
    lost, back = NOW - timedelta(hours=4), NOW - timedelta(hours=3, minutes=50)
    m.journal += [JournalEntry("0.0.99.98.0.255", lost, 3), JournalEntry("0.0.99.98.0.255", back, 4)]  # phase B
    t = await line({8: m})
    drv = get_driver("mercury")(t, spec(8))
    await drv.connect()
    events = await drv.read_events(None)
    got = [(e.obis, int(e.value), e.meter_time) for e in events]
    s = timedelta(seconds=1)
    assert got == [
        ("0.0.99.98.2.255", 2, m.epoch),  # powered since the model's start
        ("0.0.99.98.2.255", 1, cuts), ("0.0.99.98.2.255", 2, cuts + 60 * s),
        ("0.0.99.98.2.255", 1, cuts + 300 * s), ("0.0.99.98.2.255", 2, cuts + 360 * s),
        ("0.0.99.98.0.255", 3, lost), ("0.0.99.98.0.255", 4, back),
        ("0.0.99.98.4.255", 4, NOW - timedelta(hours=2)),  # case opened; its closing has no СПОДЭС code
    ]
    assert all(e.kind is Kind.EVENT for e in events)
    assert [(e.obis, int(e.value)) for e in await drv.read_events(NOW - timedelta(hours=3))] == [
        ("0.0.99.98.4.255", 4)]


async def test_an_overflowed_journal_is_read_as_far_as_it_goes_and_logged(line, caplog):
    clock = Clock(NOW)
    cuts = NOW - timedelta(hours=3)
    m = sim(9, clock, faults=Faults(power_cuts_at=cuts, power_cuts=12, power_cut_every_s=600))
    t = await line({9: m})
    drv = get_driver("mercury")(t, spec(9, journals=[1]))
    await drv.connect()
    caplog.set_level(logging.WARNING, "askue.drivers.mercury")
    events = await drv.read_events(NOW - timedelta(hours=4))
    # 13 records (on at the start, then one per cut); the ring keeps the newest ten.
    offs = [e.meter_time for e in events if e.value == 1]
    assert offs == [cuts + timedelta(minutes=10 * k) for k in range(3, 12)]
    assert len(events) == 9 + 10
    assert "overwritten before they could be read" in caplog.text


async def test_ratios_variant_and_relay(line):
    clock = Clock(NOW)
    m = sim(10, clock, options={"ct_ratio": 40, "vt_ratio": 60})
    plain = sim(11, clock, options={"keeps_profile": False})
    t = await line({10: m, 11: plain})
    drv = get_driver("mercury")(t, spec(10))
    ident = await drv.connect()
    assert (ident.ct_ratio, ident.vt_ratio) == (40.0, 60.0)
    assert Capability.PROFILE in drv.capabilities and Capability.RELAY not in drv.capabilities
    with pytest.raises(Unsupported, match="relay"):
        await drv.relay(False)
    other = get_driver("mercury")(t, spec(11))
    await other.connect()
    with pytest.raises(Unsupported, match="keeps no power profile"):
        await other.read_profile(NOW - timedelta(hours=1), NOW)
    # An explicit constant skips the variant read (a meter whose table code is not known).
    fixed = get_driver("mercury")(t, spec(10, impulse_constant=1000))
    await fixed.connect()
    assert len(await fixed.read_profile(NOW - timedelta(hours=1), NOW)) == 2 * 4


async def test_a_noisy_line_costs_retries_not_the_profile(caplog):
    clock = Clock(NOW)
    m = sim(12, clock, faults=Faults(garbage_rate=0.15))
    server = await serve_tcp(make_session_factory({12: m}, transport="tcp"), seed=3)
    t = TcpTransport("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        drv = get_driver("mercury")(t, spec(12, timeout=0.2, request_retries=4))
        for _ in range(5):  # the test/open exchanges are not retried by the driver: the gateway does that
            try:
                await drv.connect()
                break
            except DriverError:
                continue
        got = by_obis(await drv.read_profile(NOW - timedelta(hours=12), NOW), A_PLUS)
        assert list(got) == list(model_profile(m, NOW - timedelta(hours=12), NOW)) and len(got) == 24
    finally:
        await t.close()
        server.close()


async def test_a_profile_read_cut_short_keeps_what_it_read(caplog):
    clock = Clock(NOW)
    m = sim(13, clock)
    factory = make_session_factory({13: m}, transport="tcp")
    records = []

    def cutting():
        session = factory()
        feed = session.feed

        def fed(data: bytes):
            if data[1:2] == b"\x06":
                records.append(data)
                if len(records) == 5:
                    m.faults.silent = True  # the line dies after the fifth record
            return feed(data)

        session.feed = fed
        return session

    server = await serve_tcp(cutting)
    t = TcpTransport("127.0.0.1", server.sockets[0].getsockname()[1])
    caplog.set_level(logging.WARNING, "askue.drivers.mercury")
    try:
        drv = get_driver("mercury")(t, spec(13, timeout=0.2))
        await drv.connect()
        got = by_obis(await drv.read_profile(NOW - timedelta(hours=6), NOW), A_PLUS)
        want = list(model_profile(m, NOW - timedelta(hours=6), NOW))
        assert list(got) == want[:4]  # the oldest four, answered before the line died
        assert "interrupted after 4 periods" in caplog.text
        with pytest.raises(MeterTimeout):  # nothing read at all: the error goes to the gateway
            await drv.read_profile(NOW - timedelta(hours=2), NOW)
    finally:
        await t.close()
        server.close()

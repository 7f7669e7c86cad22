"""The DLMS driver (gurux client) against the hand-written СПОДЭС simulator, over the TCP
wrapper on loopback and over HDLC on a pty, plus line faults and mutated conversations."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from askue.drivers.base import Kind, MeterSpec, get_driver
from askue.drivers.dlms import hdlc
from askue.drivers.dlms.driver import DlmsDriver, SessionLost
from askue.drivers.dlms.simulator import make_session_factory
from askue.drivers.errors import AuthError, DriverError, FrameError, IdentityMismatch, MeterTimeout
from askue.drivers.sim.line import PtyServer, SessionFactory, serve_tcp
from askue.drivers.sim.meter import Faults, SimMeter
from askue.drivers.transport import SerialTransport, TcpTransport, Transport

NOW = datetime(2026, 11, 10, 12, 7, 30, tzinfo=UTC)
PASSWORD = "12345678"


def sim_meter(serial: str = "01234567", **kw) -> SimMeter:
    kw.setdefault("now", lambda: NOW)
    kw.setdefault("password", PASSWORD)
    return SimMeter(id=f"m{serial}", serial=serial, **kw)


def spec(address: int | str = 17, **kw) -> MeterSpec:
    kw.setdefault("password", PASSWORD)
    options = kw.pop("options", {})
    options.setdefault("timeout", 2.0)
    return MeterSpec(id="m1", driver="dlms", address=address, options=options, **kw)


@contextlib.asynccontextmanager
async def line(kind: str, meters: dict, tmp_path) -> AsyncIterator[Transport]:
    if kind == "tcp":
        server = await serve_tcp(make_session_factory(meters, transport="tcp"))
        transport: Transport = TcpTransport("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            yield transport
        finally:
            await transport.close()
            server.close()
    else:
        pty = await PtyServer(make_session_factory(meters, transport="serial"), tmp_path / "ttyDLMS").start()
        transport = SerialTransport(str(tmp_path / "ttyDLMS"))
        try:
            yield transport
        finally:
            await transport.close()
            await pty.stop()


def served(meter: SimMeter, kind: str) -> dict[tuple[str, datetime | None], float]:
    return {(obis, t): v for k, obis, t, v in meter.served if k == kind}


@pytest.fixture(params=["tcp", "pty"])
def kind(request) -> str:
    return request.param


# ---- reading a meter ------------------------------------------------------------------------
async def test_identity_registers_and_instant(kind, tmp_path):
    m = sim_meter()
    async with line(kind, {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec(serial="01234567"))
        ident = await d.connect()
        assert ident.serial == "01234567"
        regs = await d.read_registers()
        inst = await d.read_instant()
        await d.close()
    assert {r.obis for r in regs} == {f"1.0.{q}.8.{z}.255" for q in (1, 2, 3, 4) for z in range(5)}
    by = {r.obis: r for r in regs}
    expected = m.registers(NOW)
    for zone in (0, 1, 2):
        assert by[f"1.0.1.8.{zone}.255"].value == pytest.approx(expected[zone], abs=1e-9)
        assert by[f"1.0.1.8.{zone}.255"].unit == "kWh"
        assert by[f"1.0.3.8.{zone}.255"].unit == "kvarh"
    assert by["1.0.3.8.0.255"].value == pytest.approx(round(expected[0] * 0.25, 3))
    assert by["1.0.2.8.0.255"].value == 0.0
    assert all(r.kind == Kind.REGISTER and r.meter_time == m.clock(NOW) for r in regs)
    # Every value that arrived is one the meter served, and nothing served got lost.
    got = {(r.obis, r.value) for r in regs}
    assert got == {(o, v) for (o, _t), v in served(m, "register").items()}
    inst_by = {r.obis: r for r in inst}
    assert inst_by["1.0.32.7.0.255"].value == pytest.approx(m.instant(NOW)["1.0.32.7.0.255"])
    assert inst_by["1.0.32.7.0.255"].unit == "V"
    assert inst_by["1.0.1.7.0.255"].unit == "kW"
    assert inst_by["1.0.1.7.0.255"].value == pytest.approx(m.instant(NOW)["1.0.1.7.0.255"], abs=1e-3)


@pytest.mark.parametrize("scaler", [-2, 1])
async def test_register_scaler_is_applied(scaler, tmp_path):
    m = sim_meter(options={"energy_scaler": scaler})
    async with line("tcp", {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        await d.connect()
        regs = {r.obis: r.value for r in await d.read_registers()}
        await d.close()
    kwh = m.registers(NOW)[0]
    step = 10.0**scaler / 1000  # kWh per raw count
    assert regs["1.0.1.8.0.255"] == pytest.approx(round(kwh / step) * step, abs=1e-9)


async def test_clock_read_and_set(kind, tmp_path):
    m = sim_meter(clock_drift_s_per_day=40.0)
    async with line(kind, {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        await d.connect()
        drifted = m.clock(NOW)
        before = await d.read_clock()
        target = datetime(2026, 11, 10, 12, 0, 0, tzinfo=UTC)
        await d.set_clock(target)
        after = await d.read_clock()
        await d.close()
    assert drifted != NOW  # the drift is visible ...
    assert before == drifted - timedelta(microseconds=drifted.microsecond % 10000)  # ... to 1/100 s
    assert after == target
    assert m.clock(NOW) == target


async def test_profile_by_range_with_boundaries(kind, tmp_path):
    m = sim_meter(history_days=2)
    start = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # an interval end: included
    end = datetime(2026, 11, 10, 11, 0, tzinfo=UTC)  # also an interval end: excluded
    async with line(kind, {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        await d.connect()
        rows = await d.read_profile(start, end)
        late = await d.read_profile(
            datetime(2026, 11, 10, 11, 30, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)
        )
        before_memory = await d.read_profile(
            datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
        )
        await d.close()
    expected = m.profile(start, end)
    assert [t for t, _ in expected] == [start + timedelta(minutes=30 * i) for i in range(4)]
    a_plus = [r for r in rows if r.obis == "1.0.1.29.0.255"]
    assert [(r.meter_time, r.value) for r in a_plus] == [(t, pytest.approx(e)) for t, e in expected]
    assert {r.obis for r in rows} == {f"1.0.{q}.29.0.255" for q in (1, 2, 3, 4)}
    assert all(r.kind == Kind.INTERVAL and r.period_s == 1800 for r in rows)
    assert len(rows) == 16
    # Up to the meter's "now" (12:07:30): the 11:30 and 12:00 intervals only.
    assert sorted({r.meter_time for r in late}) == [
        datetime(2026, 11, 10, 11, 30, tzinfo=UTC),
        datetime(2026, 11, 10, 12, 0, tzinfo=UTC),
    ]
    assert before_memory == []


async def test_long_profile_uses_segmentation_and_block_transfer(kind, tmp_path):
    m = sim_meter(history_days=3, options={"max_pdu": 256, "max_info": 64})
    async with line(kind, {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        await d.connect()
        rows = await d.read_profile(NOW - timedelta(days=2), NOW)
        await d.close()
    assert len(rows) == 4 * 96
    served_a = {(o, tm): v for (o, tm), v in served(m, "interval").items() if o == "1.0.1.29.0.255"}
    assert {(r.obis, r.meter_time): r.value for r in rows if r.obis == "1.0.1.29.0.255"} == served_a


async def test_journals_decoded_with_spodes_codes(kind, tmp_path):
    tamper = datetime(2026, 11, 10, 3, 15, tzinfo=UTC)
    m = sim_meter(faults=Faults(tamper_at=tamper))
    async with line(kind, {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        await d.connect()
        await d.relay(False)
        assert m.relay_connected is False
        await d.relay(True)
        assert m.relay_connected is True
        await d.set_clock(NOW)
        events = await d.read_events(None)
        recent = await d.read_events(datetime(2026, 11, 10, 3, 20, tzinfo=UTC))
        await d.close()
    got = [(r.obis, int(r.value), r.meter_time) for r in events]
    assert all(r.kind == Kind.EVENT for r in events)
    assert ("0.0.99.98.2.255", 2, m.epoch) in got  # power on (СПОДЭС table Д.3 code 2)
    assert ("0.0.99.98.4.255", 1, tamper) in got  # magnetic field start
    assert ("0.0.99.98.4.255", 2, tamper + timedelta(minutes=10)) in got  # and its end
    assert [c for o, c, _ in got if o == "0.0.99.98.2.255"][-2:] == [3, 4]  # remote off, then on
    assert ("0.0.99.98.3.255", 3) in {(o, c) for o, c, _ in got}  # time set
    assert ("0.0.99.98.4.255", 1, tamper) not in [(r.obis, int(r.value), r.meter_time) for r in recent]
    assert ("0.0.99.98.4.255", 2, tamper + timedelta(minutes=10)) in [
        (r.obis, int(r.value), r.meter_time) for r in recent
    ]


# ---- refusals and identity -------------------------------------------------------------------
async def test_wrong_password_is_auth_error(kind, tmp_path):
    m = sim_meter()
    async with line(kind, {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec(password="00000000"))
        with pytest.raises(AuthError, match="[Aa]uthentication failure"):
            await d.connect()
    assert [(e.journal_obis, e.code) for e in m.journal][-1] == ("0.0.99.98.6.255", 1)  # access journal


async def test_serial_mismatch_and_replaced_meter(tmp_path):
    m = sim_meter(faults=Faults(replaced_at=NOW - timedelta(hours=1)))
    async with line("tcp", {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec(serial="01234567"))
        with pytest.raises(IdentityMismatch) as e:
            await d.connect()
    assert e.value.actual == "01234567R"


async def test_public_client_reads_identity_but_not_energy(tmp_path):
    m = sim_meter()
    async with line("pty", {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec(password=None))
        assert d.client_address == 0x10
        assert (await d.connect()).serial == "01234567"
        await d.read_clock()
        with pytest.raises(AuthError):
            await d.read_registers()
        await d.close()


async def test_two_meters_share_one_bus(tmp_path):
    a, b = sim_meter("A1"), sim_meter("B2", password="secret")
    async with line("pty", {17: a, "1/18": b}, tmp_path) as t:
        da = get_driver("dlms")(t, spec(17, serial="A1"))
        db = get_driver("dlms")(t, spec("1/18", serial="B2", password="secret"))
        assert (await da.connect()).serial == "A1"
        await da.close()
        assert (await db.connect()).serial == "B2"
        await db.close()
        with pytest.raises(MeterTimeout):  # nobody answers physical address 19
            await get_driver("dlms")(t, spec(19, options={"timeout": 0.3})).connect()


async def test_close_releases_and_disconnects(tmp_path):
    m = sim_meter()
    async with line("pty", {17: m}, tmp_path) as t:
        sent: list[bytes] = []
        write = t.write

        async def spy(data: bytes) -> None:
            sent.append(data)
            await write(data)

        t.write = spy  # type: ignore[method-assign]
        d = get_driver("dlms")(t, spec())
        await d.connect()
        await d.close()
        frames = [hdlc.parse_frame(f) for f in sent]
        assert frames[0].unnumbered == hdlc.SNRM
        assert frames[-2].info[3] == 0x62  # RLRQ
        assert frames[-1].unnumbered == hdlc.DISC
        await d.connect()  # the meter accepts a new session afterwards
        await d.close()


def test_configuration_errors_are_clear():
    t = TcpTransport("127.0.0.1", 1)
    with pytest.raises(DriverError, match="logical/physical"):
        DlmsDriver(t, spec("abc"))
    with pytest.raises(DriverError, match="hdlc' or 'wrapper"):
        DlmsDriver(t, spec(options={"transport": "iec"}))
    with pytest.raises(AuthError, match="password"):
        DlmsDriver(t, spec(password=None, options={"client": 0x20}))


# ---- line faults --------------------------------------------------------------------------------
async def test_crc_errors_give_frame_error(tmp_path):
    m = sim_meter(faults=Faults(crc_error_rate=1.0))
    async with line("pty", {17: m}, tmp_path) as t:
        with pytest.raises(FrameError):
            await get_driver("dlms")(t, spec()).connect()


@pytest.mark.parametrize("kind_", ["tcp", "pty"])
async def test_garbage_and_silence_give_typed_errors(kind_, tmp_path):
    for faults in (Faults(garbage_rate=1.0), Faults(silent=True)):
        m = sim_meter(faults=faults)
        async with line(kind_, {17: m}, tmp_path) as t:
            with pytest.raises((FrameError, MeterTimeout)):
                await get_driver("dlms")(t, spec(options={"timeout": 0.3})).connect()


# ---- mutated conversations: a typed error, never a crash or a hang ---------------------------------
class LoopTransport(Transport):
    """Feeds what the driver writes into a simulator session and hands back its replies,
    after `mutate(index, reply)`; reading past the end is a MeterTimeout, without waiting."""

    def __init__(self, factory: SessionFactory, mutate: Callable[[int, bytes], bytes]):
        super().__init__()
        self.session = factory()
        self.mutate = mutate
        self.buf = bytearray()
        self.count = 0

    @property
    def is_open(self) -> bool:
        return True

    async def open(self) -> None:
        return None

    async def write(self, data: bytes) -> None:
        for reply in self.session.feed(data):
            self.buf += self.mutate(self.count, reply.data)
            self.count += 1

    async def read_exactly(self, n: int, timeout: float) -> bytes:
        if len(self.buf) < n:
            self.buf.clear()
            raise MeterTimeout(f"no answer (wanted {n} bytes)")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def discard_input(self) -> None:
        self.buf.clear()


async def _session(transport: Transport, mode: str) -> None:
    d = DlmsDriver(transport, spec(serial="01234567", options={"transport": mode}))
    await d.connect()
    await d.read_registers()
    await d.read_profile(NOW - timedelta(hours=3), NOW)
    await d.read_events(None)
    await d.close()


async def test_unmutated_loop_conversation_works():
    for mode, transport in (("wrapper", "tcp"), ("hdlc", "serial")):
        factory = make_session_factory({17: sim_meter()}, transport=transport)  # type: ignore[arg-type]
        await _session(LoopTransport(factory, lambda i, b: b), mode)


MUTATIONS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@MUTATIONS
@given(
    which=st.integers(0, 40),
    seed=st.integers(0, 2**32 - 1),
    how=st.sampled_from(["flip", "cut", "junk"]),
    mode=st.sampled_from(["wrapper", "hdlc"]),
)
async def test_mutated_replies_give_typed_errors(which, seed, how, mode):
    rnd = random.Random(seed)

    def mutate(i: int, data: bytes) -> bytes:
        if i != which:
            return data
        b = bytearray(data)
        if how == "flip":
            pos = rnd.randrange(len(b))
            b[pos] ^= 1 << rnd.randrange(8)
        elif how == "cut":
            del b[rnd.randrange(1, len(b)) :]
        else:
            b[rnd.randrange(len(b)) :] = rnd.randbytes(rnd.randrange(1, 40))
        return bytes(b)

    factory = make_session_factory({17: sim_meter()}, transport="tcp" if mode == "wrapper" else "serial")
    try:
        await _session(LoopTransport(factory, mutate), mode)
    except DriverError:
        pass  # any typed error is fine; anything else fails the test


@pytest.mark.parametrize("mode", ["hdlc", "wrapper"])
async def test_lost_answer_then_the_next_call_reopens_the_session(mode):
    m = sim_meter()
    lost: list[int] = []
    drop_at = [1 << 30]

    def drop_second_after_connect(i: int, data: bytes) -> bytes:
        if i == drop_at[0] and not lost:
            lost.append(i)
            return b""
        return data

    factory = make_session_factory({17: m}, transport="tcp" if mode == "wrapper" else "serial")
    transport = LoopTransport(factory, drop_second_after_connect)
    d = DlmsDriver(transport, spec(options={"transport": mode}))
    await d.connect()
    drop_at[0] = transport.count + 1
    while not lost:  # read until the dropped answer is hit
        try:
            await d.read_clock()
        except MeterTimeout:
            break
    assert lost
    # HDLC sequence numbers are now out of step; the driver re-opens the session itself.
    assert await d.read_clock() == m.clock(NOW)
    assert (await d.read_serial()) == "01234567"
    await d.close()


async def test_meter_closing_the_link_is_session_lost_then_reopened():
    m = sim_meter()
    transport = LoopTransport(make_session_factory({17: m}, transport="serial"), lambda i, b: b)
    d = DlmsDriver(transport, spec(options={"transport": "hdlc"}))
    await d.connect()
    for link in transport.session.links.values():  # the meter's inactivity timeout fires
        link.connected = False
    with pytest.raises(SessionLost):
        await d.read_clock()
    assert await d.read_clock() == m.clock(NOW)
    await d.close()


async def test_idle_session_is_reopened_before_use():
    m = sim_meter()
    sent: list[bytes] = []
    transport = LoopTransport(make_session_factory({17: m}, transport="serial"), lambda i, b: b)
    write = transport.write

    async def spy(data: bytes) -> None:
        sent.append(data)
        await write(data)

    transport.write = spy  # type: ignore[method-assign]
    d = DlmsDriver(transport, spec(options={"transport": "hdlc", "idle_s": 0}))
    await d.connect()
    await d.read_clock()
    await d.read_clock()
    snrm = [f for f in sent if hdlc.parse_frame(f).unnumbered == hdlc.SNRM]
    assert len(snrm) == 3  # connect, then once before each call after an "idle" gap


async def test_meter_inactivity_timeout_closes_the_link(tmp_path):
    clock = [NOW]
    m = sim_meter(now=lambda: clock[0], options={"inactivity_s": 120})
    async with line("pty", {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec(options={"idle_s": 1e9}))  # the driver does not pre-empt it
        await d.connect()
        clock[0] = NOW + timedelta(seconds=100)
        await d.read_clock()  # within the timeout: same session
        clock[0] = NOW + timedelta(seconds=300)
        with pytest.raises(SessionLost):
            await d.read_clock()
        assert await d.read_clock() == NOW + timedelta(seconds=300)
        await d.close()


@pytest.mark.parametrize("faults,digits", [(Faults(rollover=True), 6), (Faults(), 7)])
async def test_large_and_rolling_over_registers(faults, digits, tmp_path):
    m = sim_meter(faults=faults, digits=digits, start_value=8_000_000.0 if digits == 7 else 1000.0)
    async with line("tcp", {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec())
        await d.connect()
        regs = {r.obis: r.value for r in await d.read_registers()}
        await d.close()
    assert regs["1.0.1.8.0.255"] == pytest.approx(m.registers(NOW)[0], abs=1e-9)
    if digits == 7:
        assert regs["1.0.1.8.0.255"] > 2**32 / 1000  # more Wh than double-long-unsigned holds


async def test_slow_meter_within_the_timeout_is_read(tmp_path):
    m = sim_meter(faults=Faults(slow_reply_s=0.05))
    async with line("pty", {17: m}, tmp_path) as t:
        d = get_driver("dlms")(t, spec(options={"timeout": 2.0}))
        assert (await d.connect()).serial == "01234567"
        assert await d.read_clock() == m.clock(NOW)
        await d.close()

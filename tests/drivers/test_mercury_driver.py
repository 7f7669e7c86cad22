"""Mercury driver against the Mercury simulator over real TCP sockets and a pty pair."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from askue.drivers.base import Kind, MeterSpec, get_driver
from askue.drivers.errors import AuthError, FrameError, IdentityMismatch, MeterTimeout
from askue.drivers.mercury import frames as f
from askue.drivers.mercury.simulator import make_session_factory
from askue.drivers.sim.line import PtyServer, serve_tcp
from askue.drivers.sim.meter import Faults, SimMeter
from askue.drivers.transport import SerialTransport, TcpTransport


def sim_meter(addr: int, **kw) -> SimMeter:
    return SimMeter(id=f"m{addr}", serial=f"{40000000 + addr:08d}", address=addr, password="111111", **kw)


def spec(addr: int, **kw) -> MeterSpec:
    kw.setdefault("serial", f"{40000000 + addr:08d}")
    kw.setdefault("password", "111111")
    kw.setdefault("options", {"timeout": 0.5})
    return MeterSpec(id=f"m{addr}", driver="mercury", address=addr, **kw)


async def tcp_line(meters: dict[int, SimMeter]):
    server = await serve_tcp(make_session_factory(meters, transport="tcp"))
    port = server.sockets[0].getsockname()[1]
    return server, TcpTransport("127.0.0.1", port)


def served(meter: SimMeter, kind: str) -> dict[str, float]:
    return {obis: v for k, obis, _, v in meter.served if k == kind}


async def test_registers_instant_clock_over_tcp():
    meters = {1: sim_meter(1), 2: sim_meter(2, mean_power=2.0)}
    server, transport = await tcp_line(meters)
    try:
        for addr in (1, 2):
            drv = get_driver("mercury")(transport, spec(addr))
            ident = await drv.connect()
            assert ident.serial == f"{40000000 + addr:08d}"
            regs = await drv.read_registers()
            inst = await drv.read_instant()
            clock = await drv.read_clock()
            await drv.close()
            m = meters[addr]
            assert abs((clock - m.clock()).total_seconds()) < 5
            got = {r.obis: r for r in regs}
            assert set(got) == {f"1.0.{q}.8.{t}.255" for q in (1, 2, 3, 4) for t in range(5)}
            for obis, v in served(m, "register").items():
                assert got[obis].value == pytest.approx(v, abs=1e-9), obis
                assert got[obis].kind is Kind.REGISTER and got[obis].meter_time is not None
            assert got["1.0.1.8.0.255"].unit == "kWh" and got["1.0.3.8.0.255"].unit == "kvarh"
            # Tariffs add up to the total, as the meter displays them.
            zones = sum(got[f"1.0.1.8.{t}.255"].value for t in range(1, 5))
            assert zones == pytest.approx(got["1.0.1.8.0.255"].value, abs=0.01)
            ginst = {r.obis: r.value for r in inst}
            for obis, v in served(m, "instant").items():
                assert ginst[obis] == pytest.approx(v, abs=1e-6), obis
            assert {"1.0.32.7.0.255", "1.0.31.7.0.255", "1.0.1.7.0.255", "1.0.14.7.0.255"} <= set(ginst)
    finally:
        await transport.close()
        server.close()


async def test_registers_over_pty(tmp_path):
    meters = {17: sim_meter(17)}
    pty = await PtyServer(make_session_factory(meters, transport="serial"), tmp_path / "ttyMERC").start()
    transport = SerialTransport(str(tmp_path / "ttyMERC"))
    try:
        drv = get_driver("mercury")(transport, spec(17))
        assert (await drv.connect()).serial == "40000017"
        regs = {r.obis: r.value for r in await drv.read_registers()}
        for obis, v in served(meters[17], "register").items():
            assert regs[obis] == pytest.approx(v)
        await drv.close()
    finally:
        await transport.close()
        await pty.stop()


async def test_wrong_password_is_auth_error():
    server, transport = await tcp_line({3: sim_meter(3)})
    try:
        with pytest.raises(AuthError, match="password"):
            await get_driver("mercury")(transport, spec(3, password="123456")).connect()
        # Level 2 needs the admin password (default 222222), not the user one.
        with pytest.raises(AuthError):
            await get_driver("mercury")(transport, spec(3, options={"access_level": 2, "timeout": 0.5})).connect()
        drv = get_driver("mercury")(transport, spec(3, password="222222", options={"access_level": 2}))
        await drv.connect()
    finally:
        await transport.close()
        server.close()


async def test_serial_mismatch_and_replaced_meter():
    now = datetime.now(UTC)
    meters = {4: sim_meter(4), 5: sim_meter(5, faults=Faults(replaced_at=now - timedelta(hours=1)))}
    server, transport = await tcp_line(meters)
    try:
        with pytest.raises(IdentityMismatch):
            await get_driver("mercury")(transport, spec(4, serial="99999999")).connect()
        with pytest.raises(IdentityMismatch) as e:
            await get_driver("mercury")(transport, spec(5)).connect()
        assert e.value.actual == "40000006"
    finally:
        await transport.close()
        server.close()


async def test_crc_errors_give_frame_error():
    server, transport = await tcp_line({6: sim_meter(6, faults=Faults(crc_error_rate=1.0))})
    try:
        with pytest.raises(FrameError):
            await get_driver("mercury")(transport, spec(6)).connect()
    finally:
        await transport.close()
        server.close()


async def test_garbage_replies_give_typed_errors():
    server, transport = await tcp_line({7: sim_meter(7, faults=Faults(garbage_rate=1.0))})
    try:
        drv = get_driver("mercury")(transport, spec(7, options={"timeout": 0.2}))
        for _ in range(5):
            with pytest.raises((FrameError, MeterTimeout)):
                await drv.connect()
    finally:
        await transport.close()
        server.close()


async def test_silent_meter_and_unknown_address_time_out():
    server, transport = await tcp_line({8: sim_meter(8, faults=Faults(silent=True))})
    try:
        for addr in (8, 9):
            with pytest.raises(MeterTimeout):
                await get_driver("mercury")(transport, spec(addr, options={"timeout": 0.2})).connect()
    finally:
        await transport.close()
        server.close()


async def test_channel_closed_by_meter_is_reopened():
    meters = {10: sim_meter(10)}
    sessions = []
    factory = make_session_factory(meters, transport="tcp")

    def tracking():
        s = factory()
        sessions.append(s)
        return s

    server = await serve_tcp(tracking)
    transport = TcpTransport("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        drv = get_driver("mercury")(transport, spec(10))
        await drv.connect()
        sessions[0].levels.clear()  # the meter's channel timed out
        assert len(await drv.read_registers()) == 20
    finally:
        await transport.close()
        server.close()


def test_config_errors_are_clear():
    t = TcpTransport("127.0.0.1", 1)
    with pytest.raises(ValueError, match="network address"):
        get_driver("mercury")(t, spec(241))
    with pytest.raises(ValueError, match="6 digits"):
        get_driver("mercury")(t, spec(1, password="secret"))
    with pytest.raises(ValueError, match="access_level"):
        get_driver("mercury")(t, spec(1, options={"access_level": 5}))
    with pytest.raises(ValueError, match="network address"):
        make_session_factory({300: sim_meter(1)}, transport="tcp")


async def test_universal_address_with_one_meter():
    server, transport = await tcp_line({11: sim_meter(11)})
    try:
        drv = get_driver("mercury")(transport, spec(0, serial="40000011"))
        assert (await drv.connect()).serial == "40000011"
    finally:
        await transport.close()
        server.close()
    await asyncio.sleep(0)


async def test_set_clock_small_step_once_a_day_and_large_step_needs_admin():
    now = datetime.now(UTC)
    m = sim_meter(12, faults=Faults(clock_jump_at=now - timedelta(minutes=5), clock_jump_s=-90))
    big = sim_meter(13, faults=Faults(clock_jump_at=now - timedelta(minutes=5), clock_jump_s=3 * 3600))
    server, transport = await tcp_line({12: m, 13: big})
    try:
        drv = get_driver("mercury")(transport, spec(12))
        await drv.connect()
        before = await drv.read_clock()
        assert (datetime.now(UTC) - before).total_seconds() == pytest.approx(90, abs=5)
        target = datetime.now(UTC)
        # the meter runs 90 s behind: in the first 90 s of an hour its clock is still in the last one
        if before.hour != target.hour or target.minute == 59:
            pytest.skip("a correction across the hour is refused by design; rerun outside xx:59-xx:01")
        await drv.set_clock(target)
        assert abs((await drv.read_clock() - datetime.now(UTC)).total_seconds()) < 5
        assert (m.journal[-1].journal_obis, m.journal[-1].code) == ("0.0.99.98.3.255", 3)  # СПОДЭС time set
        with pytest.raises(f.MercuryStatusError) as e:  # only once a day
            await drv.set_clock(datetime.now(UTC) + timedelta(seconds=30))
        assert e.value.status == 4

        user = get_driver("mercury")(transport, spec(13))
        await user.connect()
        with pytest.raises(AuthError, match="access level"):
            await user.set_clock(datetime.now(UTC))
        admin = get_driver("mercury")(transport, spec(13, password="222222", options={"access_level": 2}))
        await admin.connect()
        await admin.set_clock(datetime.now(UTC))
        assert abs((await admin.read_clock() - datetime.now(UTC)).total_seconds()) < 5
    finally:
        await transport.close()
        server.close()


def test_config_errors_are_driver_errors():
    from askue.drivers.errors import DriverError

    with pytest.raises(DriverError):
        get_driver("mercury")(TcpTransport("127.0.0.1", 1), spec(1, password="12"))

"""M-Bus driver against the M-Bus simulator over real TCP sockets and a pty pair.

The simulator writes records with `encode.py`, the driver reads them with `records.py`: the
two share no record code, and the decoder is checked on its own against libmbus's decodings
of real telegrams (test_mbus_golden.py).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from askue.drivers.base import Kind, MeterSpec, get_driver
from askue.drivers.errors import FrameError, IdentityMismatch, MeterTimeout, ProtocolError, Unsupported
from askue.drivers.mbus import encode
from askue.drivers.mbus import frames as f
from askue.drivers.mbus.simulator import make_session_factory
from askue.drivers.sim.line import PtyServer, serve_tcp
from askue.drivers.sim.meter import Faults, SimMeter
from askue.drivers.transport import SerialTransport, TcpTransport


def sim(addr: int, resource: str, **kw) -> SimMeter:
    kw.setdefault("mean_power", 0.05 if resource != "heat" else 0.02)
    return SimMeter(id=f"{resource}{addr}", serial=f"{70000000 + addr:08d}", resource=resource, address=addr, **kw)


def spec(addr: int, **kw) -> MeterSpec:
    kw.setdefault("serial", f"{70000000 + addr:08d}")
    kw.setdefault("options", {"timeout": 0.5})
    return MeterSpec(id=f"mb{addr}", driver="mbus", address=addr, **kw)


async def tcp_line(meters):
    server = await serve_tcp(make_session_factory(meters, transport="tcp"))
    return server, TcpTransport("127.0.0.1", server.sockets[0].getsockname()[1])


async def spy_line(meters):
    """A TCP line to the simulator that keeps every frame the driver sends."""
    frames_seen: list[bytes] = []
    factory = make_session_factory(meters, transport="tcp")

    class Spy:
        def __init__(self):
            self.inner = factory()

        def feed(self, data):
            frames_seen.append(data)
            return self.inner.feed(data)

    server = await serve_tcp(Spy)
    return server, TcpTransport("127.0.0.1", server.sockets[0].getsockname()[1]), frames_seen, factory


def last_served(meter: SimMeter) -> dict[str, tuple[datetime | None, float]]:
    return {obis: (t, v) for _, obis, t, v in meter.served}


EXPECTED = {
    "cold_water": ({"8.0.1.0.0.255"}, {"8.0.2.0.0.255"}),
    "hot_water": ({"9.0.1.0.0.255"}, {"9.0.2.0.0.255", "9.0.3.0.0.255"}),
    "heat": ({"6.0.1.0.0.255", "6.0.2.0.0.255"},
             {"6.0.8.0.0.255", "6.0.9.0.0.255", "6.0.10.0.0.255", "6.0.11.0.0.255", "6.0.12.0.0.255"}),
}


async def test_water_and_heat_meters_over_tcp():
    meters = {1: sim(1, "cold_water"), 2: sim(2, "hot_water"), 3: sim(3, "heat", start_value=12.5)}
    server, transport = await tcp_line(meters)
    try:
        for addr, m in meters.items():
            drv = get_driver("mbus")(transport, spec(addr))
            ident = await drv.connect()
            assert ident.serial == m.serial
            regs = await drv.read_registers()
            reg_served = last_served(m)
            inst = await drv.read_instant()
            inst_served = last_served(m)
            want_regs, want_inst = EXPECTED[m.resource]
            assert {r.obis for r in regs} == want_regs and all(r.kind is Kind.REGISTER for r in regs)
            assert {r.obis for r in inst} == want_inst and all(r.kind is Kind.INSTANT for r in inst)
            for r in regs:
                t, v = reg_served[r.obis]
                assert r.value == pytest.approx(v, abs=1e-9) and r.meter_time == t
            for r in inst:
                assert r.value == pytest.approx(inst_served[r.obis][1], abs=1e-9)
            clock = await drv.read_clock()
            assert abs((clock - m.clock()).total_seconds()) < 120  # type F has minute resolution
            await drv.close()
    finally:
        await transport.close()
        server.close()


async def test_heat_register_follows_the_meter_model():
    m = sim(4, "heat", start_value=250.0)
    server, transport = await tcp_line({4: m})
    try:
        drv = get_driver("mbus")(transport, spec(4))
        await drv.connect()
        (energy,) = [r for r in await drv.read_registers() if r.obis == "6.0.1.0.0.255"]
        assert energy.unit == "GJ"
        assert energy.value == pytest.approx(m.registers()[0], abs=0.01)
    finally:
        await transport.close()
        server.close()


async def test_over_pty(tmp_path):
    meters = {10: sim(10, "cold_water"), 11: sim(11, "heat")}
    pty = await PtyServer(make_session_factory(meters, transport="serial"), tmp_path / "ttyMBUS").start()
    # On a real line: SerialSettings(2400, 8, "E", 1). A pty only takes 8N1, which frames the same bytes.
    transport = SerialTransport(str(tmp_path / "ttyMBUS"))
    try:
        for addr in (10, 11):
            drv = get_driver("mbus")(transport, spec(addr))
            assert (await drv.connect()).serial == meters[addr].serial
            regs = await drv.read_registers()
            served = last_served(meters[addr])
            assert regs and all(r.value == pytest.approx(served[r.obis][1]) for r in regs)
    finally:
        await transport.close()
        await pty.stop()


async def test_identity_mismatch_and_replaced_meter():
    now = datetime.now(UTC)
    meters = {5: sim(5, "cold_water"), 6: sim(6, "cold_water", faults=Faults(replaced_at=now - timedelta(hours=1)))}
    server, transport = await tcp_line(meters)
    try:
        with pytest.raises(IdentityMismatch):
            await get_driver("mbus")(transport, spec(5, serial="12345678")).connect()
        with pytest.raises(IdentityMismatch) as e:
            await get_driver("mbus")(transport, spec(6)).connect()
        assert e.value.actual == "70000007"
    finally:
        await transport.close()
        server.close()


async def test_checksum_errors_give_frame_error():
    server, transport = await tcp_line({7: sim(7, "hot_water", faults=Faults(crc_error_rate=1.0))})
    try:
        drv = get_driver("mbus")(transport, spec(7, options={"timeout": 0.5, "nke": False}))
        with pytest.raises(FrameError, match="checksum"):
            await drv.connect()
    finally:
        await transport.close()
        server.close()


async def test_garbage_and_silence_are_typed():
    meters = {8: sim(8, "heat", faults=Faults(garbage_rate=1.0)), 9: sim(9, "heat", faults=Faults(silent=True))}
    server, transport = await tcp_line(meters)
    try:
        for _ in range(5):
            with pytest.raises((FrameError, MeterTimeout)):
                await get_driver("mbus")(transport, spec(8, options={"timeout": 0.2})).connect()
        for addr in (9, 12):
            with pytest.raises(MeterTimeout):
                await get_driver("mbus")(transport, spec(addr, options={"timeout": 0.2})).connect()
    finally:
        await transport.close()
        server.close()


def test_config_errors_are_clear():
    t = TcpTransport("127.0.0.1", 1)
    with pytest.raises(ValueError, match="primary address"):
        get_driver("mbus")(t, spec(300))
    with pytest.raises(ValueError, match="options.medium"):
        get_driver("mbus")(t, spec(1, options={"medium": "steam"}))
    with pytest.raises(ValueError, match="serves"):
        make_session_factory({1: SimMeter(id="e", serial="1")}, transport="serial")


async def test_configured_resource_is_checked_and_fresh_driver_resets_fcb():
    server, transport, frames_seen, _factory = await spy_line({20: sim(20, "heat")})
    try:
        wrong = get_driver("mbus")(transport, spec(20, options={"timeout": 0.5, "resource": "cold_water"}))
        with pytest.raises(ProtocolError, match="configured as cold_water"):
            await wrong.read_registers()
        # The gateway reuses identity checks and calls read_* on a fresh driver: it must send
        # SND_NKE first so the slave does not take the REQ_UD2 for a repetition; the first
        # REQ_UD2 after it carries FCB = 1 (EN 60870-5-2), then the bit alternates.
        frames_seen.clear()
        fresh = get_driver("mbus")(transport, spec(20, options={"timeout": 0.5, "resource": "heat"}))
        assert {r.obis for r in await fresh.read_registers()} == {"6.0.1.0.0.255", "6.0.2.0.0.255"}
        await fresh.read_instant()
        assert b"".join(frames_seen) == f.snd_nke(20) + f.req_ud2(20, fcb=True) + f.req_ud2(20)
    finally:
        await transport.close()
        server.close()


def test_ambiguous_water_medium_takes_the_configured_resource():
    from askue.drivers.mbus import obis

    tel = f.decode_rsp_ud(f.long_frame(8, 1, 0x72, f.encode_header(f.Header("00000001", "ASK", 1, 0x07, 0, 0))
                                       + encode.int_record(encode.VOLUME_L, 12_500)))
    assert [r.obis for r in obis.readings(tel, UTC, resource="hot_water")] == ["9.0.1.0.0.255"]
    assert [r.obis for r in obis.readings(tel, UTC)] == ["8.0.1.0.0.255"]


def test_config_errors_are_driver_errors():
    from askue.drivers.errors import DriverError

    with pytest.raises(DriverError):
        get_driver("mbus")(TcpTransport("127.0.0.1", 1), spec(251))


async def test_multi_telegram_readout_is_merged():
    m = sim(30, "heat", options={"records_per_telegram": 3})
    server, transport = await tcp_line({30: m})
    try:
        drv = get_driver("mbus")(transport, spec(30))
        await drv.connect()
        regs = await drv.read_registers()
        inst = await drv.read_instant()
        assert {r.obis for r in regs} == EXPECTED["heat"][0]
        assert {r.obis for r in inst} == EXPECTED["heat"][1]
        assert all(r.meter_time is not None for r in regs + inst)
    finally:
        await transport.close()
        server.close()


async def test_lost_answer_then_reset_before_next_request():
    m = sim(31, "cold_water")
    seen: list[bytes] = []
    factory = make_session_factory({31: m}, transport="tcp")

    class DropSecondAnswer:
        def __init__(self):
            self.inner, self.n = factory(), 0

        def feed(self, data):
            seen.append(data)
            out = self.inner.feed(data)
            self.n += len(out)
            return [] if self.n == 2 else out

    server = await serve_tcp(DropSecondAnswer)
    transport = TcpTransport("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        drv = get_driver("mbus")(transport, spec(31, options={"timeout": 0.2}))
        with pytest.raises(MeterTimeout):
            await drv.read_registers()  # ACK arrives, the RSP_UD is lost
        seen.clear()
        regs = await drv.read_registers()
        assert regs[0].obis == "8.0.1.0.0.255"
        assert seen[0] == f.snd_nke(31)  # the driver reset the slave's FCB memory first
    finally:
        await transport.close()
        server.close()


# ---- the shapes of real meters' telegrams (simulator options) ---------------------------------

SHAPES = {
    # (options, resource): as a Sensus PolluStat, an Engelmann SensoStar 2C, a Landis+Gyr G350 /
    # Itron Cyble, a Sensus PolluTherm, a meter after a battery change
    40: ({"energy_vif": "kwh_accumulation"}, "heat"),
    41: ({"energy_vif": "mwh", "records_per_telegram": 3, "strict_fcb": True}, "heat"),
    42: ({"energy_vif": "gj", "text_records": True}, "heat"),
    43: ({"unknown_vif": True, "text_records": True, "records_per_telegram": 2}, "cold_water"),
    44: ({"time_invalid": True}, "hot_water"),
}


async def test_simulated_meter_shapes_are_read(caplog):
    meters = {a: sim(a, res, start_value=250.0 if res == "heat" else 1000.0, options=o)
              for a, (o, res) in SHAPES.items()}
    server, transport = await tcp_line(meters)
    try:
        for addr, m in meters.items():
            drv = get_driver("mbus")(transport, spec(addr, options={"timeout": 0.5, "resource": m.resource}))
            assert (await drv.connect()).serial == m.serial
            for _ in range(2):  # a second poll: the skipped record is logged once, not at every poll
                regs = await drv.read_registers()
                served = last_served(m)
                assert {r.obis for r in regs} == EXPECTED[m.resource][0]
                for r in regs:
                    t, v = served[r.obis]
                    assert r.value == pytest.approx(v, abs=1e-9) and r.meter_time == t
            if m.resource == "heat":
                (energy,) = [r for r in regs if r.obis == "6.0.1.0.0.255"]
                assert energy.value == pytest.approx(m.registers()[0], abs=0.36)  # 0.1 MWh resolution at worst
            if m.options.get("time_invalid"):
                assert all(r.meter_time is None and r.reasons == ("meter_time_invalid",) for r in regs)
                with pytest.raises(Unsupported, match="invalid"):
                    await drv.read_clock()
            else:
                assert all(r.meter_time is not None and r.reasons == () for r in regs)
                assert abs((await drv.read_clock() - m.clock()).total_seconds()) < 120
    finally:
        await transport.close()
        server.close()
    skipped = [r for r in caplog.records if "VIF 0x7b" in r.getMessage()]
    assert len([r for r in skipped if r.levelname == "WARNING"]) == 1, [r.getMessage() for r in skipped]


async def test_fcb_after_reset_and_through_a_multi_telegram_readout():
    m = sim(50, "heat", options={"records_per_telegram": 4, "strict_fcb": True})
    server, transport, frames_seen, factory = await spy_line({50: m})
    try:
        drv = get_driver("mbus")(transport, spec(50, options={"timeout": 0.5, "resource": "heat"}))
        await drv.read_registers()  # 9 records in telegrams of 4: three telegrams
        await drv.read_registers()
        req = [fr for fr in frames_seen if fr != f.snd_nke(50)]
        assert frames_seen[0] == f.snd_nke(50)
        assert req == [f.req_ud2(50, fcb=b) for b in (True, False, True, False, True, False)]
    finally:
        await transport.close()
        server.close()
    # A master that starts with FCB = 0 after the reset gets no answer from this slave.
    session = factory()
    assert [r.data for r in session.feed(f.snd_nke(50))] == [b"\xe5"]
    assert session.feed(f.req_ud2(50, fcb=False)) == []
    assert len(session.feed(f.req_ud2(50, fcb=True))) == 1


def test_unknown_energy_vif_option_is_refused():
    with pytest.raises(ValueError, match="energy_vif"):
        make_session_factory({1: sim(1, "heat", options={"energy_vif": "btu"})})

"""The Modbus driver against the askue Modbus simulator, over TCP (MBAP) and over a
pty (RTU), several unit ids on one line, with line and state faults."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from askue.drivers.base import Kind, MeterSpec, get_driver
from askue.drivers.errors import FrameError, IdentityMismatch, MeterTimeout, ProtocolError, Unsupported
from askue.drivers.modbus.driver import ConfigError, ModbusDriver
from askue.drivers.modbus.register_map import available_models, load_map, parse_map
from askue.drivers.modbus.simulator import make_session_factory
from askue.drivers.sim.line import PtyServer, serve_tcp
from askue.drivers.sim.meter import Faults, SimMeter
from askue.drivers.transport import SerialTransport, TcpTransport

T0 = datetime(2026, 11, 20, 9, 17, 41, 250_000, tzinfo=UTC)
RESOURCE = {m: load_map(m).resource for m in available_models()}


def sim_meter(unit: int, model: str, serial: str, **kw) -> SimMeter:
    kw.setdefault("now", lambda: T0)
    return SimMeter(id=f"m{unit}", serial=serial, model=model, address=unit, resource=RESOURCE[model], **kw)


def spec(unit: int, model: str, serial: str | None = None, **options) -> MeterSpec:
    options.setdefault("timeout", 2.0)  # generous: the test machine is shared and noisy
    return MeterSpec(id=f"m{unit}", driver="modbus", address=unit, model=model, serial=serial, options=options)


def assert_served(meter: SimMeter, readings) -> None:
    """Every reading is exactly a value the simulator served (value, channel, meter time)."""
    served = {(k, o, t, v) for k, o, t, v in meter.served}
    for r in readings:
        assert (r.kind.value, r.obis, r.meter_time, r.value) in served, r


@pytest.fixture
async def tcp_line():
    servers, transports = [], []

    async def start(meters: dict[int, SimMeter]) -> TcpTransport:
        srv = await serve_tcp(make_session_factory(meters, transport="tcp"))
        servers.append(srv)
        tr = TcpTransport("127.0.0.1", srv.sockets[0].getsockname()[1])
        transports.append(tr)
        return tr

    yield start
    for tr in transports:
        await tr.close()
    for srv in servers:
        srv.close()


@pytest.fixture
async def pty_line(tmp_path):
    servers, transports = [], []

    async def start(meters: dict[int, SimMeter]) -> SerialTransport:
        pty = await PtyServer(make_session_factory(meters, transport="serial"), tmp_path / f"tty{len(servers)}").start()
        servers.append(pty)
        tr = SerialTransport(str(pty.path))
        transports.append(tr)
        return tr

    yield start
    for tr in transports:
        await tr.close()
    for pty in servers:
        await pty.stop()


def fleet() -> dict[int, SimMeter]:
    return {
        1: sim_meter(1, "schneider-iem3255", "31415926"),
        7: sim_meter(7, "eastron-sdm630", "1"),
        12: sim_meter(12, "aquametro-calec-st", "880123"),
    }


async def read_fleet(tr, meters: dict[int, SimMeter], framing: str) -> None:
    iem, sdm, calec = meters[1], meters[7], meters[12]

    d = get_driver("modbus")(tr, spec(1, "schneider-iem3255", "31415926", framing=framing))
    ident = await d.connect()
    assert ident.serial == "31415926" and ident.model == "schneider-iem3255"
    regs = await d.read_registers()
    by = {r.obis: r for r in regs}
    truth = iem.registers(T0)
    assert by["1.0.1.8.0.255"].value == truth[0]
    assert by["1.0.1.8.1.255"].value == truth[1] and by["1.0.1.8.2.255"].value == truth[2]
    assert by["1.0.1.8.1.255"].value + by["1.0.1.8.2.255"].value == pytest.approx(truth[0], abs=0.0015)
    assert all(r.unit == "kWh" and r.kind == Kind.REGISTER for r in regs)
    # the meter's own clock, read in the same session, stamps every value
    clock = iem.clock(T0).replace(microsecond=iem.clock(T0).microsecond // 1000 * 1000)
    assert {r.meter_time for r in regs} == {clock}
    assert await d.read_clock() == clock
    inst = {r.obis: r for r in await d.read_instant()}
    assert inst["1.0.32.7.0.255"].value == iem.instant(T0)["1.0.32.7.0.255"]
    assert inst["1.0.32.7.0.255"].unit == "V"
    assert_served(iem, regs + list(inst.values()))

    d = ModbusDriver(tr, spec(7, "eastron-sdm630", framing=framing))
    await d.connect()
    regs = await d.read_registers()
    assert {r.obis for r in regs} == {"1.0.1.8.0.255", "1.0.2.8.0.255", "1.0.3.8.0.255", "1.0.4.8.0.255"}
    assert {r.obis: r.value for r in regs}["1.0.1.8.0.255"] == pytest.approx(sdm.registers(T0)[0], rel=1e-7)
    assert all(r.meter_time is None for r in regs)  # no clock in this model
    inst = await d.read_instant()
    assert_served(sdm, regs + inst)
    with pytest.raises(Unsupported):
        await d.read_clock()

    d = ModbusDriver(tr, spec(12, "aquametro-calec-st", "880123", framing=framing))
    assert (await d.connect()).serial == "880123"
    regs = await d.read_registers()
    assert {r.obis: r.value for r in regs}["6.0.1.0.0.255"] == pytest.approx(calec.registers(T0)[0], rel=1e-7)
    assert_served(calec, regs + await d.read_instant())


async def test_fleet_over_tcp(tcp_line):
    meters = fleet()
    await read_fleet(await tcp_line(meters), meters, "tcp")


async def test_fleet_over_pty_rtu(pty_line):
    meters = fleet()
    await read_fleet(await pty_line(meters), meters, "rtu")


async def test_coalesced_requests(tcp_line):
    meters = fleet()
    d = ModbusDriver(await tcp_line(meters), spec(1, "schneider-iem3255"))
    await d.read_registers()
    # A+/A- totals (3203..3210), the four tariffs (45119..45126) and the clock: 3 requests for 7 values
    assert d.requests == 3


GAPPY = """
protocol: modbus
model: gappy
vendor: askue test
resource: electricity
source: unit test
function: 4
word_order: little
max_gap: 6
clock: {address: 40, format: unix_u32}
fields:
  - {name: a_plus, obis: 1.0.1.8.0.255, kind: register, address: 0, type: u32, scale: 0.001, unit: kWh}
  - {name: a_plus_t1, obis: 1.0.1.8.1.255, kind: register, tariff: 1, address: 8, type: i32, scale: 0.001, unit: kWh}
  - {name: a_plus_t2, obis: 1.0.1.8.2.255, kind: register, tariff: 2, address: 14, type: u64, scale: 0.001, unit: kWh}
  - {name: u1, obis: 1.0.32.7.0.255, kind: instant, address: 60, type: u16, scale: 0.1, unit: V}
  - {name: f, obis: 1.0.14.7.0.255, kind: instant, address: 62, type: i16, scale: 0.01, unit: Hz}
"""


async def test_reading_across_gaps_and_word_order(tcp_line, tmp_path):
    path = tmp_path / "gappy.yaml"
    path.write_text(GAPPY)
    m = SimMeter(id="g", serial="5", options={"map_file": str(path)}, now=lambda: T0)
    tr = await tcp_line({3: m})
    d = ModbusDriver(tr, spec(3, "", map_file=str(path)))
    regs = await d.read_registers()
    assert d.requests == 2  # 0..17 across the 2..7 and 10..13 holes, then the clock at 40
    assert [r.value for r in regs] == [m.registers(T0)[z] for z in (0, 1, 2)]
    assert regs[0].meter_time == T0.replace(microsecond=0)
    inst = {r.obis: r.value for r in await d.read_instant()}
    assert inst["1.0.32.7.0.255"] == m.instant(T0)["1.0.32.7.0.255"]
    assert inst["1.0.14.7.0.255"] == m.instant(T0)["1.0.14.7.0.255"]
    # reading with a wider gap than the model allows reaches registers it refuses
    d = ModbusDriver(tr, spec(3, "", map_file=str(path), max_gap=30))
    with pytest.raises(ProtocolError, match="ILLEGAL DATA ADDRESS"):
        await d.read_registers()


@pytest.mark.parametrize("model", available_models())
@pytest.mark.parametrize("framing", ["tcp", "rtu"])
async def test_every_shipped_map_round_trips(model, framing, tcp_line, pty_line):
    m = sim_meter(5, model, "424242", now=lambda: datetime.now(UTC))
    tr = await (tcp_line if framing == "tcp" else pty_line)({5: m})
    d = ModbusDriver(tr, spec(5, model, framing=framing))
    await d.connect()
    rmap = load_map(model)
    readings = []
    if rmap.by_kind("register"):
        readings += await d.read_registers()
    if rmap.by_kind("instant"):
        readings += await d.read_instant()
    assert len(readings) == len(rmap.fields)
    assert_served(m, readings)


# ---- faults --------------------------------------------------------------------------------
@pytest.mark.parametrize("line", ["tcp", "pty"])
async def test_line_faults_give_typed_errors_and_the_line_recovers(line, tcp_line, pty_line):
    meters = {
        1: sim_meter(1, "eastron-sdm630", "1", faults=Faults(silent=True)),
        2: sim_meter(2, "eastron-sdm630", "2", faults=Faults(crc_error_rate=1.0)),
        3: sim_meter(3, "eastron-sdm630", "3", faults=Faults(garbage_rate=1.0)),
        4: sim_meter(4, "eastron-sdm630", "4", faults=Faults(slow_reply_s=0.4)),
        5: sim_meter(5, "eastron-sdm630", "5"),
    }
    tr = await (tcp_line if line == "tcp" else pty_line)(meters)
    framing = "tcp" if line == "tcp" else "rtu"

    def drv(unit: int, timeout: float = 2.0) -> ModbusDriver:
        return ModbusDriver(tr, spec(unit, "eastron-sdm630", framing=framing, timeout=timeout))

    with pytest.raises(MeterTimeout, match="unit 1"):
        await drv(1, timeout=0.2).read_registers()
    with pytest.raises(FrameError, match="unit 2"):
        await drv(2).read_registers()
    with pytest.raises((FrameError, MeterTimeout)):
        await drv(3).read_registers()
    with pytest.raises(MeterTimeout):
        await drv(4, timeout=0.2).read_registers()  # answers after 0.4 s, we wait 0.2
    await asyncio.sleep(1.0)  # the slow answer arrives late, into the next exchange's input
    # the healthy meter on the same line still reads, the late answer notwithstanding
    good = await drv(5).read_registers()
    assert_served(meters[5], good)
    assert len(good) == 4
    # and a patient reader gets the slow one
    assert len(await drv(4, timeout=2.0).read_registers()) == 4


async def test_unknown_unit_tcp_gateway_exception_and_rtu_silence(tcp_line, pty_line):
    tr = await tcp_line({1: sim_meter(1, "eastron-sdm630", "1")})
    with pytest.raises(ProtocolError, match="GATEWAY TARGET DEVICE FAILED TO RESPOND") as e:
        await ModbusDriver(tr, spec(9, "eastron-sdm630")).read_registers()
    assert e.value.retry is True
    tr = await pty_line({1: sim_meter(1, "eastron-sdm630", "1")})
    with pytest.raises(MeterTimeout):
        await ModbusDriver(tr, spec(9, "eastron-sdm630", timeout=0.2)).read_registers()


async def test_exceptions_for_unmapped_address_and_wrong_function(tcp_line):
    tr = await tcp_line({1: sim_meter(1, "schneider-iem3255", "1")})
    rmap = load_map("schneider-iem3255")
    extra = rmap.model_copy(update={"fields": [*rmap.fields, rmap.fields[0].model_copy(
        update={"name": "nope", "obis": "1.0.1.8.5.255", "tariff": 5, "address": 5000})]})
    with pytest.raises(ProtocolError, match="reading 4 registers at 5000: Modbus exception 0x02 ILLEGAL DATA ADDRESS"):
        await ModbusDriver(tr, spec(1, "schneider-iem3255"), register_map=extra).read_registers()
    as_input = rmap.model_copy(update={"function": 4})
    with pytest.raises(ProtocolError, match="ILLEGAL FUNCTION"):
        await ModbusDriver(tr, spec(1, "schneider-iem3255"), register_map=as_input).read_registers()


async def test_replaced_meter_is_an_identity_mismatch(tcp_line):
    m = sim_meter(1, "schneider-iem3255", "31415926", faults=Faults(replaced_at=T0 - timedelta(days=1)))
    tr = await tcp_line({1: m})
    with pytest.raises(IdentityMismatch, match="configured serial '31415926'"):
        await ModbusDriver(tr, spec(1, "schneider-iem3255", "31415926")).connect()
    # registers of the new meter restart near zero
    regs = {r.obis: r.value for r in await ModbusDriver(tr, spec(1, "schneider-iem3255")).read_registers()}
    assert regs["1.0.1.8.0.255"] < 1000


async def test_rollover_and_clock_jump_are_served_as_the_meter_shows_them(tcp_line):
    m = sim_meter(1, "schneider-iem3255", "1", faults=Faults(rollover=True, clock_jump_at=T0 - timedelta(hours=1),
                                                             clock_jump_s=3600))
    tr = await tcp_line({1: m})
    d = ModbusDriver(tr, spec(1, "schneider-iem3255"))
    regs = {r.obis: r for r in await d.read_registers()}
    assert regs["1.0.1.8.0.255"].value == m.registers(T0)[0]
    assert regs["1.0.1.8.0.255"].meter_time == T0.replace(microsecond=250_000) + timedelta(hours=1)


def test_bad_driver_configuration_is_a_config_error():
    tr = TcpTransport("127.0.0.1", 1)
    with pytest.raises(ConfigError, match="no such register map"):
        ModbusDriver(tr, spec(1, "no-such-model"))
    with pytest.raises(ConfigError, match="framing 'ascii'"):
        ModbusDriver(tr, spec(1, "eastron-sdm630", framing="ascii"))
    with pytest.raises(ConfigError, match="unit id 300"):
        ModbusDriver(tr, spec(300, "eastron-sdm630"))
    with pytest.raises(ConfigError, match="clock_tz"):
        ModbusDriver(tr, spec(1, "schneider-iem3255", clock_tz="Moscow"))
    with pytest.raises(ConfigError, match="set model"):
        ModbusDriver(tr, MeterSpec(id="x", driver="modbus"))


def test_sim_rejects_bad_maps_at_start(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GAPPY.replace("type: u16", "type: u12"))
    with pytest.raises(ValueError, match=r"fields\[3\]\.type"):
        make_session_factory({1: SimMeter(id="b", serial="1", options={"map_file": str(bad)})}, transport="tcp")
    assert parse_map(GAPPY, "gappy").max_gap == 6


# ---- the sans-I/O session, byte by byte ------------------------------------------------------
def test_session_answers_exceptions_and_ignores_noise():
    from askue.drivers.modbus.frames import with_crc

    meters = {1: sim_meter(1, "eastron-sdm630", "1")}
    rtu = make_session_factory(meters, transport="serial")()
    (r,) = rtu.feed(with_crc(bytes.fromhex("01 41 0000 0001")))
    assert r.data == with_crc(bytes.fromhex("01 C1 01"))  # ILLEGAL FUNCTION
    (r,) = rtu.feed(with_crc(bytes.fromhex("01 04 0000 00C8")))
    assert r.data == with_crc(bytes.fromhex("01 84 03"))  # 200 registers: ILLEGAL DATA VALUE
    (r,) = rtu.feed(with_crc(bytes.fromhex("01 03 0048 0002")))
    assert r.data == with_crc(bytes.fromhex("01 83 01"))  # holding registers: this model has none
    assert rtu.feed(with_crc(bytes.fromhex("01 04 0048 0002"))[:-1] + b"\x00") == []  # bad CRC: silence
    assert rtu.feed(with_crc(bytes.fromhex("02 04 0048 0002"))) == []  # another unit's request
    req = with_crc(bytes.fromhex("01 04 0048 0002"))
    assert rtu.feed(req[:3]) == []  # a request split across reads
    (r,) = rtu.feed(req[3:])
    assert r.data[:3] == bytes.fromhex("01 04 04") and r.checksum_at == len(r.data) - 2

    tcp = make_session_factory(meters, transport="tcp")()
    assert tcp.feed(bytes.fromhex("0001 0005 0006 01 04 0048 0002")) == []  # protocol id 5: not Modbus
    (r,) = tcp.feed(bytes.fromhex("0002 0000 0006 01 04 0048 0002"))
    assert r.data[:9] == bytes.fromhex("0002 0000 0007 01 04 04") and r.checksum_at == 2
    two = bytes.fromhex("0003 0000 0006 01 04 0000 0002 0004 0000 0006 01 04 0002 0002")
    assert [x.data[:2] for x in tcp.feed(two)] == [b"\x00\x03", b"\x00\x04"]  # pipelined requests


async def test_reference_map_values_arrive_exactly(tcp_line, pty_line):
    """askue-sim-electricity: integer registers, so every value is the SimMeter's own number."""
    for start, framing in ((tcp_line, "tcp"), (pty_line, "rtu")):
        m = sim_meter(9, "askue-sim-electricity", "10000009")
        tr = await start({9: m})
        d = ModbusDriver(tr, spec(9, "askue-sim-electricity", "10000009", framing=framing))
        await d.connect()
        regs = {r.obis: r for r in await d.read_registers()}
        assert d.requests == 2  # serial, then clock + 8 registers in one request across the reserved gap
        truth = m.registers(T0)
        assert [regs[f"1.0.1.8.{z}.255"].value for z in (0, 1, 2)] == [truth[0], truth[1], truth[2]]
        assert regs["1.0.1.8.0.255"].meter_time == T0.replace(microsecond=0)
        inst = {r.obis: r.value for r in await d.read_instant()}
        for obis in ("1.0.32.7.0.255", "1.0.31.7.0.255", "1.0.1.7.0.255", "1.0.14.7.0.255"):
            assert inst[obis] == m.instant(T0)[obis]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=6), st.sampled_from(["tcp", "serial"]))
def test_session_survives_noise(chunks, transport):
    """Line noise into the simulator: no exception, and it still answers a good request after."""
    from askue.drivers.modbus.frames import build_request, read_pdu

    session = make_session_factory({1: sim_meter(1, "eastron-sdm630", "1")}, transport=transport)()
    for c in chunks:
        session.feed(c)
    framing = "tcp" if transport == "tcp" else "rtu"
    session.buf = b""  # a real master waits out the noise (RTU: 3.5 char silence; TCP: reconnects)
    (r,) = session.feed(build_request(framing, 1, read_pdu(4, 72, 2), tid=9))
    assert r.meter is not None and len(r.data) == (13 if framing == "tcp" else 9)


def test_capabilities_follow_the_map():
    from askue.drivers.base import Capability

    tr = TcpTransport("127.0.0.1", 1)
    assert Capability.CLOCK in ModbusDriver(tr, spec(1, "schneider-iem3255")).capabilities
    sdm = ModbusDriver(tr, spec(1, "eastron-sdm630")).capabilities
    assert sdm == {Capability.REGISTERS, Capability.INSTANT}

"""The Modbus driver against pymodbus's own server (pymodbus.simulator SimDevice/SimData),
so a mistake the askue simulator shares with the driver cannot hide. Register images
here are built with pymodbus's data types and expected values are written out by hand."""
from __future__ import annotations

import asyncio
import contextlib
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from askue.devservices.ports import free_port, wait_port
from askue.drivers.base import MeterSpec
from askue.drivers.errors import MeterTimeout, ProtocolError
from askue.drivers.modbus.driver import ModbusDriver
from askue.drivers.transport import SerialTransport, TcpTransport

MSK = timezone(timedelta(hours=3))


def iem3255(unit: int) -> SimDevice:
    # Schneider DATETIME 2026-11-20 12:34:56.789 local: year-2000; month<<8|day; hour<<8|minute; ms
    clock = [26, (11 << 8) | 20, (12 << 8) | 34, 56_789]
    return SimDevice(id=unit, simdata=[
        SimData(129, values=4_000_123 + unit, datatype=DataType.UINT32),  # serial
        SimData(1844, values=clock, datatype=DataType.REGISTERS),
        SimData(2999, values=[5.5, 4.25, 3.125], datatype=DataType.FLOAT32),  # I1..I3
        SimData(3027, values=[229.7, 230.1, 231.9], datatype=DataType.FLOAT32),  # V L1..L3
        SimData(3059, values=1.875, datatype=DataType.FLOAT32),  # total power kW
        SimData(3203, values=[12_345_678, 9_012], datatype=DataType.UINT64),  # A+, A- Wh
        # rates A..D: Float32 kWh as the meters send them (configs/models/schneider-iem3255.yaml)
        SimData(45119, values=[7_400.0, 4_945.678, 0.0, 0.0], datatype=DataType.FLOAT32),
    ])


def sdm630(unit: int) -> SimDevice:
    return SimDevice(id=unit, simdata=[
        SimData(0, values=[230.5, 229.5, 231.0, 1.5, 2.5, 3.5, 345.0, 576.0, 808.0], datatype=DataType.FLOAT32),
        SimData(52, values=1729.0, datatype=DataType.FLOAT32),
        SimData(70, values=[49.98, 5123.4, 12.5, 800.25, 3.75], datatype=DataType.FLOAT32),
    ])


async def check_iem(tr, unit: int, framing: str) -> None:
    d = ModbusDriver(tr, MeterSpec(id="iem", driver="modbus", address=unit, model="schneider-iem3255",
                                   serial=str(4_000_123 + unit), options={"framing": framing}))
    assert (await d.connect()).serial == str(4_000_123 + unit)
    regs = {r.obis: r for r in await d.read_registers()}
    assert regs["1.0.1.8.0.255"].value == 12345.678
    assert regs["1.0.2.8.0.255"].value == 9.012
    assert regs["1.0.1.8.1.255"].value == 7400.0
    assert regs["1.0.1.8.2.255"].value == 4945.678
    # the tariffs add up to the Int64 total (both in kWh)
    assert sum(regs[f"1.0.1.8.{t}.255"].value for t in (1, 2, 3, 4)) == pytest.approx(regs["1.0.1.8.0.255"].value)
    stamp = datetime(2026, 11, 20, 12, 34, 56, 789_000, tzinfo=MSK)
    assert {r.meter_time for r in regs.values()} == {stamp}
    assert await d.read_clock() == stamp
    inst = {r.obis: r.value for r in await d.read_instant()}
    assert inst == {"1.0.31.7.0.255": 5.5, "1.0.51.7.0.255": 4.25, "1.0.71.7.0.255": 3.125,
                    "1.0.32.7.0.255": 229.7, "1.0.52.7.0.255": 230.1, "1.0.72.7.0.255": 231.9,
                    "1.0.1.7.0.255": 1.875}


async def check_sdm(tr, unit: int, framing: str) -> None:
    d = ModbusDriver(tr, MeterSpec(id="sdm", driver="modbus", address=unit, model="eastron-sdm630",
                                   options={"framing": framing}))
    regs = {r.obis: r.value for r in await d.read_registers()}
    assert regs == {"1.0.1.8.0.255": 5123.4, "1.0.2.8.0.255": 12.5, "1.0.3.8.0.255": 800.25,
                    "1.0.4.8.0.255": 3.75}
    inst = {r.obis: r.value for r in await d.read_instant()}
    assert inst["1.0.32.7.0.255"] == 230.5 and inst["1.0.14.7.0.255"] == 49.98
    assert inst["1.0.21.7.0.255"] == 0.345 and inst["1.0.1.7.0.255"] == 1.729


async def test_driver_against_pymodbus_tcp_server():
    port = free_port()
    server = ModbusTcpServer([iem3255(1), sdm630(2)], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    tr = TcpTransport("127.0.0.1", port)
    try:
        await asyncio.to_thread(wait_port, "127.0.0.1", port)
        await check_iem(tr, 1, "tcp")
        await check_sdm(tr, 2, "tcp")
        # a register the pymodbus device does not define: its exception, named
        d = ModbusDriver(tr, MeterSpec(id="x", driver="modbus", address=2, model="schneider-iem3255"))
        with pytest.raises(ProtocolError, match="ILLEGAL DATA ADDRESS"):
            await d.read_registers()
    finally:
        await tr.close()
        await server.shutdown()


@pytest.fixture
async def socat_pair(tmp_path):
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed (apt-get install socat)")
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    proc = await asyncio.create_subprocess_exec(
        "socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        for _ in range(200):
            if a.exists() and b.exists():
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("socat did not create the pty pair")
        yield str(a), str(b)
    finally:
        proc.terminate()
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()


async def test_driver_against_pymodbus_rtu_server_on_a_pty(socat_pair):
    server_end, our_end = socat_pair
    server = ModbusSerialServer([iem3255(3), sdm630(17)], framer=FramerType.RTU, port=server_end, baudrate=9600)
    await server.serve_forever(background=True)
    tr = SerialTransport(our_end)
    try:
        await asyncio.sleep(0.2)  # let the server open its end of the pair
        await check_iem(tr, 3, "rtu")
        await check_sdm(tr, 17, "rtu")
        # pymodbus 3.16's SimDevice server answers a unit it does not hold with exception 0x04
        # (a real bus stays silent; the askue simulator does). Either way: a typed error.
        d = ModbusDriver(tr, MeterSpec(id="x", driver="modbus", address=40, model="eastron-sdm630",
                                       options={"timeout": 0.3}))
        with pytest.raises((MeterTimeout, ProtocolError)):
            await d.read_registers()
        # a register the device does not define: exception 0x02 in an RTU frame, CRC checked
        d = ModbusDriver(tr, MeterSpec(id="y", driver="modbus", address=17, model="schneider-iem3255",
                                       options={"framing": "rtu"}))
        with pytest.raises(ProtocolError, match="unit 17: function 0x03 .*ILLEGAL DATA ADDRESS"):
            await d.read_registers()
    finally:
        await tr.close()
        await server.shutdown()


async def test_invalid_float_skips_that_channel_only():
    port = free_port()
    nan = float("nan")
    dev = SimDevice(id=1, simdata=[
        SimData(100, values=4321.5, datatype=DataType.FLOAT32), SimData(200, values=12.25, datatype=DataType.FLOAT32),
        SimData(500, values=nan, datatype=DataType.FLOAT32), SimData(600, values=nan, datatype=DataType.FLOAT32),
        SimData(800, values=nan, datatype=DataType.FLOAT32), SimData(810, values=nan, datatype=DataType.FLOAT32),
        SimData(820, values=nan, datatype=DataType.FLOAT32)])
    server = ModbusTcpServer(dev, address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    tr = TcpTransport("127.0.0.1", port)
    try:
        await asyncio.to_thread(wait_port, "127.0.0.1", port)
        d = ModbusDriver(tr, MeterSpec(id="h", driver="modbus", address=1, model="aquametro-calec-st"))
        assert {r.obis: r.value for r in await d.read_registers()} == {"6.0.1.0.0.255": 4321.5, "6.0.2.0.0.255": 12.25}
        with pytest.raises(ProtocolError, match="no valid value: heat_power"):
            await d.read_instant()
    finally:
        await tr.close()
        await server.shutdown()

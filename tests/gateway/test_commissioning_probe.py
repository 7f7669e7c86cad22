"""`askue probe` against the protocol simulators over TCP and a pty: what it reads, and a clear
diagnosis with its own exit code for each way a bus goes wrong (nothing answers, wrong
password, wrong baud rate or parity, port held by the gateway service, port missing, another
meter at the address)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gwtest import gateway_config, write_config
from uart import Frame, misread

from askue.devservices.ports import free_port
from askue.drivers.base import MeterSpec
from askue.drivers.dlms.simulator import make_session_factory as dlms_sessions
from askue.drivers.mercury.simulator import make_session_factory as mercury_sessions
from askue.drivers.sim.line import PtyServer, SessionFactory, serve_tcp
from askue.drivers.sim.meter import SimMeter
from askue.drivers.transport import SerialSettings
from askue.gateway.commissioning.bus import Bus
from askue.gateway.commissioning.diagnosis import Exit
from askue.gateway.commissioning.probe import probe
from askue.gateway.commissioning.render import probe_json, probe_text

ASKUE = [sys.executable, "-m", "askue.cli"]


@contextlib.asynccontextmanager
async def tcp(factory: SessionFactory) -> AsyncIterator[Bus]:
    server = await serve_tcp(factory)
    try:
        yield Bus(host="127.0.0.1", port=server.sockets[0].getsockname()[1], timeout_s=0.5)
    finally:
        server.close()


@contextlib.asynccontextmanager
async def pty(factory: SessionFactory, path: Path) -> AsyncIterator[Bus]:
    server = await PtyServer(factory, path).start()
    try:
        yield Bus(device=str(path), settings=SerialSettings(9600, 8, "N", 1), timeout_s=0.3)
    finally:
        await server.stop()


def dlms_meter(**kw) -> SimMeter:
    return SimMeter(id="d", serial="01234567", password="12345678", history_days=40,
                    options={"ct_ratio": 40, "vt_ratio": 100}, **kw)


def spec(driver: str, address, password: str | None, **kw) -> MeterSpec:
    return MeterSpec(id="probe", driver=driver, address=address, password=password,
                     options={"timeout": kw.pop("timeout", 0.5)}, **kw)


async def test_probe_reads_a_dlms_meter_over_tcp():
    m = dlms_meter()
    async with tcp(dlms_sessions({17: m}, transport="tcp")) as bus:
        res = await probe(bus, spec("dlms", 17, "12345678"))
    assert res.exit_code == Exit.OK and res.failure is None
    assert res.identity is not None and res.identity.serial == "01234567"
    assert (res.identity.ct_ratio, res.identity.vt_ratio) == (40.0, 100.0)
    assert res.drift_s is not None and abs(res.drift_s) < 2
    assert len(res.registers) == 20 and len(res.instant) == 4
    assert len({r.meter_time for r in res.profile}) == 48  # the last day of 30-minute intervals
    assert {r.archive for r in res.archives} == {"day_start", "month_start"}
    text = probe_text(res)
    for line in ("serial   01234567", "ratios   CT 40.0  VT 100.0", "A+ total", "Load profile, last day (48",
                 "Meter archives", "OK in"):
        assert line in text
    doc = json.loads(probe_json(res))
    assert doc["ok"] and doc["exit_code"] == 0 and doc["identity"]["serial"] == "01234567"
    a_plus = next(r for r in doc["registers"] if r["obis"] == "1.0.1.8.0.255")
    assert a_plus["unit"] == "kWh" and a_plus["value"] == pytest.approx(m.registers()[0], abs=0.01)


async def test_probe_mercury_over_a_pty_through_the_command(tmp_path):
    # Installed long enough ago to have kept a month start whatever today's date is.
    m = SimMeter(id="x", serial="41234567", password="111111", history_days=40)
    async with pty(mercury_sessions({7: m}, transport="serial"), tmp_path / "ttyM") as bus:
        proc = await asyncio.create_subprocess_exec(
            *ASKUE, "probe", "--port", bus.device, "--driver", "mercury", "--address", "7", "--password", "111111",
            "--timeout", "0.5", "--json", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    doc = json.loads(out)
    assert doc["identity"]["serial"] == "41234567"
    assert {r["obis"] for r in doc["registers"]} >= {"1.0.1.8.0.255", "1.0.1.8.1.255"}
    assert doc["meter_time"] and not doc["not_read"]  # Меркурий 230 keeps a profile, journals and archives
    assert doc["profile"] and {r["archive"] for r in doc["archives"]} == {"day_start", "month_start"}


async def test_wrong_password():
    async with tcp(dlms_sessions({17: dlms_meter()}, transport="tcp")) as bus:
        res = await probe(bus, spec("dlms", 17, "00000000"))
    assert res.exit_code == Exit.AUTH == 11
    assert "refused the password" in res.failure.message and "--password" in res.failure.message


@pytest.mark.parametrize("where", ["pty", "tcp"])
async def test_dead_bus(where, tmp_path):
    """A pty with no meter on it; a TCP converter with no meter behind it."""
    factory = mercury_sessions({}, transport="serial")
    ctx = pty(factory, tmp_path / "ttyDead") if where == "pty" else tcp(factory)
    async with ctx as bus:
        res = await probe(bus, spec("mercury", 7, "111111", timeout=0.3))
    assert res.exit_code == Exit.NO_ANSWER == 10
    assert "nothing answers" in res.failure.message and "A/B wiring" in res.failure.message


@pytest.mark.parametrize(("sent", "read"), [
    (Frame(9600), Frame(2400)),  # the meter answers at 9600, the probe listens at 2400
    (Frame(9600), Frame(19200)),
    (Frame(9600, 8, "E"), Frame(9600, 8, "N")),  # the meter sends a parity bit the probe does not expect
])
async def test_wrong_baud_rate_or_parity(sent, read, tmp_path):
    m = SimMeter(id="x", serial="41234567", password="111111")
    factory = misread(mercury_sessions({7: m}, transport="serial"), sent, read)
    async with pty(factory, tmp_path / "ttyBaud") as bus:
        res = await probe(bus, spec("mercury", 7, "111111", timeout=0.3))
    assert res.exit_code == Exit.GARBLED == 12, res.failure
    assert "check baud rate and parity" in res.failure.message


async def test_wrong_baud_on_dlms_hdlc(tmp_path):
    factory = misread(dlms_sessions({17: dlms_meter()}, transport="serial"), Frame(9600), Frame(4800))
    async with pty(factory, tmp_path / "ttyHdlc") as bus:
        res = await probe(bus, spec("dlms", 17, "12345678", timeout=0.3))
    assert res.exit_code == Exit.GARBLED, res.failure


async def test_port_missing_and_tcp_refused(tmp_path):
    res = await probe(Bus(device=str(tmp_path / "ttyUSB9"), settings=SerialSettings()), spec("mercury", 7, None))
    assert res.exit_code == Exit.UNAVAILABLE == 14 and "does not exist" in res.failure.message
    res = await probe(Bus(host="127.0.0.1", port=free_port(), timeout_s=0.5), spec("mercury", 7, None))
    assert res.exit_code == Exit.UNAVAILABLE and "cannot open tcp://127.0.0.1" in res.failure.message


async def test_another_meter_at_the_address():
    async with tcp(dlms_sessions({17: dlms_meter()}, transport="tcp")) as bus:
        res = await probe(bus, spec("dlms", 17, "12345678", serial="99999999"))
    assert res.exit_code == Exit.IDENTITY == 15 and "99999999" in res.failure.message


async def test_port_held_by_the_gateway_service(tmp_path):
    """A real `askue gateway` polls the pty; the probe names it and refuses to share the line."""
    m = SimMeter(id="x", serial="41234567", password="111111")
    async with pty(mercury_sessions({7: m}, transport="serial"), tmp_path / "ttyGw") as bus:
        cfg = gateway_config(
            tmp_path, "gw-busy", free_port(),
            buses=[{"id": "rs", "type": "serial", "device": bus.device, "timeout_s": 0.5}],
            meters=[{"id": "m7", "bus": "rs", "driver": "mercury", "address": 7, "password": "111111",
                     "schedules": {"register": 1, "interval": None, "events": None}}],
            metrics={"port": None})
        path = write_config(tmp_path / "gw.yaml", cfg)
        gw = await asyncio.create_subprocess_exec(*ASKUE, "gateway", "--config", str(path),
                                                  stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            from askue.gateway.commissioning.bus import port_holders

            deadline = asyncio.get_running_loop().time() + 20
            while not port_holders(bus.device):
                assert gw.returncode is None and asyncio.get_running_loop().time() < deadline, "gateway never opened"
                await asyncio.sleep(0.1)
            proc = await asyncio.create_subprocess_exec(
                *ASKUE, "probe", "--port", bus.device, "--driver", "mercury", "--address", "7",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await proc.communicate()
        finally:
            gw.terminate()
            await gw.wait()
    assert proc.returncode == Exit.BUSY == 13
    msg = err.decode()
    assert f"serial port {bus.device} is in use by pid {gw.pid}" in msg
    assert "askue.cli gateway" in msg and "systemctl stop askue-gateway" in msg


def test_exit_codes_are_documented():
    doc = (Path(__file__).parents[2] / "docs" / "commissioning.md").read_text()
    for code in Exit:
        if code >= 10:
            assert f"| {int(code)} |" in doc, f"exit code {int(code)} missing from docs/commissioning.md"



"""`askue scan` against the protocol simulators over TCP and a pty: Modbus unit ids, M-Bus
primary addresses and the secondary-address wildcard search with colliding digits, Меркурий
addresses with the universal address 0, IEC 62056-21 sign-on by serial list; the config lines
it prints are a valid gateway config; garbled and dead buses get their exit codes."""
from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import sys

import meterbus
import pytest
import yaml
from test_commissioning_probe import pty, tcp
from uart import Frame, misread

from askue.drivers.iec62056_21.simulator import make_session_factory as iec_sessions
from askue.drivers.mbus import frames as mbus
from askue.drivers.mbus import selection
from askue.drivers.mbus.selection_sim import collide, sim_secondary_address
from askue.drivers.mbus.selection_sim import make_session_factory as mbus_line
from askue.drivers.mercury.simulator import make_session_factory as mercury_sessions
from askue.drivers.modbus.simulator import make_session_factory as modbus_sessions
from askue.drivers.sim.meter import SimMeter
from askue.gateway.commissioning import scan
from askue.gateway.commissioning.diagnosis import Exit
from askue.gateway.commissioning.progress import Progress
from askue.gateway.commissioning.render import scan_config_yaml, scan_text
from askue.gateway.config import GatewayConfig

ASKUE = [sys.executable, "-m", "askue.cli"]


def assert_valid_config(res: scan.ScanResult, bus_cfg: dict, **kw) -> dict:
    text = scan_config_yaml(bus_cfg, res.meter_configs(bus_cfg["id"], kw.get("password"), kw.get("model"), {}))
    doc = yaml.safe_load(text)
    GatewayConfig.model_validate({"gateway": {"id": "gw1"}, **doc})  # what the gateway would load
    return doc


async def test_modbus_units_over_tcp():
    meters = {u: SimMeter(id=f"m{u}", serial=f"70{u:02d}", model="schneider-iem3255", address=u) for u in (2, 5)}
    async with tcp(modbus_sessions(meters, transport="tcp")) as bus:
        res = await scan.scan_addresses(bus, "modbus", range(1, 7), model="schneider-iem3255")
    assert res.exit_code == Exit.OK
    assert [(f.address, f.serial) for f in res.found] == [(2, "7002"), (5, "7005")]
    doc = assert_valid_config(res, bus.config("tcp-1"), model="schneider-iem3255")
    assert [m["address"] for m in doc["meters"]] == [2, 5] and doc["meters"][0]["model"] == "schneider-iem3255"


async def test_mbus_primary_addresses_over_a_pty(tmp_path):
    meters = {3: SimMeter(id="w3", serial="12345678", resource="cold_water"),
              9: SimMeter(id="h9", serial="87654321", resource="heat")}
    async with pty(mbus_line(list(meters.items())), tmp_path / "ttyMB") as bus:
        res = await scan.scan_addresses(bus, "mbus", range(0, 12))
    assert [(f.address, f.serial) for f in res.found] == [(3, "12345678"), (9, "87654321")]
    doc = assert_valid_config(res, bus.config("rs485-1"))
    assert [m["resource"] for m in doc["meters"]] == ["cold_water", "heat"]


@pytest.mark.parametrize("mask", ["12345678FFFFFFFF", "1234567807040116", "1FFFFFFFFFFFFFFF"])
def test_selection_frame_is_what_pymeterbus_sends(mask):
    """pymeterbus (an independent M-Bus implementation) builds the same SND_UD selection."""
    sent: list[bytes] = []

    class Port:
        def write(self, b: bytes) -> None:
            sent.append(bytes(b))

        def flush(self) -> None:
            pass

    meterbus.send_select_frame(Port(), mask)
    assert selection.select_frame(mask) == sent[0]
    assert selection.parse_select(mbus.parse_frame(sent[0])) == mask


def test_wildcard_matching_and_collisions():
    assert selection.matches("1234FFFFFFFFFFFF", "1234567807040116")
    assert not selection.matches("1235FFFFFFFFFFFF", "1234567807040116")
    assert selection.matches("FFFFFFFF0704FFFF", "1234567807040116")
    assert collide([b"\xe5", b"\xe5"]) == b"\xe5"  # identical acknowledgements stay clean
    with pytest.raises(ValueError):
        selection.select_frame("1234567A07040116")  # the identification number is decimal


async def test_mbus_secondary_search_with_colliding_digits(tmp_path):
    """Five meters, all on the factory primary address 0; their numbers share leading digits
    down to the last one, so the search must narrow through several levels of collisions."""
    idents = ["12345678", "12345679", "12349999", "12000000", "55555555"]
    slaves = [(0, SimMeter(id=f"w{i}", serial=s, resource="hot_water" if i % 2 else "cold_water"))
              for i, s in enumerate(idents)]
    stream = io.StringIO()
    async with pty(mbus_line(slaves), tmp_path / "ttySec") as bus:
        bus = dataclasses.replace(bus, timeout_s=0.05)  # a pty answers in a millisecond
        res = await scan.scan_mbus_secondary(bus, progress=lambda total, what: Progress(total, what, stream))
    assert res.exit_code == Exit.OK, res.summary()
    assert sorted(f.serial for f in res.found) == sorted(idents)
    assert {f.secondary for f in res.found} == {sim_secondary_address(m) for _p, m in slaves}
    assert res.tried < 100  # 10 first digits plus the narrowing, not a sweep of 10^8
    doc = assert_valid_config(res, bus.config("rs485-1"))
    text = scan_config_yaml(bus.config("rs485-1"), res.meter_configs("rs485-1", None, None, {}))
    assert "# primary address 0 is shared by 5 meters" in text
    assert doc["meters"] == [] and text.count("  # - id: mbus-") == 5  # valid as printed, to uncomment
    assert "masks tried" in stream.getvalue()


async def test_mercury_universal_address_then_network_addresses(tmp_path):
    lone = SimMeter(id="x", serial="41234567", password="111111")
    async with pty(mercury_sessions({17: lone}, transport="serial"), tmp_path / "ttyMerc") as bus:
        res = await scan.scan_mercury(bus, range(15, 20), password="111111")
    assert [(f.address, f.serial, f.identified) for f in res.found] == [(0, "41234567", False),
                                                                       (17, "41234567", True)]
    assert "universal address 0" in res.found[0].note
    doc = assert_valid_config(res, bus.config("rs485-1"), password="111111")
    assert [m["address"] for m in doc["meters"]] == [17]


async def test_mercury_wrong_password_is_reported_per_meter(tmp_path):
    meters = {3: SimMeter(id="a", serial="41230003", password="123456"),
              4: SimMeter(id="b", serial="41230004", password="111111")}
    async with tcp(mercury_sessions(meters, transport="tcp")) as bus:
        res = await scan.scan_mercury(bus, range(1, 6), password="111111", universal=False)
    by = {f.address: f for f in res.found}
    assert by[4].serial == "41230004"
    assert by[3].serial is None and "password was refused" in by[3].note


async def test_iec_sign_on_by_serial_list():
    meters = {"141628345": SimMeter(id="e1", serial="009114135", address="141628345", model="ce303"),
              "141628346": SimMeter(id="e2", serial="009114136", address="141628346", model="ce303")}
    async with tcp(iec_sessions(meters, transport="tcp")) as bus:
        res = await scan.scan_addresses(bus, "iec62056_21", ["141628345", "999999999", "141628346"],
                                        password="000000")
    assert [(f.address, f.serial) for f in res.found] == [("141628345", "009114135"), ("141628346", "009114136")]
    assert_valid_config(res, bus.config("tcp-1"), password="000000")


async def test_garbled_bus_says_check_baud_and_parity(tmp_path):
    meters = {u: SimMeter(id=f"x{u}", serial=f"4123000{u}", password="111111") for u in (1, 2)}
    factory = misread(mercury_sessions(meters, transport="serial"), Frame(9600, 8, "E"), Frame(9600, 8, "N"))
    async with pty(factory, tmp_path / "ttyG") as bus:
        res = await scan.scan_mercury(bus, range(1, 4), password="111111", universal=False)
    assert res.exit_code == Exit.GARBLED
    assert [a for a, _ in res.garbled] == [1, 2]
    assert "check baud rate and parity" in res.summary()


async def test_dead_bus_and_the_command_line(tmp_path):
    async with pty(mercury_sessions({}, transport="serial"), tmp_path / "ttyD") as bus:
        proc = await asyncio.create_subprocess_exec(
            *ASKUE, "scan", "--port", bus.device, "--driver", "mercury", "--addresses", "1-12", "--timeout", "0.1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
    assert proc.returncode == Exit.NO_ANSWER
    progress = [line for line in err.decode().splitlines() if line.startswith("[")]
    assert 1 <= len(progress) <= 11  # not a line per address when stderr is not a terminal
    assert "12/12 addresses, 0 found" in progress[-1]
    assert "no meter answers" in out.decode()


async def test_command_line_json_and_config(tmp_path):
    meters = {u: SimMeter(id=f"x{u}", serial=f"4123000{u}", password="111111") for u in (2, 3)}
    async with tcp(mercury_sessions(meters, transport="tcp")) as bus:
        proc = await asyncio.create_subprocess_exec(
            *ASKUE, "scan", "--tcp", f"{bus.host}:{bus.port}", "--driver", "mercury", "--addresses", "1-4",
            "--password", "111111", "--timeout", "0.2", "--json", "--quiet",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert err.decode() == ""
    doc = json.loads(out)
    assert [f["address"] for f in doc["found"] if f["identified"]] == [2, 3]
    cfg = yaml.safe_load(doc["config"])
    GatewayConfig.model_validate({"gateway": {"id": "gw1"}, **cfg})
    assert cfg["buses"][0] == {"id": "tcp-1", "type": "tcp", "host": "127.0.0.1", "port": bus.port}


@pytest.mark.parametrize(("args", "message"), [
    (["--driver", "modbus"], "needs --model"),
    (["--driver", "iec62056_21"], "give --addresses"),
    (["--driver", "mercury", "--secondary"], "--secondary is an M-Bus search"),
    (["--driver", "mercury", "--addresses", "9-3"], "runs backwards"),
])
async def test_usage_errors(args, message):
    proc = await asyncio.create_subprocess_exec(*ASKUE, "scan", "--tcp", "127.0.0.1:1", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await proc.communicate()
    assert proc.returncode == Exit.USAGE and message in err.decode()


def test_scan_text_lists_meters_and_config():
    res = scan.ScanResult(bus=scan.Bus(host="h", port=1), driver="mercury",
                          found=[scan.Found(5, "41234567", "Mercury 230")])
    text = scan_text(res, "buses: []\n")
    assert "41234567" in text and "Gateway config" in text and text.rstrip().endswith("in 0.0 s")

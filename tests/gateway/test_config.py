"""Config validation: bad configs are refused with file, line, field and what is allowed."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from askue.gateway.config import ConfigError, load_config, parse_config, parse_duration

REPO = Path(__file__).resolve().parents[2]
GOOD = """\
gateway:
  id: gw-1
buses:
  - id: rs1
    type: serial
    device: /dev/serial/by-id/usb-x
  - id: t1
    type: tcp
    host: 127.0.0.1
meters:
  - id: m1
    bus: rs1
    driver: modbus
    model: schneider-iem3255
    address: 3
    schedules: {register: 15m, instant: 30s}
"""


def test_example_configs_are_valid():
    for p in sorted((REPO / "configs").glob("gateway*.yaml")):
        cfg = load_config(p)
        assert cfg.gateway.id and cfg.meters, p


def test_good_config_and_defaults():
    cfg = parse_config(GOOD)
    m = cfg.meters[0]
    assert m.schedules.periods() == {"register": 900.0, "interval": 1800.0, "instant": 30.0, "events": 3600.0}
    assert cfg.bus("rs1").lanes == 1 and cfg.bus("t1").port == 502
    assert cfg.broker.session_expiry_s > 0 and cfg.store.synchronous == "FULL"


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("    device: /dev/serial/by-id/usb-x\n", "    device: /dev/x\n    parity: X\n",
         "<t>:7: buses[0].parity: Input should be 'N', 'E' or 'O'"),
        ("    host: 127.0.0.1\n", "    host: 127.0.0.1\n    prot: 1\n", "<t>:10: buses[1].prot: unknown field"),
        ("    bus: rs1\n", "    bus: rs9\n", "<t>:12: meters[0].bus: Value error, bus 'rs9' is not defined; "
                                            "defined buses: rs1, t1"),
        ("instant: 30s", "instant: soon", "<t>:16: meters[0].schedules.instant: Value error, 'soon' is not a "
                                          "duration"),
        ("    driver: modbus\n", "    driver: modbsu\n", "<t>:13: meters[0].driver: Input should be 'modbus'"),
        ("  id: gw-1\n", "  id: gw/1\n", "<t>:2: gateway.id: String should match pattern"),
        ("  id: gw-1\n", "  name: gw-1\n", "<t>:1: gateway.id: required field is missing"),
        ("instant: 30s}\n", "instant: 30s}\n  - {id: m2, bus: rs1, driver: mercury, address: 3}\n",
         "<t>:17: meters[1].address: Value error, address 3 on bus 'rs1' is already used by meter 'm1'"),
        ("  - id: t1\n", "  - id: rs1\n", "<t>:7: buses[1].id: Value error, bus id 'rs1' appears twice"),
        ("meters:", "meters: [\n", "<t>:12: not valid YAML"),
    ],
)
def test_bad_config_names_line_field_and_what_is_allowed(old, new, expect):
    assert old in GOOD
    with pytest.raises(ConfigError) as e:
        parse_config(GOOD.replace(old, new, 1), "<t>")
    assert expect in str(e.value), str(e.value)


def test_not_a_mapping_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config("- 1\n- 2\n", "x.yaml")
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "absent.yaml")


def test_tls_needs_cert_and_key_together():
    bad = GOOD + "broker:\n  tls:\n    cert_file: /a.crt\n"
    with pytest.raises(ConfigError, match="cert_file and key_file go together"):
        parse_config(bad)


def test_durations():
    assert parse_duration("15m") == 900 and parse_duration("500ms") == 0.5 and parse_duration(2) == 2.0
    assert parse_duration("1h") == 3600 and parse_duration("1d") == 86400
    for bad in ("15 minutes", True, None, "-1s"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_cli_check_exit_codes(tmp_path):
    good = tmp_path / "g.yaml"
    good.write_text(GOOD)
    r = subprocess.run([sys.executable, "-m", "askue.cli", "gateway", "--config", str(good), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "gw-1" in r.stdout
    bad = tmp_path / "b.yaml"
    bad.write_text(GOOD.replace("driver: modbus", "driver: nope"))
    r = subprocess.run([sys.executable, "-m", "askue.cli", "gateway", "--config", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"{bad}:13: meters[0].driver" in r.stderr


def test_reference_documents_every_field():
    from askue.gateway import config as c

    doc = (REPO / "docs" / "config-reference.md").read_text()
    models = [c.GatewaySection, c.BrokerSection, c.TlsSection, c.StoreSection, c.MetricsSection, c.SerialBus,
              c.TcpBus, c.MeterSection, c.Schedules]
    for model in models:
        for name, field in model.model_fields.items():
            key = field.alias or name
            assert f"`{key}" in doc or f"{key}`" in doc or f".{key}`" in doc, f"{model.__name__}.{key} undocumented"

"""Gateway config files damaged by an installer or a bad copy: mutated from the
example config (YAML tree mutations and byte mutations of the file itself, 10,000
seeded cases). load_config either returns a config or raises ConfigError naming the
file and a line for every problem; it never raises anything else.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from mutation import FUZZ, mutate_bytes, mutate_tree, seeds

from askue.gateway.config import ConfigError, GatewayConfig, load_config

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "gateway.example.yaml"
# A compact config with every section and both bus types: 10,000 cases of it take ~20 s
# (load_config scans with libyaml; a text libyaml refuses is scanned again by PyYAML's Python
# scanner, several times slower, for its error messages).
SAMPLE = b"""gateway: {id: gw1, health_interval_s: 60s}
broker:
  host: 127.0.0.1
  port: 8883
  tls: {ca_file: ca.pem, cert_file: c.crt, key_file: c.key}
  username: gw1
  password: secret
store: {path: /tmp/gw.db, max_values: 1000, synchronous: FULL}
buses:
  - {id: rs485-1, type: serial, device: /dev/ttyUSB0, baudrate: 9600, parity: E, timeout_s: 1.0}
  - {id: plant, type: tcp, host: 192.0.2.10, port: 502, max_concurrent: 4, timeout_s: 2s}
meters:
  - {id: m1, bus: rs485-1, driver: mercury, address: 17, serial: "41234567", password: "111111",
     schedules: {register: 15m, instant: 1m, interval: null}}
  - {id: m2, bus: plant, driver: modbus, address: 3, model: sdm630, retries: 2}
"""
TREE = yaml.safe_load(SAMPLE)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def make_file(seed: int) -> bytes:
    rng = random.Random(seed)
    if rng.random() < 0.6:
        tree = mutate_tree(TREE, rng)
        style = rng.choice([False, None, True])
        try:
            text = yaml.dump(tree, Dumper=_DUMPER, allow_unicode=rng.random() < 0.5, default_flow_style=style,
                             sort_keys=False)
        except yaml.YAMLError:  # e.g. a lone surrogate the emitter refuses: damage the bytes instead
            return mutate_bytes(SAMPLE, rng)
        return text.encode("utf-8", "surrogateescape")
    return mutate_bytes(SAMPLE, rng)


def _check(cfg_path: Path, data: bytes) -> str:
    cfg_path.write_bytes(data)
    try:
        cfg = load_config(cfg_path)
    except ConfigError as e:
        msg = str(e)
        # every reported problem names this file and a line number
        problems = msg.splitlines()[1:] if msg.startswith("invalid gateway config:") else [msg]
        for p in problems:
            assert re.match(rf"^\s*{re.escape(str(cfg_path))}:\d+: .+", p), f"no file:line in {p!r}"
        return "error"
    assert isinstance(cfg, GatewayConfig)
    # an accepted config is internally consistent
    buses = {b.id for b in cfg.buses}
    assert all(m.bus in buses for m in cfg.meters)
    return "ok"


def test_samples_load(tmp_path: Path) -> None:
    assert _check(tmp_path / "gw.yaml", EXAMPLE.read_bytes()) == "ok"
    assert _check(tmp_path / "gw.yaml", SAMPLE) == "ok"


def test_mutated_config_files_give_config_error_with_file_and_line(tmp_path: Path) -> None:
    cfg_path = tmp_path / "gw.yaml"
    outcomes = {"ok": 0, "error": 0}

    @FUZZ
    @given(seeds)
    def one(seed: int) -> None:
        outcomes[_check(cfg_path, make_file(seed))] += 1

    one()
    # both outcomes must be well represented or the mutations are too weak/too strong
    assert outcomes["ok"] > 500 and outcomes["error"] > 2000, outcomes


@pytest.mark.parametrize("data", [
    b"", b"\xff\xfe\x00garbage", b"gateway: {id: gw1}\n\xc3\x28: 1\n", b"[1, 2, 3]", b"gateway: [",
    b"gateway:\n  id: gw1\nmeters: " + b"[" * 2000 + b"]" * 2000, b"\x00", "gateway:\n  id: шлюз\n".encode(),
])
def test_pathological_files(tmp_path: Path, data: bytes) -> None:
    assert _check(tmp_path / "gw.yaml", data) == "error"

"""The RS-485 line model and the benchmarks built on it: arithmetic, byte-exact relaying,
half-duplex enforcement, and a run of each benchmark with tiny parameters that must
print one valid JSON object of figures (CI runs `make test`, not `make bench`).

No timed assertions: only counts and shapes are checked (the machine is shared).
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from askue.drivers.base import MeterSpec, get_driver  # noqa: E402
from askue.drivers.modbus import frames  # noqa: E402
from askue.drivers.modbus.simulator import make_session_factory  # noqa: E402
from askue.drivers.sim.meter import SimMeter  # noqa: E402
from bench.lib.line_timing import LineSettings, PacedLine, modbus_rtu_frame_ok  # noqa: E402
from bench.lib.loopback import LoopbackTransport  # noqa: E402

FIGURE_KEYS = {"name", "value", "unit"}


# ---- arithmetic ----------------------------------------------------------------------------
def test_character_time_and_t35_at_9600_baud():
    # Modbus over Serial Line V1.02, 2.5.1.1: t3.5 is 3.5 character times up to 19200 baud, a
    # character of 8N1 is 10 bits (start, 8 data, stop); above 19200 baud t3.5 is fixed at 1.75 ms.
    s = LineSettings(baudrate=9600, bits_per_char=10, processing_s=0.005)
    assert s.char_s == pytest.approx(10 / 9600)
    assert s.silence_s == pytest.approx(3.5 * 10 / 9600)
    assert LineSettings(baudrate=9600, bits_per_char=11).char_s == pytest.approx(11 / 9600)
    assert LineSettings(baudrate=38400).silence_s == pytest.approx(0.00175)
    # read 8 holding registers: request 8 bytes, answer 5 + 16 = 21 bytes
    assert s.exchange_s(8, 21) == pytest.approx(29 * 10 / 9600 + 2 * 3.5 * 10 / 9600 + 0.005)


# ---- the paced line over a real pty -------------------------------------------------------
def _meter(unit: int) -> SimMeter:
    return SimMeter(id=f"m{unit}", serial=str(100 + unit), model="schneider-iem3255", address=unit, seed=unit,
                    history_days=0)


class _Line:
    def __init__(self, tmp: Path, settings: LineSettings):
        self.line = PacedLine(make_session_factory({1: _meter(1)}, transport="serial"), tmp / "tty", settings,
                              frame_ok=modbus_rtu_frame_ok)
        self.stop_r, self.stop_w = os.pipe()
        self.thread = threading.Thread(target=self.line.serve, args=(self.stop_r, lambda: False), daemon=True)

    def __enter__(self) -> tuple[PacedLine, int]:
        self.thread.start()
        self.fd = os.open(self.line.path, os.O_RDWR | os.O_NOCTTY)
        import tty
        tty.setraw(self.fd)
        return self.line, self.fd

    def __exit__(self, *exc) -> None:
        os.write(self.stop_w, b"x")
        self.thread.join(10)
        os.close(self.fd)
        self.line.close()
        os.close(self.stop_r)
        os.close(self.stop_w)


def _read(fd: int, n: int, timeout: float = 20.0) -> bytes:
    buf = b""
    deadline = time.monotonic() + timeout
    while len(buf) < n and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            buf += os.read(fd, n - len(buf))
    return buf


def test_paced_line_relays_a_modbus_exchange_byte_exact(tmp_path):
    request = frames.build_request("rtu", 1, frames.read_pdu(3, 3203, 8), 0)
    with _Line(tmp_path, LineSettings(baudrate=9600)) as (line, fd):
        os.write(fd, request)
        answer = _read(fd, 21)
        time.sleep(0.05)  # let the line account the exchange; no timing is asserted
        assert len(answer) == 21
        regs = frames.parse_rtu_response(answer, 1, 3, 8)
        assert len(regs) == 8
        st = line.stats
        assert (st.exchanges, st.request_bytes, st.answer_bytes) == (1, 8, 21)
        assert st.collisions == 0 and st.gap_violations == 0
        assert st.ideal_s == pytest.approx(line.settings.exchange_s(8, 21))


def test_paced_line_cuts_the_answer_when_the_master_talks_over_it(tmp_path):
    # 100 baud: one character takes 100 ms, so the answer is still on the line (for 2 s) when
    # the master's byte arrives right after the answer's first byte.
    request = frames.build_request("rtu", 1, frames.read_pdu(3, 3203, 8), 0)
    with _Line(tmp_path, LineSettings(baudrate=100, processing_s=0.0)) as (line, fd):
        os.write(fd, request)
        first = _read(fd, 1)
        assert first == b"\x01"
        os.write(fd, b"\x00")
        rest = _read(fd, 20, timeout=3.0)
        assert len(rest) < 20  # the answer was cut off
        deadline = time.monotonic() + 10
        while line.stats.collisions == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert line.stats.collisions == 1
        assert line.stats.exchanges == 0


def test_paced_line_drops_a_frame_sent_before_the_silence(tmp_path):
    # A second request glued to the first (no t3.5 between them) is one garbled frame to a
    # slave: nothing answers.
    request = frames.build_request("rtu", 1, frames.read_pdu(3, 3203, 8), 0)
    with _Line(tmp_path, LineSettings(baudrate=300, processing_s=0.0)) as (line, fd):
        os.write(fd, request[:4])
        os.write(fd, request[4:] + request)
        assert _read(fd, 1, timeout=2.0) == b""
        assert line.stats.exchanges == 0
        assert line.stats.garbled_frames == 1


# ---- loopback transport ------------------------------------------------------------------------
async def test_loopback_transport_serves_the_real_driver():
    meter = _meter(7)
    tr = LoopbackTransport(make_session_factory({7: meter}, transport="serial"))
    drv = get_driver("modbus")(tr, MeterSpec(id="m7", driver="modbus", address=7, serial="107",
                                             model="schneider-iem3255", options={"framing": "rtu"}))
    readings = await drv.read_registers()
    served = {(obis, v) for kind, obis, _t, v in meter.served if kind == "register"}
    assert readings and {(r.obis, r.value) for r in readings} <= served


# ---- the benchmarks with tiny parameters -----------------------------------------------------
def _run_bench(script: str, env: dict[str, str], timeout: float) -> dict:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / script)], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [ln for ln in r.stdout.strip().splitlines() if ln.startswith("{")]
    out = json.loads(lines[-1])
    assert out["name"] == Path(script).stem
    assert out["figures"] and all(FIGURE_KEYS <= f.keys() for f in out["figures"])
    assert isinstance(out["notes"], str) and out["notes"]
    return out


@pytest.mark.slow
def test_rs485_benchmark_runs_small():
    out = _run_bench("rs485_line_efficiency.py", {"ASKUE_BENCH_RS485_METERS": "3", "ASKUE_BENCH_RS485_SECONDS": "2",
                                                  "ASKUE_BENCH_RS485_WARMUP": "1"}, 120)
    line = out["line"]
    assert line["exchanges"] > 0 and line["unanswered"] == 0
    # the gateway keeps half duplex and t3.5
    assert line["collisions"] == 0 and line["gap_violations"] == 0 and line["garbled_frames"] == 0
    assert out["gateway"]["values"] > 0 and out["gateway"]["timeouts"] == 0
    eff = out["figures"][0]
    assert 0 < eff["value"] <= 100.0 and eff["ok"] in (True, False)


@pytest.mark.slow
def test_catchup_benchmark_runs_small():
    out = _run_bench("gateway_catchup.py", {
        "ASKUE_BENCH_CATCHUP_METERS": "4", "ASKUE_BENCH_CATCHUP_SIMS": "2", "ASKUE_BENCH_CATCHUP_HOURS": "1",
        "ASKUE_BENCH_CATCHUP_REG_S": "2", "ASKUE_BENCH_CATCHUP_PROFILE_S": "60", "ASKUE_BENCH_CATCHUP_LEAD": "1",
        "ASKUE_BENCH_CATCHUP_STEADY": "3"}, 240)
    fill, run = out["fill"], out["run"]
    # 1 h of 15-min register polls (4 slots x 20 OBIS) and 2 half-hour intervals x 4 channels per meter
    assert fill["registers"] == 4 * 4 * 20
    assert fill["intervals"] == 4 * 2 * 4
    assert fill["values"] == fill["registers"] + fill["intervals"]
    assert fill["cross_checked_polls"] == 8
    assert run["backlog"] >= fill["values"]
    assert run["acked_values"] >= run["backlog"]
    assert run["errors"] == 0


@pytest.mark.slow
def test_reports_benchmark_runs_small():
    out = _run_bench("headend_reports.py", {"ASKUE_BENCH_REPORT_METERS": "100", "ASKUE_BENCH_RUNS": "2"}, 300)
    assert len(out["figures"]) == 6 and all(f["value"] > 0 for f in out["figures"])
    assert "completeness 70" in out["notes"]  # 10 houses × 7 days


# ---- the live ingest benchmark's publisher --------------------------------------------------
def test_lean_publisher_delivers_every_message_to_an_independent_client(mqtt_broker):
    """The benchmark's hand-encoded MQTT 5 packets, checked by mosquitto and paho (neither
    ours): every message arrives once, topic and payload intact, in order per topic."""
    import paho.mqtt.client as mqtt

    from bench.lib import mqtt_publish

    got: list[tuple[str, bytes]] = []
    subscribed, done = threading.Event(), threading.Event()
    msgs = [(f"t/{i % 3}", os.urandom(i % 700) + b"x" * (i % 5) * 40) for i in range(3000)]
    msgs.append(("t/big", os.urandom(200_000)))  # a remaining length of three bytes

    def on_message(_c, _u, m):
        got.append((m.topic, m.payload))
        if len(got) == len(msgs):
            done.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="lean-check", protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.connect(mqtt_broker.host, mqtt_broker.port)
    sub.subscribe("t/#", qos=1)
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        pub = mqtt_publish.Publisher(mqtt_broker.host, mqtt_broker.port, "lean-pub")
        assert 1 <= pub.window <= 1000
        pub.send(mqtt_publish.packets(msgs))
        pub.close()
        assert done.wait(60), f"{len(got)} of {len(msgs)} arrived"
    finally:
        sub.loop_stop()
        sub.disconnect()
    for topic in {t for t, _ in msgs}:
        assert [p for t, p in got if t == topic] == [p for t, p in msgs if t == topic]


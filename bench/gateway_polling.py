"""Gateway polling throughput: 1,000 simulated Modbus TCP meters, against a plain
sequential pymodbus polling loop measured in the same run.

Setup (all on loopback): SIMS simulator processes, each a protocol-true Modbus TCP
server (askue.drivers.modbus.simulator) holding METERS/SIMS meters addressed by
unit id — as meters behind Modbus TCP gateways are; a private mosquitto.

- gateway: the real `askue gateway` engine in its own process — one TCP bus per
  simulator with LANES connections each, every meter's billing registers
  (Schneider iEM3255 map: A+/A- totals, four tariffs, plus the meter clock =
  3 requests per poll) scheduled every second, values committed to the SQLite
  store (WAL, synchronous=FULL) and published over MQTT (QoS 1) until the broker
  acknowledged every one. Counted: values acknowledged by the broker.
- baseline: one process, pymodbus AsyncModbusTcpClient per simulator, polling the
  same three register blocks of every meter in turn, decoding the same values,
  storing and publishing nothing.

Reported: datapoints/s (wall), datapoints per CPU-second of the polling process
(= per core), CPU-seconds per 1,000 meter polls, peak RSS. Targets (issue 3):
≥ 5,000 datapoints/s per core, RSS ≤ 100 MB.
Both are measured over the same window after a warm-up round in which every meter
was polled once (drivers built, identities checked, connections open); the
gateway's window ends when the broker acknowledged every value read in it.
Env: ASKUE_BENCH_METERS (1000), ASKUE_BENCH_SECONDS (30), ASKUE_BENCH_SIMS (5), ASKUE_BENCH_LANES (4).
"""
from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.lib.sink import DataSink  # noqa: E402

METERS = int(os.environ.get("ASKUE_BENCH_METERS", "1000"))
SECONDS = float(os.environ.get("ASKUE_BENCH_SECONDS", "30"))  # measured window, after a warm-up round
SIMS = int(os.environ.get("ASKUE_BENCH_SIMS", "5"))
LANES = int(os.environ.get("ASKUE_BENCH_LANES", "4"))
MODEL = "schneider-iem3255"
VALUES_PER_POLL = 6  # A+ total, A- total, A+ tariffs 1-4


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _sys_s() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _units(sim: int) -> list[int]:
    per = -(-METERS // SIMS)
    n = min(per, METERS - sim * per)
    if per > 247:
        raise SystemExit(f"{per} meters per simulator: at most 247 unit ids; raise ASKUE_BENCH_SIMS")
    return list(range(1, n + 1))


# ---- child: one simulator process ----------------------------------------------------------
async def _sim(sim: int) -> None:
    from askue.drivers.modbus.simulator import make_session_factory
    from askue.drivers.sim.line import serve_tcp
    from askue.drivers.sim.meter import SimMeter

    meters = {u: SimMeter(id=f"s{sim}u{u}", serial=str(100000 + sim * 1000 + u), model=MODEL, address=u,
                          seed=u, history_days=0) for u in _units(sim)}
    server = await serve_tcp(make_session_factory(meters, transport="tcp"), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


# ---- child: the gateway --------------------------------------------------------------------
async def _gateway(ports: list[int], broker_port: int, workdir: Path) -> dict:
    from askue.gateway.config import GatewayConfig
    from askue.gateway.service import Gateway

    buses, meters = [], []
    for sim, port in enumerate(ports):
        buses.append({"id": f"tcp{sim}", "type": "tcp", "host": "127.0.0.1", "port": port,
                      "max_concurrent": LANES, "timeout_s": 5})
        for u in _units(sim):
            meters.append({"id": f"s{sim}u{u}", "bus": f"tcp{sim}", "driver": "modbus", "model": MODEL,
                           "address": u, "serial": str(100000 + sim * 1000 + u), "identity_check_s": 3600,
                           "schedules": {"register": 1, "interval": None, "instant": None, "events": None}})
    cfg = GatewayConfig.model_validate({
        "gateway": {"id": "gw-bench", "health_interval_s": 3600, "shutdown_flush_s": 60},
        "broker": {"host": "127.0.0.1", "port": broker_port, "batch_values": 500, "max_inflight": 20},
        "store": {"path": str(workdir / "gw.db"), "synchronous": "FULL"},
        "metrics": {"port": None}, "buses": buses, "meters": meters})
    gw = Gateway(cfg)
    t_start = time.monotonic()
    await gw.start()
    # Warm-up: every meter polled once (drivers built, identities checked, connections open).
    while min(s.polls for s in gw.meter_states()) < 1 and time.monotonic() - t_start < 120:
        await asyncio.sleep(0.1)
    warmup = time.monotonic() - t_start

    def read_now() -> int:
        return sum(w.stats.values for w in gw.workers.values())

    polls0, read0, cpu0, sys0, t0 = (sum(s.polls for s in gw.meter_states()), read_now(), _cpu_s(), _sys_s(),
                                     time.monotonic())
    await asyncio.sleep(SECONDS)
    polls, read = sum(s.polls for s in gw.meter_states()) - polls0, read_now() - read0
    # the window's values must also be acknowledged: their publishing cost counts
    while gw.store.depth > 0 and gw.publisher.acked_values < read0 + read:
        await asyncio.sleep(0.01)
    wall, cpu, kernel = time.monotonic() - t0, _cpu_s() - cpu0, _sys_s() - sys0
    for w in gw.workers.values():
        await w.stop()
    while gw.store.depth or gw.publisher.stats()["inflight"]:
        await asyncio.sleep(0.05)
    read_total, acked_total = read_now(), gw.publisher.acked_values
    errors = sum(w.stats.timeouts + w.stats.crc_errors + w.stats.protocol_errors for w in gw.workers.values())
    await gw.stop()
    return {"polls": polls, "values_read": read, "values_acked": read, "wall_s": wall, "cpu_s": cpu,
            "cpu_kernel_s": kernel, "rss_mb": _peak_rss_mb(), "errors": errors, "warmup_s": warmup,
            "values_read_total": read_total, "values_acked_total": acked_total,
            "lost": read_total - acked_total}


# ---- child: the baseline -------------------------------------------------------------------
async def _baseline(ports: list[int]) -> dict:
    import struct

    from pymodbus.client import AsyncModbusTcpClient

    clients = []
    for port in ports:
        c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5)
        await c.connect()
        clients.append(c)
    blocks = [(3203, 8), (45119, 8), (1844, 4)]  # the same three requests the askue driver makes
    for sim, c in enumerate(clients):  # warm-up: one round, as for the gateway
        for u in _units(sim):
            for addr, n in blocks:
                await c.read_holding_registers(addr, count=n, device_id=u)
    cpu0, sys0, t0 = _cpu_s(), _sys_s(), time.monotonic()
    polls = values = 0
    while time.monotonic() - t0 < SECONDS:
        for sim, c in enumerate(clients):
            for u in _units(sim):
                regs = []
                for addr, n in blocks:
                    rr = await c.read_holding_registers(addr, count=n, device_id=u)
                    regs.append(rr.registers)
                a = regs[0]
                got = [struct.unpack(">Q", struct.pack(">4H", *a[0:4]))[0] * 0.001,
                       struct.unpack(">Q", struct.pack(">4H", *a[4:8]))[0] * 0.001]
                b = regs[1]
                got += [struct.unpack(">f", struct.pack(">2H", b[i], b[i + 1]))[0] * 0.001 for i in range(0, 8, 2)]
                values += len(got)
                polls += 1
                if time.monotonic() - t0 >= SECONDS:
                    break
    wall, cpu, kernel = time.monotonic() - t0, _cpu_s() - cpu0, _sys_s() - sys0
    for c in clients:
        c.close()
    return {"polls": polls, "values_read": values, "values_acked": values, "wall_s": wall, "cpu_s": cpu,
            "cpu_kernel_s": kernel, "rss_mb": _peak_rss_mb(), "errors": 0}


# ---- parent ------------------------------------------------------------------------------
def _child(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT)


def _figures(g: dict, b: dict) -> list[dict]:
    def per(r: dict) -> tuple[float, float, float]:
        dps = r["values_acked"] / r["wall_s"]
        per_core = r["values_acked"] / r["cpu_s"] if r["cpu_s"] else 0.0
        cpu_per_1000 = r["cpu_s"] / r["polls"] * 1000 if r["polls"] else 0.0
        return dps, per_core, cpu_per_1000

    gd, gc, gp = per(g)
    bd, bc, bp = per(b)
    return [
        {"name": "datapoints per second (wall, acknowledged by the broker)", "value": round(gd), "unit": "1/s",
         "baseline": round(bd), "baseline_name": "sequential pymodbus loop (no store, no MQTT)",
         "ratio": round(gd / bd, 2) if bd else None},
        {"name": "datapoints per CPU-second of the polling process (per core)", "value": round(gc), "unit": "1/s",
         "baseline": round(bc), "baseline_name": "sequential pymodbus loop", "ratio": round(gc / bc, 2) if bc else None,
         "target": 5000, "ok": gc >= 5000},
        {"name": "CPU-seconds per 1,000 meter polls", "value": round(gp, 3), "unit": "s", "baseline": round(bp, 3),
         "baseline_name": "sequential pymodbus loop", "ratio": round(gp / bp, 2) if bp else None},
        {"name": "peak RSS of the polling process", "value": round(g["rss_mb"], 1), "unit": "MB",
         "baseline": round(b["rss_mb"], 1), "baseline_name": "sequential pymodbus loop",
         "ratio": round(g["rss_mb"] / b["rss_mb"], 2) if b["rss_mb"] else None, "target": 100,
         "ok": g["rss_mb"] <= 100},
    ]


def main() -> None:
    from askue.devservices.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="askue-bench-gw-") as tmp:
        os.chmod(tmp, 0o755)
        broker = Mosquitto(Path(tmp) / "mqtt")
        broker.start()
        sink = DataSink(broker.port).start()
        sims = [_child("--sim", str(i)) for i in range(SIMS)]
        try:
            ports = [int(p.stdout.readline()) for p in sims]
            gwp = _child("--gateway", ",".join(map(str, ports)), str(broker.port), tmp)
            g = json.loads(gwp.communicate(timeout=SECONDS * 10 + 300)[0].strip().splitlines()[-1])
            bp = _child("--baseline", ",".join(map(str, ports)))
            b = json.loads(bp.communicate(timeout=SECONDS * 3 + 300)[0].strip().splitlines()[-1])
        finally:
            for p in sims:
                p.terminate()
                p.wait(10)
            sink.stop()
            broker.stop()
    print(json.dumps({
        "name": "gateway_polling",
        "figures": _figures(g, b),
        "gateway": {k: round(v, 3) if isinstance(v, float) else v for k, v in g.items()},
        "baseline": {k: round(v, 3) if isinstance(v, float) else v for k, v in b.items()},
        "notes": f"{METERS} Modbus TCP meters on {SIMS} simulator processes (unit ids), {LANES} connections per "
                 f"simulator, registers polled every 1 s, measured for {SECONDS:.0f} s after a warm-up round; the gateway stores (SQLite WAL, "
                 f"synchronous=FULL) and publishes (MQTT QoS 1) every value, the baseline only reads. "
                 f"Simulators share the machine's {os.cpu_count()} cores with the process measured.",
    }))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--sim":
        asyncio.run(_sim(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--gateway":
        r = asyncio.run(_gateway([int(p) for p in sys.argv[2].split(",")], int(sys.argv[3]), Path(sys.argv[4])))
        print(json.dumps(r))
    elif len(sys.argv) > 1 and sys.argv[1] == "--baseline":
        print(json.dumps(asyncio.run(_baseline([int(p) for p in sys.argv[2].split(",")]))))
    else:
        main()

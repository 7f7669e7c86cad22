"""Catch-up after a 24 h uplink outage: 250 DLMS meters with half-hour profiles.

Setup (all on loopback): SIMS simulator processes serving askue's DLMS/COSEM
simulator over the TCP wrapper (СПОДЭС registers A+/A-/R+/R- x total + 4
tariffs, load profile 1.0.99.1.0.255 with 30-minute intervals of 4 channels),
METERS meters in all; a private mosquitto that is down at first; the real
gateway engine (askue.gateway.service.Gateway) in this process.

The outage (fill): the store is filled, before the gateway starts, with exactly
what 24 h of polling on the usual schedule would have committed — billing
registers every 15 min (20 values per poll) and every half-hour interval of the
profile (4 values) — through the store's own API (Store.put, which also moves
the profile gap ledger), in the gateway's value form (bus_worker.to_values).
Values come from the same simulated meters (same ids, seeds, epoch): the profile
by a real 24 h read of each meter with the real DLMS driver over the real
simulator (in-process, no socket); registers from the simulator's own COSEM
register model, cross-checked against the real driver reading the real
simulator at the first and the last slot of every meter (the benchmark fails
on any difference). Running 24,000 DLMS register polls through the driver at
~17 ms each would take 7 minutes of CPU, which is why the bulk is not polled.

Then: the gateway starts with the broker down (polling on schedule, storing),
settles, polls LEAD seconds more, then mosquitto starts. Measured: the drain —
the backlog (everything stored when the broker came back) acknowledged by the
broker (QoS 1 PUBACK) and deleted; values/s and time to empty — while polling
continues: live schedule compressed to registers every REG_S s and profile
every PROFILE_S s, so jobs fall due during a drain of tens of seconds.
Schedule lateness = when a lane took a periodic job - when it was due, for
jobs taken during the drain, against jobs taken in STEADY s after the drain
(broker up, no backlog), in the same run. A bare subscriber takes the data
(`bench/lib/sink.py`; the head-end's ingest rate is measured by headend_ingest_live).

Env: ASKUE_BENCH_CATCHUP_METERS (250), ASKUE_BENCH_CATCHUP_HOURS (24), ASKUE_BENCH_CATCHUP_SIMS (5),
ASKUE_BENCH_CATCHUP_REG_S (30), ASKUE_BENCH_CATCHUP_PROFILE_S (300), ASKUE_BENCH_CATCHUP_LEAD (10),
ASKUE_BENCH_CATCHUP_STEADY (60), ASKUE_BENCH_CATCHUP_LANES (4), ASKUE_BENCH_CATCHUP_CAP (the
config default of gateway.catchup_values_per_s).
"""
from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.lib.sink import DataSink  # noqa: E402

METERS = int(os.environ.get("ASKUE_BENCH_CATCHUP_METERS", "250"))
HOURS = float(os.environ.get("ASKUE_BENCH_CATCHUP_HOURS", "24"))
SIMS = int(os.environ.get("ASKUE_BENCH_CATCHUP_SIMS", "5"))
REG_S = float(os.environ.get("ASKUE_BENCH_CATCHUP_REG_S", "30"))
PROFILE_S = float(os.environ.get("ASKUE_BENCH_CATCHUP_PROFILE_S", "300"))
LEAD = float(os.environ.get("ASKUE_BENCH_CATCHUP_LEAD", "10"))
STEADY = float(os.environ.get("ASKUE_BENCH_CATCHUP_STEADY", "60"))
LANES = int(os.environ.get("ASKUE_BENCH_CATCHUP_LANES", "4"))
CAP = os.environ.get("ASKUE_BENCH_CATCHUP_CAP")  # override gateway.catchup_values_per_s (default: the config's)
PASSWORD = "12345678"
OUTAGE_REG_S = 900  # the usual schedule while the uplink was down
OUTAGE_PROFILE_S = 1800
PROFILE_SETTLE_S = 30


def _units(sim: int) -> list[int]:
    per = -(-METERS // SIMS)
    return list(range(1, max(0, min(per, METERS - sim * per)) + 1))


def _meter_id(sim: int, u: int) -> str:
    return f"c{sim}u{u}"


def _serial(sim: int, u: int) -> str:
    return str(30000000 + sim * 1000 + u)


def _sim_meters(sim: int, now=None) -> dict:
    from askue.drivers.sim.meter import SimMeter

    kw = {"now": now} if now is not None else {}
    return {f"{u}/17": SimMeter(id=_meter_id(sim, u), serial=_serial(sim, u), password=PASSWORD, address=f"{u}/17",
                                seed=sim * 1000 + u, history_days=2, **kw) for u in _units(sim)}


# ---- child: one simulator process -----------------------------------------------------------
async def _sim(sim: int) -> None:
    from askue.drivers.dlms.simulator import make_session_factory
    from askue.drivers.sim.line import serve_tcp

    server = await serve_tcp(make_session_factory(_sim_meters(sim), transport="tcp"), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


# ---- child: fill the store with what 24 h of polling would have stored -----------------------
class _Clock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _slots(start: datetime, end: datetime, period: int) -> list[datetime]:
    t = datetime.fromtimestamp((start.timestamp() // period + 1) * period, UTC)
    out = []
    while t <= end:
        out.append(t)
        t += timedelta(seconds=period)
    return out


async def _fill(db: str) -> dict:
    from askue.drivers.base import Kind, MeterSpec, Reading, get_driver
    from askue.drivers.dlms.server import CosemServer
    from askue.drivers.dlms.simulator import make_session_factory
    from askue.gateway.bus_worker import to_values
    from askue.gateway.store import Store
    from bench.lib.loopback import LoopbackTransport

    t_fill = time.monotonic()
    now = datetime.now(UTC)
    clock = _Clock(now)
    start = now - timedelta(hours=HOURS)
    meters = []  # (meter id, SimMeter, driver, cosem model)
    for sim in range(SIMS):
        for addr, m in _sim_meters(sim, clock).items():
            tr = LoopbackTransport(make_session_factory({addr: m}, transport="tcp"))
            drv = get_driver("dlms")(tr, MeterSpec(id=m.id, driver="dlms", address=addr, serial=m.serial,
                                                   password=PASSWORD, options={"transport": "wrapper"}))
            meters.append((m.id, m, drv, CosemServer(m)))
    reg_slots = _slots(start, now, OUTAGE_REG_S)

    async def real_poll(drv, t: datetime) -> list[Reading]:
        clock.t = t
        await drv.connect()
        try:
            return await drv.read_registers()
        finally:
            await drv.close()

    # What the driver reads from each meter (OBIS, unit) and the cross-check of the model.
    layout: dict[str, list[tuple[str, str]]] = {}
    checked = 0

    def synth(mid: str, m, cosem, t: datetime) -> list[Reading]:
        when = m.clock(t)
        out = []
        for obis, unit in layout[mid]:
            reg = cosem._register(obis, t)  # the code that serves the register to the driver
            out.append(Reading(obis, Kind.REGISTER, reg[4], unit, when))
        return out

    for mid, m, drv, cosem in meters:
        for t in (reg_slots[0], reg_slots[-1]):
            real = await real_poll(drv, t)
            layout[mid] = [(r.obis, r.unit) for r in real]
            model = synth(mid, m, cosem, t)
            if [(r.obis, r.value, r.unit, r.meter_time) for r in real] != \
                    [(r.obis, r.value, r.unit, r.meter_time) for r in model]:
                raise SystemExit(f"{mid} at {t}: the register model differs from what the driver reads:\n"
                                 f"driver {real}\nmodel {model}")
            checked += 1

    # The profile as the meters hold it, read for real (one range read per meter).
    clock.t = now
    profile: dict[str, list[Reading]] = {}
    for mid, _m, drv, _c in meters:
        await drv.connect()
        try:
            profile[mid] = await drv.read_profile(start, now)
        finally:
            await drv.close()

    store = Store(db, max_values=5_000_000, synchronous="FULL")
    registers = intervals = 0
    prof_slots = set(_slots(start, now, OUTAGE_PROFILE_S))
    for t in reg_slots:
        values = []
        for mid, m, _drv, cosem in meters:
            values += to_values(mid, synth(mid, m, cosem, t), t)
        registers += len(values)
        if t in prof_slots:
            for mid, *_ in meters:
                got = [r for r in profile[mid] if r.meter_time and t - timedelta(seconds=OUTAGE_PROFILE_S)
                       < r.meter_time <= t]
                values += to_values(mid, got, t + timedelta(seconds=PROFILE_SETTLE_S))
                intervals += len(got)
        store.put(values)
    depth = store.depth
    store.close()
    return {"values": depth, "registers": registers, "intervals": intervals, "cross_checked_polls": checked,
            "fill_s": round(time.monotonic() - t_fill, 1), "outage_from": start.isoformat(),
            "outage_to": now.isoformat()}


# ---- the gateway, the outage ending and the drain -----------------------------------------
def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1]


async def _run(ports: list[int], broker, workdir: Path, db: str) -> dict:
    from askue.gateway.config import GatewayConfig
    from askue.gateway.service import Gateway

    buses, meters = [], []
    for sim, port in enumerate(ports):
        buses.append({"id": f"dlms{sim}", "type": "tcp", "host": "127.0.0.1", "port": port,
                      "max_concurrent": LANES, "timeout_s": 5})
        for u in _units(sim):
            meters.append({"id": _meter_id(sim, u), "bus": f"dlms{sim}", "driver": "dlms", "address": f"{u}/17",
                           "serial": _serial(sim, u), "password": PASSWORD, "identity_check_s": 3600,
                           "clock_check_s": None, "profile_chunk_intervals": 96,
                           "schedules": {"register": REG_S, "interval": PROFILE_S, "instant": None,
                                         "events": None}})
    cfg = GatewayConfig.model_validate({
        "gateway": {"id": "gw-catchup", "health_interval_s": 3600, "shutdown_flush_s": 0,
                    **({"catchup_values_per_s": float(CAP)} if CAP else {})},
        "broker": {"host": "127.0.0.1", "port": broker.port, "reconnect_max_s": 2},
        "store": {"path": db, "synchronous": "FULL", "max_values": 5_000_000},
        "metrics": {"port": None}, "buses": buses, "meters": meters})
    gw = Gateway(cfg)
    taken: list[tuple[float, float, str]] = []  # (wall time taken, lateness s, kind)

    await gw.start()
    for w in gw.workers.values():
        def take(sched=w.sched, orig=w.sched.take):
            job = orig()
            if job is not None and job.periodic:
                t = time.time()
                taken.append((t, t - job.due, job.kind))
            return job
        w.sched.take = take  # type: ignore[method-assign]

    # Startup: every meter is read once at once (registers and the profile since the ledger).
    t_settle = time.monotonic()
    while min(s.polls for s in gw.meter_states()) < 2 and time.monotonic() - t_settle < 300:
        await asyncio.sleep(0.5)
    settled_after = time.monotonic() - t_settle
    await asyncio.sleep(LEAD)

    ro = gw.store.ro
    (backlog_max,) = ro.execute("SELECT max(id) FROM outbox").fetchone()
    backlog = ro.execute("SELECT count(*) FROM outbox WHERE id <= ?", (backlog_max,)).fetchone()[0]
    t_up = time.time()
    await asyncio.to_thread(broker.start)
    sink = await asyncio.to_thread(DataSink(broker.port).start)
    t_started = time.time()
    await asyncio.wait_for(gw.publisher.connected.wait(), 60)
    t_conn = time.time()
    cpu0 = os.times()
    while True:
        (low,) = ro.execute("SELECT min(id) FROM outbox").fetchone()
        if low is None or low > backlog_max:
            break
        if time.time() - t_up > 1800:
            raise SystemExit("backlog not drained within 30 min")
        await asyncio.sleep(0.1)
    t_empty = time.time()
    cpu1 = os.times()
    polls_drain_end = sum(s.polls for s in gw.meter_states())
    await asyncio.sleep(STEADY)
    t_end = time.time()
    errors = sum(w.stats.timeouts + w.stats.crc_errors + w.stats.protocol_errors for w in gw.workers.values())
    acked = gw.publisher.acked_values
    await gw.stop()
    sink.stop()

    def late(a: float, b: float) -> list[float]:
        return [x for t, x, _k in taken if a <= t < b]

    drain_late, steady_late = late(t_up, t_empty), late(t_empty, t_end)
    return {"backlog": backlog, "t_broker_start_s": round(t_started - t_up, 2),
            "t_connect_s": round(t_conn - t_up, 2), "t_empty_s": round(t_empty - t_up, 2),
            "drain_from_connect_s": round(t_empty - t_conn, 2), "settled_after_s": round(settled_after, 1),
            "drain_cpu_s": round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 2),
            "drain_jobs": len(drain_late), "steady_jobs": len(steady_late),
            "drain_late_p50": _pct(drain_late, 50), "drain_late_p95": _pct(drain_late, 95),
            "drain_late_max": max(drain_late, default=None),
            "steady_late_p50": _pct(steady_late, 50), "steady_late_p95": _pct(steady_late, 95),
            "steady_late_max": max(steady_late, default=None), "errors": errors, "acked_values": acked,
            "polls_drain_end": polls_drain_end, "catchup_cap": cfg.gateway.catchup_values_per_s}


def _figures(r: dict) -> list[dict]:
    rate = r["backlog"] / r["drain_from_connect_s"] if r["drain_from_connect_s"] else 0.0
    real_rate = r["backlog"] / (HOURS * 3600)
    dp95, sp95 = r["drain_late_p95"], r["steady_late_p95"]
    dmax, smax = r["drain_late_max"], r["steady_late_max"]
    # On schedule: no job later than its own period, and the 95th percentile within 1 s of the
    # lateness the same gateway shows with no backlog.
    on_time = dp95 is not None and sp95 is not None and dmax is not None and dmax < REG_S and dp95 <= sp95 + 1.0

    def r3(x):
        return None if x is None else round(x, 3)

    return [
        {"name": f"drain rate of a {HOURS:g} h backlog ({METERS} meters), values acknowledged by the broker",
         "value": round(rate), "unit": "values/s", "baseline": r["catchup_cap"],
         "baseline_name": "configured catch-up cap (gateway.catchup_values_per_s)",
         "ratio": round(rate / r["catchup_cap"], 2)},
        {"name": "time to empty the backlog after the broker came back", "value": r["t_empty_s"], "unit": "s",
         "baseline": HOURS * 3600, "baseline_name": "length of the outage",
         "ratio": round(r["t_empty_s"] / (HOURS * 3600), 5)},
        {"name": "drain speed against the rate the values were produced", "value": round(rate / real_rate),
         "unit": "x real time"},
        {"name": "gateway CPU-seconds per 100,000 values drained (polling included)",
         "value": round(r["drain_cpu_s"] / r["backlog"] * 1e5, 2) if r["backlog"] else None, "unit": "s"},
        {"name": "schedule lateness p95 during the drain", "value": r3(dp95), "unit": "s", "baseline": r3(sp95),
         "baseline_name": "p95 with no backlog (same run)",
         "ratio": round(dp95 / sp95, 2) if dp95 is not None and sp95 else None,
         "target": "max < period, p95 <= no-backlog p95 + 1 s", "ok": on_time},
        {"name": "schedule lateness median during the drain", "value": r3(r["drain_late_p50"]), "unit": "s",
         "baseline": r3(r["steady_late_p50"]), "baseline_name": "median with no backlog"},
        {"name": "schedule lateness max during the drain", "value": r3(dmax), "unit": "s", "baseline": r3(smax),
         "baseline_name": "max with no backlog"},
    ]


def _cap_note(r: dict) -> str:
    rate = r["backlog"] / r["drain_from_connect_s"] if r["drain_from_connect_s"] else 0.0
    if rate <= 1.1 * r["catchup_cap"]:
        return ""
    # The publisher paces each batch against the time of the previous send, taken before its
    # own pause, so every other batch goes out without a pause: up to twice the cap.
    return (f" The drain ran at {rate / r['catchup_cap']:.2f}x the configured cap: the publisher's "
            f"throttle lets every other batch through unpaused (gateway/publisher.py).")


def _child(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT)


def main() -> None:
    from askue.devservices.mosquitto import Mosquitto

    with tempfile.TemporaryDirectory(prefix="askue-bench-catchup-") as tmp:
        os.chmod(tmp, 0o755)
        db = str(Path(tmp) / "gw.db")
        fill_p = _child("--fill", db)
        out, _ = fill_p.communicate(timeout=1800)
        if fill_p.returncode:
            raise SystemExit(f"fill failed (exit {fill_p.returncode})")
        fill = json.loads(out.strip().splitlines()[-1])
        broker = Mosquitto(Path(tmp) / "mqtt")  # port reserved, not started: the uplink is down
        sims = [_child("--sim", str(i)) for i in range(SIMS)]
        try:
            ports = [int(p.stdout.readline()) for p in sims]  # type: ignore[union-attr]
            r = asyncio.run(_run(ports, broker, Path(tmp), db))
        finally:
            for p in sims:
                p.terminate()
                p.wait(10)
            broker.stop()
    print(json.dumps({
        "name": "gateway_catchup",
        "figures": _figures(r),
        "fill": fill,
        "run": r,
        "notes": (
            f"{METERS} DLMS meters (TCP wrapper, {SIMS} simulator processes, {LANES} connections each). Outage "
            f"backlog written through Store.put: {fill['values']:,} values = {fill['registers']:,} register values "
            f"(every {OUTAGE_REG_S // 60} min x 20 OBIS) + {fill['intervals']:,} profile values (30-min intervals "
            f"x 4 channels, read for real from each meter), {fill['cross_checked_polls']} register polls "
            f"cross-checked against the real driver. Then the gateway ran with the broker down, "
            f"mosquitto started, the backlog was acknowledged (QoS 1) and deleted in {r['t_empty_s']} s "
            f"(connect after {r['t_connect_s']} s) while {r['drain_jobs']} periodic jobs were taken during the "
            f"drain (live schedule: registers every {REG_S:g} s, profile every {PROFILE_S:g} s) against "
            f"{r['steady_jobs']} in the {STEADY:g} s after it. Lateness = lane took the job - job due. "
            f"Gateway process CPU during the drain: {r['drain_cpu_s']} s. Load average at the end "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.{_cap_note(r)}"),
    }, ensure_ascii=False))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--sim":
        asyncio.run(_sim(int(sys.argv[2])))
    elif len(sys.argv) > 2 and sys.argv[1] == "--fill":
        print(json.dumps(asyncio.run(_fill(sys.argv[2]))))
    else:
        main()

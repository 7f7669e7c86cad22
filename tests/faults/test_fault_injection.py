"""Fault injection: 212 simulated meters (Modbus TCP, DLMS on a pty bus, IEC 62056-21,
Mercury and M-Bus on pty buses) → two `askue gateway` processes → mosquitto → `askue headend`
→ PostgreSQL (TimescaleDB wherever it is installed, the suite's storage mode), while the suite SIGKILLs a gateway, restarts mosquitto, the head-end (SIGTERM
and SIGKILL) and PostgreSQL (immediate stop and SIGKILL), and cuts the gateways' uplink for
30 s. At the end every value the simulators served is in the database exactly once with the
served value, the database holds nothing they did not serve, and no abnormal event other
than no_contact was raised. See docs/faults.md.

Every wait is on a condition (rows in the database, the gateways' /metrics), with generous
timeouts; fixed pauses only set how long an outage lasts.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from conftest import SUITE_MODE
from faultkit import (
    GATEWAYS,
    PLAN,
    Child,
    Observer,
    askue_argv,
    compare,
    db_count,
    db_counts_by_gateway,
    db_dead_letters,
    db_events,
    db_interval_ends,
    db_rows,
    db_seqs,
    fleet_spec,
    gateway_configs,
    scrape,
    served_values,
    write_yaml,
)

from askue.devservices.mosquitto import Mosquitto
from askue.devservices.ports import free_port
from askue.devservices.postgres import PgCluster
from askue.drivers.sim.fleet import Fleet, FleetSpec
from askue.headend.storage import migrations

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

ALLOWED_EVENTS = {"no_contact"}
# A register or instant value read in the last seconds before a gateway's SIGKILL may be
# lost with the poll (read from the meter, not yet committed to the gateway's store).
KILL_WINDOW_S = 10.0  # a poll's reads and its store commit, with room for a slow machine


class World:
    """The running system and the log of what was done to it."""

    def __init__(self, tmp: Path, workers: int = 1):
        self.tmp = tmp
        self.workers = workers
        # The postgres user must reach its data directory: pytest's tmp_path is private (0700).
        self.pg_root = Path(tempfile.mkdtemp(prefix="askue-faults-pg-"))
        os.chmod(self.pg_root, 0o755)
        self.pg = PgCluster(self.pg_root / "pg")
        self.broker = Mosquitto(tmp / "mosquitto", persistence=True)
        self.dsn = ""
        self.fleet: Fleet | None = None
        self.headend: Child | None = None  # the worker the suite stops and kills
        self.other_workers: list[Child] = []  # the rest of the shared-subscription group
        self.gateways: dict[str, Child] = {}
        self.metrics_ports = {gw: free_port() for gw in GATEWAYS}
        self.configs: dict[str, dict] = {}
        self.line_meters: list[list] = []
        self.catchup_s = float("nan")  # uplink back -> gateway backlogs sent
        self.mercury_backfilled = 0  # Меркурий periods that ended while its line was silent, read back
        self.observer: Observer | None = None
        self.kills: dict[str, list[tuple[float, float]]] = {}  # gateway -> SIGKILL windows (epoch s)
        self.cuts: dict[str, list[tuple[float, float]]] = {}  # meter -> windows ending at its line's cut
        self.steps: list[str] = []
        self.t0 = time.monotonic()

    def note(self, what: str) -> None:
        line = f"{time.monotonic() - self.t0:6.1f}s {what}"
        self.steps.append(line)
        print(line, flush=True)

    def logs(self) -> str:
        kids = [c for c in [self.headend, *self.other_workers, *self.gateways.values()] if c is not None]
        return "\n".join(c.tail() for c in kids) + "\nsteps:\n" + "\n".join(self.steps)

    def subscribed_count(self) -> int:
        return sum(c.text().count("subscribed to") for c in [self.headend, *self.other_workers] if c is not None)

    async def wait(self, pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not await pred():
            for c in [self.headend, *self.other_workers, *self.gateways.values()]:
                assert c is None or c.alive(), f"{c.name} died while waiting for {what}\n{self.logs()}"
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{self.logs()}")
            await asyncio.sleep(0.5)

    async def count(self) -> int | None:
        return await asyncio.to_thread(db_count, self.dsn)

    async def progress(self, what: str, min_new: int = 3000, timeout: float = 120) -> None:
        """Wait until both gateways' values keep arriving in the database."""
        before = await asyncio.to_thread(db_counts_by_gateway, self.dsn)

        async def moved() -> bool:
            now = await asyncio.to_thread(db_counts_by_gateway, self.dsn)
            return bool(now) and all(now.get(gw, 0) - before.get(gw, 0) >= min_new // 2 for gw in GATEWAYS)

        await self.wait(moved, timeout, f"values flowing again after {what}")
        self.note(f"values flowing after {what}: {await self.count()} stored")

    async def metrics(self, gw: str) -> dict[str, float] | None:
        return await asyncio.to_thread(scrape, self.metrics_ports[gw])

    # ---- components ----------------------------------------------------------------------------
    async def start_headend(self, *workers: Child) -> None:
        n = self.subscribed_count()
        for c in workers or (self.headend,):
            c.start()  # type: ignore[union-attr]

        async def subscribed() -> bool:
            return self.subscribed_count() >= n + len(workers or (1,))

        await self.wait(subscribed, 60, "the head-end to subscribe")

    async def broker_back(self, subscriptions_before: int) -> None:
        """After the broker came back: with a shared group, the observer joins again only once
        every worker has subscribed again (see faultkit.Observer)."""
        if self.workers == 1:
            return

        async def resubscribed() -> bool:
            return self.subscribed_count() >= subscriptions_before + self.workers

        await self.wait(resubscribed, 60, "every worker to subscribe again")
        await asyncio.to_thread(self.observer.rejoin)  # type: ignore[union-attr]
        self.note("every worker subscribed again; observer back")

    async def start_gateway(self, gw: str) -> None:
        self.gateways[gw].start()

        async def up() -> bool:
            m = await self.metrics(gw)
            return m is not None and m.get("mqtt_connected") == 1.0

        await self.wait(up, 60, f"{gw} to connect")

    async def start_pg(self) -> None:
        # After a SIGKILL of the postmaster its backends may linger a moment holding the
        # shared memory; PostgreSQL refuses to start until they are gone.
        await asyncio.to_thread(self.pg.init)
        deadline = time.monotonic() + 60
        while True:
            try:
                await asyncio.to_thread(self.pg.start)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(1.0)


async def _run_faults(w: World) -> None:
    # The Меркурий line goes dead (a cut RS-485 pair) through steps 1 to 5: the profile periods
    # that end meanwhile must come back from the meters' own memory once it answers again.
    mercury = [m for plan, ms in zip(PLAN, w.line_meters, strict=True) if plan.protocol == "mercury" for m in ms]
    for m in mercury:
        m.faults.silent = True
    silent_from = datetime.now(UTC)
    for m in mercury:
        w.cuts.setdefault(m.id, []).append((silent_from.timestamp() - KILL_WINDOW_S, silent_from.timestamp() + 1))
    w.note(f"Меркурий line silent ({len(mercury)} meters)")

    # 1. A gateway dies without warning (power cut, OOM killer) and comes back.
    w.note("SIGKILL gw-a")
    killed_at = time.time()
    await asyncio.to_thread(w.gateways["gw-a"].kill9)
    w.kills.setdefault("gw-a", []).append((killed_at - KILL_WINDOW_S, time.time()))
    await asyncio.sleep(3)
    await w.start_gateway("gw-a")
    await w.progress("gw-a SIGKILL and restart")

    # 2. The broker restarts (persistence on: sessions and queued messages survive; a shared
    #    group's subscription does not in mosquitto 2.0: the gateways keep what nobody took).
    w.note("restart mosquitto")
    subs = w.subscribed_count()
    w.observer.hold()  # type: ignore[union-attr]
    await asyncio.to_thread(w.broker.restart)
    await w.broker_back(subs)
    await w.progress("mosquitto restart")

    # 3. The head-end is stopped cleanly and started again.
    w.note("SIGTERM head-end")
    code = await asyncio.to_thread(w.headend.stop)  # type: ignore[union-attr]
    # SIGTERM is a clean stop: exit code 0 (messages are acknowledged only after their commit).
    assert code == 0, f"head-end exit code {code} on SIGTERM\n{w.logs()}"
    w.note(f"head-end exited with {code}")
    await asyncio.sleep(2)
    await w.start_headend()
    await w.progress("head-end SIGTERM and restart")

    # 4. PostgreSQL stops at once (no checkpoint) and comes back.
    w.note("PostgreSQL stop -m immediate")
    await asyncio.to_thread(w.pg.stop, "immediate")
    await asyncio.sleep(5)
    await w.start_pg()
    await w.progress("PostgreSQL immediate stop and start")

    # 5. The gateways' uplink is cut for 30 s: the broker is away; polling goes on into the stores.
    w.note("uplink cut: broker stopped")
    depth0 = {gw: (await w.metrics(gw) or {}).get("queue_depth", 0.0) for gw in GATEWAYS}
    subs = w.subscribed_count()
    w.observer.hold()  # type: ignore[union-attr]
    await asyncio.to_thread(w.broker.stop)
    cut_at = time.monotonic()

    async def queues_grow() -> bool:
        for gw in GATEWAYS:
            m = await w.metrics(gw)
            if m is None or m.get("mqtt_connected") != 0.0 or m.get("queue_depth", 0.0) <= depth0[gw] + 50:
                return False
        return True

    await w.wait(queues_grow, 60, "the gateways to notice the cut and queue values")
    await asyncio.sleep(max(0.0, 30 - (time.monotonic() - cut_at)))
    depth = {gw: (await w.metrics(gw) or {}).get("queue_depth") for gw in GATEWAYS}
    w.note(f"uplink back after {time.monotonic() - cut_at:.0f} s; gateway queues {depth}")
    await asyncio.to_thread(w.broker.start)
    back_at = time.monotonic()
    await w.broker_back(subs)

    async def backlog_sent() -> bool:
        ms = [await w.metrics(gw) for gw in GATEWAYS]
        return all(m is not None and m.get("queue_depth", 1e9) < 200 for m in ms)

    await w.wait(backlog_sent, 120, "the gateways to send their backlog")
    w.catchup_s = time.monotonic() - back_at
    w.note(f"gateway backlogs sent in {w.catchup_s:.1f} s")
    await w.progress("the uplink cut")

    # At least two one-minute periods must end while the line is silent.
    second_end = silent_from.replace(second=0, microsecond=0) + timedelta(minutes=2)
    await asyncio.sleep(max(0.0, (second_end - datetime.now(UTC)).total_seconds() + 5))
    for m in mercury:
        m.faults.silent = False
    silent_to = datetime.now(UTC)
    ended = [silent_from.replace(second=0, microsecond=0) + timedelta(minutes=k) for k in range(1, 60)]
    ended = [t for t in ended if t <= silent_to - timedelta(seconds=5)]
    assert len(ended) >= 2, f"the Меркурий line was silent only {silent_to - silent_from}"
    w.note(f"Меркурий line answers again after {(silent_to - silent_from).total_seconds():.0f} s; "
           f"{len(ended)} periods ended meanwhile")

    async def backfilled() -> bool:
        have = await asyncio.to_thread(db_interval_ends, w.dsn, "1.0.1.29.0.255")
        return all(set(ended) <= have.get(m.id, set()) for m in mercury)

    await w.wait(backfilled, 120, "the Меркурий periods of the silence to be backfilled from the meters' memory")
    w.mercury_backfilled = len(ended) * len(mercury)
    w.note(f"Меркурий backfill done: {w.mercury_backfilled} periods read from profile memory")

    # 6. The head-end is killed mid-batch (unacknowledged messages must be redelivered).
    w.note("SIGKILL head-end")
    await asyncio.to_thread(w.headend.kill9)  # type: ignore[union-attr]
    await asyncio.sleep(2)
    await w.start_headend()
    await w.progress("head-end SIGKILL and restart")

    # 7. PostgreSQL crashes (SIGKILL to the postmaster) and recovers from its WAL.
    w.note("PostgreSQL SIGKILL")
    await asyncio.to_thread(w.pg.kill)
    await asyncio.sleep(3)
    await w.start_pg()
    await w.progress("PostgreSQL SIGKILL and crash recovery")


async def _stop_polling_and_drain(w: World) -> float:
    """Remove every meter by a config reload (a poll in progress completes and is stored), wait
    until the gateways are idle with empty stores and the database holds everything delivered.
    Returns the drain time in seconds."""
    w.note("stop polling (reload with no meters)")
    t = time.monotonic()
    for gw, cfg in w.configs.items():
        write_yaml(w.tmp / f"{gw}.yaml", {**cfg, "meters": []})
        w.gateways[gw].signal(signal.SIGHUP)

    async def reloaded() -> bool:
        return all("config reloaded" in c.text() for c in w.gateways.values())

    await w.wait(reloaded, 30, "the gateways to reload their config")
    last: dict[str, float] = {}

    async def idle() -> bool:
        ok = True
        for gw in GATEWAYS:
            m = await w.metrics(gw)
            if m is None:
                return False
            key = m.get("bus_requests_total", -1.0)
            if last.get(gw) != key or m.get("queue_depth") != 0.0 or m.get("mqtt_inflight") != 0.0:
                ok = False
            last[gw] = key
        return ok

    await w.wait(idle, 120, "the gateways to go idle with empty stores")
    prev: list[int | None] = [None]

    async def drained() -> bool:
        n = await w.count()
        _, distinct = w.observer.totals()  # type: ignore[union-attr]
        done = n is not None and n >= distinct and n == prev[0]
        prev[0] = n
        return done

    try:
        await w.wait(drained, 90, "the head-end to store everything delivered")
    except AssertionError:
        # Go on to the comparison: it says exactly what is missing.
        w.note(f"NOT DRAINED: {await w.count()} stored, observer saw {w.observer.totals()}")  # type: ignore[union-attr]
    return time.monotonic() - t


def _storage_mode(dsn: str) -> str | None:
    with psycopg.connect(dsn) as conn:
        return migrations.storage_mode(conn)


@pytest.mark.parametrize("workers", [1, 2], ids=["one_worker", "two_workers"])
async def test_fleet_survives_kills_restarts_and_uplink_cut(tmp_path: Path, workers: int) -> None:
    """One head-end (the default: a plain subscription), or two ingest workers in one MQTT
    shared-subscription group of which the suite stops and kills one."""
    w = World(tmp_path, workers)
    tty_dir, store_dir = tmp_path / "tty", tmp_path / "stores"
    store_dir.mkdir()
    try:
        await w.start_pg()
        w.dsn = await asyncio.to_thread(w.pg.create_database, "askue_faults")
        await asyncio.to_thread(w.broker.start)
        w.fleet = await Fleet(FleetSpec.model_validate(fleet_spec(tty_dir))).start()
        ports = {plan.key: line.port for plan, line in zip(PLAN, w.fleet.lines, strict=True)}
        # Fleet.stop() forgets its lines: keep the meters (and their record) per plan line.
        w.line_meters = [list(line.meters.values()) for line in w.fleet.lines]
        n_meters = len(w.fleet.meters)
        assert n_meters >= 200
        w.configs = gateway_configs(ports, tty_dir, store_dir, w.broker.port, w.metrics_ports)
        argv = askue_argv("headend", "--dsn", w.dsn, "run", "--ingest-only", "--mqtt-host", "127.0.0.1",
                          "--mqtt-port", str(w.broker.port))
        group = ({} if workers == 1 else
                 [{"ASKUE_MQTT_GROUP": "ingest", "ASKUE_MQTT_CLIENT_ID": f"ingest-{k}"} for k in range(workers)])
        w.headend = Child("headend", argv, tmp_path / "headend.log", env=group[0] if group else {})
        w.other_workers = [Child(f"headend-{k}", argv, tmp_path / f"headend-{k}.log", env=group[k])
                           for k in range(1, workers)]
        # The head-end subscribes first: the broker keeps messages only for subscriptions that exist.
        await w.start_headend(w.headend, *w.other_workers)
        mode = await asyncio.to_thread(_storage_mode, w.dsn)
        w.note(f"storage mode: {mode}")
        assert mode == SUITE_MODE  # TimescaleDB wherever it is installed
        w.observer = await asyncio.to_thread(Observer("127.0.0.1", w.broker.port, shared=workers > 1).start)
        for gw, cfg in w.configs.items():
            w.gateways[gw] = Child(gw, askue_argv("gateway", "--config", str(write_yaml(tmp_path / f"{gw}.yaml",
                                                                                          cfg))),
                                   tmp_path / f"{gw}.log")
            await w.start_gateway(gw)
        w.note(f"{n_meters} meters on {len(PLAN)} lines, {len(GATEWAYS)} gateways started")

        async def every_meter_heard() -> bool:
            def q() -> int:
                import psycopg

                with psycopg.connect(w.dsn) as c:
                    return c.execute("SELECT count(DISTINCT meter_id) FROM (SELECT meter_id FROM register_readings "
                                     "UNION ALL SELECT meter_id FROM intervals) x").fetchone()[0]
            return await asyncio.to_thread(q) >= n_meters

        await w.wait(every_meter_heard, 150, "a value from every meter")
        w.note(f"every meter heard: {await w.count()} values stored")

        await _run_faults(w)
        drain_s = await _stop_polling_and_drain(w)
        w.note(f"drained in {drain_s:.1f} s")
        for gw, c in w.gateways.items():
            code = await asyncio.to_thread(c.stop)
            assert code == 0, f"{gw} exit code {code} on SIGTERM\n{w.logs()}"
        await w.fleet.stop()
        served = served_values([m for ms in w.line_meters for m in ms])
        rows = await asyncio.to_thread(db_rows, w.dsn)
        events = await asyncio.to_thread(db_events, w.dsn)
        seqs = await asyncio.to_thread(db_seqs, w.dsn)
        dead = await asyncio.to_thread(db_dead_letters, w.dsn)
    finally:
        if w.observer:
            w.observer.stop()
        for c in [*w.gateways.values(), w.headend, *w.other_workers]:
            if c is not None:
                await asyncio.to_thread(c.stop)
        if w.fleet and w.fleet.lines:
            await w.fleet.stop()
        await asyncio.to_thread(w.broker.stop)
        await asyncio.to_thread(w.pg.stop, "immediate")
        shutil.rmtree(w.pg_root, ignore_errors=True)

    lossy = {m.id: w.kills.get(plan.gateway, []) for plan, ms in zip(PLAN, w.line_meters, strict=True)
             for m in ms}
    readout = {m.id for plan, ms in zip(PLAN, w.line_meters, strict=True) if plan.protocol == "mbus" for m in ms}
    res = compare(served, rows, lossy, readout, w.cuts)
    delivered, distinct = w.observer.totals()
    event_kinds = Counter(k for k, *_ in events)
    summary = (f"fault-injection summary ({workers} ingest worker{'s' if workers > 1 else ''}): {n_meters} meters; served {res.served} distinct values "
               f"({dict(Counter(k for k, _ in served.values()))}); stored {res.stored} ({dict(res.by_kind)}); "
               f"delivered over MQTT {delivered} (observer), {delivered - distinct} re-sends dropped by the merge; "
               f"lost in SIGKILLed or cut polls {len(res.excused)}; M-Bus readout values not asked for {len(res.not_taken)}; backlog after the 30 s cut sent in {w.catchup_s:.1f} s; final drain {drain_s:.1f} s; Меркурий periods backfilled after its line came back {w.mercury_backfilled}; events {dict(event_kinds)}; "
               f"wall {time.monotonic() - w.t0:.0f} s")
    print(summary)
    print("\n".join(w.steps))
    assert not res.missing, (f"{len(res.missing)} served values missing, e.g. {res.missing[:5]}\n"
                             f"{missing_report(res.missing, w, seqs)}; dead letters {dead}\n{summary}\n{w.logs()}")
    assert not res.wrong_value, f"{len(res.wrong_value)} stored values differ, e.g. {res.wrong_value[:5]}"
    assert not res.unserved, f"{len(res.unserved)} stored values never served, e.g. {res.unserved[:5]}"
    assert res.stored == res.served - len(res.excused) - len(res.not_taken)
    bad = [e for e in events if e[0] not in ALLOWED_EVENTS]
    assert not bad, f"abnormal events other than {ALLOWED_EVENTS}: {bad[:10]}"



def missing_report(missing: list, w: World, stored_seqs: set[tuple[str, int]]) -> str:
    """Where the missing values come from: per line, per 10 s of the run, and the data messages
    that carried them (whether any value of those messages was stored)."""
    carriers: Counter[tuple[str, int]] = Counter()
    for k, _ in missing:
        for gs in w.observer.carried_by.get(k, ()):  # type: ignore[union-attr]
            carriers[gs] += 1
    msgs = [(gs, n, gs in stored_seqs) for gs, n in sorted(carriers.items())]
    by_line: Counter[str] = Counter(k[0].rsplit("-", 1)[0] for k, _ in missing)
    start = time.time() - (time.monotonic() - w.t0)
    by_time: Counter[int] = Counter(int((k[2].timestamp() - start) // 10 * 10) for k, _ in missing)
    return (f"missing by line {dict(by_line)}; by run time (s) {dict(sorted(by_time.items()))}; "
            f"carried by messages (gateway, seq), missing values, any value of it stored: {msgs[:40]}")

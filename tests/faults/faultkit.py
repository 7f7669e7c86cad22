"""Helpers of the fault-injection suite (imported by the tests as `faultkit`): the fleet and
gateway configs, child processes that can be killed and restarted, a /metrics scraper, a
persistent MQTT observer, and the final comparison of the simulators' record with the
database.

Everything here is real: simulated meters speak their protocols over TCP ports and pty
buses, gateways and the head-end run as `askue` processes, mosquitto and PostgreSQL are
real servers. Blocking calls (pg_ctl, psycopg, process waits) are meant to run through
asyncio.to_thread: the simulators live on the test's event loop and must keep answering.
"""
from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import yaml
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from askue.contract import decode_data
from askue.devservices.processes import terminate

VALUE_TABLES = {"register": "register_readings", "interval": "intervals", "instant": "instant_values",
                "event": "meter_events"}

# ---- the world: fleet, gateways -------------------------------------------------------------

MODBUS_MODELS = ("schneider-iem3255", "askue-sim-electricity")  # both keep a clock: values carry meter time


@dataclass(frozen=True)
class LinePlan:
    key: str
    protocol: str
    transport: str  # tcp | serial (a pty bus)
    gateway: str
    count: int
    model: str | None = None
    password: str | None = None
    first_address: int = 1
    period_s: int = 1800  # profile period of the simulated meters
    schedules: tuple[tuple[str, str | None], ...] = (("register", "10s"), ("instant", "10s"),
                                                     ("interval", None), ("events", None))


# 212 meters on 9 lines and two gateways. Modbus TCP lines stand for RS-485/Ethernet converters
# with many unit ids behind one port (the cheapest way to a large fleet); DLMS and Меркурий on
# pty buses read load profiles and journals, so their meters have one-minute intervals.
PLAN = [
    LinePlan("mba", "modbus", "tcp", "gw-a", 48, MODBUS_MODELS[0]),
    LinePlan("mbb", "modbus", "tcp", "gw-a", 48, MODBUS_MODELS[1]),
    LinePlan("dlms", "dlms", "serial", "gw-a", 6, password="12345678", first_address=17, period_s=60,
             schedules=(("register", "30s"), ("instant", None), ("interval", "15s"), ("events", "30s"))),
    LinePlan("mbc", "modbus", "tcp", "gw-b", 48, MODBUS_MODELS[0]),
    LinePlan("mbd", "modbus", "tcp", "gw-b", 48, MODBUS_MODELS[1]),
    LinePlan("iec", "iec62056_21", "tcp", "gw-b", 4, password="777777"),
    LinePlan("merc", "mercury", "serial", "gw-b", 4, password="111111", period_s=60,
             schedules=(("register", "10s"), ("instant", "10s"), ("interval", "15s"), ("events", "30s"))),
    LinePlan("mbus", "mbus", "serial", "gw-b", 6),
]
GATEWAYS = ("gw-a", "gw-b")


def _address(plan: LinePlan, i: int) -> int | str:
    n = plan.first_address + i
    return f"{n:03d}" if plan.protocol == "iec62056_21" else n


# M-Bus meters sending the telegram shapes of real meters (drivers/mbus/simulator.py) that keep
# a meter time: variable-length text records, an undefined VIF the driver must skip, answers
# spread over several telegrams (DIF 0x1F) from a slave that insists on FCB = 1 after a reset.
MBUS_SHAPES = {1: {"text_records": True, "unknown_vif": True}, 2: {"records_per_telegram": 2, "strict_fcb": True},
               4: {"records_per_telegram": 3, "text_records": True, "strict_fcb": True}}


def _sim_meter(plan: LinePlan, i: int) -> dict[str, Any]:
    resource = "cold_water" if plan.protocol == "mbus" else "electricity"
    m: dict[str, Any] = {"id": f"{plan.key}-{i:03d}", "serial": f"{70 + PLAN.index(plan)}{i:06d}",
                         "address": _address(plan, i), "resource": resource, "history_days": 0,
                         "period_s": plan.period_s, "mean_power": 0.4 + (i % 5) * 0.1,
                         "tariffs": "two_zone" if resource == "electricity" else "single"}
    if plan.model:
        m["model"] = plan.model
    if plan.password:
        m["password"] = plan.password
    if plan.protocol == "mbus" and i in MBUS_SHAPES:
        m["options"] = MBUS_SHAPES[i]
    return m


def fleet_spec(tty_dir: Path, seed: int = 9) -> dict[str, Any]:
    lines = []
    for plan in PLAN:
        line: dict[str, Any] = {"protocol": plan.protocol, "transport": plan.transport,
                                "meters": [_sim_meter(plan, i) for i in range(plan.count)]}
        if plan.transport == "tcp":
            line["port"] = 0
        else:
            line["pty"] = str(tty_dir / plan.key)
        lines.append(line)
    return {"seed": seed, "host": "127.0.0.1", "lines": lines}


def gateway_configs(ports: dict[str, int], tty_dir: Path, store_dir: Path, broker_port: int,
                    metrics_ports: dict[str, int]) -> dict[str, dict[str, Any]]:
    """ports: line key -> simulator TCP port (from the running fleet)."""
    out: dict[str, dict[str, Any]] = {}
    for plan in PLAN:
        gw = out.setdefault(plan.gateway, {
            "gateway": {"id": plan.gateway, "health_interval_s": 5, "shutdown_flush_s": 10},
            "broker": {"host": "127.0.0.1", "port": broker_port, "reconnect_max_s": 2, "keepalive_s": 5},
            "store": {"path": str(store_dir / f"{plan.gateway}.db"), "synchronous": "NORMAL"},
            "metrics": {"host": "127.0.0.1", "port": metrics_ports[plan.gateway]},
            "buses": [], "meters": [],
        })
        bus_id = f"bus-{plan.key}"
        if plan.transport == "tcp":
            # Generous timeouts: a reply the gateway gave up on was still served (and recorded).
            gw["buses"].append({"id": bus_id, "type": "tcp", "host": "127.0.0.1", "port": ports[plan.key],
                                "timeout_s": 10, "max_concurrent": 2 if plan.protocol == "modbus" else 1})
        else:
            gw["buses"].append({"id": bus_id, "type": "serial", "device": str(tty_dir / plan.key),
                                "baudrate": 2400 if plan.protocol == "mbus" else 9600, "timeout_s": 10,
                                "inter_frame_gap_s": 0.005})
        for i in range(plan.count):
            m = _sim_meter(plan, i)
            entry: dict[str, Any] = {"id": m["id"], "bus": bus_id, "driver": plan.protocol, "address": m["address"],
                                     "serial": m["serial"], "resource": m["resource"],
                                     "schedules": dict(plan.schedules), "retries": 1, "backoff_max_s": 5,
                                     "profile_initial_days": 0.01, "profile_chunk_intervals": 30}
            if plan.model:
                entry["model"] = plan.model
            if plan.password:
                entry["password"] = plan.password
            gw["meters"].append(entry)
    return out


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


# ---- child processes ------------------------------------------------------------------------

def askue_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "askue.cli", *args]


@dataclass
class Child:
    """An `askue …` process with its log; killed or stopped by its own pid only."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> None:
        with open(self.log, "ab") as fh:
            fh.write(f"\n---- {time.strftime('%T')} start #{self.starts + 1}\n".encode())
            fh.flush()
            self.proc = subprocess.Popen(self.argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **self.env}, start_new_session=True)
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)  # type: ignore[union-attr]

    def kill9(self) -> None:
        """SIGKILL, as a power cut or the OOM killer would; waits until it is gone."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not end in time. Returns the exit code."""
        return terminate(self.proc, timeout)

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 40) -> str:
        return f"--- {self.name} ({self.log})\n" + "\n".join(self.text().splitlines()[-n:])


# ---- gateway /metrics -----------------------------------------------------------------------

_SAMPLE = re.compile(r"^(askue_gateway_\w+)(?:\{([^}]*)\})? (\S+)$")


def scrape(port: int, timeout: float = 3.0) -> dict[str, float] | None:
    """Gateway metrics summed over labels (e.g. bus_requests_total over buses); None if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
            text = r.read().decode()
    except OSError:
        return None
    out: Counter[str] = Counter()
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            out[m.group(1).removeprefix("askue_gateway_")] += float(m.group(3))
    return dict(out)


# ---- an independent MQTT observer -------------------------------------------------------------

class Observer:
    """Subscribes to every gateway's data with a persistent MQTT 5 session (it keeps receiving
    across broker restarts) and counts each value delivered, to tell how many re-sends the
    head-end's merge had to drop."""

    def __init__(self, host: str, port: int, root: str = "askue", shared: bool = False):
        # shared: the head-end's workers share a subscription group, which mosquitto 2.0 does not
        # restore after a restart. The observer then takes a group of its own (not restored
        # either) and joins again only after the workers (`hold`, `rejoin`): a subscriber the
        # broker can deliver to while the workers' group is gone would make the gateways' values
        # "delivered" (PUBACK success) to the observer alone instead of "no matching subscribers",
        # which keeps them in the gateways' stores until the workers are back.
        self.host, self.port = host, port
        self.topic = f"$share/faults-observer/{root}/v1/+/data" if shared else f"{root}/v1/+/data"
        self._held = threading.Event()
        self.delivered: Counter[tuple[str, str, str, datetime | None]] = Counter()
        self.messages = 0
        self.carried_by: dict[tuple[str, str, datetime | None], set[tuple[str, int]]] = {}  # key -> (gw, seq)
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"faults-observer-{os.getpid()}",
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = lambda c, u, f, rc, p: None if rc.is_failure or self._held.is_set() else \
            c.subscribe(self.topic, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_message(self, client, userdata, msg) -> None:
        data = decode_data(bytes(msg.payload))
        with self._lock:
            self.messages += 1
            for v in data.values:
                self.delivered[(v.meter_id, v.kind, v.obis, v.meter_time or v.received_at)] += 1
                self.carried_by.setdefault((v.meter_id, v.obis, v.meter_time or v.received_at), set()).add(
                    (data.gateway_id, data.seq))

    def start(self) -> Observer:
        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = 3600
        self.client.connect_async(self.host, self.port, keepalive=5, clean_start=False, properties=p)
        self.client.loop_start()
        if not self._subscribed.wait(15):
            raise RuntimeError("the MQTT observer could not subscribe")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def hold(self) -> None:
        """Do not subscribe again on the next reconnect (until `rejoin`)."""
        self._held.set()

    def rejoin(self, timeout: float = 30.0) -> None:
        self._held.clear()
        deadline = time.monotonic() + timeout
        while True:
            self._subscribed.clear()
            if self.client.subscribe(self.topic, qos=1)[0] == mqtt.MQTT_ERR_SUCCESS and self._subscribed.wait(5):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the MQTT observer could not subscribe again")
            time.sleep(0.5)

    def totals(self) -> tuple[int, int]:
        """(values delivered, distinct values)."""
        with self._lock:
            return sum(self.delivered.values()), len(self.delivered)


# ---- the database -----------------------------------------------------------------------------

def db_count(dsn: str) -> int | None:
    """Values stored in all four value tables; None while the database is away."""
    try:
        with psycopg.connect(dsn, connect_timeout=3) as c:
            q = " + ".join(f"(SELECT count(*) FROM {t})" for t in VALUE_TABLES.values())
            return c.execute(f"SELECT {q}").fetchone()[0]
    except psycopg.OperationalError:
        return None


def db_counts_by_gateway(dsn: str) -> dict[str, int]:
    try:
        with psycopg.connect(dsn, connect_timeout=3) as c:
            out: Counter[str] = Counter()
            for t in VALUE_TABLES.values():
                for gw, n in c.execute(f"SELECT gateway_id, count(*) FROM {t} GROUP BY 1").fetchall():
                    out[gw or ""] += n
            return dict(out)
    except psycopg.OperationalError:
        return {}


@dataclass
class StoredRow:
    meter: str
    kind: str
    obis: str
    ts: datetime
    value: float
    quality: str
    source: str


def db_rows(dsn: str) -> list[StoredRow]:
    rows: list[StoredRow] = []
    with psycopg.connect(dsn, connect_timeout=10) as c:
        for kind, t in VALUE_TABLES.items():
            for r in c.execute(f"SELECT m.code, v.obis, v.ts, v.value, v.quality, v.source FROM {t} v "
                               f"JOIN meters m ON m.id = v.meter_id").fetchall():
                rows.append(StoredRow(r[0], kind, r[1], r[2], r[3], r[4], r[5]))
    return rows


def db_seqs(dsn: str) -> set[tuple[str, int]]:
    """(gateway, message sequence number) of every stored value: which messages arrived."""
    with psycopg.connect(dsn, connect_timeout=10) as c:
        return {(g, q) for t in VALUE_TABLES.values()
                for g, q in c.execute(f"SELECT DISTINCT gateway_id, seq FROM {t}").fetchall()}


def db_dead_letters(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=10) as c:
        return c.execute("SELECT count(*) FROM dead_letters").fetchone()[0]


def db_interval_ends(dsn: str, obis: str) -> dict[str, set[datetime]]:
    """meter code -> end times of its stored intervals of one channel."""
    out: dict[str, set[datetime]] = {}
    with psycopg.connect(dsn, connect_timeout=10) as c:
        for code, ts in c.execute("SELECT m.code, v.ts FROM intervals v JOIN meters m ON m.id = v.meter_id "
                                  "WHERE v.obis = %s", (obis,)).fetchall():
            out.setdefault(code, set()).add(ts)
    return out


def db_events(dsn: str) -> list[tuple[str, str | None, str | None, str]]:
    """(kind, meter code, obis, title) of every abnormal event."""
    with psycopg.connect(dsn, connect_timeout=10) as c:
        return c.execute("SELECT e.kind, m.code, e.obis, coalesce(e.title, '') FROM abnormal_events e "
                         "LEFT JOIN meters m ON m.id = e.meter_id ORDER BY e.id").fetchall()


# ---- the comparison ---------------------------------------------------------------------------

Key = tuple[str, str, datetime]  # meter, obis, ts (the head-end's natural key)


@dataclass
class Comparison:
    served: int = 0  # distinct (meter, obis, meter time) the simulators served
    stored: int = 0
    missing: list[tuple[Key, str]] = field(default_factory=list)  # (key, kind)
    excused: list[tuple[Key, str]] = field(default_factory=list)  # lost in a SIGKILLed or cut poll
    not_taken: list[tuple[Key, str]] = field(default_factory=list)  # offered in a readout, not asked for
    unserved: list[StoredRow] = field(default_factory=list)  # stored but never served
    wrong_value: list[tuple[StoredRow, list[float]]] = field(default_factory=list)
    by_kind: Counter[str] = field(default_factory=Counter)


def served_values(meters) -> dict[Key, tuple[str, list[float]]]:
    """Every value a simulator served, keyed like the database; the values served under one key
    (a retried read may serve the same second twice)."""
    out: dict[Key, tuple[str, list[float]]] = {}
    for m in meters:
        for kind, obis, t, v in list(m.served):
            if kind not in VALUE_TABLES or t is None:
                continue  # identity and clock reads are not stored as values
            out.setdefault((m.id, obis, t), (kind, []))[1].append(v)
    return out


def compare(served: dict[Key, tuple[str, list[float]]], rows: list[StoredRow],
            lossy: dict[str, list[tuple[float, float]]] | None = None,
            readout_meters: set[str] | None = None,
            cut: dict[str, list[tuple[float, float]]] | None = None) -> Comparison:
    """lossy: meter id -> wall-clock windows (epoch seconds) in which its gateway was SIGKILLed
    mid-poll; a register or instant value served then may be lost (read, never stored); the
    meter's next poll supersedes it. Profile intervals and journal entries are never excused:
    the gateway's ledger re-reads them from the meter.

    cut: meter id -> wall-clock windows that end when its line went dead. A poll the cut
    interrupted has had only part of its registers (or instant values) answered; those are
    excused, as the next poll supersedes them. A poll answered in full before the cut is not
    excused: its values were read and must be kept.

    readout_meters: meters whose every answer carries all their values (M-Bus RSP_UD): a read
    for registers (or the clock) also serves the instantaneous values, which that job does not
    keep. A value of theirs counts as missing only if another value of the same kind and meter
    time was stored (that readout's job did keep its kind)."""
    lossy = lossy or {}
    readout_meters = readout_meters or set()
    cut = cut or {}
    group_size: Counter[tuple[str, str, datetime]] = Counter((k[0], kind, k[2]) for k, (kind, _) in served.items())
    full_size: dict[tuple[str, str], int] = {}
    for (meter, kind, _t), n in group_size.items():
        full_size[(meter, kind)] = max(n, full_size.get((meter, kind), 0))
    res = Comparison(served=len(served), stored=len(rows))
    stored: dict[Key, StoredRow] = {}
    kept: set[tuple[str, str, datetime]] = set()  # (meter, kind, ts) with something stored
    for r in rows:
        stored[(r.meter, r.obis, r.ts)] = r
        kept.add((r.meter, r.kind, r.ts))
        res.by_kind[r.kind] += 1
    for key, (kind, values) in served.items():
        row = stored.get(key)
        if row is None:
            t = key[2].timestamp()
            if kind in ("register", "instant") and any(a <= t <= b for a, b in lossy.get(key[0], [])):
                res.excused.append((key, kind))
            elif (kind in ("register", "instant") and any(a <= t <= b for a, b in cut.get(key[0], []))
                  and group_size[(key[0], kind, key[2])] < full_size[(key[0], kind)]):
                res.excused.append((key, kind))
            elif key[0] in readout_meters and (key[0], kind, key[2]) not in kept:
                res.not_taken.append((key, kind))
            else:
                res.missing.append((key, kind))
        elif not any(math.isclose(row.value, v, rel_tol=1e-9, abs_tol=1e-9) for v in values):
            res.wrong_value.append((row, values))
    res.unserved = [r for k, r in stored.items() if k not in served]
    return res

"""Head-end ingest as users run it: the real `askue headend run --ingest-only` process
(default configuration, every default hook and background task on) fed by a separate
publisher process through mosquitto, timed from the first publish to the last commit.
The publisher stands in for gateways on their own hardware, so it sends packets encoded
before the clock starts (bench/lib/mqtt_publish.py) and takes little of the shared cores;
its CPU per value is reported beside the head-end's and PostgreSQL's.

Traffic (bench/lib/live_traffic.py): `live` (2,000 meters on 40 gateways, one poll of 20
registers + 4 profile intervals per message), `batched` (the same values in messages of
500) and `burst` (10,000 meters send 20 registers at once, one message each). Meters are
registered and hold one earlier poll, so VEE judges every value against a stored one.

Same-run baselines, interleaved with the runs (A/B/A/B, medians of the repetitions):
raw COPY of the same rows into the real tables (their triggers: rollups, billing change
log, VEE's replace-estimate check) and into bare tables of the same definition (no
triggers). Also: the head-end's peak RSS; 1 against 2 workers in one shared-subscription
group (aggregate rate); and RSS while a backlog of 10 million values waits in the broker.

Storage: TimescaleDB where it is installed (what production runs), else plain PostgreSQL.
Env: ASKUE_BENCH_LIVE_POLLS (10: 480,000 values per live run), ASKUE_BENCH_LIVE_REPS (3),
ASKUE_BENCH_LIVE_SHAPES (live,batched,burst), ASKUE_BENCH_BACKLOG_VALUES (10,000,000; 0 skips),
ASKUE_BENCH_SCALEOUT (1: measure 1 vs 2 workers).
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
import psycopg

from askue.devservices.headend_process import HeadendProcess, postgres_cpu_s
from askue.devservices.mosquitto import Mosquitto
from askue.devservices.postgres import PgCluster, timescaledb_installed
from askue.headend.storage import migrations

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.lib import live_traffic as traffic  # noqa: E402

POLLS = int(os.environ.get("ASKUE_BENCH_LIVE_POLLS", "10"))
REPS = int(os.environ.get("ASKUE_BENCH_LIVE_REPS", "3"))
SHAPES = [s for s in os.environ.get("ASKUE_BENCH_LIVE_SHAPES", "live,batched,burst").split(",") if s]
BACKLOG = int(os.environ.get("ASKUE_BENCH_BACKLOG_VALUES", "10000000"))
SCALEOUT = os.environ.get("ASKUE_BENCH_SCALEOUT", "1") == "1"
TEMPLATE = "live_template"
KINDS = {"register": "register_readings", "interval": "intervals"}
STARTUP_S = 300  # to the SUBACK: the head-end's start-up work competes for 2 shared cores
DEFAULT_CLIENT_ID = f"askue-headend-{socket.gethostname()}"  # the head-end's own, with no group set


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.timescale = timescaledb_installed()
        self.mode = "timescale" if self.timescale else "plain"
        self.pg = PgCluster(tmp / "pg", timescaledb=self.timescale)
        self.broker = Mosquitto(tmp / "mq", max_queued_messages=0)
        self.n = 0
        self.ids: dict[str, int] = {}

    def start(self) -> None:
        self.pg.start()
        self.broker.start()
        dsn = self.pg.create_database(TEMPLATE)
        migrations.apply(dsn, mode=self.mode)
        with psycopg.connect(dsn) as conn:
            org = conn.execute("INSERT INTO organisations (code, name, kind) VALUES ('grid', 'Сетевая компания', "
                               "'grid') RETURNING id").fetchone()[0]
            with conn.cursor() as cur:
                with cur.copy("COPY meters (code, serial, model, gateway_id, org_id, resource, digits) FROM STDIN") as cp:
                    for code, serial, model, gw in traffic.registry_rows(10000):
                        cp.write_row((code, serial, model, gw, org, "electricity", 6))
            self.ids = dict(conn.execute("SELECT code, id FROM meters").fetchall())
            conn.commit()
        self.pg.freeze_template(TEMPLATE)

    def stop(self) -> None:
        self.broker.stop()
        self.pg.stop("immediate")

    def database(self, shape: traffic.Shape, t0: datetime) -> str:
        """A fresh database: the registry and one stored poll before `t0` for every meter."""
        self.n += 1
        dsn = self.pg.create_database(f"run{self.n}", template=TEMPLATE)
        self._copy(dsn, [v for _, vals in traffic.seed_polls(shape, t0) for v in vals], tables=KINDS)
        with psycopg.connect(dsn) as conn:
            conn.execute("UPDATE meters SET last_contact = %s", (t0,))
            # a running system: VEE's hourly series scan is not due (it would start with the process)
            conn.execute("INSERT INTO vee_scan_state (name, at) VALUES ('series', now())")
            conn.commit()
        return dsn

    def _copy(self, dsn: str, vals: list, tables: dict[str, str]) -> float:
        """COPY `vals` into `tables` (by kind) in one transaction; seconds it took."""
        rows: dict[str, list[tuple]] = {}
        for v in vals:
            rows.setdefault(v.kind, []).append(
                (self.ids[v.meter_id], v.obis, v.meter_time, v.received_at, v.value, v.period_s))
        with psycopg.connect(dsn) as conn:
            t = time.perf_counter()
            for kind, table in tables.items():
                cols = "meter_id, obis, ts, received_at, value" + (", period_s" if kind == "interval" else "")
                types = ("int8", "text", "timestamptz", "timestamptz", "float8") + (("int4",) if kind == "interval"
                                                                                 else ())
                with conn.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as cp:
                    cp.set_types(types)
                    for r in rows.get(kind, ()):
                        cp.write_row(r if kind == "interval" else r[:5])
            conn.commit()
            return time.perf_counter() - t

    def raw_copy(self, shape: traffic.Shape, bare: bool) -> float:
        """Rows per second of a raw COPY of the run's values (real tables or bare copies of them)."""
        t0 = traffic.start_time(shape, datetime.now(UTC))
        dsn = self.database(shape, t0)
        vals = [v for _, vs in traffic.polls(shape, t0) for v in vs]
        tables = KINDS
        if bare:
            tables = {k: f"bare_{t}" for k, t in KINDS.items()}
            with psycopg.connect(dsn, autocommit=True) as conn:
                for t in tables.values():
                    conn.execute(f"CREATE TABLE {t} (LIKE {t[5:]} INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
                                 "INCLUDING INDEXES)")
                    if self.timescale:
                        conn.execute("SELECT create_hypertable(%s, 'ts', chunk_time_interval => INTERVAL '1 month')",
                                     (t,))
        took = self._copy(dsn, vals, tables)
        self.pg.drop_database(f"run{self.n}")
        return len(vals) / took

    def headend(self, dsn: str, name: str, env: dict[str, str] | None = None) -> HeadendProcess:
        h = HeadendProcess(dsn, self.broker.port, self.tmp / f"{name}.log", env=env or {})
        h.start()
        return h

    def forget_session(self, client_id: str) -> None:
        """End a head-end's persistent session in the broker. The runs share one broker, and a
        session left behind goes on collecting the next runs' messages (its subscriptions stay)
        and hands them to the next head-end under its id, writing into another run's database."""
        connected = threading.Event()
        c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        c.on_connect = lambda *_: connected.set()
        c.connect(self.broker.host, self.broker.port, clean_start=True)  # session expiry 0: gone on disconnect
        c.loop_start()
        try:
            if not connected.wait(30):
                raise RuntimeError(f"broker did not accept {client_id} to end its session")
        finally:
            c.disconnect()
            c.loop_stop()

    def publish(self, shape: traffic.Shape, t0: datetime, repeat: int = 1) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.lib.live_traffic", self.broker.host, str(self.broker.port), shape.name,
             str(t0.timestamp()), "--polls", str(shape.polls), "--repeat", str(repeat)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)

    def end_to_end(self, shape: traffic.Shape, workers: int = 1) -> dict:
        """Publish → committed through `workers` head-end processes (a shared group when more than one)."""
        t0 = traffic.start_time(shape, datetime.now(UTC))
        dsn = self.database(shape, t0)
        envs = [{}] if workers == 1 else [{"ASKUE_MQTT_GROUP": "ingest", "ASKUE_MQTT_CLIENT_ID": f"ingest-{k}"}
                                          for k in range(workers)]
        procs = [self.headend(dsn, f"headend-{self.n}-{k}", env) for k, env in enumerate(envs)]
        try:
            for h in procs:
                h.wait_subscribed(STARTUP_S)
            cpu0 = sum(h.cpu_s() for h in procs), postgres_cpu_s(self.pg.datadir)
            pub = self.publish(shape, t0)
            t_start = float(pub.stdout.readline())
            deadline = time.monotonic() + 600
            while True:
                ms = [h.metrics() for h in procs]
                if sum(m.get("askue_headend_ingest_values_total", 0) for m in ms) >= shape.values:
                    break
                for h in procs:
                    if not h.alive():
                        raise RuntimeError(f"head-end exited:\n{h.text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{shape.name}: not stored in 600 s: {ms}")
                time.sleep(0.25)  # the end time is the head-end's own last-commit figure
            # values counted by the head-end include redeliveries (QoS 1 is at least once): the run
            # ends when the database holds every distinct value
            while (stored := self._stored(dsn, t0)) < shape.values:
                for h in procs:
                    if not h.alive():
                        raise RuntimeError(f"head-end exited:\n{h.text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{shape.name}: stored {stored} of {shape.values} in 600 s (head-ends "
                                       f"counted {sum(m.get('askue_headend_ingest_values_total', 0) for m in ms)});"
                                       f" log:\n" + "\n".join(h.text()[-3000:] for h in procs))
                time.sleep(0.5)
                ms = [h.metrics() for h in procs]
            t_end = max(m["askue_headend_ingest_last_commit_timestamp_seconds"] for m in ms)
            counted = sum(m.get("askue_headend_ingest_values_total", 0) for m in ms)
            cpu = sum(h.cpu_s() for h in procs) - cpu0[0], postgres_cpu_s(self.pg.datadir) - cpu0[1]
            pub.wait(60)
            pub_cpu = float(pub.stdout.read().split()[1])
            rss = max(h.rss_mb()[1] for h in procs)
            batches = sum(m.get("askue_headend_ingest_batches_total", 0) for m in ms)
            hook_s = sum(m.get("askue_headend_hook_seconds_sum", 0) for m in ms)
            commit_s = sum(m.get("askue_headend_ingest_commit_seconds_sum", 0) for m in ms)
            failures = sum(m.get("askue_headend_hook_failures_total", 0) for m in ms)
            if counted > shape.values:
                print(f"{shape.name}: {counted - shape.values} values delivered again; head-end log:\n"
                      + "\n".join(h.text()[-2000:] for h in procs), file=sys.stderr, flush=True)
        finally:
            codes = [h.stop() for h in procs]
            for env in envs:
                self.forget_session(env.get("ASKUE_MQTT_CLIENT_ID", DEFAULT_CLIENT_ID))
        stored = self._stored(dsn, t0)
        with psycopg.connect(dsn) as conn:
            events = conn.execute("SELECT count(*) FROM abnormal_events").fetchone()[0]
        assert stored == shape.values, f"{shape.name}: stored {stored} of {shape.values}"
        assert failures == 0, f"{shape.name}: {failures} hook failures"
        assert all(c == 0 for c in codes), f"head-end exit codes {codes}"
        self.pg.drop_database(f"run{self.n}")
        secs = t_end - t_start
        return {"rate": shape.values / secs, "seconds": secs, "rss_mb": rss, "batches": batches,
                "headend_us": cpu[0] / shape.values * 1e6, "postgres_us": cpu[1] / shape.values * 1e6,
                "publisher_us": pub_cpu / shape.values * 1e6,
                "hook_share": hook_s / commit_s if commit_s else 0.0, "events": events,
                "redelivered": counted - shape.values}

    def _stored(self, dsn: str, t0: datetime) -> int:
        with psycopg.connect(dsn) as conn:
            return sum(conn.execute(f"SELECT count(*) FROM {t} WHERE ts >= %s", (t0,)).fetchone()[0]
                       for t in KINDS.values())

    def backlog(self, values: int) -> dict:
        """RSS of one head-end while `values` wait for it in the broker (messages of 500)."""
        shape = traffic.shapes(1)["batched"]
        rounds = -(-values // shape.values)
        total = rounds * shape.values
        t0 = traffic.start_time(shape, datetime.now(UTC)) - timedelta(seconds=traffic.PERIOD_S * rounds)
        dsn = self.database(shape, t0)
        h = self.headend(dsn, "backlog")
        h.wait_subscribed(STARTUP_S)  # the persistent session the broker queues for
        assert h.stop() == 0
        t = time.monotonic()
        pub = self.publish(shape, t0, repeat=rounds)
        pub.stdout.readline()
        pub.wait(3600)
        queued_s = time.monotonic() - t
        h = self.headend(dsn, "backlog")
        samples: list[tuple[float, float]] = []  # (values committed, RSS MB)
        t = time.monotonic()
        try:
            # no waiting for the SUBACK: it comes behind up to receive_maximum queued messages
            while True:
                m = h.metrics()
                done = m.get("askue_headend_ingest_values_total", 0)
                if h.alive() and m:
                    samples.append((done, h.rss_mb()[0]))
                if done >= total:
                    break
                if not h.alive() or time.monotonic() - t > 3600:
                    raise RuntimeError(f"backlog not drained: {done} of {total}\n{h.text()[-3000:]}")
                time.sleep(0.5)
            drain_s = time.monotonic() - t
            peak = h.rss_mb()[1]
        finally:
            h.stop()
            self.forget_session(DEFAULT_CLIENT_ID)
        self.pg.drop_database(f"run{self.n}")
        quarter = [r for d, r in samples if d <= total / 4] or [samples[0][1]]
        last = [r for d, r in samples if d >= total * 3 / 4] or [samples[-1][1]]
        return {"values": total, "peak_mb": peak, "first_quarter_mb": max(quarter), "last_quarter_mb": max(last),
                "queued_s": queued_s, "drain_rate": total / drain_s}


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    return f"{min(xs):,.0f}–{max(xs):,.0f}"


def main() -> None:
    all_shapes = traffic.shapes(POLLS)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="askue-bench-live-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)
        b = Bench(tmp)
        b.start()
        runs: dict[str, dict[str, list]] = {s: {"e2e": [], "raw": [], "bare": []} for s in SHAPES}
        scale: dict[int, list[float]] = {1: [], 2: []}
        backlog = None
        try:
            for _rep in range(REPS):
                for s in SHAPES:  # interleaved: each run next to its baselines
                    shape = all_shapes[s]
                    runs[s]["e2e"].append(b.end_to_end(shape))
                    runs[s]["raw"].append(b.raw_copy(shape, bare=False))
                    runs[s]["bare"].append(b.raw_copy(shape, bare=True))
                    print(s, runs[s]["e2e"][-1], runs[s]["raw"][-1], runs[s]["bare"][-1], file=sys.stderr, flush=True)
                if SCALEOUT:
                    for w in (1, 2):
                        scale[w].append(b.end_to_end(all_shapes["live"], workers=w)["rate"])
                        print("workers", w, scale[w][-1], file=sys.stderr, flush=True)
            if BACKLOG:
                backlog = b.backlog(BACKLOG)
                print("backlog", backlog, file=sys.stderr, flush=True)
        finally:
            b.stop()
    print(json.dumps(report(runs, scale, backlog, b.mode, load0, all_shapes), ensure_ascii=False))


def report(runs: dict[str, dict[str, list]], scale: dict[int, list[float]], backlog: dict | None, mode: str,
           load0: float, all_shapes: dict[str, traffic.Shape]) -> dict:
    label = {"live": "live: 2,000 meters, one poll (20 registers + 4 intervals) per message",
             "batched": "batched: the same values in messages of 500",
             "burst": "midnight burst: 10,000 meters × 20 registers at once, one message per meter"}
    figures = []
    notes = []
    for s in SHAPES:
        e2e = [r["rate"] for r in runs[s]["e2e"]]
        raw, bare = runs[s]["raw"], runs[s]["bare"]
        ratios_raw = [e / r for e, r in zip(e2e, raw, strict=True)]
        ratios_bare = [e / r for e, r in zip(e2e, bare, strict=True)]
        target = {"live": (">= 60000 readings/s (aim 120000)", med(e2e) >= 60000)}.get(s, ("", None))
        figures += [
            {"name": f"{label[s]}: publish → committed", "value": round(med(e2e)), "unit": "readings/s",
             "baseline": round(med(raw)), "baseline_name": "raw COPY of the same rows into the real tables (triggers)",
             "ratio": round(med(ratios_raw), 3), "target": target[0], "ok": target[1]},
            {"name": f"{label[s]}: against the bare tables", "value": round(med(e2e)), "unit": "readings/s",
             "baseline": round(med(bare)), "baseline_name": "raw COPY into bare tables (same definition, no triggers)",
             "ratio": round(med(ratios_bare), 3)},
            {"name": f"{label[s]}: head-end peak RSS", "value": round(max(r["rss_mb"] for r in runs[s]["e2e"])),
             "unit": "MB", "target": "<= 500 MB", "ok": max(r["rss_mb"] for r in runs[s]["e2e"]) <= 500},
        ]
        cpu_h = med([r["headend_us"] for r in runs[s]["e2e"]])
        cpu_p = med([r["postgres_us"] for r in runs[s]["e2e"]])
        figures.append({"name": f"{label[s]}: CPU per value, head-end process + PostgreSQL", "value": round(cpu_h + cpu_p, 1),
                        "unit": "µs", "baseline": round(1e6 / med(raw), 1),
                        "baseline_name": "wall time per row of the raw COPY into the real tables (one backend)",
                        "ratio": round((cpu_h + cpu_p) * med(raw) / 1e6, 2)})
        cpu_pub = med([r["publisher_us"] for r in runs[s]["e2e"]])
        notes.append(f"{s}: CPU per value head-end {cpu_h:.1f} µs, PostgreSQL {cpu_p:.1f} µs, publisher "
                     f"{cpu_pub:.2f} µs (mosquitto not counted)")
        notes.append(f"{s}: {all_shapes[s].values} values, e2e {spread(e2e)} readings/s over {len(e2e)} runs "
                     f"(ratios to raw COPY {', '.join(f'{x:.2f}' for x in ratios_raw)}), raw COPY {spread(raw)}, "
                     f"bare {spread(bare)}; batches per run {med([r['batches'] for r in runs[s]['e2e']]):.0f}; "
                     f"VEE hook share of commit time {med([r['hook_share'] for r in runs[s]['e2e']]):.2f}; "
                     f"events raised {runs[s]['e2e'][0]['events']}; values delivered again (QoS 1 redelivery) "
                     f"{', '.join(str(round(r['redelivered'])) for r in runs[s]['e2e'])}")
    if SCALEOUT:
        figures.append({"name": "live shape, 2 ingest workers in one shared-subscription group (aggregate)",
                        "value": round(med(scale[2])), "unit": "readings/s", "baseline": round(med(scale[1])),
                        "baseline_name": "1 worker in the group (same run)",
                        "ratio": round(med([a / b for a, b in zip(scale[2], scale[1], strict=True)]), 3)})
        notes.append(f"workers: 1 → {spread(scale[1])}, 2 → {spread(scale[2])} readings/s")
    if backlog:
        figures.append({"name": f"head-end peak RSS while {backlog['values']:,} values wait in the broker",
                        "value": round(backlog["peak_mb"]), "unit": "MB",
                        "baseline": round(backlog["first_quarter_mb"]),
                        "baseline_name": "RSS over the first quarter of the drain",
                        "ratio": round(backlog["last_quarter_mb"] / backlog["first_quarter_mb"], 3),
                        "target": "<= 500 MB and bounded", "ok": backlog["peak_mb"] <= 500})
        notes.append(f"backlog: {backlog['values']:,} values (messages of 500) queued in {backlog['queued_s']:.0f} s "
                     f"while the head-end was stopped, drained at {backlog['drain_rate']:,.0f} values/s; RSS "
                     f"{backlog['first_quarter_mb']:.0f} MB over the first quarter, {backlog['last_quarter_mb']:.0f} "
                     f"MB over the last")
    return {
        "name": "headend_ingest_live",
        "figures": figures,
        "notes": (f"storage {mode}; {REPS} interleaved repetitions (head-end run, raw COPY, bare COPY), medians; "
                  f"the publisher, mosquitto, PostgreSQL and the head-end share {os.cpu_count()} cores (load "
                  f"average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end); "
                  + "; ".join(notes)),
    }


if __name__ == "__main__":
    main()

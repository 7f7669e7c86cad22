"""`askue demo`: PostgreSQL, mosquitto, a simulated fleet, two gateways and the
head-end, all local, in one terminal. Data lives in ./.askue/ and is reused by
the next run; Ctrl-C stops every process the demo started."""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from askue.demo.fleet import PLAN, DemoPorts, tcp_ports, write_world
from askue.demo.processes import Supervisor, askue_argv


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=".askue", help="where the demo keeps its data (default ./.askue)")
    p.add_argument("--api-port", type=int, default=8000, help="head-end API port (default 8000)")
    p.add_argument("--mqtt-port", type=int, default=11883, help="mosquitto port (default 11883)")
    p.add_argument("--pg-port", type=int, default=55432, help="PostgreSQL port (default 55432)")
    p.add_argument("--check", action="store_true",
                   help="start everything, wait until every simulated meter has readings in the API, "
                        "print a summary and stop (exit 0 on success, 1 otherwise)")
    p.add_argument("--timeout", type=float, default=120.0, help="with --check: how long to wait (s)")


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        # Servers bind with SO_REUSEADDR, so connections in TIME_WAIT from a previous run don't count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _say(msg: str) -> None:
    print(msg, flush=True)


def _api_get(url: str, token: str) -> dict | list:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def _headend(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(askue_argv("headend", "--config", str(config), *args), capture_output=True, text=True)


def run(args: argparse.Namespace) -> int:
    from askue.devservices.mosquitto import Mosquitto
    from askue.devservices.postgres import PgCluster

    base = Path(args.dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)
    ports = DemoPorts(postgres=args.pg_port, mqtt=args.mqtt_port, api=args.api_port)
    sim_ports = tcp_ports(ports)
    busy = [p for p in (ports.mqtt, ports.api, *sim_ports) if not _port_free(p)]
    if busy:
        _say(f"askue demo: port(s) {', '.join(map(str, busy))} already in use — is another demo running? "
             "Stop it, or choose other ports (--api-port, --mqtt-port).")
        return 1

    world = base / "demo"
    paths = write_world(world, ports)
    logs = base / "logs"
    logs.mkdir(exist_ok=True)

    pg = PgCluster(base / "pg", port=ports.postgres)
    first_run = not pg.initialised
    if pg.running:
        _say(f"PostgreSQL already running in {pg.datadir}")
    else:
        if not _port_free(ports.postgres):
            _say(f"askue demo: port {ports.postgres} is in use; choose another with --pg-port")
            return 1
        _say(f"{'Creating' if first_run else 'Starting'} PostgreSQL cluster in {pg.datadir} (port {pg.port})")
        pg.start(fsync=True)
    if not pg.has_database("askue"):
        pg.create_database("askue")
    dsn = pg.dsn("askue")

    headend_cfg = world / "headend.yaml"
    headend_cfg.write_text(
        f"dsn: {dsn}\nmqtt_host: 127.0.0.1\nmqtt_port: {ports.mqtt}\napi_host: 127.0.0.1\n"
        f"api_port: {ports.api}\ntimezone: Europe/Moscow\n", encoding="utf-8"
    )
    broker = Mosquitto(base / "mosquitto", port=ports.mqtt, persistence=True)
    sup = Supervisor()
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    # Ctrl-C must stop the demo even when started from a shell that ignores SIGINT for
    # background jobs (the ignore is inherited).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        r = _headend(headend_cfg, "migrate")
        if r.returncode:
            _say(f"askue demo: migrations failed:\n{r.stdout}{r.stderr}")
            return 1
        storage = _storage(r.stdout, pg.timescaledb)
        r = _headend(headend_cfg, "import", str(paths["registry"]))
        if r.returncode:
            _say(f"askue demo: registry import failed:\n{r.stdout}{r.stderr}")
            return 1
        token = _demo_token(base, headend_cfg)
        logins = _demo_users(base, headend_cfg)

        _say(f"Starting mosquitto on 127.0.0.1:{ports.mqtt}")
        broker.start()
        _say(f"Starting the simulated fleet ({sum(p.count for p in PLAN)} meters on {len(PLAN)} lines)")
        sup.spawn("simulate", askue_argv("simulate", "--config", str(paths["fleet"])), logs / "simulate.log")
        time.sleep(1.0)  # ptys and ports must exist before the gateways open them
        _say(f"Starting the head-end on http://127.0.0.1:{ports.api}")
        headend = sup.spawn("headend", askue_argv("headend", "--config", str(headend_cfg), "run"),
                            logs / "headend.log")
        # Gateways start only once the head-end's subscription exists: the broker keeps
        # messages for existing (persistent) subscriptions only.
        _wait_api(ports.api, sup)
        _wait_log(headend, "subscribed to", sup)
        for gw in sorted(k for k in paths if k.startswith("gw-")):
            _say(f"Starting gateway {gw}")
            sup.spawn(gw, askue_argv("gateway", "--config", str(paths[gw])), logs / f"{gw}.log")

        _summary(ports, token, logins, base, logs, first_run, storage)
        if args.check:
            return _check(ports, token, args.timeout, sup)
        while not stopping:
            dead = sup.dead()
            if dead:
                for c in dead:
                    _say(f"askue demo: {c.name} stopped unexpectedly (exit {c.proc.returncode}); last log lines:\n"
                         f"{c.tail()}")
                return 1
            time.sleep(1.0)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        _say("Stopping: gateways, head-end, simulators, mosquitto, PostgreSQL…")
        sup.stop_all()
        broker.stop()
        pg.stop()
        _say("Stopped. Data is kept in " + str(base) + " for the next run.")


def _storage(migrate_out: str, timescaledb_loaded: bool) -> str:
    """What the demo's database runs on, in the words of the summary."""
    if "storage mode: timescale" in migrate_out:
        return "TimescaleDB (hypertables, compression, continuous aggregates, policies)"
    if timescaledb_loaded:
        return ("plain PostgreSQL: this demo database was made before TimescaleDB was installed "
                "(remove the demo's data folder to start over on TimescaleDB)")
    return ("plain PostgreSQL (TimescaleDB is not installed; `make deps TIMESCALEDB_SOURCE=<tarball>` "
            "builds it, docs/storage.md)")


def _demo_token(base: Path, headend_cfg: Path) -> str:
    tok_file = base / "demo-token"
    if tok_file.exists():
        return tok_file.read_text().strip()
    r = _headend(headend_cfg, "token", "create", "--name", "demo-admin", "--role", "admin")
    if r.returncode:
        raise SystemExit(f"askue demo: cannot create the demo API token:\n{r.stdout}{r.stderr}")
    token = r.stdout.strip().splitlines()[-1].strip()
    tok_file.write_text(token + "\n")
    os.chmod(tok_file, 0o600)
    return token


DEMO_USERS = [  # login, role, organisation, display name
    ("admin", "admin", None, "Администратор"),
    ("dispatcher", "dispatcher", None, "Диспетчер"),
    ("uk-sever", "org_admin", "uk-sever", "Администратор УК «Северная»"),
]


def _demo_users(base: Path, headend_cfg: Path) -> list[tuple[str, str, str]]:
    """Operator accounts for the web pages; passwords are generated once and kept in .askue/."""
    import secrets

    pw_file = base / "demo-users"
    if pw_file.exists():
        return [tuple(line.split("\t")) for line in pw_file.read_text().splitlines() if line]  # type: ignore[misc]
    out = []
    for login, role, org, name in DEMO_USERS:
        password = secrets.token_urlsafe(9)
        argv = ["users", "--config", str(headend_cfg), "create", "--login", login, "--role", role,
                "--name", name, "--password-stdin"]
        if org:
            argv += ["--org", org]
        r = subprocess.run(askue_argv(*argv), input=password + "\n", capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"askue demo: cannot create the demo user {login}:\n{r.stdout}{r.stderr}")
        out.append((login, role, password))
    pw_file.write_text("".join("\t".join(u) + "\n" for u in out))
    os.chmod(pw_file, 0o600)
    return out


def _wait_api(port: int, sup: Supervisor, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                return
        except OSError:
            dead = sup.dead()
            if dead:
                raise SystemExit(f"askue demo: {dead[0].name} exited:\n{dead[0].tail()}") from None
            time.sleep(0.3)
    raise SystemExit(f"askue demo: the head-end API did not come up on port {port} in {timeout:.0f} s")


def _wait_log(child, text: str, sup: Supervisor, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in child.tail(200):
        dead = sup.dead()
        if dead:
            raise SystemExit(f"askue demo: {dead[0].name} exited:\n{dead[0].tail()}")
        if time.monotonic() > deadline:
            raise SystemExit(f"askue demo: {child.name} not ready after {timeout:.0f} s:\n{child.tail()}")
        time.sleep(0.2)


def _summary(ports: DemoPorts, token: str, logins: list[tuple[str, str, str]], base: Path, logs: Path,
             first_run: bool, storage: str) -> None:
    api = f"http://127.0.0.1:{ports.api}"
    _say("")
    _say("askue demo is running" + (" (first run: registry loaded)" if first_run else " (data from earlier runs kept)"))
    _say(f"  Web pages         {api}/web/        log in as:")
    for login, role, password in logins:
        _say(f"                      {login:<12} password {password:<14} ({role})")
    _say(f"  API               {api}/api/v1/     OpenAPI docs: {api}/docs")
    _say(f"  API token         {token}")
    _say(f"                    curl -H 'Authorization: Bearer {token}' {api}/api/v1/meters")
    _say(f"  PostgreSQL        postgresql://postgres@127.0.0.1:{ports.postgres}/askue")
    _say(f"  Storage           {storage}")
    _say(f"  MQTT              127.0.0.1:{ports.mqtt}   mosquitto_sub -p {ports.mqtt} -t 'askue/v1/#' -v")
    _say(f"  Simulated meters  {sum(p.count for p in PLAN)}: "
         + ", ".join(f"{p.count} {p.protocol}/{p.resource}" for p in PLAN))
    _say(f"  Logs              {logs}/")
    _say(f"  Data              {base}/")
    _say("Press Ctrl-C to stop everything.")
    sys.stdout.flush()


def _has_items(url: str, token: str) -> bool:
    try:
        return bool(_api_get(url, token).get("items"))  # type: ignore[union-attr]
    except OSError:
        return False


def _check(ports: DemoPorts, token: str, timeout: float, sup: Supervisor) -> int:
    """Wait until every meter the fleet serves has readings in the API, and every electricity
    meter that keeps a load profile (DLMS, Меркурий) the profile its memory held before the
    demo started (hourly charts from the first minute)."""
    api = f"http://127.0.0.1:{ports.api}/api/v1"
    expected = {f"{p.key}-{i:03d}" for p in PLAN for i in range(1, p.count + 1)}
    from askue.demo.fleet import FAULTS, keeps_profile

    expected -= {m for m, f in FAULTS.items() if f.get("silent")}
    profiled = {m for m in expected if any(m.startswith(f"{p.key}-") for p in PLAN if keeps_profile(p))}
    without = [p for p in PLAN if p.resource == "electricity" and not keeps_profile(p)]
    deadline = time.monotonic() + timeout
    t0 = time.monotonic()
    # Only readings from this run count; meter clocks may lag (M-Bus has minute resolution).
    since = urllib.parse.quote((datetime.now(UTC) - timedelta(minutes=2)).isoformat())
    # Profile periods that ended before this run: read back from the meters' memory.
    day_ago = urllib.parse.quote((datetime.now(UTC) - timedelta(hours=20)).isoformat())
    before = urllib.parse.quote((datetime.now(UTC) - timedelta(hours=1)).isoformat())
    missing, no_profile = set(expected), set(profiled)
    while time.monotonic() < deadline and (missing or no_profile):
        missing = {m for m in missing if not _has_items(f"{api}/meters/{m}/readings?limit=1&from={since}", token)}
        no_profile = {m for m in no_profile
                      if not _has_items(f"{api}/meters/{m}/intervals?limit=1&from={day_ago}&to={before}", token)}
        if missing or no_profile:
            time.sleep(2.0)
    took = time.monotonic() - t0
    if missing:
        _say(f"CHECK FAILED: {len(missing)} of {len(expected)} meters without readings after {took:.0f} s: "
             + ", ".join(sorted(missing)[:20]))
        return 1
    if no_profile:
        _say(f"CHECK FAILED: {len(no_profile)} of {len(profiled)} meters without their stored load "
             f"profile after {took:.0f} s: " + ", ".join(sorted(no_profile)))
        return 1
    _say(f"CHECK OK: all {len(expected)} answering meters have readings in the API ({took:.0f} s)")
    _say(f"CHECK OK: the load profile of all {len(profiled)} electricity meters that keep one "
         f"({', '.join(sorted({p.protocol for p in PLAN if keeps_profile(p)}))}), read from their memory; "
         f"none kept by {', '.join(f'{p.key} ({p.protocol})' for p in without)}")
    return 0

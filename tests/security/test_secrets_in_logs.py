"""Secrets never reach the logs: the real gateway and head-end processes run at debug
level with every secret configured (MQTT passwords, a meter password, the DSN password,
an API token), through both the working path and the failure paths that log the most
(refused broker login, unreachable database). Their whole output is searched for each
secret in every form it could take (text, hex of the bytes on the wire).
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from broker import HEADEND_USER, Client, DeployedBroker

from askue.devservices.ports import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
ASKUE = str(REPO / ".venv" / "bin" / "askue")
GW_PW = "gw1-Mqtt-S3cret-7f3a"
HE_PW = "he-Mqtt-S3cret-91c2"
METER_PW = "918273"                      # Mercury level-1 password: six digits sent as byte values
METER_PW_WIRE = bytes(int(c) for c in METER_PW)
DB_PW = "Db-S3cret-55e1"


def _secret_forms(secret: str | bytes) -> list[str]:
    raw = secret.encode() if isinstance(secret, str) else secret
    forms = [raw.hex(), raw.hex().upper(), " ".join(f"{b:02x}" for b in raw), " ".join(f"{b:02X}" for b in raw),
             repr(raw)[2:-1]]
    if isinstance(secret, str):
        forms.append(secret)
    return forms


def assert_no_secret(output: str, secrets: list[str | bytes]) -> None:
    for s in secrets:
        for form in _secret_forms(s):
            assert form not in output, f"secret {s!r} appears in the log as {form!r}:\n" + "\n".join(
                line for line in output.splitlines() if form in line)[:2000]


def _run_for(cmd: list[str], seconds: float, env: dict[str, str] | None = None,
             until: str | None = None, log: Path | None = None, also=lambda: True) -> str:
    """Run a process for a while (or until `until` shows in its output), stop it, return its output."""
    out = open(log or Path(os.devnull), "w+b") if log else None
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=REPO)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline and p.poll() is None:
            if until and log and until in log.read_text(errors="replace") and also():
                break
            time.sleep(0.3)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return log.read_text(errors="replace") if log else ""


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedBroker]:
    b = DeployedBroker(tmp_path_factory.mktemp("secrets-broker"), {HEADEND_USER: HE_PW, "gw1": GW_PW}).start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def mercury_sim() -> Iterator[int]:
    """A Mercury meter simulator on TCP whose password is METER_PW (so the gateway sends it)."""
    from askue.drivers.mercury.simulator import make_session_factory
    from askue.drivers.sim.line import serve_tcp
    from askue.drivers.sim.meter import SimMeter

    loop = asyncio.new_event_loop()
    started = threading.Event()
    port: list[int] = []
    stop: list[asyncio.Event] = []

    async def main() -> None:
        meter = SimMeter(id="flat-1", serial="41234567", address=17, password=METER_PW)
        server = await serve_tcp(make_session_factory({17: meter}, transport="tcp"), "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        stop.append(asyncio.Event())
        started.set()
        await stop[0].wait()
        server.close()

    t = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    t.start()
    assert started.wait(10)
    yield port[0]
    loop.call_soon_threadsafe(stop[0].set)
    t.join(10)


def _gateway_config(tmp: Path, broker: DeployedBroker, password: str, sim_port: int) -> Path:
    cfg = tmp / "gw.yaml"
    cfg.write_text(f"""
gateway: {{id: gw1, health_interval_s: 2}}
broker:
  host: localhost
  port: {broker.tls_port}
  username: gw1
  password: "{password}"
  tls: {{ca_file: {broker.root / "certs" / "ca.crt"}}}
store: {{path: {tmp / "gw.db"}, max_values: 1000}}
metrics: {{port: null}}
buses:
  - {{id: plant, type: tcp, host: 127.0.0.1, port: {sim_port}, timeout_s: 2}}
meters:
  - id: flat-1
    bus: plant
    driver: mercury
    address: 17
    serial: "41234567"
    password: "{METER_PW}"
    schedules: {{register: 2s, instant: 2s, interval: null, events: null}}
""")
    return cfg


def test_gateway_logs_hold_no_secrets(broker: DeployedBroker, mercury_sim: int, tmp_path: Path) -> None:
    # right password: connects, polls the meter (sending its password), publishes its values
    he = Client(HEADEND_USER, HE_PW, broker.plain_port)
    assert he.connect()
    he.subscribe("askue/v1/gw1/data")
    got: list[bytes] = []

    def meter_values_arrived() -> bool:
        got.extend(p for _t, p in he.drain())
        return any(b'"flat-1"' in p and b'"values":[{' in p for p in got)

    try:
        ok_log = _run_for([ASKUE, "-vv", "gateway", "--config", str(_gateway_config(tmp_path, broker, GW_PW,
                                                                                        mercury_sim))],
                          60, log=tmp_path / "gw-ok.log", until="mqtt connected", also=meter_values_arrived)
    finally:
        he.close()
    assert meter_values_arrived(), ok_log[-3000:]
    # wrong broker password: the refusal is logged, the password is not
    wrong = GW_PW + "-wrong"
    bad_log = _run_for([ASKUE, "-vv", "gateway", "--config", str(_gateway_config(tmp_path, broker, wrong,
                                                                                     mercury_sim))],
                       8, log=tmp_path / "gw-bad.log")
    assert "refused" in bad_log.lower() or "not authori" in bad_log.lower(), bad_log[-2000:]
    assert_no_secret(ok_log + bad_log, [GW_PW, wrong, METER_PW, METER_PW_WIRE])
    # the config check prints a summary: no secrets there either
    check = subprocess.run([ASKUE, "gateway", "--config", str(tmp_path / "gw.yaml"), "--check"],
                           capture_output=True, text=True, cwd=REPO)
    assert_no_secret(check.stdout + check.stderr, [wrong, METER_PW])


def test_headend_logs_hold_no_secrets(broker: DeployedBroker, pg_cluster, pg_template, tmp_path: Path) -> None:
    name = "secrets_logs"
    plain = pg_cluster.create_database(name, template=pg_template)
    try:
        with psycopg.connect(plain, autocommit=True) as c:
            c.execute(f"ALTER USER postgres PASSWORD '{DB_PW}'")  # trust auth: accepted, and now it is in the DSN
        dsn = plain.replace("postgres@", f"postgres:{DB_PW}@") if "postgres@" in plain else plain
        assert DB_PW in dsn, dsn
        api_port = free_port()
        token_out = subprocess.run([ASKUE, "headend", "--dsn", dsn, "token", "create", "--name", "t", "--role",
                                    "admin"], capture_output=True, text=True, cwd=REPO)
        token = next((w for w in token_out.stdout.split() if w.startswith("askue_")), None)
        assert token, token_out.stdout + token_out.stderr
        env = dict(os.environ, ASKUE_MQTT_USERNAME=HEADEND_USER, ASKUE_MQTT_PASSWORD=HE_PW)
        log = tmp_path / "he-ok.log"
        p_cmd = [ASKUE, "-vv", "headend", "--dsn", dsn, "run", "--mqtt-port", str(broker.plain_port),
                 "--api-port", str(api_port)]

        statuses: list[int] = []

        def use_api() -> None:
            wait_port("127.0.0.1", api_port, 60)
            for url in ("/api/v1/meters", "/api/v1/meters/nope", "/api/v1/events?state=bad"):
                statuses.append(httpx.get(f"http://127.0.0.1:{api_port}{url}",
                                          headers={"Authorization": f"Bearer {token}"}).status_code)
            statuses.append(httpx.get(f"http://127.0.0.1:{api_port}/api/v1/meters",
                                      headers={"Authorization": "Bearer askue_x"}).status_code)

        t = threading.Thread(target=use_api, daemon=True)
        t.start()
        ok_log = _run_for(p_cmd, 60, env=env, log=log, until="subscribed", also=lambda: not t.is_alive())
        t.join(5)
        assert "subscribed" in ok_log, ok_log[-2000:]
        assert statuses[:1] == [200] and statuses[-1] == 401, statuses
        # refused broker login and an unreachable database: the noisy paths
        bad_env = dict(env, ASKUE_MQTT_PASSWORD=HE_PW + "-wrong")
        bad_mqtt = _run_for(p_cmd, 8, env=bad_env, log=tmp_path / "he-bad-mqtt.log")
        dead_dsn = f"postgresql://postgres:{DB_PW}@127.0.0.1:{free_port()}/askue"
        bad_db = _run_for([ASKUE, "-vv", "headend", "--dsn", dead_dsn, "run", "--mqtt-port", str(broker.plain_port),
                           "--api-port", str(free_port())], 8, env=env, log=tmp_path / "he-bad-db.log")
        doctor = subprocess.run([ASKUE, "-vv", "headend", "--dsn", dead_dsn, "doctor"], capture_output=True,
                                text=True, env=env, cwd=REPO, timeout=120)
        everything = ok_log + bad_mqtt + bad_db + doctor.stdout + doctor.stderr
        assert_no_secret(everything, [DB_PW, HE_PW, HE_PW + "-wrong", token])
    finally:
        with psycopg.connect(plain, autocommit=True) as c:
            c.execute("ALTER USER postgres PASSWORD NULL")  # the role is shared by the session's cluster
        pg_cluster.drop_database(name)

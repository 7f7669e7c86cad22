"""Commands end to end: the head-end (ingest, command dispatcher and API in one loop) →
mosquitto → real `askue gateway` processes → protocol-true simulated meters (DLMS/COSEM and
Modbus over TCP), and the answers back on …/cmd/result into the commands table.

Covers poll now, a profile range, clock sync, relay off/on (refused without confirmation),
a gateway-wide reload, a command the meter cannot do, a role that may not send commands,
an organisation admin who must not command or see another organisation's meters; and an
offline gateway: a command waits (pending) and expires, another one is delivered when the
gateway comes back; a command handed to a frozen gateway expires unanswered and is never
carried out afterwards."""
from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiomqtt
import httpx
import psycopg
import pytest
from headend_helpers import wait_healthy

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / d) for d in ("gateway", "faults")]
from faultkit import Child, askue_argv  # noqa: E402
from gwtest import MODEL, gateway_config, sim_meters, start_modbus_tcp, write_config  # noqa: E402

from askue.devservices.ports import free_port  # noqa: E402
from askue.drivers.dlms.simulator import make_session_factory as dlms_factory  # noqa: E402
from askue.drivers.sim.line import serve_tcp  # noqa: E402
from askue.drivers.sim.meter import SimMeter  # noqa: E402
from askue.headend.api.auth import create_token  # noqa: E402
from askue.headend.app import run_headend  # noqa: E402
from askue.headend.config import Settings  # noqa: E402
from askue.headend.registry.importer import import_file  # noqa: E402

ROOT = "cmde2e"
OFF = {"register": None, "interval": None, "instant": None, "events": None}
REGISTRY = """org_code,org_name,house_code,house_address,account,subscriber,flat,meter_id,serial,model,resource,gateway_id
uk1,УК Север,h1,ул. Ленина 1,LS-1,Иванов И.И.,1,d1,01234567,СПОДЭС,electricity,gw-a
uk1,УК Север,h1,ул. Ленина 1,LS-2,Петров П.П.,2,m1,7002,iEM3255,electricity,gw-a
uk1,УК Север,h1,ул. Ленина 1,LS-3,Сидоров С.С.,3,b1,7003,iEM3255,electricity,gw-b
uk2,УК Юг,h2,ул. Мира 2,LS-9,Орлов О.О.,9,x2,9009,iEM3255,electricity,gw-x
"""


async def _until(pred, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        got = await pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(step)


def _db(dsn: str, sql: str, params=()):
    with psycopg.connect(dsn) as c:
        return c.execute(sql, params).fetchall()


@pytest.fixture
async def world(tmp_path: Path, pg_dsn: str, mqtt_broker):
    dlms = SimMeter(id="d1", serial="01234567", password="12345678", address=17)
    dserver = await serve_tcp(dlms_factory({17: dlms}, transport="tcp"))
    mb = sim_meters(3)  # units 1..3; m1 on gw-a, b1 on gw-b
    m1, b1 = mb[2], mb[3]
    m1.id, b1.id = "m1", "b1"
    mserver, mport = await start_modbus_tcp(mb)
    (tmp_path / "registry.csv").write_text(REGISTRY, encoding="utf-8")
    assert (await asyncio.to_thread(import_file, pg_dsn, tmp_path / "registry.csv")).errors == []
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        tokens = {"admin": create_token(c, "t-admin", "admin"), "disp": create_token(c, "t-disp", "dispatcher"),
                  "viewer": create_token(c, "t-viewer", "viewer", ["uk1"]),
                  "uk1": create_token(c, "t-uk1", "org_admin", ["uk1"]),
                  "uk2": create_token(c, "t-uk2", "org_admin", ["uk2"])}

    def gw_child(gw: str, buses: list[dict], meters: list[dict]) -> Child:
        cfg = gateway_config(tmp_path, gw, mqtt_broker.port, buses, meters, gateway={"topic_root": ROOT})
        path = write_config(tmp_path / f"{gw}.yaml", cfg)
        return Child(gw, askue_argv("gateway", "--config", str(path)), tmp_path / f"{gw}.log")

    mbus = {"id": "mb", "type": "tcp", "host": "127.0.0.1", "port": mport}
    gw_a = gw_child("gw-a", [{"id": "dl", "type": "tcp", "host": "127.0.0.1",
                              "port": dserver.sockets[0].getsockname()[1], "timeout_s": 2.0}, mbus],
                    [{"id": "d1", "bus": "dl", "driver": "dlms", "address": 17, "serial": "01234567",
                      "password": "12345678", "schedules": OFF},
                     {"id": "m1", "bus": "mb", "driver": "modbus", "model": MODEL, "address": 2, "serial": m1.serial,
                      "schedules": OFF}])
    gw_b = gw_child("gw-b", [mbus], [{"id": "b1", "bus": "mb", "driver": "modbus", "model": MODEL, "address": 3,
                                      "serial": b1.serial, "schedules": OFF}])
    port = free_port()
    settings = Settings(dsn=pg_dsn, mqtt_host=mqtt_broker.host, mqtt_port=mqtt_broker.port, mqtt_root=ROOT,
                        mqtt_client_id=f"cmde2e-{port}", api_port=port, batch_linger_s=0.02, command_poll_s=0.5)
    headend = asyncio.create_task(run_headend(settings))
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=10)
    try:
        await wait_healthy(httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}"))
        yield {"http": http, "tokens": tokens, "dsn": pg_dsn, "gw_a": gw_a, "gw_b": gw_b, "dlms": dlms, "b1": b1,
               "broker_port": mqtt_broker.port}
    except BaseException:
        for ch in (gw_a, gw_b):
            print(ch.tail(60))
        raise
    finally:
        for ch in (gw_a, gw_b):
            if ch.proc is not None and ch.proc.poll() is None:
                ch.signal(signal.SIGCONT)
            ch.stop()
        await http.aclose()
        headend.cancel()
        await asyncio.gather(headend, return_exceptions=True)
        dserver.close()
        mserver.close()


async def test_commands_through_a_real_broker_and_gateways(world) -> None:
    http, tokens, dsn = world["http"], world["tokens"], world["dsn"]

    async def send(who: str, meter: str | None, command: str, gateway: str | None = None, **body):
        path = f"/meters/{meter}/commands" if meter else f"/gateways/{gateway}/commands"
        return await http.post(path, json={"command": command, **body},
                               headers={"Authorization": f"Bearer {tokens[who]}"})

    async def finished(cid: int, states=("done", "failed", "expired"), timeout: float = 30) -> dict:
        async def get():
            r = await http.get(f"/commands/{cid}", headers={"Authorization": f"Bearer {tokens['admin']}"})
            return r.json() if r.json()["state"] in states else None
        return await _until(get, timeout, f"command {cid} to reach {states}")

    # gw-b is not running: its commands wait; a short one expires unsent
    r = await send("uk1", "b1", "read_clock", expires_in_s=12)
    assert r.status_code == 202 and r.json()["state"] == "pending"
    short = r.json()["id"]
    waiting = (await send("disp", "b1", "poll_now", expires_in_s=300)).json()["id"]

    world["gw_a"].start()
    await _until(lambda: asyncio.to_thread(_db, dsn, "SELECT 1 FROM gateways WHERE id = 'gw-a' AND online"), 30,
                 "gw-a online")

    # poll now: the values come on …/data through the ingest
    r = await send("uk1", "d1", "poll_now")
    assert r.status_code == 202, r.text
    c = await finished(r.json()["id"])
    assert c["state"] == "done", c
    n = c["result"]["meters"]["d1"]["values"]
    assert n > 0 and c["message_ru"] == f"опрошен, получено значений: {n}"
    await _until(lambda: asyncio.to_thread(_db, dsn, "SELECT 1 FROM register_readings r JOIN meters m ON "
                                                     "m.id = r.meter_id WHERE m.code = 'd1'"), 10, "d1's readings")

    # the profile of a range, read from the meter's memory
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    r = await send("disp", "d1", "read_profile", start=(end - timedelta(hours=3)).isoformat(), end=end.isoformat())
    c = await finished(r.json()["id"])
    assert c["state"] == "done" and c["result"]["values"] >= 6, c
    want = world["dlms"].profile(end - timedelta(hours=3), end)
    got = await _until(lambda: asyncio.to_thread(
        _db, dsn, "SELECT i.ts, i.value FROM intervals i JOIN meters m ON m.id = i.meter_id WHERE m.code = 'd1' "
                  "AND i.obis = '1.0.1.29.0.255' ORDER BY i.ts"), 10, "profile intervals")
    assert [(t, pytest.approx(v)) for t, v in want] == got

    c = await finished((await send("uk1", "d1", "sync_clock")).json()["id"])
    assert c["state"] == "done" and abs(c["result"]["drift_s"]) < 3, c
    assert c["message_ru"].startswith("часы синхронизированы")

    # the relay: refused without an explicit confirmation, then switched both ways
    before = await asyncio.to_thread(_db, dsn, "SELECT count(*) FROM commands")
    r = await send("uk1", "d1", "relay_disconnect")
    assert r.status_code == 409 and r.json()["detail"]["status"] == "needs_confirmation"
    assert await asyncio.to_thread(_db, dsn, "SELECT count(*) FROM commands") == before
    assert world["dlms"].relay_connected is True
    c = await finished((await send("uk1", "d1", "relay_disconnect", confirm=True)).json()["id"])
    assert c["state"] == "done" and world["dlms"].relay_connected is False, c
    assert c["message_ru"] == "нагрузка отключена (реле разомкнуто)"
    c = await finished((await send("disp", "d1", "relay_reconnect", confirm=True)).json()["id"])
    assert c["state"] == "done" and world["dlms"].relay_connected is True, c
    c = await finished((await send("uk1", "m1", "relay_disconnect", confirm=True)).json()["id"])
    assert c["state"] == "failed" and c["message_ru"] == "прибор учёта не поддерживает эту команду", c
    assert "Unsupported" in c["error"]  # the gateway's own words stay for the engineer

    c = await finished((await send("disp", None, "reload_config", gateway="gw-a")).json()["id"])
    assert c["state"] == "done" and c["message_ru"] == "конфигурация перечитана: изменений нет", c

    # who may not: a viewer; another organisation's admin does not even see the meter or its commands
    assert (await send("viewer", "d1", "poll_now")).status_code == 403
    assert (await send("uk1", None, "reload_config", gateway="gw-a")).status_code == 403
    assert (await send("uk2", "d1", "poll_now")).status_code == 404
    assert (await send("uk2", "d1", "relay_disconnect", confirm=True)).status_code == 404
    uk2 = {"Authorization": f"Bearer {tokens['uk2']}"}
    assert (await http.get("/meters/d1/commands", headers=uk2)).status_code == 404
    assert (await http.get(f"/commands/{c['id']}", headers=uk2)).status_code == 404
    assert world["dlms"].relay_connected is True
    audit = await asyncio.to_thread(_db, dsn, "SELECT actor, new->>'command' FROM audit_log WHERE action = 'command' "
                                              "AND object_id = 'd1' ORDER BY id")
    assert audit == [("t-uk1", "poll_now"), ("t-disp", "read_profile"), ("t-uk1", "sync_clock"),
                     ("t-uk1", "relay_disconnect"), ("t-disp", "relay_reconnect")]

    # the offline gateway: the short command expired unsent, the other still waits
    c = await finished(short, ("expired",), timeout=20)
    assert c["sent_at"] is None and c["message_ru"].startswith("шлюз не вышел на связь"), c
    r = await http.get(f"/commands/{waiting}", headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert r.json()["state"] == "pending"
    world["gw_b"].start()
    c = await finished(waiting)
    assert c["state"] == "done" and c["result"]["meters"]["b1"]["values"] > 0, c
    expired_never_ran = await asyncio.to_thread(_db, dsn, "SELECT state, result FROM commands WHERE id = %s",
                                                (short,))
    assert expired_never_ran == [("expired", None)]

    # a command handed to a gateway that stopped answering (frozen): unanswered, it expires; the
    # gateway, running again, does not carry it out late
    served = len(world["b1"].served)
    world["gw_b"].signal(signal.SIGSTOP)
    r = await send("uk1", "b1", "poll_now", expires_in_s=10)
    frozen = r.json()["id"]
    c = await finished(frozen, ("sent",), timeout=10)
    c = await finished(frozen, ("expired",), timeout=20)
    assert c["sent_at"] is not None and c["message_ru"] == "шлюз не ответил до истечения срока"
    world["gw_b"].signal(signal.SIGCONT)
    # gw-b answers a new command, so it runs again; the late one was dropped by the broker or refused
    c = await finished((await send("uk1", "b1", "read_clock")).json()["id"])
    assert c["state"] in ("done", "failed"), c
    row = (await asyncio.to_thread(_db, dsn, "SELECT state, late, error FROM commands WHERE id = %s", (frozen,)))[0]
    assert row[0] == "expired" or (row[0] == "failed" and row[1] and row[2].startswith("Expired")), row
    polled_late = [s for s in world["b1"].served[served:] if s[0] == "register"]
    assert polled_late == [], "the expired poll was carried out"

    # an answer to a command nobody sent is kept as a dead letter
    async with aiomqtt.Client("127.0.0.1", world["broker_port"], protocol=aiomqtt.ProtocolVersion.V5) as pub:
        await pub.publish(f"{ROOT}/v1/gw-a/cmd/result", b'{"v":1,"id":"hc-nobody","cmd":"poll_now","ok":true,'
                                                        b'"finished_at":"2026-03-01T00:00:00Z"}', qos=1)
    dead = await _until(lambda: asyncio.to_thread(_db, dsn, "SELECT reason FROM dead_letters WHERE topic LIKE "
                                                           "'%%/cmd/result'"), 10, "the dead letter")
    assert "did not send" in dead[0][0]

"""`askue headend` as a process would run it: migrate, token, doctor, and run (ingest + API in one loop)."""
from __future__ import annotations

import asyncio
import time

import aiomqtt
import httpx
import psycopg
import pytest
from headend_helpers import T0, payload, reg, wait_healthy

from askue.cli import main as askue_main
from askue.devservices.ports import free_port
from askue.headend.app import run_headend
from askue.headend.config import Settings


def _wait_for_scheduler(dsn: str) -> None:
    """TimescaleDB's launcher starts a new database's scheduler within a second or so."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(100):
            if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                            "backend_type = 'TimescaleDB Background Worker Scheduler'").fetchone()[0]:
                return
            time.sleep(0.1)


@pytest.mark.storage_modes
def test_migrate_token_doctor(pg_dsn: str, storage_mode: str, pg_cluster, mqtt_broker, capsys, monkeypatch) -> None:
    assert askue_main(["headend", "--dsn", pg_dsn, "migrate"]) == 0
    assert f"applied 0 migration(s); storage mode: {storage_mode}" in capsys.readouterr().out
    assert askue_main(["headend", "--dsn", pg_dsn, "token", "create", "--name", "x", "--role", "org_admin"]) == 2
    assert "needs --org" in capsys.readouterr().err
    assert askue_main(["headend", "--dsn", pg_dsn, "token", "create", "--name", "x", "--role", "viewer"]) == 0
    assert capsys.readouterr().out.startswith("askue_")
    monkeypatch.setenv("ASKUE_MQTT_PORT", str(mqtt_broker.port))
    if storage_mode == "timescale":
        _wait_for_scheduler(pg_dsn)
    assert askue_main(["headend", "--dsn", pg_dsn, "doctor"]) == 0
    out = capsys.readouterr().out
    if storage_mode == "plain" and not pg_cluster.timescaledb:  # the server has no TimescaleDB loaded
        assert "storage mode: plain PostgreSQL" in out and "TimescaleDB was not available" in out
    elif storage_mode == "plain":  # a plain database on a server that has TimescaleDB
        assert "storage mode: plain PostgreSQL" in out and "chosen explicitly when this database was set up" in out
    else:
        assert "storage mode: TimescaleDB" in out and "timescaledb 2." in out
        # every policy with what it does and its last run (the test template has them paused)
        assert "policies: 7 (TimescaleDB's scheduler for this database: running)" in out
        assert "compression of register_readings (chunks older than 60 days), every 12 h" in out, out
        assert "retention of instant_values (chunks older than 400 days dropped), every 1 day" in out
        assert "refresh of cagg_interval_hourly (every invalidated range, up to 1 h ago), every 15 min" in out
        assert out.count("PAUSED") == 7 and out.count("last run ") + out.count("never run yet") == 7
    assert "migrations: up to date" in out and "mqtt broker: reachable" in out
    assert askue_main(["headend", "--dsn", "postgresql://postgres@127.0.0.1:1/x", "doctor"]) == 1
    assert "UNREACHABLE" in capsys.readouterr().out
    # a database that was never migrated is refused with the command to fix it
    monkeypatch.setenv("ASKUE_MQTT_PORT", "1")
    assert askue_main(["headend", "--dsn", pg_dsn.rsplit("/", 1)[0] + "/postgres", "run", "--no-migrate"]) == 1
    assert "askue headend migrate" in capsys.readouterr().err


async def test_run_ingest_and_api_in_one_process(pg_dsn: str, mqtt_broker) -> None:
    port = free_port()
    s = Settings(dsn=pg_dsn, mqtt_host=mqtt_broker.host, mqtt_port=mqtt_broker.port, mqtt_group="run1",
                 mqtt_client_id="run1-w", api_port=port, batch_linger_s=0.02)
    with psycopg.connect(pg_dsn) as conn:
        from askue.headend.api.auth import create_token

        token = create_token(conn, "t", "admin")
    task = asyncio.create_task(run_headend(s))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            await wait_healthy(http)
            items = []
            async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
                for i in range(200):
                    if i % 10 == 0:  # republish until the consumer has subscribed: duplicates change nothing
                        await pub.publish("askue/v1/gwr/data", payload([reg("mr", 12.5, T0)], gw="gwr"), qos=1)
                    r = await http.get("/api/v1/meters/mr/readings")
                    if r.status_code == 200 and (items := r.json()["items"]):
                        break
                    await asyncio.sleep(0.1)
            assert [(i["value"], i["meter_time"], i["received_at"]) for i in items] == [
                (12.5, "2026-03-01T00:00:00Z", "2026-03-01T00:00:05Z")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_slow_stop_says_what_is_still_running(monkeypatch, capsys) -> None:
    """A head-end still stopping after SLOW_STOP_TASKS_S logs the asyncio tasks left, with
    where each one waits (the flaky restart test's only clue would otherwise be a timeout)."""
    import faulthandler

    from askue.headend import cli

    monkeypatch.setattr(cli, "SLOW_STOP_TASKS_S", 0.1)
    monkeypatch.setattr(cli, "SLOW_STOP_THREADS_S", 3600.0)

    async def stuck_in_shutdown() -> None:
        await asyncio.sleep(30)

    task = asyncio.create_task(stuck_in_shutdown(), name="stuck")
    try:
        cli.watch_shutdown(asyncio.get_running_loop())
        await asyncio.sleep(0.5)
    finally:
        task.cancel()
        faulthandler.cancel_dump_traceback_later()
    err = capsys.readouterr().err
    assert "still stopping after 0 s" in err
    assert "stuck_in_shutdown" in err and "await asyncio.sleep(30)" in err


async def test_a_stop_waits_for_the_letters_being_sent(pg_dsn: str, tmp_path) -> None:
    """A password reset asked for just before SIGTERM: its letter still leaves (the server
    here takes a second to accept it), the stop waits for it."""
    import re

    from alert_servers import SmtpServer

    from askue.headend.auth.users import create_user

    with psycopg.connect(pg_dsn, autocommit=True) as c:
        create_user(c, "disp", "секрет-пароль-1", "dispatcher")
        c.execute("UPDATE users SET email = 'disp@uk.example' WHERE login = 'disp'")
    port = free_port()
    with SmtpServer(tmp_path, data_delay_s=1.0) as smtp:
        s = Settings(dsn=pg_dsn, api_port=port, public_url="https://askue.uk.example", **smtp.settings())
        stop = asyncio.Event()
        task = asyncio.create_task(run_headend(s, ingest=False, stop=stop))
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                await wait_healthy(http)
                page = await http.get("/web/password/forgot")
                csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
                r = await http.post("/web/password/forgot", data={"ident": "disp", "csrf": csrf})
                assert r.status_code == 200 and 'id="reset-sent"' in r.text
            assert smtp.to("disp@uk.example") == []  # still being sent
            stop.set()
            await asyncio.wait_for(task, 30)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        (got,) = smtp.to("disp@uk.example")
        assert "Для логина disp" in got.text

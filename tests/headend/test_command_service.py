"""Commands to gateways, the service and the API over real PostgreSQL (no broker here: the
dispatcher's end-to-end test is test_commands_e2e.py): who may give which command, the
relay's explicit confirmation, arguments checked before anything is stored, another
organisation's meters and commands invisible, every command audited, the queue's states."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from test_web_fixtures import build

from askue.contract.payloads import CommandResult
from askue.headend.api.app import create_app
from askue.headend.api.auth import create_token
from askue.headend.commands import describe, queue
from askue.headend.config import Settings


@pytest.fixture
def api(pg_dsn: str, tmp_path: Path):
    facts = build(pg_dsn, tmp_path)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        tokens = {role: create_token(c, f"t-{role}", role, orgs) for role, orgs in (
            ("admin", None), ("dispatcher", None), ("viewer", ["uk1"]), ("billing", ["uk1"]))}
        tokens["uk1"] = create_token(c, "t-uk1", "org_admin", ["uk1"])
        tokens["uk2"] = create_token(c, "t-uk2", "org_admin", ["uk2"])
    with TestClient(create_app(Settings(dsn=pg_dsn, command_ttl_s=600))) as client:
        yield client, tokens, facts, pg_dsn


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _count(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT count(*) FROM commands").fetchone()[0]


def test_roles_confirmation_and_arguments(api) -> None:
    client, tokens, facts, dsn = api
    r = client.post("/api/v1/meters/e1/commands", json={"command": "poll_now"}, headers=_h(tokens["uk1"]))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["state"] == "pending" and body["meter"] == "e1" and body["gateway"] == "gw1"
    assert body["args"] == {"meter_id": "e1", "timeout_s": 600}
    assert body["message_ru"] == "ждёт, когда шлюз выйдет на связь"
    expires = datetime.fromisoformat(body["expires_at"]) - datetime.fromisoformat(body["created_at"])
    assert expires == timedelta(seconds=600)  # the head-end's command_ttl_s
    # the same command again while the first waits: refused, naming the first
    again = client.post("/api/v1/meters/e1/commands", json={"command": "poll_now"}, headers=_h(tokens["uk1"]))
    assert again.status_code == 409 and again.json()["detail"]["id"] == body["id"]
    assert "уже в очереди" in again.json()["detail"]["message_ru"]
    n = _count(dsn)
    refused = [
        ("viewer", "e1", {"command": "poll_now"}, 403),
        ("billing", "e1", {"command": "sync_clock"}, 403),
        ("uk1", "e1", {"command": "relay_disconnect"}, 409),  # no confirmation
        ("uk1", "e1", {"command": "relay_disconnect", "confirm": False}, 409),
        ("uk1", "e1", {"command": "format_disk"}, 422),
        ("uk1", "e1", {"command": "reload_config"}, 422),  # a gateway's command, not a meter's
        ("uk1", "e1", {"command": "read_profile"}, 422),
        ("uk1", "e1", {"command": "read_profile", "start": "2026-03-02T00:00:00+03:00",
                       "end": "2026-03-01T00:00:00+03:00"}, 422),
        ("uk1", "e1", {"command": "read_profile", "start": "2026-01-01T00:00:00+03:00",
                       "end": "2026-06-01T00:00:00+03:00"}, 422),
        ("uk1", "e1", {"command": "poll_now", "expires_in_s": 1}, 422),
        ("uk1", "e4", {"command": "poll_now"}, 409),  # decommissioned
        ("uk1", "e2", {"command": "poll_now"}, 404),  # another organisation's meter
        ("uk1", "e2", {"command": "relay_disconnect", "confirm": True}, 404),
        ("uk2", "e1", {"command": "poll_now"}, 404),
    ]
    for who, meter, body_, status in refused:
        r = client.post(f"/api/v1/meters/{meter}/commands", json=body_, headers=_h(tokens[who]))
        assert r.status_code == status, (who, meter, body_, r.status_code, r.text)
    r = client.post("/api/v1/meters/e1/commands", json={"command": "relay_disconnect"}, headers=_h(tokens["uk1"]))
    detail = r.json()["detail"]
    assert detail["status"] == "needs_confirmation" and detail["field"] == "confirm"
    assert "подтвердите" in detail["message_ru"]
    r = client.post("/api/v1/meters/e1/commands", json={"command": "read_profile", "start": "2026-03-02T00:00:00"},
                    headers=_h(tokens["uk1"]))
    assert r.status_code == 422 and r.json()["detail"]["field"] == "start"  # no offset
    # gateway-wide commands: the operator's, not an organisation admin's
    assert client.post("/api/v1/gateways/gw1/commands", json={"command": "reload_config"},
                       headers=_h(tokens["uk1"])).status_code == 403
    assert _count(dsn) == n  # nothing refused was stored
    ok = client.post("/api/v1/meters/e1/commands", json={"command": "relay_disconnect", "confirm": True},
                     headers=_h(tokens["uk1"]))
    assert ok.status_code == 202, ok.text
    prof = client.post("/api/v1/meters/e1/commands", json={
        "command": "read_profile", "start": (facts["now"] - timedelta(days=2)).isoformat(),
        "end": (facts["now"] - timedelta(days=1)).isoformat()}, headers=_h(tokens["dispatcher"]))
    assert prof.status_code == 202 and prof.json()["args"]["start"].endswith("Z")
    gw = client.post("/api/v1/gateways/gw1/commands", json={"command": "reload_config"},
                     headers=_h(tokens["dispatcher"]))
    assert gw.status_code == 202 and gw.json()["meter"] is None and gw.json()["args"] == {}
    with psycopg.connect(dsn) as c:
        audit = c.execute("SELECT actor, action, object_type, object_id, new->>'command' FROM audit_log "
                          "WHERE action = 'command' ORDER BY id").fetchall()
    assert audit == [("t-uk1", "command", "meter", "e1", "poll_now"),
                     ("t-uk1", "command", "meter", "e1", "relay_disconnect"),
                     ("t-dispatcher", "command", "meter", "e1", "read_profile"),
                     ("t-dispatcher", "command", "gateway", "gw1", "reload_config")]


def test_another_organisations_commands_are_invisible(api) -> None:
    client, tokens, _, _ = api
    mine = client.post("/api/v1/meters/e2/commands", json={"command": "sync_clock"}, headers=_h(tokens["uk2"]))
    assert mine.status_code == 202
    theirs = client.post("/api/v1/meters/e1/commands", json={"command": "sync_clock"}, headers=_h(tokens["uk1"]))
    gw = client.post("/api/v1/gateways/gw2/commands", json={"command": "poll_now"}, headers=_h(tokens["admin"]))
    assert gw.status_code == 202
    cid, other = mine.json()["id"], theirs.json()["id"]
    assert client.get(f"/api/v1/commands/{cid}", headers=_h(tokens["uk2"])).status_code == 200
    assert client.get(f"/api/v1/commands/{cid}", headers=_h(tokens["uk1"])).status_code == 404
    assert client.get(f"/api/v1/commands/{other}", headers=_h(tokens["uk2"])).status_code == 404
    assert client.get("/api/v1/meters/e2/commands", headers=_h(tokens["uk1"])).status_code == 404
    assert client.get("/api/v1/gateways/gw2/commands", headers=_h(tokens["uk1"])).status_code == 404
    listed = client.get("/api/v1/gateways/gw2/commands", headers=_h(tokens["uk2"])).json()["items"]
    assert {i["id"] for i in listed} == {cid, gw.json()["id"]}  # its meter's and the gateway's own
    every = client.get("/api/v1/gateways/gw1/commands", headers=_h(tokens["admin"])).json()["items"]
    assert [i["id"] for i in every] == [other]


async def test_queue_states_results_and_expiry(pg_dsn: str, tmp_path: Path) -> None:
    """claim → sent → result; expiry of what waited; a late answer still counts; a repeated
    answer changes nothing; an answer to no command is not taken."""
    await asyncio.to_thread(build, pg_dsn, tmp_path)
    conn = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    try:
        async def add(meter: str, gw: str, command: str, ttl_s: float) -> tuple[int, str]:
            cur = await conn.execute(
                "INSERT INTO commands (mqtt_id, gateway_id, meter_id, org_id, command, args, created_by, expires_at) "
                "SELECT %s, %s, id, org_id, %s, jsonb_build_object('meter_id', code), 'test', "
                "now() + make_interval(secs => %s) FROM meters WHERE code = %s RETURNING id, mqtt_id",
                (f"hc-{meter}-{command}", gw, command, ttl_s, meter))
            return await cur.fetchone()

        online, _ = await add("e1", "gw1", "poll_now", 600)
        offline, _ = await add("e2", "gw2", "poll_now", 600)  # gw2 is offline
        await add("e3", "gw1", "sync_clock", 0.2)
        await asyncio.sleep(0.3)
        async with conn.transaction():
            due = await queue.claim_due(conn)
            assert [d.id for d in due] == [online]
            assert 590 < due[0].left_s <= 600
            assert b'"expires_at"' in due[0].payload()
            await queue.mark_sent(conn, [online])
        assert len(await queue.expire_due(conn)) == 1  # e3's: too short to be sent
        now = datetime.now(UTC)
        res = CommandResult(v=1, id="hc-e1-poll_now", cmd="poll_now", ok=True, finished_at=now,
                            result={"meters": {"e1": {"values": 3}}, "polled": 1})
        assert await queue.record_result(conn, "gw1", res) == (online, True)
        assert await queue.record_result(conn, "gw1", res) == (online, False)  # QoS 1 redelivery
        assert await queue.record_result(conn, "gw2", res) == (None, False)  # not gw2's command
        late = CommandResult(v=1, id="hc-e3-sync_clock", cmd="sync_clock", ok=True, finished_at=now,
                             result={"meter_time": now.isoformat(), "drift_s": 0.4})
        assert (await queue.record_result(conn, "gw1", late))[1] is True
        rows = dict(await (await conn.execute("SELECT mqtt_id, state || '/' || late FROM commands")).fetchall())
        assert rows == {"hc-e1-poll_now": "done/false", "hc-e2-poll_now": "pending/false",
                        "hc-e3-sync_clock": "done/true"}
        assert offline and await queue.seconds_to_next_expiry(conn) > 500
        actors = await (await conn.execute("SELECT actor, object_id FROM audit_log WHERE action = 'command_result' "
                                           "ORDER BY id")).fetchall()
        assert actors == [("gateway:gw1", "e1"), ("gateway:gw1", "e3")]
    finally:
        await conn.close()


def test_outcomes_read_as_sentences() -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Europe/Moscow")
    s = describe.result_sentence
    assert s("poll_now", "done", {"meters": {"e1": {"values": 12}}, "polled": 1}, None, True, tz) == \
        "опрошен, получено значений: 12"
    assert s("poll_now", "done", {"meters": {"a": {"values": 2}, "b": {"error": "MeterTimeout: x"}}, "polled": 1},
             None, True, tz) == "опрошено приборов: 1 из 2, получено значений: 2; не ответили: b"
    assert s("sync_clock", "done", {"meter_time": "2026-03-01T09:00:00Z", "drift_s": 0.41}, None, True, tz) == \
        "часы синхронизированы; расхождение после синхронизации +0,4 с"
    assert s("read_clock", "done", {"meter_time": "2026-03-01T09:00:00Z", "drift_s": -40}, None, True, tz) == \
        "часы прибора учёта: 01.03.2026 12:00:00, расхождение с часами шлюза -40,0 с"
    assert s("relay_disconnect", "failed", None, "Unsupported: meter has no relay", True, tz) == \
        "прибор учёта не поддерживает эту команду"
    assert s("relay_disconnect", "failed", None, "Expired: the command expired at …", True, tz).startswith("срок")
    assert s("reload_config", "done", {"changes": {"meters_added": ["x"]}, "restart_needed": []}, None, True, tz) == \
        "конфигурация перечитана: добавлено приборов: 1"
    assert s("poll_now", "expired", None, None, False, tz).startswith("шлюз не вышел на связь")
    assert s("poll_now", "expired", None, None, True, tz) == "шлюз не ответил до истечения срока"
    assert describe.error_sentence("KeyError: something new", "ru") == "шлюз сообщил об ошибке"

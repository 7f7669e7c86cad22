"""VEE API over real PostgreSQL: events scoped per organisation, lifecycle with audit,
counts, exports, manual readings with the expected value, corrections."""
from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import psycopg
import pytest
from fastapi.testclient import TestClient
from vee_helpers import c_reg, pending

from askue.headend.api.app import create_app
from askue.headend.api.auth import create_token
from askue.headend.config import Settings
from askue.headend.ingest import merge
from askue.headend.registry.importer import import_file
from askue.headend.vee import live

REGISTRY = """org_code,org_name,house_code,house_address,account,subscriber,meter_id,serial,resource,digits,multiplier,tariff_zones,is_balance,gateway_id
uk1,УК Север,h1,ул. Ленина 1,LS-1,Иванов,e1,S-E1,electricity,6,1,2,no,gw1
uk2,УК Юг,h2,ул. Мира 2,LS-9,Сидоров,e2,S-E2,electricity,5,1,1,no,gw2
"""
T = datetime.now(UTC).replace(microsecond=0) - timedelta(days=12)


async def _ingest(dsn: str) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    ctx = merge.MergeContext(hooks=[live.batch_hook])
    # e1: 10 days of steady use then a reverse; e2: a rollover (no event) then a reverse
    e1 = [c_reg("e1", 100.0 + 5 * d, T + timedelta(days=d)) for d in range(11)]
    e1.append(c_reg("e1", 120.0, T + timedelta(days=11)))
    e2 = [c_reg("e2", 99999.0, T), c_reg("e2", 3.0, T + timedelta(days=1)), c_reg("e2", 1.0, T + timedelta(days=2))]
    await merge.write(conn, ctx, pending(e1, gw="gw1"))
    await merge.write(conn, ctx, pending(e2, gw="gw2"))
    await conn.close()


@pytest.fixture
def api(pg_dsn: str, tmp_path: Path):
    (tmp_path / "reg.csv").write_text(REGISTRY, encoding="utf-8")
    assert import_file(pg_dsn, tmp_path / "reg.csv").errors == []
    asyncio.run(_ingest(pg_dsn))
    with psycopg.connect(pg_dsn) as conn:
        # readings are accepted on any day of the month (the default window opens on the 15th)
        conn.execute("INSERT INTO billing_reading_windows (org_id, open_day, close_day, max_age_days, tolerance) "
                     "VALUES (NULL, 1, 28, 10, 3)")
        tokens = {"admin": create_token(conn, "t-admin", "admin"),
                  "uk1": create_token(conn, "t-uk1", "org_admin", ["uk1"]),
                  "uk2": create_token(conn, "t-uk2", "org_admin", ["uk2"]),
                  "viewer": create_token(conn, "t-view", "viewer")}
    with TestClient(create_app(Settings(dsn=pg_dsn))) as client:
        yield client, tokens, pg_dsn


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_events_are_scoped_and_need_a_token(api) -> None:
    client, tok, _ = api
    assert client.get("/api/v1/events").status_code == 401
    all_ = client.get("/api/v1/events", headers=_h(tok["admin"])).json()["items"]
    assert sorted((e["meter"], e["kind"]) for e in all_) == [("e1", "reverse_reading"), ("e2", "reverse_reading")]
    mine = client.get("/api/v1/events", headers=_h(tok["uk2"])).json()["items"]
    assert [(e["meter"], e["organisation"], e["title"]) for e in mine] == [("e2", "uk2", "Обратный ход показаний")]
    other = next(e["id"] for e in all_ if e["meter"] == "e1")
    assert client.get(f"/api/v1/events/{other}", headers=_h(tok["uk2"])).status_code == 404
    r = client.post(f"/api/v1/events/{other}/resolve", json={"comment": "x"}, headers=_h(tok["uk2"]))
    assert r.status_code == 404
    en = client.get("/api/v1/events", params={"lang": "en", "meter": "e2"}, headers=_h(tok["admin"])).json()
    assert en["items"][0]["title"] == "Reverse reading on a cumulative register"
    assert client.get("/api/v1/events", params={"kind": "nonsense"}, headers=_h(tok["admin"])).status_code == 422


def test_lifecycle_with_comment_and_show_resolved(api) -> None:
    client, tok, dsn = api
    ev = client.get("/api/v1/events", params={"meter": "e1"}, headers=_h(tok["uk1"])).json()["items"][0]
    assert client.post(f"/api/v1/events/{ev['id']}/resolve", json={"comment": "x"},
                       headers=_h(tok["viewer"])).status_code == 403
    r = client.post(f"/api/v1/events/{ev['id']}/acknowledge", json={"comment": "выезд назначен"},
                    headers=_h(tok["uk1"]))
    assert r.status_code == 200 and r.json()["state"] == "acknowledged" and r.json()["acknowledged_by"] == "t-uk1"
    assert client.post(f"/api/v1/events/{ev['id']}/resolve", json={}, headers=_h(tok["uk1"])).status_code == 422
    r = client.post(f"/api/v1/events/{ev['id']}/resolve", json={"comment": "счётчик заменён"}, headers=_h(tok["uk1"]))
    assert r.json()["state"] == "resolved" and r.json()["comment"] == "счётчик заменён"
    assert client.post(f"/api/v1/events/{ev['id']}/resolve", json={"comment": "again"},
                       headers=_h(tok["uk1"])).status_code == 409
    default = client.get("/api/v1/events", headers=_h(tok["uk1"])).json()["items"]
    assert default == []
    shown = client.get("/api/v1/events", params={"show_resolved": "true"}, headers=_h(tok["uk1"])).json()["items"]
    assert [e["id"] for e in shown] == [ev["id"]]
    counts = client.get("/api/v1/events/counts", params={"show_resolved": "true"}, headers=_h(tok["admin"])).json()
    assert counts["items"] == [{"kind": "reverse_reading", "title_ru": "Обратный ход показаний",
                                "title_en": "Reverse reading on a cumulative register", "total": 2,
                                "open": 1, "resolved": 1}]
    with psycopg.connect(dsn) as conn:
        audit = conn.execute("SELECT actor, action, old->>'state', new->>'state', comment FROM audit_log "
                             "WHERE object_type = 'abnormal_event' ORDER BY id").fetchall()
    assert audit == [("t-uk1", "event_acknowledge", "open", "acknowledged", "выезд назначен"),
                     ("t-uk1", "event_resolve", "acknowledged", "resolved", "счётчик заменён")]


def test_exports(api) -> None:
    client, tok, _ = api
    r = client.get("/api/v1/events/export", params={"format": "csv"}, headers=_h(tok["uk2"]))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig")), delimiter=";"))
    assert rows[0][:4] == ["№", "Вид", "Важность", "Счётчик"]
    assert [(x[1], x[3], x[8]) for x in rows[1:]] == [("Обратный ход показаний", "e2", "открыто")]
    r = client.get("/api/v1/events/export", params={"format": "xlsx", "lang": "en"}, headers=_h(tok["admin"]))
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert [c.value for c in ws[1]][:3] == ["ID", "Kind", "Severity"]
    assert sorted(ws.cell(row=i, column=4).value for i in (2, 3)) == ["e1", "e2"]
    r = client.get("/api/v1/events/export", params={"format": "pdf"}, headers=_h(tok["admin"]))
    assert r.status_code == 200 and r.content.startswith(b"%PDF-") and r.content.rstrip().endswith(b"%%EOF")
    assert b"DejaVu" in r.content


def test_manual_reading_with_expected_value_and_correction(api) -> None:
    client, tok, dsn = api
    at = T + timedelta(days=10, hours=12)
    exp = client.get("/api/v1/meters/e1/expected", params={"at": at.isoformat()}, headers=_h(tok["uk1"])).json()
    assert exp["last_value"] == 150.0 and exp["average_daily"] == pytest.approx(5.0)
    assert exp["expected"] == pytest.approx(152.5)
    assert client.get("/api/v1/meters/e1/expected", headers=_h(tok["uk2"])).status_code == 404
    body = {"obis": "1.0.1.8.0.255", "ts": at.isoformat(), "value": 152.0, "comment": "показания жильца"}
    assert client.post("/api/v1/meters/e1/readings", json=body, headers=_h(tok["viewer"])).status_code == 403
    r = client.post("/api/v1/meters/e1/readings", json=body, headers=_h(tok["uk1"]))
    assert r.status_code == 201, r.text
    assert r.json()["quality"] == "M" and r.json()["deviation"] == pytest.approx(-0.5)
    assert client.post("/api/v1/meters/e1/readings", json=body, headers=_h(tok["uk1"])).status_code == 409
    bad = dict(body, ts="2026-11-20T10:00:00")
    assert client.post("/api/v1/meters/e1/readings", json=bad, headers=_h(tok["uk1"])).status_code == 422
    corr = {"kind": "register", "obis": "1.0.1.8.0.255", "ts": at.isoformat(), "value": 152.4,
            "reason": "опечатка при вводе"}
    r = client.post("/api/v1/meters/e1/corrections", json=corr, headers=_h(tok["uk1"]))
    assert r.status_code == 200 and r.json()["old_value"] == 152.0
    edits = client.get("/api/v1/meters/e1/edits", headers=_h(tok["uk1"])).json()["items"]
    assert [(e["action"], e["actor"], (e["old"] or {}).get("value"), e["new"]["value"], e["comment"])
            for e in edits] == [("correction", "t-uk1", 152.0, 152.4, "опечатка при вводе"),
                                ("manual_reading", "t-uk1", None, 152.0, "показания жильца")]
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT value, quality, source, reasons FROM register_readings r JOIN meters m "
                           "ON m.id = r.meter_id WHERE m.code = 'e1' AND ts = %s", (at,)).fetchone()
    assert row == (152.4, "M", "manual", ["corrected", "manual"])


def test_thresholds_per_organisation(api) -> None:
    client, tok, dsn = api
    body = {"scope": "organisation", "name": "uk1", "settings": {"clock_drift_s": 30}}
    # another organisation is invisible to uk2: 404, as for any object it may not see
    assert client.put("/api/v1/vee/thresholds", json=body, headers=_h(tok["uk2"])).status_code == 404
    assert client.put("/api/v1/vee/thresholds", json=dict(body, settings={"clock_drift": 30}),
                      headers=_h(tok["uk1"])).status_code == 422
    assert client.put("/api/v1/vee/thresholds", json=body, headers=_h(tok["uk1"])).status_code == 200
    assert client.get("/api/v1/meters/e1/thresholds", headers=_h(tok["uk1"])).json()["clock_drift_s"] == 30
    assert client.get("/api/v1/meters/e2/thresholds", headers=_h(tok["uk2"])).json()["clock_drift_s"] == 120
    listed = client.get("/api/v1/vee/thresholds", headers=_h(tok["uk2"])).json()
    assert listed["overrides"] == [] and listed["defaults"]["spike_factor"] == 5.0
    assert len(client.get("/api/v1/vee/thresholds", headers=_h(tok["admin"])).json()["overrides"]) == 1

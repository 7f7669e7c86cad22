"""Billing API through the real head-end app (FastAPI, token auth, pooled connections to
the test PostgreSQL) and the `askue export` CLI against the same database."""
from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from openpyxl import load_workbook
from psycopg_pool import AsyncConnectionPool

from askue.cli import main as askue_main
from askue.headend.api.app import create_app
from askue.headend.api.auth import create_token
from askue.headend.billing.formats import xml80020
from askue.headend.config import Settings

MSK = ZoneInfo("Europe/Moscow")


def _seed(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn, autocommit=True) as c:
        o1 = c.execute("INSERT INTO organisations (code, name, inn) VALUES ('uk1', 'УК 1', '7707083893') "
                       "RETURNING id").fetchone()[0]
        o2 = c.execute("INSERT INTO organisations (code, name, inn) VALUES ('uk2', 'УК 2', '5257072937') "
                       "RETURNING id").fetchone()[0]
        m1 = c.execute("INSERT INTO meters (code, org_id, serial) VALUES ('m1', %s, '111') RETURNING id",
                       (o1,)).fetchone()[0]
        m2 = c.execute("INSERT INTO meters (code, org_id) VALUES ('m2', %s) RETURNING id", (o2,)).fetchone()[0]
        for mid, v in ((m1, 100.0), (m2, 7.0)):
            for ts in (datetime(2024, 3, 1, tzinfo=MSK), datetime(2024, 4, 1, tzinfo=MSK)):
                c.execute("INSERT INTO register_readings (meter_id, obis, ts, received_at, value) "
                          "VALUES (%s, '1.0.1.8.0.255', %s, %s, %s)", (mid, ts, ts, v))
                v += 50
        day = datetime(2024, 3, 5, tzinfo=MSK)
        for i in range(48):
            end = day + timedelta(minutes=30 * (i + 1))
            c.execute("INSERT INTO intervals (meter_id, obis, ts, received_at, value, period_s) "
                      "VALUES (%s, '1.0.1.29.0.255', %s, %s, 1.5, 1800)", (m1, end, end))
        return {"billing1": create_token(c, "billing-uk1", "billing", ["uk1"]),
                "viewer1": create_token(c, "viewer-uk1", "viewer", ["uk1"]),
                "admin": create_token(c, "root", "admin")}


@pytest.fixture
async def api(pg_dsn):
    tokens = _seed(pg_dsn)
    pool = AsyncConnectionPool(pg_dsn, min_size=1, max_size=4, open=False)
    await pool.open(wait=True)
    app = create_app(Settings(dsn=pg_dsn), pool=pool)
    app.state.pool = pool  # the ASGI transport does not run the lifespan that would set it
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t/api/v1") as client:
        yield client, tokens
    await pool.close()


def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def test_auth_and_scoping(api):
    client, t = api
    assert (await client.get("/billing/readings")).status_code == 401
    assert (await client.get("/billing/readings", headers=_h("askue_nope"))).status_code == 401
    r = await client.get("/billing/readings", headers=_h(t["billing1"]))
    assert r.status_code == 200
    body = r.json()
    assert {i["meter"] for i in body["items"]} == {"m1"} and len(body["items"]) == 2
    again = await client.get("/billing/readings", params={"cursor": body["next_cursor"]}, headers=_h(t["billing1"]))
    assert again.json()["items"] == []
    assert (await client.get("/billing/readings", params={"cursor": "x"}, headers=_h(t["billing1"]))).status_code == 422
    everything = await client.get("/billing/readings", headers=_h(t["admin"]))
    assert {i["meter"] for i in everything.json()["items"]} == {"m1", "m2"}
    # another organisation answers 404, as if it did not exist
    assert (await client.get("/billing/periods/2024-03", params={"org": "uk2"},
                             headers=_h(t["billing1"]))).status_code == 404
    assert (await client.get("/billing/hourly/m2/2024-03", headers=_h(t["billing1"]))).status_code == 404


async def test_period_snapshot_close_and_roles(api):
    client, t = api
    r = await client.get("/billing/periods/2024-03", headers=_h(t["billing1"]))
    assert r.status_code == 200
    (row,) = r.json()["rows"]
    assert (row["meter"], row["consumption"], row["state"] if "state" in row else "open") == ("m1", 50.0, "open")
    csv = await client.get("/billing/periods/2024-03", params={"format": "csv"}, headers=_h(t["billing1"]))
    lines = csv.text.lstrip("\ufeff").splitlines()
    assert lines[0].startswith("meter;obis;zone;period_start") and lines[1].startswith("m1;1.0.1.8.0.255;Сутки;")
    assert (await client.post("/billing/periods/2024-03/close", headers=_h(t["viewer1"]))).status_code == 403
    assert (await client.post("/billing/periods/2024-03/close", headers=_h(t["billing1"]))).json()["rows"] == 1
    assert (await client.post("/billing/periods/2024-03/close", headers=_h(t["billing1"]))).status_code == 409
    closed = (await client.get("/billing/periods/2024-03", headers=_h(t["billing1"]))).json()
    assert closed["state"] == "closed" and closed["closed_by"] == "billing-uk1"
    assert (await client.get("/billing/periods/2024-13", headers=_h(t["billing1"]))).status_code == 422


async def test_files_over_http(api):
    client, t = api
    r = await client.get("/billing/80020/2024-03-05", headers=_h(t["billing1"]))
    assert r.status_code == 200
    assert 'filename="80020_7707083893_20240305_1.xml"' in r.headers["content-disposition"]
    msg = xml80020.parse(r.content, tz=MSK)
    assert [p.value for p in msg.areas[0].points[0].channels[0].periods][:2] == [1.5, 1.5]
    missing = await client.get("/billing/80020/2024-03-06", headers=_h(t["billing1"]))
    assert missing.status_code == 404
    x = await client.get("/billing/hourly/m1/2024-03", headers=_h(t["billing1"]))
    ws = load_workbook(io.BytesIO(x.content)).active
    assert ws["F2"].value == pytest.approx(3.0)  # 05.03, 00-01
    bad = await client.post("/billing/80020", headers=_h(t["billing1"]),
                            files={"file": ("x.xml", b"<message class='80020' version='2' number='1'>", "text/xml")})
    assert bad.status_code == 422 and bad.json()["detail"]["issues"][0]["where"].startswith("line")
    tpl = await client.get("/billing/integral-template/2024-03", headers=_h(t["billing1"]))
    assert load_workbook(io.BytesIO(tpl.content)).active["D2"].value == "111"
    res = await client.post("/billing/integral", headers=_h(t["billing1"]), params={"dry_run": "true"},
                            files={"file": ("t.xlsx", tpl.content, "application/octet-stream")})
    assert res.status_code == 200 and res.json()["rows"][0]["status"] == "empty"


async def test_manual_readings_and_window(api):
    client, t = api
    put = await client.put("/billing/reading-window", json={"open_day": 1, "close_day": 28, "max_age_days": 5},
                           headers=_h(t["billing1"]))
    assert put.status_code == 200
    assert (await client.get("/billing/reading-window", headers=_h(t["viewer1"]))).json()["max_age_days"] == 5
    now = datetime.now(UTC)
    r = await client.post("/billing/manual-readings", headers=_h(t["billing1"]), params={"dry_run": "true"},
                          json=[{"meter": "m1", "value": 1e12, "ts": now.isoformat()},
                                {"meter": "m2", "value": 1.0}])
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["accepted", "rejected"]  # m2 belongs to another organisation
    assert (await client.post("/billing/manual-readings", headers=_h(t["viewer1"]), json=[])).status_code == 403
    nan = await client.post("/billing/manual-readings", headers=_h(t["billing1"]),
                            json=[{"meter": "m1", "value": -1}])
    assert nan.status_code == 422


def test_cli_exports(pg_dsn, tmp_path, capsys):
    _seed(pg_dsn)
    out = tmp_path / "x"
    assert askue_main(["export", "--dsn", pg_dsn, "--progress", "80020", "--org", "uk1", "--from", "2024-03-04",
                       "--to", "2024-03-05", "--out", str(out)]) == 1  # the 4th has no data
    err = capsys.readouterr().err
    assert "2024-03-04: no half-hour data" in err and "80020 [" in err and "100%" in err
    files = sorted(p.name for p in out.iterdir())
    assert files == ["80020_7707083893_20240305_1.xml"]
    assert askue_main(["export", "--dsn", pg_dsn, "import-80020", str(out / files[0])]) == 0
    assert "0 values stored, 48 already present" in capsys.readouterr().out
    csv = tmp_path / "r.csv"
    assert askue_main(["export", "--dsn", pg_dsn, "--progress", "csv", "--org", "uk1", "--month", "2024-03",
                       "--kind", "interval", "--out", str(csv)]) == 0
    assert "interval [" in capsys.readouterr().err
    assert len(csv.read_text(encoding="utf-8").splitlines()) == 1 + 48
    xlsx = tmp_path / "h.xlsx"
    assert askue_main(["export", "--dsn", pg_dsn, "hourly-xlsx", "--org", "uk1", "--month", "2024-03",
                       "--out", str(xlsx)]) == 0
    assert load_workbook(xlsx)["111"]["F3"].value == pytest.approx(3.0)
    assert askue_main(["export", "--dsn", pg_dsn, "close-period", "--org", "uk1", "--month", "2024-03"]) == 0
    assert askue_main(["export", "--dsn", pg_dsn, "close-period", "--org", "uk1", "--month", "2024-03"]) == 1
    assert "already closed" in capsys.readouterr().err
    assert askue_main(["export", "--dsn", pg_dsn, "csv", "--org", "nope", "--month", "2024-03",
                       "--out", str(csv)]) == 1
    broken = tmp_path / "80020_7707083893_20240305_9.xml"
    broken.write_bytes(b"<message/>")
    assert askue_main(["export", "--dsn", pg_dsn, "import-80020", str(broken)]) == 1
    assert "nothing stored" in capsys.readouterr().err

"""Read API over real PostgreSQL: registry imported, values ingested through the merge path."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from headend_helpers import data_msg, reg

from askue.headend.api.app import create_app
from askue.headend.api.auth import create_token
from askue.headend.config import Settings
from askue.headend.ingest import merge
from askue.headend.ingest.batch import Pending
from askue.headend.registry.importer import import_file

REGISTRY = """org_code,org_name,house_code,house_address,account,subscriber,meter_id,serial,resource,digits,multiplier,tariff_zones,is_balance,gateway_id
uk1,УК Север,h1,ул. Ленина 1,LS-1,Иванов,e1,S-E1,electricity,6,1,2,no,gw1
uk1,УК Север,h1,ул. Ленина 1,LS-2,Петров,w1,S-W1,cold_water,5,1,1,no,gw1
uk1,УК Север,h1,ул. Ленина 1,,,odpu1,S-O1,electricity,6,30,1,yes,gw1
uk2,УК Юг,h2,ул. Мира 2,LS-9,Сидоров,e2,S-E2,electricity,5,1,1,no,gw2
"""
DAYS = [datetime(2026, 3, d, 12, 0, tzinfo=UTC) for d in (1, 2, 3, 4)]  # 15:00 Moscow
SERIES = {
    ("e1", "1.0.1.8.0.255"): [100.0, 110.0, 125.0, 125.0],
    ("e1", "1.0.1.8.1.255"): [60.0, 66.0, 75.0, 75.0],
    ("e1", "1.0.1.8.2.255"): [40.0, 44.0, 50.0, 50.0],
    ("w1", "8.0.1.0.0.255"): [10.0, 10.5, 11.25, 11.25],
    ("odpu1", "1.0.1.8.0.255"): [1000.0, 1001.0, 1003.0, 1003.0],
    ("e2", "1.0.1.8.0.255"): [99990.0, 99999.0, 3.0, 5.0],  # 5-digit register rolls over
}


async def _ingest(dsn: str) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    ctx = merge.MergeContext()
    for (meter, obis), vals in SERIES.items():
        gw = "gw2" if meter == "e2" else "gw1"
        p = Pending()
        m = data_msg([reg(meter, v, DAYS[i], obis=obis) for i, v in enumerate(vals)], gw=gw, seq=len(obis))
        p.data.append(m)
        p.seen[gw] = DAYS[-1]
        await merge.write(conn, ctx, p)
    await conn.close()


@pytest.fixture
def api(pg_dsn: str, tmp_path: Path):
    (tmp_path / "reg.csv").write_text(REGISTRY, encoding="utf-8")
    assert import_file(pg_dsn, tmp_path / "reg.csv").errors == []
    asyncio.run(_ingest(pg_dsn))
    with psycopg.connect(pg_dsn) as conn:
        tokens = {"admin": create_token(conn, "t-admin", "admin"),
                  "uk2": create_token(conn, "t-uk2", "org_admin", ["uk2"])}
    with TestClient(create_app(Settings(dsn=pg_dsn))) as client:
        yield client, tokens


def _get(client, token, url, **params):
    return client.get(url, params=params, headers={"Authorization": f"Bearer {token}"})


def test_health_is_open_everything_else_needs_a_token(api) -> None:
    client, tokens = api
    assert client.get("/api/v1/health").json() == {"status": "ok", "database": "ok"}
    assert client.get("/api/v1/meters").status_code == 401
    assert _get(client, "askue_wrong", "/api/v1/meters").status_code == 401
    assert _get(client, tokens["admin"], "/api/v1/meters").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "askue head-end API"


def test_readings_return_exact_values_with_both_times_and_page_by_cursor(api) -> None:
    client, tokens = api
    full = _get(client, tokens["admin"], "/api/v1/meters/e1/readings").json()
    got = [(i["obis"], i["value"], i["meter_time"], i["received_at"]) for i in full["items"]]
    want = sorted(((obis, v, DAYS[i], DAYS[i] + timedelta(seconds=5)) for (m, obis), vals in SERIES.items()
                   if m == "e1" for i, v in enumerate(vals)), key=lambda x: (x[2], x[0]))
    assert [(o, v, datetime.fromisoformat(t), datetime.fromisoformat(r)) for o, v, t, r in got] == want
    assert full["next_cursor"] is None and {i["quality"] for i in full["items"]} == {"A"}
    paged, cursor = [], None
    while True:
        params = {"limit": 5} | ({"cursor": cursor} if cursor else {})
        page = _get(client, tokens["admin"], "/api/v1/meters/e1/readings", **params).json()
        paged += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert paged == full["items"]
    ranged = _get(client, tokens["admin"], "/api/v1/meters/e1/readings", obis="1.0.1.8.1.255",
                  **{"from": "2026-03-02T00:00:00Z", "to": "2026-03-03T12:00:00Z"}).json()
    assert [i["value"] for i in ranged["items"]] == [66.0]
    assert _get(client, tokens["admin"], "/api/v1/meters/e1/readings", kind="bogus").status_code == 422
    assert _get(client, tokens["admin"], "/api/v1/meters/e1/readings", cursor="!!").status_code == 400


def test_meter_list_search_filters_and_card(api) -> None:
    client, tokens = api
    codes = lambda r: [m["code"] for m in r.json()["items"]]  # noqa: E731
    assert codes(_get(client, tokens["admin"], "/api/v1/meters")) == ["e1", "e2", "odpu1", "w1"]
    assert codes(_get(client, tokens["admin"], "/api/v1/meters", q="петров")) == ["w1"]
    assert codes(_get(client, tokens["admin"], "/api/v1/meters", balance=True)) == ["odpu1"]
    assert codes(_get(client, tokens["admin"], "/api/v1/meters", org="uk1", resource="electricity")) == ["e1", "odpu1"]
    first = _get(client, tokens["admin"], "/api/v1/meters", limit=3).json()
    rest = _get(client, tokens["admin"], "/api/v1/meters", limit=3, cursor=first["next_cursor"]).json()
    assert [m["code"] for m in first["items"] + rest["items"]] == ["e1", "e2", "odpu1", "w1"]
    card = _get(client, tokens["admin"], "/api/v1/meters/e1").json()
    assert card["serial"] == "S-E1" and card["account_code"] == "LS-1" and card["org_code"] == "uk1"
    assert card["last_contact"].startswith("2026-03-04T12:00:05")
    latest = {x["obis"]: (x["value"], x["meter_time"]) for x in card["latest"]}
    assert latest == {"1.0.1.8.0.255": (125.0, "2026-03-04T12:00:00Z"), "1.0.1.8.1.255": (75.0, "2026-03-04T12:00:00Z"),
                      "1.0.1.8.2.255": (50.0, "2026-03-04T12:00:00Z")}
    assert _get(client, tokens["admin"], "/api/v1/meters/nope").status_code == 404


@pytest.mark.storage_modes
def test_consumption_by_day_zone_and_class(api) -> None:
    client, tokens = api
    r = _get(client, tokens["admin"], "/api/v1/consumption/house/h1", **{"from": "2026-03-02", "to": "2026-03-04"})
    rows = {(i["bucket"], i["resource"], i["zone"], i["meter_class"]): i["value"] for i in r.json()["items"]}
    assert rows == {
        ("2026-03-02", "cold_water", 0, "individual"): 0.5, ("2026-03-02", "electricity", 0, "balance"): 30.0,
        ("2026-03-02", "electricity", 0, "individual"): 10.0, ("2026-03-02", "electricity", 1, "individual"): 6.0,
        ("2026-03-02", "electricity", 2, "individual"): 4.0,
        ("2026-03-03", "cold_water", 0, "individual"): 0.75, ("2026-03-03", "electricity", 0, "balance"): 60.0,
        ("2026-03-03", "electricity", 0, "individual"): 15.0, ("2026-03-03", "electricity", 1, "individual"): 9.0,
        ("2026-03-03", "electricity", 2, "individual"): 6.0,
    }
    acc = _get(client, tokens["admin"], "/api/v1/consumption/account/LS-1", granularity="month",
               resource="electricity").json()["items"]
    assert [(i["bucket"], i["zone"], i["value"]) for i in acc] == [("2026-03-01", 0, 25.0), ("2026-03-01", 1, 15.0),
                                                                   ("2026-03-01", 2, 10.0)]
    org = _get(client, tokens["admin"], "/api/v1/consumption/organisation/uk1", granularity="year",
               meter_class="individual", group="meter").json()["items"]
    assert [(i["bucket"], i["group_key"], i["zone"], i["value"]) for i in org] == [
        ("2026-01-01", "w1", 0, 1.25), ("2026-01-01", "e1", 0, 25.0), ("2026-01-01", "e1", 1, 15.0),
        ("2026-01-01", "e1", 2, 10.0)]
    # rollover of a 5-digit register: 99999 → 3 is +4, not −99996
    e2 = _get(client, tokens["admin"], "/api/v1/consumption/meter/e2", **{"from": "2026-03-02"}).json()["items"]
    assert [(i["bucket"], i["value"]) for i in e2] == [("2026-03-02", 9.0), ("2026-03-03", 4.0), ("2026-03-04", 2.0)]
    assert _get(client, tokens["admin"], "/api/v1/consumption/house/nope").status_code == 404


def test_organisation_scoped_token_sees_only_its_objects(api) -> None:
    client, tokens = api
    t = tokens["uk2"]
    assert [m["code"] for m in _get(client, t, "/api/v1/meters").json()["items"]] == ["e2"]
    for url in ("/api/v1/meters/e1", "/api/v1/meters/e1/readings", "/api/v1/meters/e1/intervals",
                "/api/v1/consumption/house/h1", "/api/v1/consumption/organisation/uk1",
                "/api/v1/consumption/account/LS-1", "/api/v1/gateways/gw1"):
        assert _get(client, t, url).status_code == 404, url
    assert _get(client, t, "/api/v1/meters/e2").status_code == 200
    assert [g["id"] for g in _get(client, t, "/api/v1/gateways").json()["items"]] == ["gw2"]
    assert [a["code"] for a in _get(client, t, "/api/v1/accounts").json()["items"]] == ["LS-9"]
    assert [s["code"] for s in _get(client, t, "/api/v1/sites").json()["items"]] == ["h2"]


def test_gateways_list(api) -> None:
    client, tokens = api
    gws = _get(client, tokens["admin"], "/api/v1/gateways").json()["items"]
    assert [(g["id"], g["online"], g["meters_known"]) for g in gws] == [("gw1", True, 3), ("gw2", True, 1)]
    assert _get(client, tokens["admin"], "/api/v1/gateways/gw1").json()["last_seen"].startswith("2026-03-04T12:00")


def test_intervals_endpoint_pages_the_load_profile(api, pg_dsn: str) -> None:
    client, tokens = api
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("INSERT INTO intervals (meter_id, obis, ts, received_at, value, period_s) "
                     "SELECT (SELECT id FROM meters WHERE code = 'e1'), '1.0.1.29.0.255', "
                     "'2026-03-01T00:00Z'::timestamptz + k * interval '30 min', '2026-03-02T00:00Z', k * 0.1, 1800 "
                     "FROM generate_series(1, 7) k")
    first = _get(client, tokens["admin"], "/api/v1/meters/e1/intervals", limit=4).json()
    rest = _get(client, tokens["admin"], "/api/v1/meters/e1/intervals", limit=4, cursor=first["next_cursor"]).json()
    items = first["items"] + rest["items"]
    assert [round(i["value"], 1) for i in items] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert items[0]["meter_time"] == "2026-03-01T00:30:00Z" and items[0]["period_s"] == 1800
    assert rest["next_cursor"] is None

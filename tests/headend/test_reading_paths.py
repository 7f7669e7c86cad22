"""The same manual readings through the three ways in — the operators' entry page, the
readings API and the billing API — end the same: the same answer per reading, the same
stored value, quality, source and reasons, the same abnormal events.

One meter with a five-digit register (capacity 100 000), ten days of gateway readings
near the top of it (10 kWh a day), then, typed by a person:
- a rollover: 99 980 → 3 (the register wrapped; accepted, VEE marks it `rollover`);
- a reverse step: 3 → 1 (refused: below the previous reading, and no rollover);
- an over-capacity value: 100 000.5 (refused: outside the register);
- an outlier: 500 where about 3 was expected (needs confirmation; stored with the reason
  `far_above_expected` once confirmed);
and then a gateway reading of 450, below the confirmed 500: VEE raises reverse_reading
against the manual baseline, identically on every path.
"""
from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

from askue.contract import DataMessage, Value
from askue.headend.api.app import create_app
from askue.headend.api.auth import create_token
from askue.headend.auth.users import create_user
from askue.headend.config import Settings
from askue.headend.ingest import merge
from askue.headend.ingest.batch import Pending
from askue.headend.registry.importer import import_file
from askue.headend.storage import hooks

MSK = ZoneInfo("Europe/Moscow")
A_PLUS = "1.0.1.8.0.255"
PASSWORD = "пароль-для-теста-1"
REGISTRY = """org_code,org_name,house_code,house_address,account,subscriber,meter_id,serial,resource,digits,multiplier,tariff_zones,gateway_id
uk1,УК Север,h1,ул. Ленина 1,LS-1,Иванов,E5,S-E5,electricity,5,1,1,gw1
"""
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
# (what, minutes before now, value, confirm): the web form takes minutes, so all times are whole minutes
CASES = [
    ("rollover", 12 * 60, 3.0, False),
    ("reverse step", 6 * 60, 1.0, False),
    ("over capacity", 5 * 60, 100000.5, False),
    ("outlier", 3 * 60, 500.0, False),
    ("outlier confirmed", 3 * 60, 500.0, True),
]
GATEWAY_AFTER = (60, 450.0)  # a gateway reading below the confirmed outlier


def _msg(values: list[Value], seq: int) -> Pending:
    p = Pending()
    p.data.append(DataMessage(v=1, gateway_id="gw1", seq=seq, sent_at=NOW, values=values))
    p.seen["gw1"] = NOW
    p.n_values = len(values)
    return p


def _reg(value: float, at: datetime) -> Value:
    return Value(meter_id="E5", obis=A_PLUS, kind="register", value=value, unit="kWh",
                 received_at=at + timedelta(seconds=5), meter_time=at)


async def _ingest(dsn: str, values: list[Value], seq: int) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    await merge.write(conn, merge.MergeContext(hooks=hooks.composed()), _msg(values, seq))
    await conn.close()


def _database(dsn: str, tmp: Path) -> dict:
    (tmp / "registry.csv").write_text(REGISTRY, encoding="utf-8")
    assert import_file(dsn, tmp / "registry.csv").errors == []
    history = [_reg(99890.0 + 10 * (10 - d), NOW - timedelta(days=d)) for d in range(10, 0, -1)]
    asyncio.run(_ingest(dsn, history, 1))
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("INSERT INTO billing_reading_windows (org_id, open_day, close_day, max_age_days, tolerance) "
                  "VALUES (NULL, 1, 28, 10, 3)")
        create_user(c, "disp", PASSWORD, "dispatcher")
        return {"api": create_token(c, "t-disp", "dispatcher"),
                "billing": create_token(c, "t-billing", "billing", ["uk1"])}


def _via_page(client: TestClient, tokens: dict, at: datetime, value: float, confirm: bool) -> str:
    page = client.get("/web/readings", params={"q": "E5"})
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    form = {"csrf": csrf, "q": "E5", "at": at.astimezone(MSK).strftime("%Y-%m-%dT%H:%M"), f"v|E5|{A_PLUS}": str(value)}
    if confirm:
        form["confirm"] = "1"
    r = client.post("/web/readings", data=form)
    item = re.search(r'<ul class="results" id="results">\s*<li class="(\w+)">', r.text)
    assert item, r.text[:500]
    return {"ok": "accepted", "confirm": "needs_confirmation", "error": "rejected"}[item.group(1)]


def _via_api(client: TestClient, tokens: dict, at: datetime, value: float, confirm: bool) -> str:
    r = client.post("/api/v1/meters/E5/readings", headers={"Authorization": f"Bearer {tokens['api']}"},
                    json={"obis": A_PLUS, "ts": at.isoformat(), "value": value, "confirm": confirm})
    if r.status_code == 201:
        return "accepted"
    detail = r.json()["detail"]
    if r.status_code == 409 and isinstance(detail, dict) and detail.get("status") == "needs_confirmation":
        return "needs_confirmation"
    assert r.status_code in (409, 422), r.text
    return "rejected"


def _via_billing(client: TestClient, tokens: dict, at: datetime, value: float, confirm: bool) -> str:
    r = client.post("/api/v1/billing/manual-readings", headers={"Authorization": f"Bearer {tokens['billing']}"},
                    params={"confirm": str(confirm).lower()}, json=[{"meter": "E5", "value": value,
                                                                     "ts": at.isoformat()}])
    assert r.status_code == 200, r.text
    return r.json()["results"][0]["status"]


PATHS = {"page": _via_page, "readings API": _via_api, "billing API": _via_billing}


def _run(pg_cluster, pg_template, tmp: Path, path: str) -> dict:
    name = f"paths_{abs(hash(path)) % 10**8}_{tmp.name[-8:]}".replace("-", "_")
    dsn = pg_cluster.create_database(name, template=pg_template)
    try:
        tokens = _database(dsn, tmp)
        answers = []
        with TestClient(create_app(Settings(dsn=dsn))) as client:
            page = client.get("/web/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            assert client.post("/web/login", data={"login": "disp", "password": PASSWORD, "csrf": token},
                               follow_redirects=False).status_code == 303
            for what, minutes, value, confirm in CASES:
                answers.append((what, PATHS[path](client, tokens, NOW - timedelta(minutes=minutes), value, confirm)))
        minutes, value = GATEWAY_AFTER
        asyncio.run(_ingest(dsn, [_reg(value, NOW - timedelta(minutes=minutes))], 2))
        with psycopg.connect(dsn) as c:
            stored = c.execute("SELECT ts, value, quality, source, reasons FROM register_readings "
                               "WHERE ts > %s ORDER BY ts", (NOW - timedelta(days=1),)).fetchall()
            events = c.execute("SELECT kind, dedup_key, state, evidence - 'meter' FROM abnormal_events "
                               "ORDER BY dedup_key").fetchall()
        return {"answers": answers, "stored": stored, "events": events}
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
def outcomes(pg_cluster, pg_template, tmp_path_factory) -> dict[str, dict]:
    return {path: _run(pg_cluster, pg_template, tmp_path_factory.mktemp(path.replace(" ", "_")), path)
            for path in PATHS}


def test_every_path_answers_each_reading_the_same(outcomes) -> None:
    expected = [("rollover", "accepted"), ("reverse step", "rejected"), ("over capacity", "rejected"),
                ("outlier", "needs_confirmation"), ("outlier confirmed", "accepted")]
    for path, o in outcomes.items():
        assert o["answers"] == expected, path


def test_every_path_stores_the_same_values_quality_and_reasons(outcomes) -> None:
    page = outcomes["page"]["stored"]
    t = {m: NOW - timedelta(minutes=m) for m in (12 * 60, 3 * 60, 60)}
    assert page == [(t[720], 3.0, "M", "manual", ["manual", "rollover"]),
                    (t[180], 500.0, "M", "manual", ["far_above_expected", "manual"]),
                    (t[60], 450.0, "A", "gateway", ["reverse_reading"])]
    for path in ("readings API", "billing API"):
        assert outcomes[path]["stored"] == page, path


def test_every_path_raises_the_same_events(outcomes) -> None:
    page = outcomes["page"]["events"]
    assert [(kind, state) for kind, _, state, _ in page] == [("reverse_reading", "open")]
    evidence = page[0][3]
    assert (evidence["previous"], evidence["current"]) == (500.0, 450.0)  # judged against the manual baseline
    for path in ("readings API", "billing API"):
        assert outcomes[path]["events"] == page, path

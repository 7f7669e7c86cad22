"""Reports over real PostgreSQL with demo-like data: rejected readings from all three places
refusals are kept (dead letters, refused manual and file readings, values VEE keeps out of
billing) read as Russian sentences; completeness, house balance, coverage and verification
compute what the data says; each organisation admin sees only its own organisation; bad
form values are answered next to their field; CSV, Excel and PDF carry the same rows."""
from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from test_web_fixtures import build
from test_web_pages import W, csrf_of, login

from askue.contract import PayloadError, decode_data
from askue.headend.api.app import create_app
from askue.headend.api.auth import create_token
from askue.headend.config import Settings
from askue.headend.ingest import merge
from askue.headend.ingest.batch import Pending


def _dead(payload: bytes) -> str:
    try:
        decode_data(payload)
    except PayloadError as e:
        return str(e)
    raise AssertionError("the payload decodes")


BAD_VALUE = (b'{"v":1,"gateway_id":"gw1","seq":9,"sent_at":"2026-03-01T00:00:00Z","values":[{"meter_id":"e1",'
             b'"obis":"1.0.1.8.0.255","kind":"register","value":"12x","unit":"kWh","received_at":"2026-03-01T00:00:00Z"}]}')
BAD_GW2 = (b'{"v":1,"gateway_id":"gw2","seq":9,"sent_at":"2026-03-01T00:00:00","values":[{"meter_id":"e2",'
           b'"obis":"1.0.1.8.0.255","kind":"register","value":1,"unit":"kWh","received_at":"2026-03-01T00:00:00Z"}]}')


async def _dead_letters(dsn: str) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    now = datetime.now(UTC)
    p = Pending(dead=[("askue/v1/gw1/data", "gw1", BAD_VALUE, _dead(BAD_VALUE)),
                      ("askue/v1/gw2/data", "gw2", BAD_GW2, _dead(BAD_GW2))], seen={"gw1": now, "gw2": now})
    await merge.write(conn, merge.MergeContext(), p)
    await conn.close()


@pytest.fixture(scope="module")
def world(pg_cluster, pg_template, tmp_path_factory):
    """One database for the module: the demo data, refusals of every kind, verification dates."""
    name = "reports_shared"
    dsn = pg_cluster.create_database(name, template=pg_template)
    try:
        facts = build(dsn, tmp_path_factory.mktemp("reports"))
        asyncio.run(_dead_letters(dsn))
        today = facts["now"].astimezone(ZoneInfo("Europe/Moscow")).date()  # the head-end counts days locally
        with psycopg.connect(dsn, autocommit=True) as c:
            tokens = {"admin": create_token(c, "t-admin", "admin"), "uk1": create_token(c, "t-uk1", "org_admin", ["uk1"]),
                      "billing": create_token(c, "1С", "billing", ["uk1"])}
            # VEE keeps these out of billing (the rules' marks, set here on stored readings)
            c.execute("UPDATE register_readings SET reasons = '{reverse_reading}' WHERE meter_id = "
                      "(SELECT id FROM meters WHERE code = 'e1') AND obis = '1.0.1.8.0.255' AND ts = "
                      "(SELECT max(ts) FROM register_readings WHERE meter_id = (SELECT id FROM meters WHERE code = 'e1'))")
            c.execute("UPDATE register_readings SET reasons = '{spike}' WHERE meter_id = "
                      "(SELECT id FROM meters WHERE code = 'hw2') AND ts = (SELECT max(ts) FROM register_readings "
                      "WHERE meter_id = (SELECT id FROM meters WHERE code = 'hw2'))")
            for code, due in (("e3", today - timedelta(days=10)), ("w1", today + timedelta(days=30)),
                              ("hw2", today + timedelta(days=5)), ("e5", None)):
                c.execute("UPDATE meters SET verification_due = %s WHERE code = %s", (due, code))
            c.execute("INSERT INTO accounts (code, org_id, site_id, flat, subscriber) SELECT 'LS-10', org_id, id, '12', "
                      "'Новиков Н.Н.' FROM sites WHERE code = 'h1'")
            c.execute("INSERT INTO meters (code, serial, resource, org_id, site_id, status, installed_at) "
                      "SELECT 'e10', 'S-E10', 'electricity', org_id, id, 'active', '2020-01-01' FROM sites WHERE code = 'h3'")
        with TestClient(create_app(Settings(dsn=dsn))) as client:
            # refused by hand: below the last reading, a typo; and through billing's API an unknown meter
            login(client, "uk1adm")
            page = client.get(W + "/readings", params={"q": "e3"})
            at = facts["now"].strftime("%Y-%m-%dT%H:%M")
            r = client.post(W + "/readings", data={"csrf": csrf_of(page.text), "q": "e3", "at": at,
                                                   "v|e3|1.0.1.8.0.255": "50", "v|e5|1.0.1.8.0.255": "12,3,4"})
            assert r.status_code == 422
            r = client.post("/api/v1/billing/manual-readings", json=[{"meter": "нет-такого", "value": 5}],
                            headers={"Authorization": f"Bearer {tokens['billing']}"})
            assert r.status_code == 200 and r.json()["results"][0]["status"] == "rejected"
            r = client.post("/api/v1/billing/80020", files={"file": ("80020_1.xml", b"<not xml", "text/xml")},
                            headers={"Authorization": f"Bearer {tokens['admin']}"})
            assert r.status_code == 422 and r.json()["detail"]["message"] == "file not accepted, nothing stored"
            client.cookies.clear()
            yield client, tokens, facts, dsn
    finally:
        pg_cluster.drop_database(name)


def _page(client: TestClient, who: str, name: str, **params):
    client.cookies.clear()
    login(client, who)
    return client.get(f"{W}/reports/{name}", params=params)


def _table(html: str, n: int = 1) -> list[list[str]]:
    body = re.search(rf'<table class="grid report" id="report-{n}">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
            for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_rejected_readings_from_every_source(world) -> None:
    client, _, facts, _ = world
    start = (facts["now"] - timedelta(days=3)).date().isoformat()
    r = _page(client, "admin", "rejected", **{"from": start})
    assert r.status_code == 200, r.text[:500]
    rows = _table(r.text)
    by = {(row[1], row[3]): row for row in rows if row[6] != "проверка достоверности (VEE)"}
    gw = by[("Шлюз", "e1")]
    assert gw[2] == "gw1" and gw[4] == "данные: значений — 1"
    assert gw[5] == "значение № 1, поле «значение»: ожидалось: число, получено: строка"
    assert gw[6] == "приём данных (проверка формата)"
    assert ("Шлюз", "e2") in by  # the admin sees uk2's gateway too
    hand = by[("Ввод вручную", "e3")]
    assert hand[2] == "uk1adm" and hand[4].startswith("50 кВт·ч, A+ Общий, на ")
    assert "меньше предыдущего" in hand[5] and hand[6] == "проверка показаний"
    typo = by[("Ввод вручную", "e5")]
    assert typo[4].startswith("«12,3,4», A+ Общий") and typo[5] == "«12,3,4» — не число"
    billing = by[("Биллинг (API)", "нет-такого")]
    assert billing[2] == "1С" and "не найден" in billing[5]
    assert [row for row in rows if row[1] == "Файл 80020"][0][5].startswith("файл не принят, ничего не сохранено")
    vee = [row for row in rows if row[6] == "проверка достоверности (VEE)"]
    assert {row[3] for row in vee} == {"e1", "hw2"}
    assert any("обратный ход" in row[5] and "в расчёт не берётся" in row[5] for row in vee)
    assert all(not re.search(r"\d+\.\d+\.\d+\.\d+\.\d+\.\d+", " ".join(row)) for row in rows), "a raw OBIS code"
    assert "Время и сутки — по часовому поясу Europe/Moscow (UTC+03:00)" in r.text

    # the organisation admin: uk1's refusals only, and its own typo without a meter of another organisation
    r = _page(client, "uk1adm", "rejected", **{"from": start})
    mine = _table(r.text)
    assert {row[3] for row in mine} >= {"e1", "e3", "e5"}
    assert not any(row[3] in ("e2", "hw2") or row[2] == "gw2" for row in mine)
    assert "нет-такого" in {row[3] for row in mine}  # uk1's billing token, uk1's business
    assert not any(row[1] == "Файл 80020" for row in mine)  # the admin's file, organisation unknown
    only = _table(_page(client, "uk1adm", "rejected", **{"from": start, "source": "vee"}).text)
    assert [row[3] for row in only] == ["e1"]


def test_completeness_balance_coverage_verification(world) -> None:
    client, _, facts, _ = world
    today = facts["now"].astimezone(ZoneInfo("Europe/Moscow")).date()  # the head-end counts days locally
    day = today - timedelta(days=3)  # e1 and e2 keep a half-hour profile for the last local days
    r = _page(client, "uk1adm", "completeness", **{"from": day.isoformat(), "to": day.isoformat()})
    rows = {row[1]: row for row in _table(r.text)}
    assert rows["ул. Ленина 1"][2:5] == ["3", "3", "100\u00a0%"]
    lenina = rows["ул. Ленина 1"]
    assert lenina[5] == "1" and lenina[6] == "24" and int(lenina[7]) > 0
    assert rows["ул. Садовая 3"][2:5] == ["2", "1", "50\u00a0%"]  # e10 sends nothing
    assert "ул. Мира 2" not in rows  # uk2's house
    r = _page(client, "disp", "completeness", **{"from": day.isoformat(), "to": day.isoformat(), "group": "gateway"})
    assert {row[1] for row in _table(r.text)} == {"gw1", "gw2", "не указан"}

    start = today - timedelta(days=20)
    end = today - timedelta(days=11)
    r = _page(client, "uk1adm", "balance", **{"from": start.isoformat(), "to": end.isoformat(),
                                              "resource": "electricity"})
    rows = {row[0]: row for row in _table(r.text)}
    lenina = rows["ул. Ленина 1"]
    # ОДПУ: 3 kWh a day × ratio 30; e1: 10 kWh a day, over the 10 days
    assert lenina[3:7] == ["900", "100", "800", "88,9\u00a0%"] and lenina[9] == "потери выше допуска"
    assert rows["ул. Садовая 3"][9] == "нет ОДПУ" and "ул. Мира 2" not in rows

    r = _page(client, "uk1adm", "coverage")
    houses = _table(r.text, 1)
    assert ["ул. Ленина 1", "УК Север", "Электроэнергия", "1", "1", "3", "1", "33,3\u00a0%"] in houses
    bare = _table(r.text, 2)
    assert bare == [["LS-10", "Новиков Н.Н.", "ул. Ленина 1", "12", "УК Север"]]
    assert "LS-9" not in r.text

    r = _page(client, "uk1adm", "verification")
    rows = _table(r.text)
    assert [(row[0], row[9]) for row in rows] == [("e3", "просрочена на 10 дн."), ("w1", "истекает через 30 дн.")]
    rows = _table(_page(client, "uk1adm", "verification", horizon="10", unknown="1").text)
    assert [(row[0], row[9]) for row in rows] == [("e3", "просрочена на 10 дн."), ("e10", "дата поверки не указана"),
                                                  ("e5", "дата поверки не указана")]
    rows = _table(_page(client, "admin", "verification").text)
    assert [row[0] for row in rows] == ["e3", "hw2", "w1"]


def test_bad_input_is_answered_next_to_the_field(world) -> None:
    client, _, _, dsn = world
    with psycopg.connect(dsn) as c:
        before = c.execute("SELECT max(id) FROM audit_log").fetchone()[0]
    for name, params, field, text in (
            ("rejected", {"from": "вчера"}, "from", "дата в виде ДД.ММ.ГГГГ"),
            ("rejected", {"from": "2026-03-10", "to": "2026-03-01"}, "to", "раньше начала"),
            ("completeness", {"from": "2024-01-01", "to": "2026-01-01"}, "to", "длиннее 366 дней"),
            ("completeness", {"group": "street"}, "group", "выберите значение из списка"),
            ("balance", {"org": "uk2"}, "org", "организация не найдена"),
            ("verification", {"horizon": "сто"}, "horizon", "целое число дней"),
            ("verification", {"horizon": "-5"}, "horizon", "от 0 до 3650"),
            ("rejected", {"source": "fax"}, "source", "выберите значение из списка"),
            ("coverage", {"resource": "steam"}, "resource", "выберите значение из списка")):
        r = _page(client, "uk1adm", name, **params)
        assert r.status_code == 422, (name, params)
        err = re.search(rf'<span class="field-error" id="err-{field}">([^<]+)</span>', r.text)
        assert err and text in err.group(1), (name, params, err)
        assert 'class="grid report"' not in r.text  # no report from a bad selection
        ex = client.get(f"{W}/reports/{name}/export", params={"format": "csv", **params})
        assert ex.status_code == 422 and f'id="err-{field}"' in ex.text
    with psycopg.connect(dsn) as c:
        done = c.execute("SELECT action FROM audit_log WHERE id > %s", (before,)).fetchall()
    assert {a for (a,) in done} == {"login"}  # nothing exported, nothing changed
    assert _page(client, "uk1adm", "nonsense").status_code == 404


def test_documents_and_api(world) -> None:
    client, tokens, facts, dsn = world
    client.cookies.clear()
    login(client, "uk1adm")
    page = client.get(f"{W}/reports/verification", params={"unknown": "1"})
    assert page.status_code == 200 and 'id="export-xlsx"' in page.text
    rows = _table(page.text)
    c = client.get(f"{W}/reports/verification/export", params={"format": "csv", "unknown": "1"})
    assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")
    assert 'filename="verification_' in c.headers["content-disposition"]
    lines = list(csv.reader(io.StringIO(c.content.decode("utf-8-sig")), delimiter=";"))
    assert lines[0] == ["Поверка: сроки истекают или истекли"]
    head = lines.index(["Прибор учёта", "Заводской №", "Модель", "Ресурс", "ЛС", "Абонент", "Адрес",
                        "Последняя поверка", "Следующая поверка", "Состояние"])
    assert [ln[0] for ln in lines[head + 1:head + 1 + len(rows)]] == [row[0] for row in rows]
    x = client.get(f"{W}/reports/completeness/export", params={"format": "xlsx"})
    ws = load_workbook(io.BytesIO(x.content)).active
    values = [[cell.value for cell in r] for r in ws.iter_rows()]
    header = next(i for i, r in enumerate(values) if r[0] == "Сутки")
    first = values[header + 1]
    assert isinstance(first[0], datetime) and isinstance(first[2], int) and isinstance(first[4], int | float)
    p = client.get(f"{W}/reports/balance/export", params={"format": "pdf"})
    assert p.content.startswith(b"%PDF") and p.headers["content-type"] == "application/pdf"
    with psycopg.connect(dsn) as conn:
        exports = conn.execute("SELECT object_id, new->>'format' FROM audit_log WHERE action = 'report_export' "
                               "AND actor = 'uk1adm' ORDER BY id").fetchall()
    assert exports == [("verification", "csv"), ("completeness", "xlsx"), ("balance", "pdf")]

    h = {"Authorization": f"Bearer {tokens['uk1']}"}
    listed = client.get("/api/v1/reports", headers=h).json()["items"]
    assert [i["name"] for i in listed] == ["rejected", "completeness", "balance", "coverage", "verification"]
    j = client.get("/api/v1/reports/coverage", headers=h).json()
    assert j["sections"][1]["rows"] == [{"account": "LS-10", "subscriber": "Новиков Н.Н.", "house": "ул. Ленина 1",
                                         "flat": "12", "org": "УК Север"}]
    bad = client.get("/api/v1/reports/balance", params={"org": "uk2"}, headers=h)
    assert bad.status_code == 422 and bad.json()["detail"]["field"] == "org"
    en = client.get("/api/v1/reports/verification", params={"lang": "en", "format": "csv"}, headers=h)
    assert en.status_code == 200 and "overdue by 10 days" in en.content.decode("utf-8-sig")

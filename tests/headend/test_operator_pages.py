"""The operators' pages of #18 over real PostgreSQL (TimescaleDB where installed): the
meter table (filters, sorting, sizes, exports), names instead of OBIS codes, the header's
counts and badges, consumption periods with ИПУ/ОДПУ and the house balance checked against
figures worked out from the fixture's readings, the meter card (period, hourly profile,
readings, history, PDF/Excel), bad input answered next to its field."""
from __future__ import annotations

import io
import re
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from test_web_fixtures import build
from test_web_pages import login

from askue.headend.api.app import create_app
from askue.headend.config import Settings

W = "/web"
OBIS = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")


@pytest.fixture
def site(pg_dsn: str, tmp_path: Path):
    facts = build(pg_dsn, tmp_path)
    with TestClient(create_app(Settings(dsn=pg_dsn))) as client:
        yield client, facts, pg_dsn


def visible_text(html: str) -> str:
    """What a person reads: no tags, no attribute values."""
    html = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def test_meter_table_lists_filters_sorts_and_pages(site) -> None:
    client, _, _ = site
    login(client, "uk1adm")
    r = client.get(f"{W}/meters")
    assert r.status_code == 200
    codes = re.findall(r'id="row-([^"]+)"', r.text)
    assert set(codes) == {"e1", "w1", "odpu1", "e3", "e4", "e9", "e5", "e6", "e7", "e8"}  # uk1 only
    text = visible_text(r.text)
    assert not OBIS.search(text), OBIS.search(text)
    assert "A+ Т1 (день)" in text and "Объём ХВС" in text and "Холодная вода" in text
    # e1: the latest reading per tariff, with its time and quality
    row = re.search(r'id="row-e1".*?</tr>', r.text, re.S).group(0)
    assert "A+ Общий" in row and "A+ Т2 (ночь)" in row and "фактическое" in row and "Иванов" in row
    # filters
    assert re.findall(r'id="row-([^"]+)"', client.get(f"{W}/meters", params={"resource": "cold_water"}).text) == ["w1"]
    assert set(re.findall(r'id="row-([^"]+)"', client.get(f"{W}/meters", params={"house": "h1"}).text)) == \
        {"e1", "w1", "odpu1"}
    assert re.findall(r'id="row-([^"]+)"', client.get(f"{W}/meters", params={"status": "decommissioned"}).text) \
        == ["e4"]
    silent = set(re.findall(r'id="row-([^"]+)"', client.get(f"{W}/meters", params={"contact": "silent"}).text))
    assert silent == {"e3", "e5", "e6", "e7", "e8"}  # silent over a day, or never heard
    ev = re.findall(r'id="row-([^"]+)"', client.get(f"{W}/meters", params={"event": "tamper"}).text)
    assert ev == ["e3"]
    assert re.findall(r'id="row-([^"]+)"', client.get(f"{W}/meters", params={"q": "Иванов"}).text) == ["e1"]
    # sorting by any column, both ways
    by_serial = re.findall(r'id="row-([^"]+)"', client.get(f"{W}/meters", params={"sort": "serial"}).text)
    assert by_serial == sorted(by_serial, key=lambda c: f"S-{c.upper()}")
    desc = re.findall(r'id="row-([^"]+)"', client.get(f"{W}/meters", params={"sort": "serial", "dir": "desc"}).text)
    assert desc == list(reversed(by_serial))
    newest_first = re.findall(r'id="row-([^"]+)"', client.get(
        f"{W}/meters", params={"sort": "contact", "dir": "desc"}).text)
    assert newest_first[0] == "e1" and newest_first[-2:] == ["e7", "e8"]  # never heard: last
    for key in ("model", "resource", "account", "subscriber", "address", "flat", "installed", "verified", "due",
                "reading", "reading_time", "quality", "contact", "events", "status"):
        assert client.get(f"{W}/meters", params={"sort": key}).status_code == 200, key
    # page size 25/50/100/all and pages
    assert client.get(f"{W}/meters", params={"size": "all"}).status_code == 200
    two = client.get(f"{W}/meters", params={"size": "25", "page": "2"})
    assert two.status_code == 200 and "no-rows" in two.text


def test_meter_table_bad_filters_get_a_message_next_to_the_field(site) -> None:
    client, _, _ = site
    login(client, "uk1adm")
    r = client.get(f"{W}/meters", params={"resource": "plutonium", "size": "7", "contact": "sometimes",
                                          "event": "earthquake", "status": "lost", "sort": "x", "page": "-1"})
    assert r.status_code == 422
    for field in ("resource", "size", "contact", "event", "status", "sort", "page"):
        assert f'id="error-{field}"' in r.text, field
    assert "25, 50, 100" in r.text and "Недопустимое значение «plutonium»" in r.text
    # the bad filters are not applied: every uk1 meter is listed
    assert len(re.findall(r'id="row-', r.text)) == 10
    # another organisation's house is not there at all
    assert client.get(f"{W}/meters", params={"house": "h2"}).status_code == 404


def test_meter_table_exports_every_filtered_row(site) -> None:
    from openpyxl import load_workbook

    client, _, _ = site
    login(client, "uk1adm")
    x = client.get(f"{W}/meter-table/export", params={"format": "xlsx", "resource": "electricity", "size": "25"})
    assert x.status_code == 200 and x.content[:2] == b"PK"
    ws = load_workbook(io.BytesIO(x.content)).active
    cells = [[c.value for c in row] for row in ws.iter_rows()]
    head = next(r for r in cells if r[0] == "№")
    assert "Заводской номер" in head and any(h.endswith("(МСК)") for h in head)  # times labelled with the zone
    data = cells[cells.index(head) + 1:]
    assert len(data) == 9  # uk1's electricity meters: odpu1 and the decommissioned e4 included
    flat = " ".join(str(c) for r in cells for c in r if c is not None)
    assert not OBIS.search(flat) and "A+ Т1 (день)" in flat and "Ресурс: Электроэнергия" in flat
    csv = client.get(f"{W}/meter-table/export", params={"format": "csv"})
    assert csv.content.startswith(b"\xef\xbb\xbf") and "S-E1" in csv.content.decode("utf-8-sig")
    assert "S-E2" not in csv.content.decode("utf-8-sig")  # uk2's meter
    pdf = client.get(f"{W}/meter-table/export", params={"format": "pdf"})
    assert pdf.content.startswith(b"%PDF")
    assert "S-E1" in pdf_text(pdf.content)


def pdf_text(body: bytes) -> str:
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(body)
    try:
        text = "\n".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()
    return re.sub(r"\s+", " ", text)  # words wrapped inside a cell read as one phrase


def test_org_admin_never_sees_another_organisations_meters(site) -> None:
    client, _, _ = site
    login(client, "uk2adm")
    r = client.get(f"{W}/meters", params={"size": "all"})
    assert set(re.findall(r'id="row-([^"]+)"', r.text)) == {"e2", "hw2"}
    assert client.get(f"{W}/meters/e1").status_code == 404
    assert client.get(f"{W}/meters/e1/export", params={"format": "pdf"}).status_code == 404
    assert "S-E1" not in client.get(f"{W}/meter-table/export", params={"format": "csv"}).content.decode("utf-8-sig")
    assert client.get(f"{W}/accounts/LS-1").status_code == 404
    assert client.get(f"{W}/", params={"house": "h1"}).status_code == 404
    assert client.get(f"{W}/meters", params={"house": "h1"}).status_code == 404


def test_header_counts_badges_and_last_login(site) -> None:
    client, _, dsn = site
    with psycopg.connect(dsn, autocommit=True) as c:  # a login before this one, from elsewhere
        c.execute("INSERT INTO audit_log (at, actor, ip, action, object_type, object_id) VALUES "
                  "(now() - interval '2 days', 'uk1adm', '10.1.2.3', 'login', 'user', 'uk1adm')")
    login(client, "uk1adm")
    r = client.get(f"{W}/meters")
    assert "Абонентов: 8" in r.text  # uk1's accounts
    assert re.search(r'id="badge-events"[^>]*>3<', r.text)  # e7, e1, e3 open in uk1
    assert re.search(r'id="badge-silent"[^>]*>5<', r.text)  # e3, e5, e6, e7, e8 (e4 is decommissioned)
    last = re.search(r'id="last-login">([^<]+)<', r.text).group(1)
    assert "10.1.2.3" in last and "Последний вход" in last
    assert "время МСК (UTC+3)" in r.text


def test_overview_month_year_range_with_balance(site) -> None:
    client, facts, _ = site
    login(client, "uk1adm")
    now = facts["now"]
    # the fixture reads once a day at 12:00 UTC: e1 10 kWh/day (T1 6, T2 4), odpu1 3 raw × 30 = 90 kWh/day
    day = (now - timedelta(days=5)).astimezone().date()
    r = client.get(f"{W}/", params={"period": "day", "value": day.isoformat(), "house": "h1"})
    assert r.status_code == 200
    table = re.search(r'id="table-electricity".*?</table>', r.text, re.S).group(0)
    cells = [visible_text(c).strip() for c in re.findall(r"<td[^>]*>.*?</td>", table, re.S)]
    assert cells[:7] == [day.strftime("%d.%m.%Y"), "10", "6", "4", "90", "80", "88,9"]
    text = visible_text(r.text)
    assert "ИПУ: Общий тариф" in text and "ОДПУ: Общий тариф" in text and "Небаланс" in text
    assert not OBIS.search(text)
    # a range of 3 days: three rows and the total
    start = day - timedelta(days=2)
    r = client.get(f"{W}/", params={"period": "range", "from": start.isoformat(), "to": day.isoformat(),
                                    "house": "h1"})
    table = re.search(r'id="table-electricity".*?</table>', r.text, re.S).group(0)
    assert len(re.findall(r"<tr>", table)) == 4 and "240" in visible_text(table.split("<tfoot>")[1])
    # a year: one row per month
    r = client.get(f"{W}/", params={"period": "year", "value": str(day.year)})
    assert r.status_code == 200
    assert len(re.findall(r"<tr>", re.search(r'id="table-electricity".*?</table>', r.text, re.S).group(0))) == 13  # head + 12 months
    # previous / next buttons
    r = client.get(f"{W}/", params={"period": "month", "value": "2026-01"})
    assert 'href="?period=month&amp;value=2025-12"' in r.text and 'href="?period=month&amp;value=2026-02"' in r.text


def test_overview_pdf_holds_chart_tables_and_readings(site) -> None:
    client, facts, _ = site
    login(client, "uk1adm")
    day = (facts["now"] - timedelta(days=5)).astimezone().date()
    r = client.get(f"{W}/overview/export", params={"format": "pdf", "period": "day", "value": day.isoformat()})
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    text = pdf_text(r.content)
    for want in ("Электроэнергия", "Небаланс", "Суммарный расход", "Показание на начало", "S-E1", "Иванов",
                 "A+ Т1 (день)", "ул. Ленина 1", "время МСК"):
        assert want in text, want
    assert not OBIS.search(text)
    x = client.get(f"{W}/overview/export", params={"format": "xlsx", "period": "month"})
    assert x.content[:2] == b"PK"


def test_periods_bad_input_gets_a_message_next_to_the_field(site) -> None:
    client, _, _ = site
    login(client, "uk1adm")
    for params, field in (({"period": "month", "value": "2026-13"}, "value"),
                          ({"period": "year", "value": "двадцать"}, "value"),
                          ({"period": "range", "from": "2026-11-10", "to": "2026-11-01"}, "to"),
                          ({"period": "range", "from": "2024-01-01", "to": "2026-01-01"}, "to"),
                          ({"period": "day", "value": "31.02.2026"}, "value"),
                          ({"period": "century"}, "period")):
        for page in ("/", "/accounts", "/meters/e1", "/accounts/LS-1"):
            r = client.get(f"{W}{page}", params=params)
            assert r.status_code == 422, (page, params)
            assert f'id="error-{field}"' in r.text, (page, params)


def test_accounts_page_periods_and_summary(site) -> None:
    client, facts, _ = site
    login(client, "uk1adm")
    day = (facts["now"] - timedelta(days=5)).astimezone().date()
    r = client.get(f"{W}/accounts", params={"period": "day", "value": day.isoformat()})
    assert r.status_code == 200
    row = re.search(r'id="acc-LS-1".*?</td></tr>', r.text, re.S).group(0)
    assert "Общий тариф:" in row and "Тариф 1:" in row and "Иванов" in row
    assert 'id="summary"' in r.text and "Балансовые ПУ (ОДПУ)" in r.text
    assert not OBIS.search(visible_text(r.text))
    r = client.get(f"{W}/accounts", params={"size": "all", "period": "year"})
    assert len(re.findall(r'id="acc-', r.text)) == 8
    x = client.get(f"{W}/accounts/export", params={"format": "xlsx", "period": "month"})
    assert x.content[:2] == b"PK"


def test_meter_card_period_profile_readings_history_and_documents(site) -> None:
    client, facts, dsn = site
    login(client, "uk1adm")
    # e1 has a half-hour profile of 0.25 kWh for the three local days before the last four
    pday = (facts["now"] - timedelta(days=3)).astimezone().date()
    r = client.get(f"{W}/meters/e1", params={"period": "day", "value": pday.isoformat()})
    assert r.status_code == 200
    prof = re.search(r'id="profile-table".*?</table>', r.text, re.S).group(0)
    hours = re.findall(r"<tr><td>(\d\d:\d\d)</td><td[^>]*>([^<]+)</td>", prof)
    assert len(hours) == 24 and {v for _, v in hours} == {"0,5"}
    text = visible_text(r.text)
    assert "Профиль A+" in text and not OBIS.search(text)
    readings = re.search(r'id="readings".*?</table>', r.text, re.S).group(0)
    assert "A+ Т1 (день)" in readings and "УСПД (шлюз)" in readings and "фактическое" in readings
    # a month: the days × hours table
    r = client.get(f"{W}/meters/e1", params={"period": "month", "value": f"{pday:%Y-%m}"})
    assert 'class="grid matrix" id="profile-table"' in r.text
    # history: registry import and a manual reading
    hist = re.search(r'id="history-table".*?</table>', r.text, re.S).group(0)
    assert "Внесён в реестр" in hist and "Установлен" in hist and "Коэффициент трансформации" in hist
    pdf = client.get(f"{W}/meters/e1/export", params={"format": "pdf", "period": "day", "value": pday.isoformat()})
    text = pdf_text(pdf.content)
    for want in ("Профиль мощности по часам", "Показания", "История прибора учёта", "УСПД (шлюз)", "S-E1"):
        assert want in text, want
    assert not OBIS.search(text)
    x = client.get(f"{W}/meters/e1/export", params={"format": "xlsx", "period": "month"})
    assert x.content[:2] == b"PK"

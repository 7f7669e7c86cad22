"""Registry pages (admin and organisation admin) on real PostgreSQL: lists scoped to the
user's organisation, forms that show a refused field beside its input and store nothing,
dated parameters, bindings and an exchange act through the page, the meter card's history."""
from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from test_web_fixtures import build
from test_web_pages import W, csrf_of, login

from askue.headend.api.app import create_app
from askue.headend.config import Settings


@pytest.fixture
def site(pg_dsn: str, tmp_path: Path):
    facts = build(pg_dsn, tmp_path)
    with TestClient(create_app(Settings(dsn=pg_dsn))) as client:
        yield client, facts, pg_dsn


def _count(dsn: str, sql: str, *args) -> int:
    with psycopg.connect(dsn) as c:
        return c.execute(sql, args).fetchone()[0]


def test_org_admin_sees_and_changes_only_their_organisation(site) -> None:
    client, _, dsn = site
    assert login(client, "uk1adm").status_code == 303
    for tab in ("meters", "houses", "accounts", "organisations", "gateways", "quarantine"):
        r = client.get(f"{W}/registry", params={"tab": tab})
        assert r.status_code == 200, tab
        assert not any(f">{c}<" in r.text for c in ("e2", "hw2", "h2", "LS-9", "uk2", "gw2")), tab
    assert ">e1<" in client.get(f"{W}/registry", params={"tab": "meters"}).text
    assert client.get(f"{W}/registry/meters/e2").status_code == 404
    assert client.get(f"{W}/registry/houses/h2").status_code == 404
    csrf = csrf_of(client.get(f"{W}/registry").text)
    before = _count(dsn, "SELECT count(*) FROM audit_log WHERE action LIKE 'registry.%%'")
    r = client.post(f"{W}/registry/meters/e2", data={"csrf": csrf, "action": "passport", "model": "x"})
    assert r.status_code == 404
    # a house in another organisation is refused on its field, in Russian
    r = client.post(f"{W}/registry/houses", data={"csrf": csrf, "code": "h-new", "org": "uk2", "address": "x"})
    assert r.status_code == 422 and "организация «uk2» не найден" in r.text
    assert _count(dsn, "SELECT count(*) FROM sites WHERE code = 'h-new'") == 0
    assert _count(dsn, "SELECT count(*) FROM audit_log WHERE action LIKE 'registry.%%'") == before
    # its own organisation: the house is created there without naming it
    r = client.post(f"{W}/registry/houses", data={"csrf": csrf, "code": "h-new", "address": "ул. Новая, 1"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert _count(dsn, "SELECT count(*) FROM sites s JOIN organisations o ON o.id = s.org_id "
                       "WHERE s.code = 'h-new' AND o.code = 'uk1'") == 1
    # creating organisations is an administrator's
    r = client.post(f"{W}/registry/organisations", data={"csrf": csrf, "code": "uk9", "name": "x"})
    assert r.status_code == 403


def test_meter_page_dated_change_binding_and_exchange(site) -> None:
    client, _, dsn = site
    login(client, "admin")
    page = client.get(f"{W}/registry/meters/e3")
    assert page.status_code == 200 and "Параметры с даты" in page.text and "Акт замены прибора учёта" in page.text
    csrf = csrf_of(page.text)
    before = _count(dsn, "SELECT count(*) FROM meter_params")
    # bad values: every refused field is marked, nothing stored
    r = client.post(f"{W}/registry/meters/e3", data={"csrf": csrf, "action": "params", "valid_from": "32.13.2026",
                                                     "ct_ratio": "-5", "digits": "шесть"})
    assert r.status_code == 422
    assert r.text.count('class="error field-error"') == 3 and "Не сохранено" in r.text
    assert _count(dsn, "SELECT count(*) FROM meter_params") == before
    r = client.post(f"{W}/registry/meters/e3", data={"csrf": csrf, "action": "params", "valid_from": "2026-11-15",
                                                     "ct_ratio": "30", "vt_ratio": "1", "comment": "замена ТТ"},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(f"{W}/registry/meters/e3").text
    assert "15.11.2026" in page and "замена ТТ" in page and "с начала учёта" in page
    params = re.search(r'id="params".*?</section>', page, re.S).group(0)
    assert re.search(r'name="ct_ratio"[^>]*value="30"', params), "the form shows the ratio as typed, not 30.0"
    # a gateway that does not exist
    r = client.post(f"{W}/registry/meters/e3", data={"csrf": csrf, "action": "bind", "gateway": "gw-nope"})
    assert r.status_code == 422 and "шлюз «gw-nope» не зарегистрирован" in r.text
    # an exchange act with a reading that is not a number, then a good one
    act = {"csrf": csrf, "action": "exchange", "at": "2026-11-20T10:00", "old_final.total": "99999",
           "new_meter.code": "e3-new", "new_meter.serial": "S-E3-NEW", "new_initial.total": "1,5"}
    r = client.post(f"{W}/registry/meters/e3", data={**act, "new_initial.total": "полтора"})
    assert r.status_code == 422 and "«полтора» — не число" in r.text
    assert _count(dsn, "SELECT count(*) FROM meters WHERE code = 'e3-new'") == 0
    r = client.post(f"{W}/registry/meters/e3", data=act, follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    card = client.get(f"{W}/meters/e3-new").text
    assert 'id="acts"' in card and "замена" in card and "e3" in card
    # the card's history («История прибора учёта») tells the act and the dated change once each
    hist = re.search(r'id="history-table".*?</table>', card, re.S).group(0)
    assert "Замена прибора учёта" in hist and "взамен прибора e3" in hist and "акт №" not in hist
    hist = re.search(r'id="history-table".*?</table>', client.get(f"{W}/meters/e3").text, re.S).group(0)
    assert hist.count("Изменение параметра") == 1 and "Ктт: — → 30" in hist and "замена ТТ" in hist
    assert "заменён прибором e3-new" in hist and "показания конечные / начальные" in hist
    assert _count(dsn, "SELECT count(*) FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                       "WHERE m.code = 'e3-new' AND r.value = 1.5") == 1


def test_english_and_quarantine_tab(site) -> None:
    client, _, dsn = site
    login(client, "admin")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("INSERT INTO quarantined_values (reason, gateway_id, gateway_code, meter_id, bound_gateway, kind, "
                  "obis, ts, ts_source, received_at, value, unit, quality) SELECT 'foreign_gateway', 'gw2', 'e1', "
                  "id, 'gw1', 'register', '1.0.1.8.0.255', now(), 'meter', now(), 5, 'kWh', 'A' FROM meters "
                  "WHERE code = 'e1'")
    r = client.get(f"{W}/registry", params={"tab": "quarantine", "lang": "en"})
    assert r.status_code == 200 and "another gateway&#39;s meter" in r.text and ">gw2<" in r.text
    csrf = csrf_of(r.text)
    r = client.post(f"{W}/registry-quarantine", data={"csrf": csrf, "action": "discard", "gateway": "gw2",
                                                      "code": "e1", "comment": ""})
    assert r.status_code == 422
    r = client.post(f"{W}/registry-quarantine", data={"csrf": csrf, "action": "discard", "gateway": "gw2",
                                                      "code": "e1", "comment": "ошибка настройки шлюза"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert _count(dsn, "SELECT count(*) FROM quarantined_values WHERE state = 'discarded'") == 1


def test_install_act_on_the_meters_tab(site) -> None:
    client, _, dsn = site
    login(client, "uk1adm")
    page = client.get(f"{W}/registry", params={"tab": "meters"})
    assert "Акт установки прибора учёта" in page.text
    csrf = csrf_of(page.text)
    act = {"csrf": csrf, "action": "install", "at": "2026-11-25T09:30", "resource": "electricity", "house": "h4",
           "gateway": "gw1", "gateway_code": "flat-9", "new_meter.code": "e-inst", "new_meter.serial": "S-INST",
           "new_meter.tariff_zones": "2", "new_initial.T1": "12,5", "new_initial.T2": "3", "document": "У-4"}
    # a reading that is not a number and a gateway that does not exist: both refused beside their inputs
    r = client.post(f"{W}/registry/meters", data={**act, "new_initial.T1": "двенадцать", "gateway": "gw-nope"})
    assert r.status_code == 422 and "«двенадцать» — не число" in r.text and "gw-nope" in r.text
    assert r.text.count('class="error field-error"') == 2
    assert _count(dsn, "SELECT count(*) FROM meters WHERE code = 'e-inst'") == 0
    r = client.post(f"{W}/registry/meters", data=act, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/registry/meters/e-inst?saved=install")
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT r.obis, r.value, r.reasons FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                         "WHERE m.code = 'e-inst' ORDER BY 1").fetchall() == [
            ("1.0.1.8.1.255", 12.5, ["install_initial"]), ("1.0.1.8.2.255", 3.0, ["install_initial"])]
        assert c.execute("SELECT b.gateway_id, b.gateway_code FROM meter_bindings b JOIN meters m ON m.id = "
                         "b.meter_id WHERE m.code = 'e-inst'").fetchall() == [("gw1", "flat-9")]


def test_card_profile_rates_each_day_by_its_multiplier(site) -> None:
    from datetime import timedelta

    client, facts, _ = site
    login(client, "admin")
    pday = (facts["now"] - timedelta(days=3)).astimezone().date()  # e1: 0.25 kWh every half-hour around it
    csrf = csrf_of(client.get(f"{W}/registry/meters/e1").text)
    r = client.post(f"{W}/registry/meters/e1", data={"csrf": csrf, "action": "params", "ct_ratio": "4",
                                                     "valid_from": (pday + timedelta(days=1)).isoformat()},
                    follow_redirects=False)
    assert r.status_code == 303
    for day, want in ((pday, "0,5"), (pday + timedelta(days=1), "2")):
        page = client.get(f"{W}/meters/e1", params={"period": "day", "value": day.isoformat()}).text
        prof = re.search(r'id="profile-table".*?</table>', page, re.S).group(0)
        assert {v for _, v in re.findall(r"<tr><td>(\d\d:\d\d)</td><td[^>]*>([^<]+)</td>", prof)} - {"—"} == {want}

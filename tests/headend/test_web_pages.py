"""Operator pages over real PostgreSQL: login with argon2 passwords, rate limiting,
every page renders with the data, events resolve and show under "show resolved",
manual readings with the expected value, exports, language switch, history."""
from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from test_web_fixtures import EXPECTED_BUCKET, PASSWORD, build

from askue.headend.api.app import create_app
from askue.headend.config import Settings

W = "/web"


@pytest.fixture
def site(pg_dsn: str, tmp_path: Path):
    facts = build(pg_dsn, tmp_path)
    with TestClient(create_app(Settings(dsn=pg_dsn))) as client:
        yield client, facts, pg_dsn


def login(client: TestClient, user: str, password: str = PASSWORD):
    page = client.get(f"{W}/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post(f"{W}/login", data={"login": user, "password": password, "csrf": token},
                       follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_pages_need_a_session_and_login_sets_one(site) -> None:
    client, _, dsn = site
    r = client.get(f"{W}/events", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"{W}/login?next=")
    assert login(client, "admin", "wrong-password").status_code == 401
    r = login(client, "admin")
    assert r.status_code == 303 and r.headers["location"] == f"{W}/"
    cookie = client.cookies.get("askue_session")
    assert cookie
    with psycopg.connect(dsn) as c:
        stored = c.execute("SELECT token_hash FROM web_sessions").fetchall()
        h = c.execute("SELECT password_hash FROM users WHERE login = 'admin'").fetchone()[0]
        actions = [a for (a,) in c.execute("SELECT action FROM audit_log WHERE actor = 'admin' ORDER BY id")]
    assert all(cookie not in s for (s,) in stored)  # only its hash is stored
    assert h.startswith("$argon2id$")
    assert actions == ["login_failed", "login"]
    assert client.get(f"{W}/").status_code == 200


def test_login_without_the_form_token_is_refused(site) -> None:
    client, _, _ = site
    r = client.post(f"{W}/login", data={"login": "admin", "password": PASSWORD, "csrf": "forged"},
                    follow_redirects=False)
    assert r.status_code == 403 and "askue_session" not in client.cookies


def test_login_rate_limit_blocks_even_the_right_password(site) -> None:
    client, _, dsn = site
    for _ in range(5):
        assert login(client, "disp", "nope-nope").status_code == 401
    r = login(client, "disp")
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "Слишком много" in r.text
    assert login(client, "admin").status_code == 303  # another login is not affected
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT count(*) FROM audit_log WHERE action = 'login_blocked' AND actor = 'disp'"
                         ).fetchone()[0] == 1


def test_overview_totals_chart_and_exports(site) -> None:
    client, facts, _ = site
    login(client, "admin")
    now = facts["now"]
    r = client.get(f"{W}/", params={"period": "year", "value": str(now.year)})
    assert r.status_code == 200
    assert 'id="chart-electricity"' in r.text and 'class="bar"' in r.text
    assert "ОДПУ" in r.text and "ИПУ" in r.text
    csv = client.get(f"{W}/overview/export", params={"format": "csv", "period": "month"})
    assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbf")
    assert "Электроэнергия" in csv.content.decode("utf-8-sig")
    pdf = client.get(f"{W}/overview/export", params={"format": "pdf", "period": "month"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    bad = client.get(f"{W}/", params={"period": "month", "value": "2026-13"})
    assert bad.status_code == 422


def test_accounts_search_paging_and_account_page(site) -> None:
    client, _, _ = site
    login(client, "admin")
    r = client.get(f"{W}/accounts", params={"q": "Иванов"})
    assert r.status_code == 200 and "LS-1" in r.text and "LS-2" not in r.text
    assert "Электроэнергия" in r.text  # consumption columns
    a = client.get(f"{W}/accounts/LS-1")
    assert a.status_code == 200 and "e1" in a.text and "Иванов" in a.text
    assert client.get(f"{W}/accounts/NOPE").status_code == 404


def test_meter_card_values_chart_and_decommissioned(site) -> None:
    client, _, _ = site
    login(client, "admin")
    r = client.get(f"{W}/meters/e1")
    assert r.status_code == 200
    assert "Меркурий 234" in r.text and "S-E1" in r.text and "10.01.2024" in r.text
    bars = re.search(r'id="meter-chart" data-bars="(\d+)"', r.text)
    assert bars and int(bars.group(1)) == 31
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([\d.]+)"', r.text)]
    assert sum(1 for h in heights if h > 0) >= 25  # one reading a day → consumption on most days
    assert "A+ Т1" in r.text and "A+ Т2" in r.text  # current values per tariff, named as operators read them
    m = client.get(f"{W}/meters/e1", params={"gran": "month"})
    assert m.status_code == 200 and 'id="meter-chart"' in m.text
    d = client.get(f"{W}/meters/e4")
    assert 'id="decommissioned"' in d.text and "снят с учёта" in d.text
    assert f'href="{W}/meters/e9"' in d.text  # its replacement


def test_map_markers_buckets_and_no_coordinates(site) -> None:
    client, _, _ = site
    login(client, "admin")
    data = client.get(f"{W}/map/data").json()
    got = {m["code"]: m["bucket"] for m in data["markers"]}
    # w1 has no coordinates of its own: it takes its house's; e4 is decommissioned
    assert got == EXPECTED_BUCKET
    assert data["without_coordinates"] == 1 and data["total"] == 11  # e9
    page = client.get(f"{W}/map")
    assert "До 30 минут" in page.text and "Отключен" in page.text and 'id="no-coords"' in page.text
    assert client.get(f"{W}/static/vendor/../../deps.py").status_code == 404


def test_events_resolve_then_listed_under_show_resolved_and_exports(site) -> None:
    client, facts, dsn = site
    login(client, "disp")
    ev = facts["events"]["rev_e1"]
    page = client.get(f"{W}/events")
    assert f'id="event-{ev}"' in page.text and "Обратный ход" in page.text
    empty = client.post(f"{W}/events/{ev}/resolve", data={"comment": " ", "csrf": csrf_of(page.text)})
    assert empty.status_code == 422
    forged = client.post(f"{W}/events/{ev}/resolve", data={"comment": "x", "csrf": "forged"})
    assert forged.status_code == 403
    r = client.post(f"{W}/events/{ev}/resolve", data={"comment": "проверено на месте", "csrf": csrf_of(page.text)},
                    follow_redirects=True)
    assert r.status_code == 200 and f'id="event-{ev}"' not in r.text and 'id="done"' in r.text
    shown = client.get(f"{W}/events", params={"show_resolved": "true"})
    assert f'id="event-{ev}"' in shown.text and "проверено на месте" in shown.text
    with psycopg.connect(dsn) as c:
        row = c.execute("SELECT actor, ip, comment FROM audit_log WHERE action = 'event_resolve'").fetchone()
    assert row[0] == "disp" and row[1] and row[2] == "проверено на месте"
    for fmt, magic in (("csv", b"\xef\xbb\xbf"), ("xlsx", b"PK"), ("pdf", b"%PDF")):
        x = client.get(f"{W}/events/export", params={"format": fmt, "show_resolved": "true"})
        assert x.status_code == 200 and x.content.startswith(magic), fmt
    en = client.get(f"{W}/events", params={"lang": "en", "kind": "tamper"})
    assert "Abnormal events" in en.text and "Tamper" in en.text and "Обратный" not in en.text


def test_viewer_cannot_resolve_or_enter_readings(site) -> None:
    client, facts, _ = site
    login(client, "viewer1")
    page = client.get(f"{W}/events")
    assert "Устранить" not in page.text
    r = client.post(f"{W}/events/{facts['events']['tamper_e3']}/resolve",
                    data={"comment": "x", "csrf": csrf_of(page.text)})
    assert r.status_code == 403


def test_manual_readings_show_expected_and_save(site) -> None:
    client, _, dsn = site
    login(client, "uk1adm")
    page = client.get(f"{W}/readings", params={"q": "e3"})
    assert page.status_code == 200
    exp = re.search(r'data-expected="([\d.]+)"', page.text)
    assert exp, "expected value beside the field"
    at = re.search(r'name="at" value="([^"]+)"', page.text).group(1)
    r = client.post(f"{W}/readings", data={"csrf": csrf_of(page.text), "q": "e3", "at": at,
                                           "v|e3|1.0.1.8.0.255": f"{float(exp.group(1)):.2f}"})
    assert r.status_code == 200 and "✓" in r.text
    with psycopg.connect(dsn) as c:
        q = c.execute("SELECT quality, source FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                      "WHERE m.code = 'e3' AND source = 'manual'").fetchall()
    assert q == [("M", "manual")]
    bad = client.post(f"{W}/readings", data={"csrf": csrf_of(page.text), "q": "e3", "at": at,
                                             "v|e3|1.0.1.8.0.255": "abc"})
    assert bad.status_code == 422


def test_gateways_users_tokens_and_history(site) -> None:
    client, _, dsn = site
    login(client, "admin")
    g = client.get(f"{W}/gateways")
    assert "gw1" in g.text and "0.3.1" in g.text and "340" in g.text
    page = client.get(f"{W}/users")
    r = client.post(f"{W}/users", data={"login": "new1", "password": "длинный-пароль", "role": "org_admin",
                                        "orgs": "uk2", "csrf": csrf_of(page.text)})
    assert r.status_code == 200 and "new1" in r.text
    short = client.post(f"{W}/users", data={"login": "new2", "password": "short", "role": "viewer",
                                            "csrf": csrf_of(page.text)})
    assert short.status_code == 422
    t = client.post(f"{W}/tokens", data={"name": "1C", "org": "uk1", "csrf": csrf_of(page.text)})
    token = re.search(r'id="new-token">([^<]+)<', t.text).group(1)
    api = client.get("/api/v1/meters", headers={"Authorization": f"Bearer {token}"}).json()
    assert {m["org_code"] for m in api["items"]} == {"uk1"}
    h = client.get(f"{W}/history", params={"actor": "admin"})
    assert "user_create" in h.text and "token_create" in h.text and "login" in h.text
    client.cookies.clear()
    assert login(client, "new1", "длинный-пароль").status_code == 303


def test_change_own_password_ends_other_sessions(site) -> None:
    client, _, dsn = site
    login(client, "viewer1")
    page = client.get(f"{W}/security")  # the form moved from «История действий» to «Безопасность»
    bad = client.post(f"{W}/security/password", data={"old": "wrong-one-1", "new": "новый-пароль-9",
                                                      "again": "новый-пароль-9", "csrf": csrf_of(page.text)})
    assert bad.status_code == 403
    with psycopg.connect(dsn) as c:  # a second session of the same user, e.g. another browser
        c.execute("INSERT INTO web_sessions (token_hash, user_id, csrf, expires_at) SELECT 'other', id, 'x', "
                  "now() + interval '1 h' FROM users WHERE login = 'viewer1'")
    ok = client.post(f"{W}/security/password", data={"old": PASSWORD, "new": "новый-пароль-9",
                                                     "again": "новый-пароль-9", "csrf": csrf_of(page.text)})
    assert ok.status_code == 200 and 'id="flash"' in ok.text and "Пароль изменён" in ok.text
    assert client.get(f"{W}/events").status_code == 200  # this session goes on
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT count(*) FROM web_sessions WHERE token_hash = 'other'").fetchone()[0] == 0
    client.cookies.clear()
    assert login(client, "viewer1").status_code == 401
    assert login(client, "viewer1", "новый-пароль-9").status_code == 303


def test_events_organisation_filter(site) -> None:
    client, facts, _ = site
    login(client, "admin")
    south = client.get(f"{W}/events", params={"org": "uk2"}).text
    assert f'id="event-{facts["events"]["nc_e2"]}"' in south and f'id="event-{facts["events"]["rev_e1"]}"' not in south
    csv = client.get(f"{W}/events/export", params={"org": "uk2", "format": "csv"}).content.decode("utf-8-sig")
    assert len(csv.strip().splitlines()) == 3  # header + org B's two events


@pytest.mark.parametrize("user", ["admin", "uk2adm", "viewer1"])
def test_every_page_renders_for_each_role_in_both_languages(site, user: str) -> None:
    client, facts, _ = site
    login(client, user)
    pages = ["/", "/?period=year", "/?period=date", "/accounts", "/accounts?q=ул", "/map", "/events",
             "/events?show_resolved=true", "/readings?q=e", "/gateways", "/history"]
    pages.append("/meters/e2" if user == "uk2adm" else "/meters/e1")
    for lang, marker in (("en", "Abnormal events"), ("ru", "Нештатные ситуации")):
        for p in pages:
            r = client.get(W + p, params={"lang": lang})
            assert r.status_code == 200, (user, lang, p, r.status_code)
            assert marker in r.text, (user, lang, p)
    users_page = client.get(W + "/users")
    assert users_page.status_code == (403 if user == "viewer1" else 200)

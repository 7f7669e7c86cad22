"""Access matrix: an organisation admin of uk1 (org A) can neither read nor change
anything of uk2 (org B), through every API endpoint (token) and every page
(session). Another organisation's object answers 404, as if it did not exist, and
lists never include it. Each denial is paired with the same request by an admin
succeeding, so a test that "passes" because the object is missing cannot pass.
A guard lists every API route: a new endpoint must be added to the matrix."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from test_web_fixtures import build
from test_web_pages import W, csrf_of, login

from askue.headend.api.app import create_app
from askue.headend.api.auth import create_token
from askue.headend.config import Settings

B_CODES = ("e2", "hw2", "LS-9", "h2", "uk2", "gw2")  # org B's meters, account, house, organisation, gateway


def _env(dsn: str, tmp: Path):
    facts = build(dsn, tmp)
    with psycopg.connect(dsn, autocommit=True) as c:
        tokens = {"A": create_token(c, "t-uk1", "org_admin", ["uk1"]), "admin": create_token(c, "t-admin", "admin"),
                  "A_billing": create_token(c, "t-uk1-billing", "billing", ["uk1"])}
        c.execute("INSERT INTO vee_thresholds (scope, name, settings, updated_by) "
                  "VALUES ('organisation', 'uk2', '{\"spike_factor\": 4}', 'test')")
        # org B's meter e2 reported another serial (held), and gw2 sent values nobody may store yet
        c.execute("UPDATE meters SET serial_hold_at = now(), serial_hold_reported = 'S-X' WHERE code = 'e2'")
        c.execute("INSERT INTO quarantined_values (reason, gateway_id, gateway_code, meter_id, kind, obis, ts, "
                  "ts_source, received_at, value, unit, quality) SELECT 'foreign_gateway', 'gw2', c, NULL, "
                  "'register', '1.0.1.8.0.255', now() - interval '2 hours', 'meter', now() - interval '2 hours', "
                  "1.0, 'kWh', 'A' FROM unnest(ARRAY['e2', 'zz-2']) AS c")
        facts["command_b"] = c.execute(
            "INSERT INTO commands (mqtt_id, gateway_id, meter_id, org_id, command, created_by, expires_at) "
            "SELECT 'hc-b', 'gw2', id, org_id, 'read_clock', 'test', now() + interval '1 hour' FROM meters "
            "WHERE code = 'e2' RETURNING id").fetchone()[0]
    return tokens, facts


@pytest.fixture(scope="module")
def shared(pg_cluster, pg_template, tmp_path_factory):
    """One database for the read-only checks (building it takes seconds)."""
    name = "access_matrix_shared"
    dsn = pg_cluster.create_database(name, template=pg_template)
    try:
        tokens, facts = _env(dsn, tmp_path_factory.mktemp("access"))
        with TestClient(create_app(Settings(dsn=dsn))) as client:
            yield client, tokens, facts, dsn
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def env(pg_dsn: str, tmp_path: Path):
    tokens, facts = _env(pg_dsn, tmp_path)
    with TestClient(create_app(Settings(dsn=pg_dsn))) as client:
        yield client, tokens, facts, pg_dsn


def fingerprint(dsn: str) -> str:
    """Everything of org B a change could touch."""
    with psycopg.connect(dsn) as c:
        parts = []
        for sql in (
            "SELECT r.* FROM register_readings r JOIN meters m ON m.id = r.meter_id WHERE m.org_id = "
            "(SELECT id FROM organisations WHERE code = 'uk2')",
            "SELECT * FROM abnormal_events WHERE org_id = (SELECT id FROM organisations WHERE code = 'uk2')",
            "SELECT i.* FROM intervals i JOIN meters m ON m.id = i.meter_id WHERE m.org_id = "
            "(SELECT id FROM organisations WHERE code = 'uk2')",
            "SELECT * FROM billing_periods", "SELECT * FROM billing_reading_windows", "SELECT * FROM vee_thresholds",
            "SELECT id, login, role, org_ids, active FROM users",
            "SELECT * FROM meters WHERE org_id = (SELECT id FROM organisations WHERE code = 'uk2')",
            "SELECT * FROM commands WHERE gateway_id = 'gw2'",
        ):
            parts.append(c.execute(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                                   f"FROM ({sql}) t").fetchone()[0])
        return ":".join(parts)


def _month(facts) -> str:
    return facts["now"].strftime("%Y-%m")


def _day(facts) -> str:
    return (facts["now"] - timedelta(days=2)).strftime("%Y-%m-%d")


def detail_requests(facts) -> list[tuple[str, str, dict]]:
    """(method, path, kwargs) of org B's objects; admin gets 2xx, org A gets 404."""
    ev = facts["events"]["nc_e2"]
    m, d = _month(facts), _day(facts)
    return [
        ("GET", "/api/v1/meters/e2", {}),
        ("GET", "/api/v1/meters/e2/readings", {}),
        ("GET", "/api/v1/meters/e2/intervals", {}),
        ("GET", "/api/v1/meters/e2/expected", {}),
        ("GET", "/api/v1/meters/e2/edits", {}),
        ("GET", "/api/v1/meters/e2/thresholds", {}),
        ("GET", "/api/v1/consumption/meter/e2", {}),
        ("GET", "/api/v1/consumption/account/LS-9", {}),
        ("GET", "/api/v1/consumption/house/h2", {}),
        ("GET", "/api/v1/consumption/organisation/uk2", {}),
        ("GET", "/api/v1/gateways/gw2", {}),
        ("GET", f"/api/v1/events/{ev}", {}),
        ("GET", f"/api/v1/billing/periods/{m}", {"params": {"org": "uk2"}}),
        ("GET", f"/api/v1/billing/80020/{d}", {"params": {"org": "uk2", "allow_incomplete": "true"}}),
        ("GET", f"/api/v1/billing/hourly/e2/{m}", {}),
        ("GET", f"/api/v1/billing/integral-template/{m}", {"params": {"org": "uk2"}}),
        ("GET", "/api/v1/billing/reading-window", {"params": {"org": "uk2"}}),
        ("GET", "/api/v1/meters/e2/history", {}),
        ("GET", "/api/v1/meters/e2/commands", {}),
        ("GET", "/api/v1/gateways/gw2/commands", {}),
        ("GET", f"/api/v1/commands/{facts['command_b']}", {}),
    ]


def change_requests(facts) -> list[tuple[str, str, dict]]:
    """Changes of org B's objects; org A gets 404 and nothing changes. Closing and
    recalculating need the billing role, so org A uses its billing token there."""
    ev = facts["events"]["spike_hw2"]
    ts = (facts["now"] - timedelta(hours=1)).isoformat()
    old_ts = (facts["now"] - timedelta(days=3)).replace(hour=12, minute=0, second=0, microsecond=0).isoformat()
    m = (facts["now"] - timedelta(days=40)).strftime("%Y-%m")
    return [
        # far above the expected value: stored only when confirmed, as on every reading path
        ("POST", "/api/v1/meters/e2/readings", {"json": {"ts": ts, "value": 500.0, "confirm": True}}),
        ("POST", "/api/v1/meters/e2/corrections", {"json": {"ts": old_ts, "value": 1.0, "reason": "test"}}),
        ("POST", f"/api/v1/events/{ev}/acknowledge", {"json": {"comment": "x"}}),
        ("POST", f"/api/v1/events/{ev}/resolve", {"json": {"comment": "x"}}),
        ("POST", f"/api/v1/billing/periods/{m}/close", {"params": {"org": "uk2"}, "as": "A_billing"}),
        ("POST", f"/api/v1/billing/periods/{m}/recalculate", {"params": {"org": "uk2"}, "as": "A_billing"}),
        ("PUT", "/api/v1/billing/reading-window", {"params": {"org": "uk2"}, "json": {"open_day": 1}}),
        ("PUT", "/api/v1/vee/thresholds", {"json": {"scope": "organisation", "name": "uk2",
                                                    "settings": {"spike_factor": 5}}}),
        # registry editing
        ("PATCH", "/api/v1/organisations/uk2", {"json": {"name": "УК Юг-2"}}),
        ("PATCH", "/api/v1/sites/h2", {"json": {"address": "ул. Мира 2а"}}),
        ("PATCH", "/api/v1/accounts/LS-9", {"json": {"phone": "+7 900 000-00-00"}}),
        ("PATCH", "/api/v1/gateways/gw2", {"json": {"name": "ТП-2а"}}),
        ("PATCH", "/api/v1/meters/e2", {"json": {"multiplier": 2, "valid_from": m + "-01"}}),
        ("POST", "/api/v1/meters/e2/confirm-serial", {"json": {"take_reported": False}}),
        ("POST", "/api/v1/quarantine/release", {"json": {"gateway": "gw2", "code": "e2"}}),
        ("POST", "/api/v1/quarantine/discard", {"json": {"gateway": "gw2", "code": "zz-2", "comment": "test"}}),
        ("POST", "/api/v1/meters/e2/binding", {"json": {"gateway": "gw2", "gateway_code": "e2-b"}}),
        ("POST", "/api/v1/meters/hw2/unbind", {"json": {}}),
        ("POST", "/api/v1/acts/removal", {"json": {"meter": "hw2", "at": ts, "old_final": {"total": 999.0}}}),
        ("POST", "/api/v1/meters/e2/commands", {"json": {"command": "relay_disconnect", "confirm": True}}),
        # a gateway-wide command is not an organisation admin's at all: refused for the role first
        ("POST", "/api/v1/gateways/gw2/commands", {"json": {"command": "reload_config"}, "expect": (403,)}),
    ]


LIST_REQUESTS = [
    ("/api/v1/meters", {}), ("/api/v1/accounts", {}), ("/api/v1/sites", {}), ("/api/v1/organisations", {}),
    ("/api/v1/gateways", {}), ("/api/v1/events", {"show_resolved": "true"}),
("/api/v1/events/export", {"format": "csv"}),
    ("/api/v1/billing/readings", {"limit": 10000}), ("/api/v1/vee/thresholds", {}),
    ("/api/v1/quarantine", {}),
    ("/api/v1/reports/completeness", {"group": "gateway"}), ("/api/v1/reports/verification", {"horizon": "3650"}),
]
# Routes not in the matrix above, with the reason.
NOT_IN_MATRIX = {
    "/api/v1/health": "no data, no auth",
    "/api/v1/billing/80020": "upload; rows of meters outside the token's organisations are rejected by billing",
    "/api/v1/billing/integral": "upload; as above",
    "/api/v1/billing/manual-readings": "checked separately below (answers per reading)",
    "/api/v1/billing/hourly/{meter}": "upload; checked separately below",
    "/api/v1/reports": "the list of reports: no organisation's data",
}

def _h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_every_api_route_is_in_the_matrix(shared) -> None:
    client, _, facts, _ = shared
    covered = ({p for _, p, _ in detail_requests(facts) + change_requests(facts)} | {p for p, _ in LIST_REQUESTS}
               | {"/api/v1/events/counts"})
    templ = {"e2": "{code}", "LS-9": "{key}", "h2": "{key}", "uk2": "{key}", "gw2": "{gateway_id}"}
    missing = []
    for path in client.app.openapi()["paths"]:
        if path in NOT_IN_MATRIX:
            continue
        import re

        pat = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")
        if not any(pat.match(c) for c in covered):
            missing.append(path)
    assert not missing, f"add these endpoints to the access matrix: {missing}"
    assert templ  # the codes above are org B's


def test_org_a_cannot_read_org_b_details(shared) -> None:
    client, tokens, facts, _ = shared
    bad = []
    for method, path, kw in detail_requests(facts):
        ok = client.request(method, path, headers=_h(tokens["admin"]), **kw)
        if ok.status_code != 200:
            bad.append((path, "admin", ok.status_code, ok.text[:200]))
        denied = client.request(method, path, headers=_h(tokens["A"]), **kw)
        if denied.status_code != 404:
            bad.append((path, "org A", denied.status_code, denied.text[:200]))
    assert bad == []


def test_org_a_lists_never_include_org_b(shared) -> None:
    client, tokens, _, _ = shared

    def b_codes(path: str, params: dict, token: str) -> set[str]:
        r = client.get(path, params=params, headers=_h(token))
        assert r.status_code == 200, (path, r.text[:300])
        text = r.text
        return {c for c in B_CODES if f'"{c}"' in text or f";{c};" in text or f",{c}," in text}

    for path, params in LIST_REQUESTS:
        assert b_codes(path, params, tokens["admin"]), f"{path}: the admin must see org B's data"
        assert b_codes(path, params, tokens["A"]) == set(), path
    counts = {who: client.get("/api/v1/events/counts", params={"show_resolved": "true"},
                              headers=_h(tokens[who])).json()["total"] for who in ("admin", "A")}
    assert counts == {"admin": 5, "A": 3}  # org B has two of the five events


def test_org_a_cannot_change_org_b(env) -> None:
    client, tokens, facts, dsn = env
    before = fingerprint(dsn)
    for method, path, kw in change_requests(facts):
        kw = dict(kw)
        who, expect = kw.pop("as", "A"), kw.pop("expect", (404,))
        r = client.request(method, path, headers=_h(tokens[who]), **kw)
        assert r.status_code in expect, (path, r.status_code, r.text[:300])
        assert fingerprint(dsn) == before, path
    for method, path, kw in change_requests(facts):  # the same requests work for an admin
        kw = {k: v for k, v in kw.items() if k not in ("as", "expect")}
        ok = client.request(method, path, headers=_h(tokens["admin"]), **kw)
        assert ok.status_code < 300, (path, ok.status_code, ok.text[:300])
    assert fingerprint(dsn) != before


def test_org_a_billing_manual_reading_for_org_b_is_refused(env) -> None:
    client, tokens, facts, dsn = env
    before = fingerprint(dsn)
    body = [{"meter": "e2", "value": 999.0, "ts": datetime.now().astimezone().isoformat()}]
    r = client.post("/api/v1/billing/manual-readings", json=body, headers=_h(tokens["A"]),
                    params={"confirm": "true"})
    assert r.status_code in (200, 404), r.text
    if r.status_code == 200:
        res = r.json()["results"][0]
        assert res.get("accepted") is not True and res.get("status") not in ("accepted", "stored"), res
    assert fingerprint(dsn) == before


def test_org_a_cannot_upload_an_hourly_profile_for_org_b(env) -> None:
    client, tokens, facts, dsn = env
    month = (facts["now"] - timedelta(days=2)).strftime("%Y-%m")
    xlsx = client.get(f"/api/v1/billing/hourly/e2/{month}", headers=_h(tokens["admin"]))
    assert xlsx.status_code == 200, xlsx.text[:300]
    before = fingerprint(dsn)
    files = {"file": ("e2.xlsx", xlsx.content, "application/octet-stream")}
    r = client.post("/api/v1/billing/hourly/e2", files=files, headers=_h(tokens["A"]))
    assert r.status_code == 404, (r.status_code, r.text[:300])
    assert fingerprint(dsn) == before
    ok = client.post("/api/v1/billing/hourly/e2", files=files, headers=_h(tokens["admin"]))
    assert ok.status_code == 200, ok.text[:300]


# ---- pages (session of uk1's organisation admin) ---------------------------------------
def test_pages_org_a_cannot_read_org_b(shared) -> None:
    client, _, facts, _ = shared
    client.cookies.clear()
    assert login(client, "uk1adm").status_code == 303
    for path in ("/meters/e2", "/meters/hw2", "/accounts/LS-9", "/history?actor=uk2adm", "/meters/e2/commands",
                 "/meters/e2/commands/block", "/meters/e2/relay", "/gateways/gw2", "/gateways/gw2/commands/block"):
        assert client.get(W + path).status_code == 404, path
    assert client.get(W + "/", params={"org": "uk2"}).status_code == 404
    assert client.get(W + "/overview/export", params={"org": "uk2", "format": "csv"}).status_code == 404
    for path, params in (("/accounts", {}), ("/map/data", {}), ("/events", {"show_resolved": "true"}),
                         ("/gateways", {}), ("/events/export", {"format": "csv", "show_resolved": "true"}),
                         ("/readings", {"q": "e"}), ("/users", {}), ("/", {"period": "year"}),
                         ("/reports/rejected", {}), ("/reports/completeness", {"group": "gateway"}),
                         ("/reports/balance", {}), ("/reports/coverage", {}),
                         ("/reports/verification", {"horizon": "3650", "unknown": "1"})):
        r = client.get(W + path, params=params)
        assert r.status_code == 200, path
        text = r.text
        leaked = [c for c in ("e2", "hw2", "LS-9", "gw2", "uk2adm", "Сидоров", "УК Юг") if
                  f">{c}<" in text or f'"{c}"' in text or f";{c};" in text or c in ("Сидоров", "УК Юг") and c in text]
        assert leaked == [], (path, leaked)
    # the same pages do show org B to an admin (the check above can fail)
    client.cookies.clear()
    login(client, "admin")
    assert "LS-9" in client.get(W + "/accounts").text and "gw2" in client.get(W + "/gateways").text
    assert ">gw2<" in client.get(W + "/reports/completeness", params={"group": "gateway"}).text
    assert ">hw2<" in client.get(W + "/reports/verification", params={"horizon": "3650"}).text
    assert "Сидоров" in client.get(W + "/accounts/LS-9").text


def test_pages_org_a_cannot_change_org_b(env) -> None:
    client, _, facts, dsn = env
    login(client, "uk1adm")
    csrf = csrf_of(client.get(W + "/events").text)
    before = fingerprint(dsn)
    r = client.post(f"{W}/events/{facts['events']['nc_e2']}/resolve", data={"comment": "x", "csrf": csrf})
    assert r.status_code == 404
    at = facts["now"].strftime("%Y-%m-%dT%H:%M")
    r = client.post(W + "/readings", data={"csrf": csrf, "q": "e2", "at": at, "v|e2|1.0.1.8.0.255": "700"})
    assert r.status_code == 422 and "не найден" in r.text  # the page says it in the operator's language
    r = client.post(W + "/users/uk2adm/active", data={"active": "false", "csrf": csrf})
    assert r.status_code == 404
    r = client.post(W + "/users", data={"login": "sneaky", "password": "длинный-пароль", "role": "viewer",
                                        "orgs": "uk2", "csrf": csrf})
    assert r.status_code == 404
    r = client.post(W + "/users", data={"login": "sneaky", "password": "длинный-пароль", "role": "admin",
                                        "csrf": csrf})
    assert r.status_code == 403
    r = client.post(W + "/tokens", data={"name": "x", "csrf": csrf})
    assert r.status_code == 403
    r = client.post(W + "/meters/e2/commands", data={"command": "relay_disconnect", "confirm": "1", "csrf": csrf})
    assert r.status_code == 404
    r = client.post(W + "/gateways/gw2/commands", data={"command": "poll_now", "csrf": csrf})
    assert r.status_code == 404
    assert fingerprint(dsn) == before


# ---- pages (session of a customer of org A, bound to LS-1 only) ---------------------------
def test_pages_a_customer_sees_only_its_account(env) -> None:
    """A customer of uk1 bound to LS-1 sees neither org B nor its own organisation's other
    accounts on the cabinet's pages and downloads, is sent away from the operators' pages,
    and changes nothing of anyone else's through the cabinet's forms."""
    import asyncio

    from askue.headend.auth.permissions import Principal
    from askue.headend.customers import accounts

    client, _, facts, dsn = env

    async def add():
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
            await accounts.create(c, Principal("uk1adm", "org_admin", frozenset(
                [(await (await c.execute("SELECT id FROM organisations WHERE code = 'uk1'")).fetchone())[0]])),
                accounts.NewCustomer("cust1", "", "", [("LS-1", "manager")], "клиент-пароль-1"))
    asyncio.run(add())
    client.cookies.clear()
    assert login(client, "cust1", "клиент-пароль-1").status_code == 303
    foreign = ("S-E2", "S-HW2", "LS-9", "Сидоров", "УК Юг", "S-W1", "LS-2", "Петров", "S-E3", "Кузнецов")
    m = _month(facts)
    for path in ("/cabinet/readings", "/cabinet/history", "/cabinet/consumption", f"/cabinet/consumption?month={m}",
                 "/cabinet/consumption?granularity=month", "/cabinet/history.xlsx", "/cabinet/consumption.xlsx",
                 "/cabinet/readings/template", "/cabinet/points/e1/profile", f"/cabinet/points/e1/profile.xlsx?month={m}"):
        r = client.get(W + path)
        assert r.status_code == 200, path
        text = r.text if "html" in r.headers["content-type"] else r.content.decode("latin-1")
        if r.content.startswith(b"PK"):
            import io

            from openpyxl import load_workbook

            wb = load_workbook(io.BytesIO(r.content), read_only=True)
            text = " ".join(str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row)
        assert [f for f in foreign if f in text] == [], path
    for path in ("/cabinet/points/e2/profile", "/cabinet/points/w1/profile", "/cabinet/points/e3/profile.xlsx",
                 "/cabinet/consumption?meter=e2", "/cabinet/history?meter=hw2"):
        assert client.get(W + path).status_code == 404, path
    for path in ("/", "/meters", "/meters/e1", "/accounts/LS-1", "/events", "/reports/rejected", "/users"):
        r = client.get(W + path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].endswith("/cabinet"), path
    csrf = csrf_of(client.get(W + "/cabinet/readings").text)
    before = fingerprint(dsn)
    r = client.post(W + "/cabinet/readings/e2", data={"csrf": csrf, "v|1.0.1.8.0.255": "700"})
    assert r.status_code == 404
    r = client.post(W + "/cabinet/points/e2/profile", data={"csrf": csrf},
                    files={"file": ("a.xlsx", b"PK\x03\x04x", "application/octet-stream")})
    assert r.status_code == 404
    assert client.post(W + "/readings", data={"csrf": csrf}).status_code == 403
    assert client.post(W + "/customers/pending/1", data={"csrf": csrf, "decision": "accept"}).status_code == 403
    assert client.post(W + "/customers/admin-requests/1", data={"csrf": csrf, "decision": "grant"}).status_code == 403
    assert fingerprint(dsn) == before

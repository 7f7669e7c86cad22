"""The head-end's HTTP surface, enumerated from the FastAPI app itself so a new endpoint
is covered the day it is added: authentication on every route but health (and the
login page), and SQL injection attempts in every path and query parameter of every GET
route, as an organisation-limited principal over a real PostgreSQL.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from askue.headend.api.app import create_app
from askue.headend.api.auth import create_token
from askue.headend.config import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "headend"))
from test_web_fixtures import PASSWORD, build  # noqa: E402  (the web tests' data set: two organisations)

OPEN = {("GET", "/api/v1/health"), ("GET", "/web/login"), ("POST", "/web/login"), ("POST", "/web/logout"),
        ("GET", "/web/static/{path:path}"), ("GET", "/"),
        # the ways into an account for someone not signed in (account security): the second factor
        # of a login in progress, and the password reset by e-mail; rate-limited, tested in
        # tests/headend/test_account_security.py
        ("POST", "/web/login/code"), ("GET", "/web/password/forgot"), ("POST", "/web/password/forgot"),
        ("GET", "/web/password/reset"), ("POST", "/web/password/reset"),
        # a customer's invitation: the token in the path is the credential (unknown → 404, used once)
        ("GET", "/web/invite/{token}"), ("POST", "/web/invite/{token}")}

INJECTIONS = [
    "' OR 1=1 --", "'; DROP TABLE meters; --", "1' OR '1'='1", '" OR ""="', "1) OR (1=1", "%' OR '%'='",
    "uk1' --", "e1' UNION SELECT * FROM api_tokens --", "%", "_", "\\", "ʼ OR 1=1 —", "Ё𝔘\u202e'", "x" * 10_000,
    "\x00", "-1", "99999999999999999999", "2026-13-45", "NaN",
]
# things only organisation uk1 has: an uk2-limited principal must never see them
UK1_MARKERS = ["S-E1", "S-W1", "S-O1", "УК Север", "Иванов", "Ленина", "7701234567", "LS-1\"", "ТП-1"]
SAMPLE_PATH = {"code": "e2", "month": "2026-03", "day": "2026-03-01", "level": "org", "key": "uk2", "meter": "e2",
               "event_id": "1", "gateway_id": "gw2", "login": "uk2adm", "path": "app.css"}


def routes(app) -> list[tuple[str, str, list[str], list[str]]]:
    """(method, path, path params, query params) of every route, nested routers included."""
    out = []

    def params(dep, kind: str) -> list[str]:  # the route's own and its dependencies' parameters
        names = [p.name for p in getattr(dep, kind)]
        for sub in dep.dependencies:
            names += [n for n in params(sub, kind) if n not in names]
        return names

    def add(methods, path, dependant) -> None:
        for m in methods:
            out.append((m, path, params(dependant, "path_params"), params(dependant, "query_params")))

    for r in app.routes:
        if isinstance(r, APIRoute):
            add(r.methods, r.path, r.dependant)
        elif hasattr(r, "effective_route_contexts"):  # FastAPI ≥ 0.160 includes routers lazily
            for c in r.effective_route_contexts():
                add(c.methods, c.path, c.dependant)
    return sorted(set((m, p, tuple(pp), tuple(q)) for m, p, pp, q in out))  # type: ignore[misc]


def fill(path: str, override: dict[str, str] | None = None) -> str:
    vals = dict(SAMPLE_PATH, **(override or {}))
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: quote(vals.get(m.group(1), "x"), safe=""), path)


@pytest.fixture(scope="module")
def site(pg_cluster, pg_template, tmp_path_factory) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    name = "security_api"
    dsn = pg_cluster.create_database(name, template=pg_template)
    try:
        build(dsn, tmp_path_factory.mktemp("site"))
        with psycopg.connect(dsn) as conn:
            tokens = {"admin": create_token(conn, "sec-admin", "admin"),
                      "uk2": create_token(conn, "sec-uk2", "org_admin", ["uk2"])}
        with TestClient(create_app(Settings(dsn=dsn)), raise_server_exceptions=False) as client:
            yield client, tokens, dsn
    finally:
        pg_cluster.drop_database(name)


def test_the_enumeration_sees_the_api_and_the_pages(site) -> None:
    client = site[0]
    paths = {p for _m, p, _pp, _q in routes(client.app)}
    assert {"/api/v1/meters", "/api/v1/events", "/api/v1/billing/80020", "/web/events"} <= paths


def test_every_endpoint_but_health_needs_authentication(site) -> None:
    client = site[0]
    checked = 0
    for method, path, _pp, _q in routes(client.app):
        if (method, path) in OPEN:
            continue
        url = fill(path)
        for headers in ({}, {"Authorization": "Bearer askue_forged"}, {"Authorization": "Basic YWRtaW46YWRtaW4="},
                        {"Cookie": "askue_session=forged"}):
            r = client.request(method, url, headers=headers, follow_redirects=False)
            if path.startswith("/web/"):
                # pages send the browser to the login form (or refuse a form post without a session)
                ok = (r.status_code == 303 and "/login" in r.headers["location"]) or r.status_code in (401, 403)
            else:
                ok = r.status_code == 401
            assert ok, f"{method} {url} with {headers or 'no credentials'} answered {r.status_code}: {r.text[:200]}"
            checked += 1
    assert checked > 100


def test_open_routes_are_only_the_expected_ones(site) -> None:
    client = site[0]
    assert client.get("/api/v1/health").status_code == 200
    # the static route serves files of its folder only
    for bad in ("..%2f..%2fconfig.py", "..%2F..%2F..%2Fpyproject.toml", "%2e%2e/%2e%2e/app.py", "../../app.py"):
        r = client.get(f"/web/static/{bad}")
        assert r.status_code in (400, 403, 404), (bad, r.status_code)
        assert "import" not in r.text and "[project]" not in r.text


def _counts(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as c:
        return {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("meters", "organisations", "register_readings", "intervals", "api_tokens", "users",
                          "abnormal_events", "gateways")}


def _web_login(client: TestClient, user: str) -> TestClient:
    page = client.get("/web/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = client.post("/web/login", data={"login": user, "password": PASSWORD, "csrf": token}, follow_redirects=False)
    assert r.status_code == 303, r.text[:300]
    return client


def test_sql_injection_in_every_get_parameter(site) -> None:
    client, tokens, dsn = site
    before = _counts(dsn)
    web = _web_login(TestClient(client.app, raise_server_exceptions=False), "uk2adm")
    failures = []
    n = 0
    for method, path, path_params, query in routes(client.app):
        if method != "GET" or (method, path) in OPEN:
            continue
        is_web = path.startswith("/web/")
        for where in [("path", p) for p in path_params] + [("query", q) for q in query]:
            for payload in INJECTIONS:
                if where[0] == "path":
                    url, params = fill(path, {where[1]: payload}), {}
                else:
                    url, params = fill(path), {where[1]: payload}
                if is_web:
                    r = web.get(url, params=params, follow_redirects=False)
                else:
                    r = client.get(url, params=params, headers={"Authorization": f"Bearer {tokens['uk2']}"})
                n += 1
                leaked = [m for m in UK1_MARKERS if m in r.text]
                if r.status_code >= 500 or leaked:
                    failures.append(f"GET {path} {where}={payload[:40]!r}: {r.status_code} {leaked} {r.text[:160]!r}")
    assert not failures, f"{len(failures)} of {n} requests failed:\n" + "\n".join(sorted(failures, key=lambda f: "x00" in f)[:40])
    assert n > 500
    assert _counts(dsn) == before
    # and an admin's unfiltered view still works: nothing was dropped or rewritten
    r = client.get("/api/v1/meters", headers={"Authorization": f"Bearer {tokens['admin']}"})
    assert r.status_code == 200 and "S-E1" in r.text

"""The customer cabinet: who sees what (every web and API route walked as a customer),
readings through the one readings service (window, 10 days, far above expected, all
zones), the organisation's confirmation, the integral and hourly files (a download loads
back unchanged; .xls too; a malformed file says where), consumption and history."""
from __future__ import annotations

import asyncio
import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from cabinet_fixtures import CUSTOMERS, FOREIGN, HOUR_KWH, PASSWORD, add_customers, previous_month
from fastapi.testclient import TestClient
from test_web_fixtures import build
from test_web_pages import W, csrf_of

from askue.headend.api.app import create_app
from askue.headend.api.auth import create_token
from askue.headend.auth.permissions import Principal
from askue.headend.billing.formats import hourly_xlsx, integral_xlsx
from askue.headend.config import Settings
from askue.headend.customers import accounts, points, profile, submit
from askue.headend.customers import consumption as cc
from askue.headend.errors import Forbidden, Invalid, NotFound
from askue.headend.readings import confirmations


@pytest.fixture(scope="module")
def db(pg_cluster, pg_template, tmp_path_factory):
    name = "cabinet_shared"
    dsn = pg_cluster.create_database(name, template=pg_template)
    try:
        facts = build(dsn, tmp_path_factory.mktemp("cabinet"))
        add_customers(dsn, facts["now"])
        yield dsn, facts
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
def app(db):
    with TestClient(create_app(Settings(dsn=db[0]))) as client:
        yield client


def run(dsn: str, fn):
    async def go():
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        try:
            return await fn(conn)
        finally:
            await conn.close()
    return asyncio.run(go())


async def principal_of(conn, login: str) -> Principal:
    row = await (await conn.execute("SELECT id, role, org_ids FROM users WHERE login = %s", (login,))).fetchone()
    return Principal(login, row[1], frozenset(row[2]), accounts=await accounts.bindings(conn, row[0]))


def session(client: TestClient, user: str, password: str = PASSWORD) -> TestClient:
    client.cookies.clear()
    page = client.get(f"{W}/login")
    r = client.post(f"{W}/login", data={"login": user, "password": password, "csrf": csrf_of(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


# ---- who sees what -----------------------------------------------------------------------------
def get_routes(app) -> list[str]:
    """Every GET path of the app: the API's from its schema, the pages' from their routers."""
    from askue.headend.web.router import router as web

    paths = [p for p, ops in app.openapi()["paths"].items() if "get" in ops]

    def walk(routes, prefix: str) -> None:
        for r in routes:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes, prefix + r.include_context.prefix)
            elif "GET" in (getattr(r, "methods", None) or ()):
                paths.append(prefix + r.path)
    walk(web.routes, "")
    return sorted(set(paths))


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)(:path)?\}", lambda m: values.get(m.group(1), "x"), path)


@pytest.mark.parametrize("customer", ["ooo", "kv2"])
def test_a_customer_sees_only_its_own_points_on_every_route(app, db, customer) -> None:
    """Every GET page and API route, asked for the customer's own objects and for another
    customer's, never shows another customer's meters, accounts, names or addresses."""
    client = session(app, customer)
    home = client.get(f"{W}/cabinet/readings")
    assert home.status_code == 200
    own = {"ooo": "S-E1", "kv2": "S-W1"}[customer]
    assert own in home.text
    checked = 0
    routes = get_routes(client.app)
    assert f"{W}/cabinet/readings" in routes and f"{W}/meters/{{code}}" in routes and "/api/v1/meters" in routes
    for path in routes:
        if path.startswith(f"{W}/static") or path.startswith(f"{W}/tiles") or path in ("/openapi.json", "/docs"):
            continue
        for target in ({"code": "e2", "gid": "gw2", "event_id": "1", "name": "rejected", "level": "meter",
                        "key": "e2", "gateway_id": "gw2", "token": "x", "path": "x", "z": "1", "x": "1", "y": "1"},
                       {"code": {"ooo": "e1", "kv2": "w1"}[customer], "level": "account", "key": "LS-9"}):
            for q in ("", "?meter=e2&account=LS-9&site=h2", "?month=" + date.today().strftime("%Y-%m")):
                url = _fill(path, target) + q
                r = client.get(url, follow_redirects=True)
                checked += 1
                body = r.content.decode("utf-8", "replace") if "html" in r.headers.get("content-type", "") or \
                    "json" in r.headers.get("content-type", "") else _xlsx_text(r.content)
                for marker in FOREIGN[customer]:
                    if marker not in url:  # what the customer typed may be echoed back; data may not
                        assert marker not in body, (path, q, marker, r.status_code)
                if path.startswith("/api/") and path != "/api/v1/health":
                    assert r.status_code in (401, 404, 405, 422), (path, r.status_code)  # no bearer token
    assert checked > 100


def _xlsx_text(data: bytes) -> str:
    if not data.startswith(b"PK"):
        return data.decode("utf-8", "replace")
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(data), read_only=True)
    return " ".join(str(v) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for v in row
                    if v is not None)


def test_customers_get_no_api_tokens_and_operator_pages_send_them_home(app, db) -> None:
    with psycopg.connect(db[0], autocommit=True) as c, pytest.raises(ValueError, match="not for API tokens"):
        create_token(c, "cust", "customer", ["uk1"])
    client = session(app, "ooo")
    r = client.get(f"{W}/meters", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/cabinet")
    assert client.post(f"{W}/readings", data={"csrf": "x"}).status_code == 403


def test_a_customer_principal_without_its_accounts_sees_nothing(db) -> None:
    p = Principal("ooo", "customer", frozenset({1}))
    assert p.scope.sql("m.org_id")[0] == "FALSE"
    assert p.scope.meters("m")[1] == [[1], []]
    got = run(db[0], lambda c: points.points(c, p))
    assert got == []


def test_roles_on_a_contract(db) -> None:
    dsn = db[0]

    async def go(c):
        buh, energ = await principal_of(c, "buh"), await principal_of(c, "energ")
        with pytest.raises(Forbidden, match="Power engineer"):
            await profile.download(c, energ, "e1", date.today())
        with pytest.raises(Forbidden):
            await submit.form(c, buh, "e1", {"1.0.1.8.1.255": "1", "1.0.1.8.2.255": "1"})
        name, body = await profile.download(c, buh, "e1", date.today())
        assert name.endswith(".xlsx") and body.startswith(b"PK")
        ooo = await principal_of(c, "ooo")
        e3 = await points.point(c, ooo, "e3")
        assert (e3.may_readings, e3.may_documents) == (False, True)  # «Бухгалтер» on LS-3
        with pytest.raises(NotFound):
            await points.point(c, ooo, "e2")  # another customer's point does not exist for it
    run(dsn, go)


# ---- readings ----------------------------------------------------------------------------------
def test_points_show_scales_previous_and_current_with_origin(db) -> None:
    async def go(c):
        return await points.points(c, await principal_of(c, "ooo"))
    pts = {p.code: p for p in run(db[0], go)}
    assert set(pts) == {"e1", "e3"}
    e1 = pts["e1"]
    assert [s.name for s in e1.scales] == ["День", "Ночь"]
    day = e1.scales[0]
    assert day.current.value - day.previous.value == pytest.approx(6.0)
    assert day.current.origin == "АСКУЭ" and day.current.status == "accepted"
    assert [s.name for s in pts["e3"].scales] == ["Круглосуточный"]


def test_the_point_list_costs_the_same_statements_for_one_point_and_for_all(db, monkeypatch) -> None:
    """A legal entity has hundreds of points: their scales are read by statements for the
    whole list, not by two per scale."""
    statements = []
    execute = psycopg.AsyncCursor.execute

    async def counted(self, query, params=None, **kw):
        statements.append(query)
        return await execute(self, query, params, **kw)

    monkeypatch.setattr(psycopg.AsyncCursor, "execute", counted)
    staff = Principal("admin", "admin", None)

    async def go(c, f):
        statements.clear()
        got = await points.points(c, staff, f)
        return got, len(statements)

    every, n_every = run(db[0], lambda c: go(c, None))
    one, n_one = run(db[0], lambda c: go(c, points.PointFilter(meter="e1")))
    assert len(every) > 5 and sum(len(p.scales) for p in every) > 10 and len(one) == 1
    # one more statement per further organisation (its reading window), none per point
    assert n_every - n_one == len({p.org_id for p in every}) - 1, (n_every, n_one)
    assert [(s.name, s.current, s.previous) for s in one[0].scales] == \
        [(s.name, s.current, s.previous) for s in next(p for p in every if p.code == "e1").scales]


def test_form_checks_every_zone_the_window_ten_days_and_the_expected_value(db) -> None:
    dsn, facts = db
    now = facts["now"]

    async def go(c):
        ooo = await principal_of(c, "ooo")
        p = await points.point(c, ooo, "e1")
        day, night = p.scales[0].current.value, p.scales[1].current.value
        # every zone is required; a malformed number says so
        r = await submit.form(c, ooo, "e1", {"1.0.1.8.1.255": str(day + 1)})
        assert r.status == "invalid" and "Ночь" in r.errors[0].message_ru
        r = await submit.form(c, ooo, "e1", {"1.0.1.8.1.255": "12,3,4", "1.0.1.8.2.255": "1"})
        assert r.status == "invalid" and "не число" in r.errors[0].message_ru
        # older than 10 days
        r = await submit.form(c, ooo, "e1", {"1.0.1.8.1.255": str(day + 1), "1.0.1.8.2.255": str(night + 1)},
                              ts=now - timedelta(days=11))
        assert r.status == "rejected" and "10" in r.problem.message_ru
        # far above the expected asks for confirmation, then goes in
        far = {"1.0.1.8.1.255": str(day + 5000), "1.0.1.8.2.255": f"{night + 1:.1f}".replace(".", ",")}
        r = await submit.form(c, ooo, "e1", far)
        assert r.status == "needs_confirmation"
        r = await submit.form(c, ooo, "e1", far, confirm=True)
        assert r.status == "stored", r.problem
        p = await points.point(c, ooo, "e1")
        assert p.scales[0].current.value == pytest.approx(day + 5000) and p.scales[0].current.origin == "потребитель"
        # a reading below the previous one (no rollover) is refused
        r = await submit.form(c, ooo, "e1", {"1.0.1.8.1.255": str(day), "1.0.1.8.2.255": str(night + 2)})
        assert r.status == "rejected" and "меньше предыдущего" in r.problem.message_ru
        # outside the reading window (from the 20th to the 5th of the next month)
        org = (await (await c.execute("SELECT org_id FROM meters WHERE code = 'e3'")).fetchone())[0]
        await c.execute("INSERT INTO billing_reading_windows (org_id, open_day, close_day, max_age_days, tolerance) "
                        "VALUES (%s, 20, 5, 10, 3)", (org,))
        try:
            kv = await principal_of(c, "ooo")
            when = datetime(now.year, now.month, 10, 12, tzinfo=UTC)
            r = await submit.form(c, await principal_of(c, "energ"), "e1",
                                  {"1.0.1.8.1.255": str(day + 6000), "1.0.1.8.2.255": str(night + 3)},
                                  ts=when - timedelta(hours=1), now=when)
            assert r.status == "rejected" and "закрыт" in r.problem.message_ru
            assert kv.is_customer
        finally:
            await c.execute("DELETE FROM billing_reading_windows WHERE org_id = %s", (org,))
        rows = await (await c.execute(
            "SELECT r.reasons, r.source FROM register_readings r JOIN meters m ON m.id = r.meter_id "
            "WHERE m.code = 'e1' AND r.quality = 'M'")).fetchall()
        assert rows and all("consumer_reported" in rs for rs, _ in rows)
    run(dsn, go)


def test_the_organisation_confirms_or_rejects_and_the_customer_sees_it(db) -> None:
    dsn = db[0]

    async def go(c):
        kv = await principal_of(c, "kv2")
        uk1adm = Principal("uk1adm", "org_admin", frozenset(
            [(await (await c.execute("SELECT id FROM organisations WHERE code = 'uk1'")).fetchone())[0]]))
        org = next(iter(uk1adm.org_ids))
        await confirmations.set_required(c, uk1adm, org, True)
        try:
            p = await points.point(c, kv, "w1")
            prev = p.scales[0].current.value
            r = await submit.form(c, kv, "w1", {p.scales[0].obis: str(prev + 1)})
            assert r.status == "pending"
            p = await points.point(c, kv, "w1")
            assert (p.status, p.scales[0].current.status, p.scales[0].previous.value) == ("pending", "pending", prev)
            stored = await (await c.execute("SELECT count(*) FROM register_readings r JOIN meters m ON m.id = "
                                            "r.meter_id WHERE m.code = 'w1' AND r.quality = 'M'")).fetchone()
            assert stored[0] == 0  # nothing counts before the organisation confirms
            (item,) = await confirmations.pending(c, uk1adm)
            south_admin = Principal("uk2adm", "org_admin", frozenset({org + 1000}))
            with pytest.raises(NotFound):
                await confirmations.decide(c, south_admin, item["id"], False, "чужое")
            with pytest.raises(Invalid, match="say why"):
                await confirmations.decide(c, uk1adm, item["id"], False, "")
            await confirmations.decide(c, uk1adm, item["id"], False, "показание не совпадает с фото")
            p = await points.point(c, kv, "w1")
            assert p.status == "rejected" and p.scales[0].current.reason == "показание не совпадает с фото"
            r = await submit.form(c, kv, "w1", {p.scales[0].obis: str(prev + 0.5)})
            (item,) = await confirmations.pending(c, uk1adm)
            await confirmations.decide(c, uk1adm, item["id"], True)
            p = await points.point(c, kv, "w1")
            assert p.scales[0].current.status == "accepted" and p.scales[0].current.value == pytest.approx(prev + 0.5)
            assert p.scales[0].current.origin == "потребитель"
        finally:
            await confirmations.set_required(c, uk1adm, org, False)
    run(dsn, go)


# ---- files -------------------------------------------------------------------------------------
def test_integral_template_loads_back_unchanged_and_filled_in_also_as_xls(db) -> None:
    dsn = db[0]

    async def go(c):
        energ = await principal_of(c, "energ")
        _, body = await submit.template(c, energ, "LS-1")
        rows = integral_xlsx.read_integral_xlsx(body)
        assert [(r.reading.meter_number, r.reading.zone) for r in rows] == [("S-E1", "День"), ("S-E1", "Ночь")]
        p = await points.point(c, energ, "e1")
        assert [float(r.reading.previous) for r in rows] == [s.current.value for s in p.scales]
        # the download as it is: nothing to store, nothing wrong, nothing changed
        before = await (await c.execute("SELECT count(*) FROM register_readings")).fetchone()
        res = await submit.upload(c, energ, body)
        assert res.issues == [] and {r.status for r in res.rows} == {"empty"}
        assert await (await c.execute("SELECT count(*) FROM register_readings")).fetchone() == before
        # filled in, saved by Excel 97-2003 (.xls, written by xlwt)
        import xlwt

        book = xlwt.Workbook()
        ws = book.add_sheet("Показания")
        for ci, (_, head) in enumerate(integral_xlsx.COLUMNS):
            ws.write(0, ci, head)
        for ri, (r, s) in enumerate(zip(rows, p.scales, strict=True), start=1):
            for ci, v in enumerate([r.reading.object_code, r.reading.object_name, "Ожидание", "S-E1", "LS-1", "А+",
                                    r.reading.zone, s.current.value, s.current.value + 1.5]):
                ws.write(ri, ci, v)
        buf = io.BytesIO()
        book.save(buf)
        res = await submit.upload(c, energ, buf.getvalue(), confirm=True)
        assert res.issues == [] and [r.status for r in res.rows] == ["ok", "ok"], [r.issues for r in res.rows]
        p2 = await points.point(c, energ, "e1")
        assert [s.current.value for s in p2.scales] == [s.current.value + 1.5 for s in p.scales]
        # a malformed file: not a workbook; a row with a bad number; another customer's meter
        res = await submit.upload(c, energ, b"meter;value\n1;2\n")
        assert res.issues and "not an xlsx or xls" in res.issues[0].what
        bad = integral_xlsx.write_integral_xlsx([
            integral_xlsx.IntegralRow("S-E1", "A+", "День", current=None),
            integral_xlsx.IntegralRow("S-E2", "A+", "Круглосуточный", current=Decimal("999"))])
        res = await submit.upload(c, energ, bad)
        assert [r.status for r in res.rows] == ["empty", "error"]
        assert "not found" in res.rows[1].message
    run(dsn, go)


def test_hourly_download_loads_back_unchanged_and_a_bad_act_says_where(db) -> None:
    dsn, facts = db

    async def go(c):
        ooo = await principal_of(c, "ooo")
        from askue.headend.storage import meta

        month = previous_month(facts["now"].astimezone(await meta.timezone(c)).date())
        mp = await profile.month(c, ooo, "e1", month)
        assert len(mp.profile.values) == 24 * len(mp.profile.days())
        assert set(mp.profile.values.values()) == {Decimal(str(HOUR_KWH))}  # «без КТ»: the meter's own
        name, body = await profile.download(c, ooo, "e1", month)
        back = hourly_xlsx.read_hourly_xlsx(body)
        assert back.month == month and back.values == mp.profile.values
        before = await (await c.execute("SELECT md5(string_agg(i::text, '|' ORDER BY ts)) FROM intervals i "
                                        "JOIN meters m ON m.id = i.meter_id WHERE m.code = 'e1'")).fetchone()
        res = await profile.upload(c, ooo, "e1", body)
        assert res.ok and res.report.inserted == 0 and res.report.kept_existing == len(mp.profile.values)
        after = await (await c.execute("SELECT md5(string_agg(i::text, '|' ORDER BY ts)) FROM intervals i "
                                       "JOIN meters m ON m.id = i.meter_id WHERE m.code = 'e1'")).fetchone()
        assert after == before
        # a malformed act: a text in a cell, a missing hour row
        from openpyxl import load_workbook

        wb = load_workbook(io.BytesIO(body))
        ws = wb.active
        ws["C5"] = "много"
        ws.delete_rows(10)
        buf = io.BytesIO()
        wb.save(buf)
        res = await profile.upload(c, ooo, "e1", buf.getvalue())
        assert not res.ok and res.issues and any("C5" in i.where or "row" in i.where for i in res.issues)
        with pytest.raises(NotFound):
            await profile.upload(c, ooo, "e2", body)
    run(dsn, go)


# ---- consumption and history -------------------------------------------------------------------
def test_consumption_integral_interval_delta_multiplier_and_losses(db) -> None:
    dsn, facts = db

    async def go(c):
        ooo = await principal_of(c, "ooo")
        from askue.headend.storage import meta

        month = previous_month(facts["now"].astimezone(await meta.timezone(c)).date())
        nxt = (month + timedelta(days=32)).replace(day=1)
        pc = await cc.of_point(c, ooo, "e1", "day", month, nxt)
        full = [f for f in pc.figures if f.interval is not None and f.integral is not None]
        assert full
        for f in full:
            assert f.interval == pytest.approx(24 * HOUR_KWH * 20)  # × «Расчётный коэф.» 20
            assert f.losses == pytest.approx(f.integral * 0.05)
            assert f.with_losses == pytest.approx(f.integral * 1.05)
            assert f.delta == pytest.approx(f.integral - f.interval)
        # the integral per day: (6 + 4) kWh per day over both zones × 20, on days with readings on both sides
        assert any(f.integral == pytest.approx(200.0) for f in full)
        pm = await cc.of_point(c, ooo, "e1", "month", date(month.year, 1, 1), date(month.year + 1, 1, 1))
        assert len(pm.figures) == 12
    run(dsn, go)


def test_interval_consumption_follows_a_multiplier_changed_mid_month(db) -> None:
    """A CT change dated the 16th: «Расход интервальный» rates the days before it ×20 and the
    days from it ×40, as the integral consumption does (dated parameters); rolled back after."""
    dsn, facts = db

    async def go(c):
        from askue.headend.registry import meters as registry_meters
        from askue.headend.storage import meta

        ooo = await principal_of(c, "ooo")
        month = previous_month(facts["now"].astimezone(await meta.timezone(c)).date())
        nxt = (month + timedelta(days=32)).replace(day=1)
        change = month.replace(day=16)
        async with c.transaction(force_rollback=True):
            cur = await c.execute("SELECT * FROM meters WHERE code = 'e1'")
            cols = [d.name for d in cur.description]
            meter = dict(zip(cols, await cur.fetchone(), strict=True))
            assert await registry_meters.change_params(c, "test", meter, {"multiplier": 40.0}, change)
            pc = await cc.of_point(c, ooo, "e1", "day", month, nxt)
            full = {f.bucket: f.interval for f in pc.figures if f.interval is not None}
            before = [v for d, v in full.items() if d < change]
            after = [v for d, v in full.items() if d >= change]
            assert before and after, full
            assert all(v == pytest.approx(24 * HOUR_KWH * 20) for v in before)
            assert all(v == pytest.approx(24 * HOUR_KWH * 40) for v in after)
    run(dsn, go)


def test_pages_history_and_downloads(app, db) -> None:
    client = session(app, "ooo")
    r = client.get(f"{W}/cabinet/history")
    assert r.status_code == 200 and "АСКУЭ" in r.text and "S-E1" in r.text
    x = client.get(f"{W}/cabinet/history.xlsx")
    assert x.status_code == 200 and x.content.startswith(b"PK")
    text = _xlsx_text(x.content)
    assert "История показаний" in text and "S-E1" in text
    x = client.get(f"{W}/cabinet/consumption.xlsx?meter=e1")
    assert x.status_code == 200 and "Расход интервальный" in _xlsx_text(x.content)
    assert client.get(f"{W}/cabinet/history?start=2026-13-01").status_code == 422
    assert client.get(f"{W}/cabinet/consumption?meter=e2").status_code == 404
    r = client.get(f"{W}/cabinet/readings?status=pending")
    assert r.status_code == 200
    r = client.get(f"{W}/cabinet/readings?lang=en")
    assert r.status_code == 200 and "Previous reading" in r.text and "Day" in r.text and "metering system" in r.text
    r = client.get(f"{W}/cabinet/readings?lang=ru")
    assert "Расход интерв." in r.text
    session(app, "energ")
    assert client.get(f"{W}/cabinet/history.xlsx").status_code == 403  # «Энергетик»: no downloads


def test_the_org_admin_creates_and_imports_customers_and_an_invitation_sets_the_password(app, db) -> None:
    from test_web_fixtures import PASSWORD as STAFF

    client = session(app, "uk1adm", STAFF)
    page = client.get(f"{W}/customers")
    assert page.status_code == 200 and "ooo" in page.text and "south" not in page.text
    r = client.post(f"{W}/customers", data={"csrf": csrf_of(page.text), "login": "new-kv", "name": "Новый",
                                            "account_codes": "LS-5", "duty": "manager", "password": ""})
    assert r.status_code == 200
    link = re.search(r'id="invite-link">([^<]+)<', r.text).group(1)
    r = client.post(f"{W}/customers", data={"csrf": csrf_of(page.text), "login": "thief", "account_codes": "LS-9",
                                            "duty": "manager", "password": "длинный-пароль"})
    assert r.status_code == 422 and "LS-9" in r.text  # another organisation's account does not exist
    csv_text = ("логин;имя;e-mail;лицевой счёт;роль;пароль\n"
                "imp1;ООО Импорт;imp@example.ru;LS-6;Энергетик;лесной-ветер-42\n"
                "imp1;ООО Импорт;;LS-7;Бухгалтер;\nimp2;;;LS-9;Руководитель;\nimp3;;;LS-8;Директор;\n"
                "south;;;LS-8;Руководитель;\n")
    r = client.post(f"{W}/customers/import", data={"csrf": csrf_of(page.text)},
                    files={"file": ("c.csv", csv_text.encode(), "text/csv")})
    assert r.status_code == 200
    rows = re.findall(r'<tr class="(ok|error)"><td>(\d+)</td>', r.text)
    # another organisation's account does not exist; nor may uk1 bind its account to uk2's customer
    assert rows == [("ok", "2"), ("ok", "3"), ("error", "4"), ("error", "5"), ("error", "6")]
    client.cookies.clear()
    token = link.rsplit("/", 1)[1]
    assert client.get(f"{W}/invite/{token}x").status_code == 404
    assert "new-kv" in client.get(f"{W}/invite/{token}").text
    r = client.post(f"{W}/invite/{token}", data={"password": "короткий", "password2": "другой"})
    assert r.status_code == 422
    r = client.post(f"{W}/invite/{token}", data={"password": "новый-пароль-1", "password2": "новый-пароль-1"})
    assert r.status_code == 422 and "имя" in r.text  # the password policy of every login: not the name «Новый»
    r = client.post(f"{W}/invite/{token}", data={"password": "зелёный-чайник-7", "password2": "зелёный-чайник-7"})
    assert r.status_code == 200 and "new-kv" in r.text
    assert client.post(f"{W}/invite/{token}", data={"password": "синий-чайник-8",
                                                    "password2": "синий-чайник-8"}).status_code == 404
    with psycopg.connect(db[0]) as c:  # the e-mail a password reset goes to
        assert c.execute("SELECT email FROM users WHERE login = 'imp1'").fetchone() == ("imp@example.ru",)
    session(app, "new-kv", "зелёный-чайник-7")
    assert "S-E5" in client.get(f"{W}/cabinet/readings").text
    for login in CUSTOMERS:
        assert login  # the fixture's customers are untouched by the import


def test_customers_import_from_the_command_line(db, tmp_path, capsys) -> None:
    from askue.cli import main

    f = tmp_path / "customers.csv"
    f.write_text("login,name,account,role,password\ncli-kv,Иванов,LS-6,Руководитель,\n"
                 "cli-x,,LS-404,Руководитель,\n", encoding="cp1251")
    rc = main(["headend", "--dsn", db[0], "customers", "import", str(f), "--org", "uk1",
               "--invite-base", "https://askue.example/web"])
    out = capsys.readouterr().out
    assert rc == 1 and "row 2: cli-kv: ok" in out and "https://askue.example/web/invite/" in out
    assert "row 3: cli-x: error: лицевой счёт LS-404 не найден" in out
    with psycopg.connect(db[0]) as c:
        assert c.execute("SELECT role FROM users WHERE login = 'cli-kv'").fetchone() == ("customer",)

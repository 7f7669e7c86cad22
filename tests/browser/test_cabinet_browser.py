"""The customer cabinet in headless Chromium, driven as a legal entity («ООО», with a
«Руководитель» contract and a «Бухгалтер» one) and as a household, against a real
head-end (uvicorn) on real PostgreSQL: readings by the form and by the integral
template, the hourly profile and its act, consumption, history and every download; the
УК admin rejects a household's reading and the household sees why. Negative cases:
another customer's point, a reading older than 10 days and outside the window, malformed
files. Screenshots (the 1366×768 viewport) go to test-artifacts/screenshots/, and with
ASKUE_UPDATE_SCREENSHOTS=1 also to docs/screenshots/ for docs/customers.md (tests/browser/shots.py)."""
from __future__ import annotations

import io
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "headend")]
import shots  # noqa: E402
from cabinet_fixtures import PASSWORD, add_customers, previous_month  # noqa: E402
from test_operator_browser import W, _Server, browser  # noqa: E402, F401  (browser: a fixture)
from test_web_fixtures import PASSWORD as STAFF_PASSWORD  # noqa: E402
from test_web_fixtures import build  # noqa: E402


def shot(pg, name: str) -> None:
    shots.shot(pg, name, full_page=False)


@pytest.fixture(scope="module")
def cabinet(pg_cluster, pg_template, tmp_path_factory):
    name = "cabinet_browser"
    dsn = pg_cluster.create_database(name, template=pg_template)
    try:
        with ThreadPoolExecutor(1) as ex:  # Playwright's sync API keeps a loop in this thread
            facts = ex.submit(build, dsn, tmp_path_factory.mktemp("cab")).result()
            ex.submit(add_customers, dsn, facts["now"]).result()
        with _Server(dsn) as url:
            yield url, dsn, facts
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture
def page(browser):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU", accept_downloads=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # the negative cases answer 404/409/422 on purpose; anything else in the console fails the test
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error"
          and not any(f"status of {s}" in m.text for s in (404, 409, 422)) else None)
    try:
        yield pg
    finally:
        ctx.close()
    assert errors == [], errors


def log_in(pg, url: str, user: str, password: str = PASSWORD) -> None:
    pg.goto(f"{url}/login")
    pg.fill("input[name=login]", user)
    pg.fill("input[name=password]", password)
    pg.click("button[type=submit]")


def download(pg, selector: str) -> bytes:
    with pg.expect_download() as d:
        pg.click(selector)
    return Path(d.value.path()).read_bytes()


def test_legal_entity(cabinet, page, tmp_path) -> None:
    url, dsn, facts = cabinet
    log_in(page, url, "ooo")
    page.wait_for_url("**/cabinet/readings")
    assert page.locator("section.point").count() == 2  # e1 and e3, nothing of anyone else
    assert "S-E2" not in page.content()
    shot(page, "cabinet_01_readings")

    # filter by contract: LS-3 only, where «Бухгалтер» cannot hand readings over
    page.select_option("select[name=account]", "LS-3")
    with page.expect_navigation():  # the form posts; read the answer, not the old page
        page.click("#filters button")
    assert page.locator("section.point").count() == 1
    assert "не даёт передавать показания" in page.locator("#point-e3").inner_text()

    # the form: every zone, a reading older than 10 days is refused, then a good one is saved
    page.goto(f"{url}/cabinet/readings?account=LS-1")
    e1 = page.locator("#point-e1")
    cur = [float(x.get_attribute("value") or 0) for x in e1.locator("input[name^='v|']").all()]
    assert len(cur) == 2
    day_now = e1.locator("tr[data-obis='1.0.1.8.1.255'] td").nth(2).inner_text()
    base_day = float(day_now.replace("\u00a0", "").replace(" ", "").replace(",", "."))
    base_night = float(e1.locator("tr[data-obis='1.0.1.8.2.255'] td").nth(2).inner_text()
                       .replace("\u00a0", "").replace(" ", "").replace(",", "."))
    e1.locator("input[name='v|1.0.1.8.1.255']").fill(f"{base_day + 3:.2f}".replace(".", ","))
    with page.expect_navigation():
        e1.locator("button", has_text="Передать показания").click()
    assert "«Ночь»: заполните поле" in page.locator("#form-errors").inner_text()
    e1 = page.locator("#point-e1")
    e1.locator("input[name='v|1.0.1.8.2.255']").fill(f"{base_night + 2:.2f}")
    old = (datetime.now() - timedelta(days=11)).strftime("%Y-%m-%dT%H:%M")
    e1.locator("input[name=at]").fill(old)
    with page.expect_navigation():
        e1.locator("button", has_text="Передать показания").click()
    assert "более 10 дней назад" in page.locator("#form-result").inner_text()
    e1 = page.locator("#point-e1")
    e1.locator("input[name=at]").fill("")
    with page.expect_navigation():
        e1.locator("button", has_text="Передать показания").click()
    assert page.locator("#form-result").inner_text() == "Показания сохранены"
    assert "потребитель" in page.locator("#point-e1 tr[data-obis='1.0.1.8.1.255']").inner_text()
    shot(page, "cabinet_02_readings_saved")

    # the integral template: download, fill in, upload; then a malformed file
    page.goto(f"{url}/cabinet/readings?account=LS-1")
    body = download(page, "#template-link")
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(body))
    ws = wb.active
    for r in range(2, ws.max_row + 1):
        ws.cell(row=r, column=9, value=float(ws.cell(row=r, column=8).value) + 1.25)
    ws.cell(row=3, column=9, value="двенадцать")
    filled = tmp_path / "integral.xlsx"
    wb.save(filled)
    page.set_input_files("#integral-upload input[type=file]", str(filled))
    with page.expect_navigation():
        page.click("#integral-upload button")
    rows = page.locator("#upload-rows tbody tr")
    assert rows.count() == 2
    assert "не показание" in rows.nth(1).inner_text() and "12345,67" in rows.nth(1).inner_text()  # beside the row
    assert "не сохранено" in rows.nth(0).inner_text() or "accepted" not in rows.nth(0).inner_text()
    shot(page, "cabinet_03_upload_errors")
    (tmp_path / "bad.xlsx").write_bytes(b"meter;value\n1;2\n")
    page.set_input_files("#integral-upload input[type=file]", str(tmp_path / "bad.xlsx"))
    with page.expect_navigation():
        page.click("#integral-upload button")
    assert "Файл не принят" in page.locator("#upload-result").inner_text()

    # the hourly profile of the previous month: chart, table, download, the act loads back unchanged
    month = previous_month(facts["now"].date())
    page.goto(f"{url}/cabinet/points/e1/profile?month={month:%Y-%m}")
    assert page.locator("#profile-chart rect.bar").count() >= 28
    assert page.locator("#profile-table tbody tr").count() == 24
    assert page.locator("#profile-table thead th").first.inner_text() == "Время"
    shot(page, "cabinet_04_profile_month")
    act = download(page, "#profile-download")
    (tmp_path / "act.xlsx").write_bytes(act)
    page.set_input_files("section.upload input[type=file]", str(tmp_path / "act.xlsx"))
    with page.expect_navigation():
        page.click("section.upload button")
    assert "сохранено новых 0" in page.locator("#profile-result").inner_text()
    wb = load_workbook(io.BytesIO(act))
    wb.active["B3"] = "-5"
    wb.save(tmp_path / "act_bad.xlsx")
    page.set_input_files("section.upload input[type=file]", str(tmp_path / "act_bad.xlsx"))
    with page.expect_navigation():
        page.click("section.upload button")
    assert page.locator("#profile-issues tbody tr").count() >= 1
    assert "B3" in page.locator("#profile-issues").inner_text()
    shot(page, "cabinet_05_profile_act_errors")
    page.goto(f"{url}/cabinet/points/e1/profile?day={month:%Y-%m}-15")
    assert page.locator("#profile-table tbody tr").count() == 24
    shot(page, "cabinet_06_profile_day")

    # another customer's point does not exist for this one
    r = page.goto(f"{url}/cabinet/points/e2/profile")
    assert r.status == 404 and "не найдена" in page.content()

    # consumption by day with Расход / Расход интервальный / Дельта, and its Excel
    page.goto(f"{url}/cabinet/consumption?meter=e1&granularity=day&month={month:%Y-%m}")
    sec = page.locator("#consumption-e1")
    assert "Расчётный коэф. 20" in sec.inner_text() and "Потери 5 %" in sec.inner_text()
    assert sec.locator("svg rect.bar").count() > 10
    shot(page, "cabinet_07_consumption")
    xl = download(page, "#consumption-download")
    assert xl.startswith(b"PK")

    # history with source and status, and its Excel
    page.goto(f"{url}/cabinet/history?meter=e1")
    text = page.locator("#history").inner_text()
    assert "потребитель" in text and "АСКУЭ" in text and "Принято" in text
    shot(page, "cabinet_08_history")
    assert download(page, "#history-download").startswith(b"PK")


def test_household_and_the_organisation_confirms(cabinet, browser) -> None:  # noqa: F811
    url, dsn, facts = cabinet
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("INSERT INTO customer_settings (org_id, confirm_readings) "
                  "SELECT id, true FROM organisations WHERE code = 'uk1' "
                  "ON CONFLICT (org_id) DO UPDATE SET confirm_readings = true")
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    home, uk = ctx.new_page(), browser.new_context(viewport={"width": 1366, "height": 768}).new_page()
    try:
        log_in(home, url, "kv2")
        home.wait_for_url("**/cabinet/readings")
        w1 = home.locator("#point-w1")
        assert w1.locator("tr[data-obis]").count() == 1 and "Холодная вода" in w1.inner_text()
        prev = float(w1.locator("tr[data-obis] td").nth(2).inner_text().replace("\u00a0", "").replace(",", "."))
        w1.locator("input[name^='v|']").fill(f"{prev + 0.7:.3f}".replace(".", ","))
        with home.expect_navigation():
            w1.locator("button", has_text="Передать показания").click()
        assert "ждут подтверждения" in home.locator("#form-result").inner_text()
        assert home.locator("#point-w1 .status").inner_text() == "Ожидание"
        shot(home, "cabinet_09_household_pending")

        log_in(uk, url, "uk1adm", STAFF_PASSWORD)
        uk.goto(f"{url}/customers")
        row = uk.locator("#pending tbody tr[data-id]")
        assert row.count() == 1 and "kv2" in row.inner_text()
        shot(uk, "cabinet_10_org_confirms")
        row.locator("input[name=reason]").fill("показание не совпадает с фотографией счётчика")
        with uk.expect_navigation():
            row.locator("button[value=reject]").click()
        assert uk.locator("#pending tbody tr[data-id]").count() == 0

        home.goto(f"{url}/cabinet/readings?status=rejected")
        w1 = home.locator("#point-w1")
        assert "Отклонено: показание не совпадает с фотографией счётчика" in w1.inner_text()
        shot(home, "cabinet_11_household_rejected")

        # outside the reading window: no field, the next window instead (when today allows one around it)
        today = datetime.now(ZoneInfo("Europe/Moscow")).day  # the reading window is in local days
        if 2 <= today <= 27:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("INSERT INTO billing_reading_windows (org_id, open_day, close_day, max_age_days, tolerance) "
                          "SELECT id, %s, %s, 10, 3 FROM organisations WHERE code = 'uk1'", (today + 1, today - 1))
            try:
                home.goto(f"{url}/cabinet/readings")
                assert home.locator("#point-w1 input[name^='v|']").count() == 0
                assert "Приём показаний закрыт" in home.locator("#window-closed-w1").inner_text()
            finally:
                with psycopg.connect(dsn, autocommit=True) as c:
                    c.execute("DELETE FROM billing_reading_windows WHERE org_id = "
                              "(SELECT id FROM organisations WHERE code = 'uk1')")

        # another customer's point, and the operators' pages: not for a household
        assert home.goto(f"{url}/cabinet/consumption?meter=e1").status == 404
        home.goto(f"{url}/meters")
        assert home.url.endswith("/cabinet/readings")
        home.goto(f"{url}/cabinet/consumption?granularity=month")
        assert home.locator("#consumption-w1 svg rect.bar").count() == 12  # a month each, no interval series for water
        shot(home, "cabinet_12_household_consumption")
        # account security (password, sessions, second factor) is the operators' code, in the cabinet's frame
        home.click("nav a[href$='/security']")
        home.wait_for_url("**/security")
        assert home.locator("#nav-readings").count() == 1 and home.locator("#sessions").count() == 1
        shot(home, "cabinet_13_household_security")
    finally:
        ctx.close()
        uk.context.close()


def test_the_contract_administrator_gives_a_colleague_a_role(cabinet, page) -> None:
    """The organisation made «ООО Север» (ooo) the Администратор of LS-1: it gives a new colleague
    «Бухгалтер» by e-mail (no SMTP server here: the page shows the invitation link to pass on),
    the colleague sets a password by it and sees LS-1 in the cabinet."""
    url, dsn, _ = cabinet
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE customer_bindings SET duty = 'admin' WHERE user_id = (SELECT id FROM users WHERE login = 'ooo') "
                  "AND account_id = (SELECT id FROM accounts WHERE code = 'LS-1')")
    log_in(page, url, "ooo")
    page.wait_for_url("**/cabinet/readings")
    page.click("#nav-contracts")
    page.wait_for_url("**/cabinet/contracts")
    ls1 = page.locator("#roles-LS-1")
    assert "Администратор" in ls1.inner_text() and "Энергетик" in ls1.inner_text()
    assert page.locator("#roles-LS-3").count() == 0  # «Бухгалтер» there
    form = page.locator("#give-LS-1")
    form.locator("select[name=duty]").select_option("accountant")
    form.locator("input[name=email]").fill("glavbuh@sever.example")
    with page.expect_navigation():
        form.locator("button").click()
    given = page.locator("#given").inner_text()
    assert "Роль «Бухгалтер» назначена: glavbuh@sever.example." in given and "не настроена" in given
    assert "glavbuh@sever.example" in page.locator("#roles-LS-1 table").inner_text()
    shot(page, "cabinet_14_contract_roles")
    link = page.locator("#invite-link").inner_text()
    page.context.clear_cookies()
    page.goto(link)
    page.fill("input[name=password]", "главный бухгалтер 7")
    page.fill("input[name=password2]", "главный бухгалтер 7")
    page.click("#invite-form button")
    assert "glavbuh@sever.example" in page.locator("#invite-done").inner_text()
    log_in(page, url, "glavbuh@sever.example", "главный бухгалтер 7")
    page.wait_for_url("**/cabinet/readings")
    assert "LS-1 · Бухгалтер" in page.locator("header .facts").inner_text()


def test_a_customer_requests_the_administrator_role_and_the_organisation_gives_it(cabinet, page) -> None:
    """«ООО Север» (ooo) is «Бухгалтер» on LS-3, which has no Администратор: «Запросить доступ»
    opens the request form, the request goes to the organisation; its admin (uk1adm) reads it on
    «Потребители» and gives the role; ooo then gives roles on LS-3."""
    url, dsn, _ = cabinet
    log_in(page, url, "ooo")
    page.wait_for_url("**/cabinet/readings")
    page.click("#nav-contracts")
    page.wait_for_url("**/cabinet/contracts")
    with page.expect_navigation():
        page.click("#ask-LS-3")
    form = page.locator("#ask-form")
    assert "Права доступа" in form.inner_text() and "LS-3" in form.inner_text()
    form.locator("textarea[name=message]").fill("Директор ООО «Север» Смирнов А. В., приказ о назначении № 1 "
                                               "от 10.01.2024; копию пришлю по запросу.")
    shot(page, "cabinet_15_admin_request")
    with page.expect_navigation():
        form.locator("button").click()
    assert "отправлен в организацию" in page.locator("#asked").inner_text()
    assert "ждёт ответа организации" in page.locator("#admin-LS-3").inner_text()

    uk = page.context.browser.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU").new_page()
    try:
        log_in(uk, url, "uk1adm", STAFF_PASSWORD)
        uk.goto(f"{url}/customers#admin-requests")
        row = uk.locator("#admin-requests tbody tr").first
        assert "приказ о назначении № 1" in row.inner_text() and "LS-3" in row.inner_text()
        row.locator("textarea[name=answer]").fill("Полномочия подтверждены приказом № 1")
        uk.locator("#admin-requests").scroll_into_view_if_needed()
        shot(uk, "cabinet_16_org_answers_admin_request")
        with uk.expect_navigation():
            row.locator("button[value=grant]").click()
        assert "Нет запросов, ждущих ответа" in uk.locator("#admin-requests").inner_text()
    finally:
        uk.context.close()

    page.reload()
    assert page.locator("#roles-LS-3").count() == 1
    assert "роль назначена" in page.locator("#my-requests").inner_text()
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT b.duty FROM customer_bindings b JOIN users u ON u.id = b.user_id JOIN accounts a "
                         "ON a.id = b.account_id WHERE u.login = 'ooo' AND a.code = 'LS-3'").fetchone() == ("admin",)

"""The operators' day of #18 in headless Chromium (Playwright driving /usr/bin/chromium)
against a real head-end (uvicorn) on real PostgreSQL, each item as the role that uses it:
the УК admin (org_admin) works the meter table, consumption, accounts and the meter card
and never sees another organisation's meters; the dispatcher follows the menu badges; the
admin compares organisations over a year. Bad input gets a message next to its field.
Screenshots at 1366×768 go to test-artifacts/screenshots/, or with ASKUE_UPDATE_SCREENSHOTS=1
to docs/screenshots/ (docs/operators.md shows them)."""
from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
import shots
from test_operator_browser import ARGS, CHROMIUM, log_in, site  # noqa: F401 (site: a fixture)

OBIS = re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is missing: apt-get install -y chromium")
    with sync_playwright() as p:
        # Russian date fields (ДД.ММ.ГГГГ), as operators' browsers show them
        b = p.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, "--lang=ru-RU"],
                              env={**os.environ, "LANG": "ru_RU.UTF-8", "LANGUAGE": "ru"})
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU", accept_downloads=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" and "422" not in m.text
          and "404" not in m.text else None)
    try:
        yield pg
    finally:
        ctx.close()
    assert errors == [], errors


def shot(pg, name: str) -> None:
    shots.shot(pg, name)


def readable(pg) -> str:
    """The page's visible text must be Russian sentences and names: no raw OBIS code."""
    text = pg.inner_text("main")
    assert not OBIS.search(text), OBIS.search(text)
    return text


def no_overflow(pg, selector: str) -> None:
    """Nothing clipped: the element fits the page width (a wide table scrolls in its own box)."""
    width = pg.evaluate("document.documentElement.clientWidth")
    right = pg.eval_on_selector(selector, "e => e.getBoundingClientRect().right")
    assert right <= width + 1, (selector, right, width)


def rows(pg) -> list[str]:
    return pg.eval_on_selector_all("#meters tbody tr[id^=row-]", "els => els.map(e => e.id.slice(4))")


def test_org_admin_works_the_meter_table(site, page) -> None:  # noqa: F811
    url, _ = site
    log_in(page, url, "uk1adm")
    page.click("#nav-meters")
    page.wait_for_selector("#meters")
    assert set(rows(page)) == {"e1", "w1", "odpu1", "e3", "e4", "e9", "e5", "e6", "e7", "e8"}
    text = readable(page)
    assert "A+ Т1 (день)" in text and "Объём ХВС" in text and "фактическое" in text
    no_overflow(page, "main")
    shot(page, "ops_01_meter_table")
    # search, then filters: house, resource, status, contact, event
    page.fill("#meter-search", "Иванов")
    page.click("#apply")
    page.wait_for_url("**q=**")
    assert rows(page) == ["e1"]
    page.fill("#meter-search", "")
    page.select_option("#f-house", "h1")
    page.click("#apply")
    page.wait_for_url("**house=h1**")
    assert set(rows(page)) == {"e1", "w1", "odpu1"}
    page.select_option("#f-house", "")
    page.select_option("#f-event", "tamper")
    page.click("#apply")
    page.wait_for_url("**event=tamper**")
    assert rows(page) == ["e3"]
    page.select_option("#f-event", "")
    page.select_option("#f-contact", "silent")
    page.click("#apply")
    page.wait_for_url("**contact=silent**")
    assert set(rows(page)) == {"e3", "e5", "e6", "e7", "e8"}
    shot(page, "ops_02_meter_table_silent")
    page.select_option("#f-contact", "")
    page.select_option("#f-status", "decommissioned")
    page.click("#apply")
    page.wait_for_url("**status=decommissioned**")
    assert rows(page) == ["e4"]
    page.select_option("#f-status", "")
    page.select_option("#f-resource", "electricity")
    page.click("#apply")
    page.wait_for_url("**resource=electricity**")
    assert "w1" not in rows(page)
    # sort by a column, then the other way
    page.click("th a[data-sort=serial]")
    page.wait_for_url("**sort=serial**")
    asc = rows(page)
    page.click("th a[data-sort=serial]")
    page.wait_for_url("**dir=desc**")
    assert rows(page) == list(reversed(asc))
    page.click("th a[data-sort=due]")
    page.wait_for_url("**sort=due**")
    # page size: the select submits itself
    page.select_option("#size", "all")
    page.wait_for_url("**size=all**")
    assert "Показана страница 1 из 1" in page.inner_text("#pager")
    # Excel of what the filters select
    with page.expect_download() as dl:
        page.click("#export-xlsx")
    assert Path(dl.value.path()).read_bytes()[:2] == b"PK"
    assert page.locator("#print").is_visible()


def test_org_admin_never_sees_another_organisations_meters(site, page) -> None:  # noqa: F811
    url, _ = site
    log_in(page, url, "uk1adm")
    page.goto(f"{url}/meters?size=all&q=S-E")
    assert "e2" not in rows(page) and "hw2" not in rows(page)
    r = page.goto(f"{url}/meters/e2")
    assert r.status == 404 and "Не найдено" in page.inner_text("main")
    r = page.goto(f"{url}/meters?house=h2")
    assert r.status == 404


def test_bad_input_gets_a_message_next_to_the_field(site, page) -> None:  # noqa: F811
    url, _ = site
    log_in(page, url, "uk1adm")
    page.goto(f"{url}/")
    page.fill("#period-value", "2026-13")
    page.click("#period-show")
    page.wait_for_selector("#error-value")
    err = page.locator("#error-value")
    assert "Месяц в виде ГГГГ-ММ" in err.inner_text()
    field, msg = page.locator("#period-value").bounding_box(), err.bounding_box()
    assert abs(msg["y"] - field["y"]) < 60 and abs(msg["x"] - field["x"]) < 200  # next to the field
    shot(page, "ops_03_bad_period")
    page.click("#period-kinds a[data-kind=range]")
    page.fill("#period-from", "2026-11-20")
    page.fill("#period-to", "2026-11-01")
    page.click("#period-show")
    page.wait_for_selector("#error-to")
    assert "раньше" in page.inner_text("#error-to")
    page.goto(f"{url}/meters?size=7&resource=plutonium")
    assert page.locator("#error-size").is_visible() and page.locator("#error-resource").is_visible()
    assert len(rows(page)) == 10  # nothing applied, nothing lost


def test_org_admin_consumption_with_house_balance(site, page) -> None:  # noqa: F811
    url, facts = site
    log_in(page, url, "uk1adm")
    day = (facts["now"] - timedelta(days=5)).astimezone().date()
    page.goto(f"{url}/?period=month&value={day:%Y-%m}")
    page.select_option("#house", "h1")
    page.wait_for_url("**house=h1**")
    table = page.locator("#table-electricity")
    assert "Небаланс" in table.inner_text() and "ОДПУ: Общий тариф" in table.inner_text()
    assert page.locator("svg#chart-electricity rect.bar").count() >= 28
    readable(page)
    no_overflow(page, "main")
    shot(page, "ops_04_overview_house_balance")
    # previous / next period
    page.click("#period-prev")
    page.wait_for_load_state()
    page.click("#period-next")
    page.wait_for_url(f"**value={day:%Y-%m}**")
    # a date range
    page.click("#period-kinds a[data-kind=range]")
    page.fill("#period-from", (day - timedelta(days=6)).isoformat())
    page.fill("#period-to", day.isoformat())
    page.click("#period-show")
    page.wait_for_url("**period=range**")
    assert page.locator("#table-electricity tbody tr").count() == 7
    shot(page, "ops_05_overview_range")
    with page.expect_download() as dl:
        page.click("#export-pdf")
    body = Path(dl.value.path()).read_bytes()
    assert body.startswith(b"%PDF")
    _pdf_pages_png(body, "ops_06_overview_pdf")


def _pdf_pages_png(body: bytes, name: str) -> None:
    """Render the PDF's first pages, so the documents can be looked at like the pages."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(body)
    try:
        for i in range(min(len(doc), 2)):
            image = doc[i].render(scale=1.4).to_pil()
            for path in shots.paths(f"{name}_p{i + 1}"):
                image.save(path)
    finally:
        doc.close()


def test_org_admin_accounts_and_account_page(site, page) -> None:  # noqa: F811
    url, _ = site
    log_in(page, url, "uk1adm")
    page.click("text=Абоненты и расход")
    page.wait_for_selector("#accounts")
    assert page.locator("#accounts tbody tr[id^=acc-]").count() == 8
    # the address column is not squeezed at 1366 px
    width = page.eval_on_selector("#accounts td.address", "e => e.getBoundingClientRect().width")
    assert width >= 180, width
    no_overflow(page, "#accounts")
    readable(page)
    page.locator("#acc-LS-1 details summary").click()
    assert "Общий тариф" in page.inner_text("#acc-LS-1")
    shot(page, "ops_07_accounts")
    page.click("#acc-LS-1 a.name")
    page.wait_for_selector("#account-meters")
    assert "A+ Т1 (день)" in page.inner_text("#account-meters")
    readable(page)
    shot(page, "ops_08_account")


def test_org_admin_meter_card_profile_readings_history(site, page) -> None:  # noqa: F811
    url, facts = site
    log_in(page, url, "uk1adm")
    pday = (facts["now"] - timedelta(days=3)).astimezone().date()
    page.goto(f"{url}/meters?q=S-E1")
    page.click("a.serial")
    page.wait_for_selector("svg#meter-chart")
    assert page.locator("svg#meter-chart rect.bar").count() == 31
    readable(page)
    shot(page, "ops_09_meter_card")
    page.click("#period-kinds a[data-kind=day]")
    page.fill("#period-value", pday.isoformat())
    page.click("#period-show")
    page.wait_for_selector("#profile-table")
    assert page.locator("svg#profile-chart rect.bar").count() == 24
    assert page.locator("#profile-table tbody tr").count() == 24
    readings = page.inner_text("#readings")
    assert "УСПД (шлюз)" in readings and "фактическое" in readings
    assert "Внесён в реестр" in page.inner_text("#history-table")
    readable(page)
    no_overflow(page, "main")
    shot(page, "ops_10_meter_card_day_profile")
    page.click("#period-kinds a[data-kind=month]")
    page.wait_for_selector("table.matrix")
    readable(page)
    shot(page, "ops_11_meter_card_month_profile")
    with page.expect_download() as dl:
        page.click("#export-pdf")
    body = Path(dl.value.path()).read_bytes()
    assert body.startswith(b"%PDF")
    _pdf_pages_png(body, "ops_12_meter_card_pdf")


def test_dispatcher_follows_the_badges(site, page) -> None:  # noqa: F811
    url, _ = site
    log_in(page, url, "disp")
    head = page.inner_text("#head-facts")
    assert "Абонентов: 9" in head and "время МСК" in head
    assert page.inner_text("#badge-events") == "5"
    assert page.inner_text("#badge-silent") == "5"  # e3, e5, e6, e7, e8 (uk2's meters are in contact)
    page.click("#badge-silent")
    page.wait_for_url("**contact=silent**")
    assert set(rows(page)) == {"e3", "e5", "e6", "e7", "e8"}
    page.click("#badge-events")
    page.wait_for_url("**/events")
    assert page.locator("table#events tbody tr[id^=event-]").count() == 5
    readable(page)
    shot(page, "ops_13_dispatcher_events_badges")


def test_admin_compares_organisations_over_a_year(site, page) -> None:  # noqa: F811
    url, facts = site
    log_in(page, url, "admin")
    year = facts["now"].year
    page.click("#period-kinds a[data-kind=year]")
    page.wait_for_url(f"**value={year}**")
    assert page.locator("#table-electricity tbody tr").count() == 12
    page.select_option("#org", "uk2")
    page.wait_for_url("**org=uk2**")
    assert "Горячая вода" in page.inner_text("main")
    with page.expect_navigation():
        page.select_option("#org", "")
    assert page.locator("#summary").is_visible()
    readable(page)
    shot(page, "ops_14_admin_year")

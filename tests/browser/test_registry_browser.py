"""Registry pages in headless Chromium (1366×768) against a real head-end: the meter list,
a meter's page with a refused exchange act (the error beside its field), a dated CT change,
the act recorded, the meter card's history, an install act refused then recorded. Screenshots go to test-artifacts/screenshots/
(those in docs/screenshots/ were taken by this test)."""
from __future__ import annotations

from test_operator_browser import browser, log_in, shot, site  # noqa: F401  fixtures and helpers


def test_registry_pages(site, browser) -> None:  # noqa: F811
    url, _ = site
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # the refused act answers 422 on purpose; any other console error is a fault
    page.on("console", lambda m: errors.append(f"console: {m.text}")
            if m.type == "error" and "status of 422" not in m.text else None)
    try:
        log_in(page, url, "admin")
        page.click("header.top nav >> text=Реестр")
        page.wait_for_url("**/registry")
        assert page.locator("#registry-rows tbody tr").count() >= 10
        shot(page, "registry_01_meters")
        page.goto(f"{url}/registry/meters/e3")
        page.fill("#params input[name=valid_from]", "2026-11-15")
        page.fill("#params input[name=ct_ratio]", "30")
        page.fill("#params input[name=comment]", "замена ТТ, акт 12")
        page.click("#params button")
        page.wait_for_url("**/registry/meters/e3?saved=params")
        assert "15.11.2026" in page.locator("#param-history").inner_text()
        form = page.locator("#exchange form")
        form.locator("input[name=at]").fill("2026-11-20T10:00")
        form.locator("input[name='old_final.total']").fill("10")
        form.locator("input[name='new_meter.serial']").fill("S-E3-NEW")
        form.locator("input[name='new_meter.code']").fill("e3-new")
        form.locator("input[name='new_initial.total']").fill("полтора")
        form.locator("button").click()
        page.wait_for_load_state()
        bad = page.locator("#exchange .field-error")
        assert bad.count() == 2  # the final reading below the last one, the initial that is no number
        assert "меньше последнего показания" in bad.first.inner_text()
        shot(page, "registry_02_meter_refused_act")
        form = page.locator("#exchange form")
        form.locator("input[name='old_final.total']").fill("236")
        form.locator("input[name='new_initial.total']").fill("239,5")
        form.locator("button").click()
        page.wait_for_url("**/registry/meters/e3?saved=exchange")
        page.goto(f"{url}/meters/e3-new")
        assert "замена" in page.locator("#acts").inner_text()
        shot(page, "registry_03_card_history")
        page.goto(f"{url}/registry/meters/e3")
        shot(page, "registry_04_meter_after")
        # an install act on the meters tab: a reading that is no number is marked beside its input
        page.goto(f"{url}/registry?tab=meters")
        form = page.locator("#install form")
        form.locator("input[name=at]").fill("2026-11-25T09:30")
        form.locator("select[name=house]").select_option("h4")
        form.locator("select[name=gateway]").select_option("gw1")
        form.locator("input[name=gateway_code]").fill("flat-9")
        form.locator("input[name='new_meter.code']").fill("e-inst")
        form.locator("input[name='new_meter.serial']").fill("S-INST")
        form.locator("input[name='new_meter.tariff_zones']").fill("2")
        form.locator("input[name='new_initial.T1']").fill("12,5")
        form.locator("input[name='new_initial.T2']").fill("три")
        form.locator("button").click()
        page.wait_for_load_state()
        assert "«три» — не число" in page.locator("#install .field-error").inner_text()
        page.locator("#install").scroll_into_view_if_needed()
        shot(page, "registry_05_install_refused")
        form = page.locator("#install form")
        form.locator("input[name='new_initial.T2']").fill("3")
        form.locator("button").click()
        page.wait_for_url("**/registry/meters/e-inst?saved=install")
    finally:
        ctx.close()
    assert errors == [], errors

"""Operator pages in headless Chromium (Playwright driving /usr/bin/chromium) against
a real head-end (uvicorn) on real PostgreSQL with demo-like data: log in, resolve an
event and find it under "show resolved"; the map's markers have the legend's
colours; the meter card draws its chart. Screenshots go to
test-artifacts/screenshots/."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "headend"))
import shots  # noqa: E402
from map_tiles import TileServer  # noqa: E402
from test_web_fixtures import EXPECTED_BUCKET, PASSWORD, build  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
W = "/web"


def _chromium() -> str | None:
    """The browser's path; tries `apt-get install -y chromium` once when missing (root only)."""
    if Path(CHROMIUM).exists():
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "chromium is missing and cannot be installed here (needs root and apt-get): apt-get install -y chromium"
    r = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not Path(CHROMIUM).exists():
        return f"chromium could not be installed: apt-get install -y chromium failed: {r.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed in the venv: pip install playwright (never `playwright install`)")
    reason = _chromium()
    if reason:
        pytest.skip(reason)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class _Server:
    def __init__(self, dsn: str, **settings) -> None:
        import uvicorn

        from askue.headend.api.app import create_app
        from askue.headend.config import Settings

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(dsn=dsn, **({"public_url": self.url} | settings))
        self.server = uvicorn.Server(uvicorn.Config(create_app(self.settings), host="127.0.0.1",
                                                    port=self.port, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the head-end did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}{W}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def site(pg_dsn: str, tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    # Playwright's sync API keeps an event loop running in this thread: build elsewhere
    with ThreadPoolExecutor(1) as ex:
        facts = ex.submit(build, pg_dsn, tmp_path).result()
    # the map's base layer comes from a local tile server of generated tiles (no internet here)
    with TileServer() as tiles, _Server(pg_dsn, map_tile_url=tiles.url) as url:
        yield url, facts


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, locale="ru-RU")
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    # CSP violations and missing assets show as console errors
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    try:
        yield pg
    finally:
        ctx.close()
    assert errors == [], errors  # no JS or CSP errors, every asset served by the head-end


def shot(pg, name: str) -> None:
    shots.shot(pg, name)


def log_in(pg, url: str, user: str) -> None:
    pg.goto(f"{url}/login")
    pg.fill("input[name=login]", user)
    pg.fill("input[name=password]", PASSWORD)
    pg.click("button[type=submit]")
    pg.wait_for_url(f"{url}/")


def test_login_resolve_event_and_find_it_under_show_resolved(site, page) -> None:
    url, facts = site
    page.goto(f"{url}/events")
    assert "/login" in page.url
    shot(page, "01_login")
    page.fill("input[name=login]", "disp")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/events")
    ev = facts["events"]["tamper_e3"]
    row = page.locator(f"#event-{ev}")
    assert row.is_visible() and "Воздействие" in row.inner_text()
    shot(page, "02_events")
    row.locator("input[name=comment]").fill("Пломба на месте, проверено мастером")
    row.locator("button").click()
    page.wait_for_selector("#done")
    assert page.locator(f"#event-{ev}").count() == 0
    shot(page, "03_events_after_resolve")
    page.check("#show-resolved")  # submits the filter form
    page.wait_for_url("**show_resolved=true**")
    resolved = page.locator(f"#event-{ev}")
    assert resolved.get_attribute("data-state") == "resolved"
    assert "Пломба на месте" in resolved.inner_text() and "disp" in resolved.inner_text()
    shot(page, "04_events_show_resolved")


def _marker_colours(pg) -> list[tuple[str, str]]:
    return pg.eval_on_selector_all(
        "path.askue-marker", "els => els.map(e => [e.getAttribute('class'), e.getAttribute('fill')])")


def test_map_markers_have_the_legend_colours(site, page) -> None:
    from askue.headend.web.queries import BUCKET_COLOR

    url, _ = site
    log_in(page, url, "admin")
    page.goto(f"{url}/map")
    page.wait_for_selector("path.askue-marker")
    assert page.locator("#map").get_attribute("data-engine") == "leaflet", "run scripts/fetch-web-assets.sh"
    legend = {li.get_attribute("data-bucket"): li.locator(".dot").evaluate("e => getComputedStyle(e).backgroundColor")
              for li in page.locator("#legend li").all()}
    assert set(legend) == set(BUCKET_COLOR)
    assert "без координат" in page.locator("#no-coords").inner_text()
    shot(page, "05_map_overview")
    wide = _marker_colours(page)
    assert page.locator(".askue-cluster").count() >= 1  # the Moscow house's meters are clustered
    for cls, fill in wide:
        bucket = next(c for c in cls.split() if c.startswith("bucket-"))[len("bucket-"):]
        assert fill.lower() == BUCKET_COLOR[bucket].lower(), (cls, fill)
    markers = page.evaluate("JSON.parse(document.getElementById('map-data').textContent).markers")
    seen: dict[str, set[str]] = {}
    for i, m in enumerate(markers):  # close up on each meter: clustering is off there
        page.evaluate(f"window.askueMap.setView([{m['lat']}, {m['lon']}], 18, {{animate: false}})")
        page.wait_for_timeout(300)
        if m["code"] == "e1":
            shot(page, "06_map_moscow_house")
        for cls, fill in _marker_colours(page):
            bucket = next(c for c in cls.split() if c.startswith("bucket-"))[len("bucket-"):]
            seen.setdefault(bucket, set()).add(fill.lower())
        assert i < 50
    want = {b: {BUCKET_COLOR[b].lower()} for b in set(EXPECTED_BUCKET.values())}
    assert seen == want


def test_meter_card_shows_its_chart(site, page) -> None:
    url, _ = site
    log_in(page, url, "uk1adm")
    page.goto(f"{url}/meters/e1")
    chart = page.locator("svg#meter-chart")
    chart.wait_for()
    bars = chart.locator("rect.bar")
    assert bars.count() == 31
    heights = [float(h) for h in bars.evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")]
    assert sum(1 for h in heights if h > 1) >= 25
    assert page.locator("#current-values tbody tr").count() == 3  # total + two tariffs
    shot(page, "07_meter_card")
    page.click("#period-kinds a[data-kind=year]")  # by months: the year's twelve
    page.wait_for_url("**period=year**")
    assert page.locator("svg#meter-chart rect.bar").count() >= 2
    shot(page, "08_meter_card_months")
    page.goto(f"{url}/?period=month")
    assert page.locator("svg#chart-electricity rect.bar").count() >= 28
    shot(page, "09_overview")
    page.goto(f"{url}/accounts")
    assert page.locator("#accounts tbody tr").count() == 8  # uk1's accounts only
    shot(page, "10_accounts")


def test_manual_readings_show_the_expected_value(site, page) -> None:
    url, _ = site
    log_in(page, url, "uk1adm")
    page.goto(f"{url}/readings?q=LS-1")
    rows = page.locator("#entry tbody tr")
    assert rows.count() == 3  # e1: total + two tariffs
    expected = [float(e) for e in page.locator("td.expected").evaluate_all("els => els.map(e => e.dataset.expected)")]
    last = [float(x) for x in page.locator("input.reading").evaluate_all("els => els.map(e => e.dataset.last)")]
    assert all(e >= v for e, v in zip(expected, last, strict=True))
    field = page.locator("input.reading").first
    field.fill(str(last[0] - 1))  # below the last reading: highlighted while typing
    assert "warn" in field.get_attribute("class")
    field.fill(f"{expected[0]:.1f}")
    assert "warn" not in field.get_attribute("class")
    shot(page, "11_readings_entry")
    page.click("#readings-form button")
    page.wait_for_selector("#results li.ok")
    shot(page, "12_readings_saved")

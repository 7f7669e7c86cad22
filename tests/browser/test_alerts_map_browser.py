"""Alerts and the map in headless Chromium, each driven by the role that uses it, against
a real head-end (uvicorn) on PostgreSQL, a real SMTP server (aiosmtpd, STARTTLS + AUTH
LOGIN), a local webhook receiver and a local server of generated map tiles:

- the УК admin (org_admin of uk1) subscribes by e-mail on «Оповещения» (bad input is
  shown next to its field and saves nothing), hears of its organisation's event only,
  and opens the event from the link in the e-mail;
- the dispatcher subscribes a webhook that fails first: the page shows the retry, then
  the delivery; the test button reaches the receiver;
- the administrator resolves an event from the e-mail's link; the resolution is mailed;
- the map loads its base layer from a tile server, and from an MBTiles file served by
  the head-end itself, where an organisation without coordinates sees the whole country.

Screenshots (1366×768) go to test-artifacts/screenshots/ (docs/screenshots/ holds the
committed ones)."""
from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "headend"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import shots  # noqa: E402
from alert_servers import HookReceiver, SmtpServer  # noqa: E402
from map_tiles import TileServer, write_mbtiles  # noqa: E402
from test_alerts import REVERSE, raise_event, run_worker  # noqa: E402
from test_operator_browser import _Server, browser, log_in  # noqa: E402, F401  (browser: a fixture)
from test_web_fixtures import PASSWORD, build  # noqa: E402

from askue.headend.auth.users import create_user  # noqa: E402
from askue.headend.config import Settings  # noqa: E402

TILES_ATTRIBUTION = "Подложка: тестовые плитки, сгенерированы тестом"


def in_thread(fn, *args, **kw):
    """Playwright's sync API keeps an event loop in this thread: run asyncio work elsewhere."""
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(fn, *args, **kw).result()


@pytest.fixture
def page(browser):  # noqa: F811  (the fixture imported above)
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    pg.expected_statuses = []  # a page answered with 4xx on purpose (bad input, another organisation's)
    try:
        yield pg
    finally:
        ctx.close()
    unexpected = [e for e in errors
                  if not any(f"responded with a status of {s} " in e for s in pg.expected_statuses)]
    assert unexpected == [], unexpected


def shot(pg, name: str) -> None:
    shots.shot(pg, name, full_page=False)  # the 1366×768 viewport, as an operator sees it


class World:
    def __init__(self, url: str, facts: dict, smtp: SmtpServer, tiles: TileServer, settings: Settings) -> None:
        self.url, self.facts, self.smtp, self.tiles, self.settings = url, facts, smtp, tiles, settings

    def work(self, rounds: int = 1, pause: float = 0.0) -> None:
        """A round of the head-end's alert task."""
        in_thread(run_worker, self.settings, rounds, pause)

    def event(self, meter: str, kind: str = "reverse_reading", severity: str = "critical") -> int:
        evidence = REVERSE if kind == "reverse_reading" else {"last_session": "2026-11-01T10:00:00+00:00"}
        title = {"reverse_reading": "Обратный ход показаний", "no_contact": "Нет связи со счётчиком"}[kind]
        return raise_event(self.settings.dsn, meter, kind, severity, evidence, title, title)


@pytest.fixture
def world(pg_dsn: str, tmp_path: Path):
    """The demo-like database, a head-end with SMTP and a tile server, and its settings."""
    facts = in_thread(build, pg_dsn, tmp_path)
    with SmtpServer(tmp_path) as smtp, TileServer() as tiles:
        extra = dict(notify_retry_base_s=0.3, map_tile_url=tiles.url, map_attribution=TILES_ATTRIBUTION,
                     **smtp.settings())
        server = _Server(pg_dsn, **extra)
        in_thread(run_worker, server.settings)  # the running head-end has seen the fixture's events
        with server as url:
            yield World(url, facts, smtp, tiles, server.settings)


def _subscriptions(dsn: str) -> int:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT count(*) FROM notify_subscriptions").fetchone()[0]


def test_uk_admin_subscribes_and_hears_only_of_its_organisation(world: World, page) -> None:
    url = world.url
    log_in(page, url, "uk1adm")
    page.click("header nav >> text=Оповещения")
    page.wait_for_url("**/alerts")
    assert page.locator("#subscriptions tbody tr").inner_text().strip() == "Подписок пока нет"
    # only its own organisation to choose from
    orgs = page.locator("input[name=orgs]").evaluate_all("els => els.map(e => e.value)")
    assert orgs == ["uk1"]
    assert page.locator("input[name=channel][value=webhook]").count() == 1
    # bad input: the message stands next to the field, nothing is saved
    page.expected_statuses += [422, 404]
    page.fill("#f-target", "диспетчер-собака-uk.ru")
    page.click("#sub-save")
    err = page.locator("#err-target")
    err.wait_for()
    assert "не адрес электронной почты" in err.inner_text()
    assert "invalid" in page.locator("#f-target").get_attribute("class")
    box_f, box_e = page.locator("#f-target").bounding_box(), err.bounding_box()
    assert 0 <= box_e["y"] - (box_f["y"] + box_f["height"]) < 40  # right under the field
    assert page.locator("#f-target").input_value() == "диспетчер-собака-uk.ru"
    assert _subscriptions(world.settings.dsn) == 0
    shot(page, "alerts_01_bad_input_org_admin")
    page.fill("#f-target", "dispatcher@uk-sever.example")
    page.check("input[name=orgs][value=uk1]")
    page.select_option("#f-sev", "warning")
    page.click("#sub-save")
    page.wait_for_selector("#flash")
    row = page.locator("#subscriptions tbody tr").first
    assert "dispatcher@uk-sever.example" in row.inner_text() and "УК Север" in row.inner_text()
    # an event in each organisation; the task runs
    mine = world.event("e1")
    other = world.event("e2", "no_contact", "warning")
    world.work()
    (mail,) = world.smtp.to("dispatcher@uk-sever.example")
    assert mail.tls and mail.login and "Обратный ход показаний" in mail.message["Subject"]
    page.reload()
    rows = page.locator("#deliveries tbody tr")
    assert rows.count() == 1
    assert f"№ {mine}" in rows.first.inner_text() and "отправлено" in rows.first.inner_text()
    assert f"№ {other}" not in page.content()
    shot(page, "alerts_02_subscribed_and_sent")
    # the link in the e-mail opens the event
    link = re.search(r"Открыть: (\S+)", mail.text).group(1)
    assert link == f"{url}/events/{mine}"
    page.goto(link)
    assert "Предыдущие показания" in page.locator("#event-sentence").inner_text()
    assert page.locator("#event-state").get_attribute("data-state") == "open"
    shot(page, "alerts_03_event_from_the_email")
    page.goto(f"{url}/events/{other}")  # the other organisation's event does not exist for it
    assert "Не найдено" in page.content()


def test_dispatcher_webhook_is_retried_then_delivered(world: World, page) -> None:
    url = world.url
    with HookReceiver([503]) as hook:
        log_in(page, url, "disp")
        page.goto(f"{url}/alerts")
        page.check("input[name=channel][value=webhook]")
        page.fill("#f-target", hook.url)
        page.fill("#f-secret", "общий-секрет")
        page.check("input[name=kinds][value=reverse_reading]")
        page.check("input[name=kinds][value=tamper]")
        page.select_option("#f-sev", "critical")
        page.click("#sub-save")
        page.wait_for_selector("#flash")
        ev = world.event("e1")
        world.work()
        page.reload()
        row = page.locator("#deliveries tbody tr").first
        assert "ожидает отправки" in row.inner_text() and "попытка 1" in row.inner_text() and "503" in row.inner_text()
        shot(page, "alerts_04_webhook_retry_dispatcher")
        world.work(rounds=2, pause=0.5)
        page.reload()
        assert "отправлено" in page.locator("#deliveries tbody tr").first.inner_text()
        assert hook.answered == [503, 200] and hook.requests[-1].json["event"]["id"] == ev
        page.click("#subscriptions button.test")
        page.wait_for_selector("#flash")
        assert "Проверочное оповещение отправлено" in page.locator("#flash").inner_text()
        assert hook.requests[-1].json["notification"] == "test"
        shot(page, "alerts_05_webhook_test_sent")


def test_admin_resolves_from_the_email_and_the_resolution_is_mailed(world: World, page) -> None:
    url = world.url
    log_in(page, url, "admin")
    page.goto(f"{url}/alerts")
    page.fill("#f-target", "chief@uk.example")
    page.select_option("#f-sev", "critical")
    page.click("#sub-save")
    page.wait_for_selector("#flash")
    ev = world.event("e3")
    world.work()
    (raised,) = world.smtp.to("chief@uk.example")
    page.goto(re.search(r"Открыть: (\S+)", raised.text).group(1))
    page.fill("#event-resolve input[name=comment]", "Проверено на месте: счётчик заменён, акт № 42")
    page.click("#event-resolve button")
    page.wait_for_selector("#done")
    world.work()
    resolved = world.smtp.to("chief@uk.example")[1]
    assert resolved.message["Subject"].startswith("АСКУЭ: устранено — Обратный ход показаний, прибор e3")
    assert "Кем: admin" in resolved.text and "акт № 42" in resolved.text
    page.goto(f"{url}/events/{ev}")
    assert page.locator("#event-state").get_attribute("data-state") == "resolved"
    shot(page, "alerts_06_event_resolved_admin")
    page.goto(f"{url}/alerts")
    states = page.locator("#deliveries tbody tr").all_inner_texts()
    assert len(states) == 2 and all("отправлено" in s for s in states)
    assert "устранена" in states[0] and "возникла" in states[1]


def _loaded_tiles(pg) -> int:
    pg.wait_for_function("document.querySelectorAll('img.leaflet-tile-loaded').length > 0")
    pg.wait_for_load_state("networkidle")
    return pg.locator("img.leaflet-tile-loaded").count()


def test_dispatcher_map_draws_tiles_from_the_tile_server(world: World, page) -> None:
    url = world.url
    log_in(page, url, "disp")
    page.goto(f"{url}/map")
    page.wait_for_selector("path.askue-marker")
    assert page.locator("#map").get_attribute("data-tiles") == "online"
    assert _loaded_tiles(page) >= 4
    asked = [p for p in world.tiles.requests if re.fullmatch(r"/\d+/\d+/\d+\.png", p)]
    assert len(asked) >= 4
    assert TILES_ATTRIBUTION in page.locator(".leaflet-control-attribution").inner_text()
    # markers stay over the tiles and keep the legend's colours
    assert page.locator("path.askue-marker").count() + page.locator(".askue-cluster").count() >= 3
    shot(page, "map_01_tiles_dispatcher")


def test_org_without_coordinates_sees_the_whole_country_on_offline_tiles(pg_dsn: str, tmp_path: Path,
                                                                          page) -> None:
    """An organisation whose meters have no coordinates at all, on an MBTiles base map the
    head-end serves itself (no tile server anywhere)."""
    def setup() -> None:
        build(pg_dsn, tmp_path)
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            org = c.execute("INSERT INTO organisations (code, name) VALUES ('uk3', 'ТСЖ Заря') RETURNING id"
                            ).fetchone()[0]
            c.execute("INSERT INTO sites (code, org_id, address) VALUES ('h30', %s, 'ул. Новая 30')", (org,))
            c.execute("INSERT INTO meters (code, serial, org_id, site_id) SELECT 'z1', 'S-Z1', %s, id FROM sites "
                      "WHERE code = 'h30'", (org,))
            create_user(c, "uk3adm", PASSWORD, "org_admin", ["uk3"], name="Uk3adm")
    in_thread(setup)
    mb = write_mbtiles(tmp_path / "russia.mbtiles", max_zoom=4)
    served: list[str] = []
    page.on("response", lambda r: served.append(r.url) if "/web/tiles/" in r.url and r.status == 200 else None)
    with _Server(pg_dsn, map_mbtiles=str(mb)) as url:
        log_in(page, url, "uk3adm")
        page.goto(f"{url}/map")
        assert page.locator("#map").get_attribute("data-tiles") == "offline"
        assert _loaded_tiles(page) >= 4 and len(served) >= 4
        assert page.locator("path.askue-marker").count() == 0
        assert "без координат, шт.: 1 из 1" in page.locator("#no-coords").inner_text()
        bounds = page.evaluate("(() => { const b = window.askueMap.getBounds(); return [b.getSouth(), b.getWest(), "
                               "b.getNorth(), b.getEast(), window.askueMap.getZoom()]; })()")
        south, west, north, east, zoom = bounds
        for city, (lat, lon) in {"Калининград": (54.71, 20.51), "Москва": (55.75, 37.62),
                                 "Норильск": (69.35, 88.2), "Владивосток": (43.12, 131.9),
                                 "Анадырь": (64.73, 177.5)}.items():
            assert south <= lat <= north and west <= lon <= east, (city, bounds)
        assert zoom == 3  # the country fills the map rather than the world
        assert "Тестовая подложка askue" in page.locator(".leaflet-control-attribution").inner_text()
        shot(page, "map_02_whole_country_offline_org_admin")

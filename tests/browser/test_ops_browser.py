"""Commands and reports in headless Chromium, each driven by the role that uses it.

Commands run for real: the head-end (ingest, command dispatcher, pages) in a thread, mosquitto,
an `askue gateway` process and a simulated DLMS meter; the УК admin polls a meter and switches
its relay off through both confirmations and sees each result appear on the meter card, the
dispatcher reloads a gateway's configuration; the УК admin does not see another organisation's
meter, gateway or commands. Screenshots (the 1366×768 viewport): see shots.py.
"""
from __future__ import annotations

import asyncio
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import yaml

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / d) for d in ("headend", "faults")]
import shots  # noqa: E402
from faultkit import Child, askue_argv  # noqa: E402
from test_operator_browser import W, browser, log_in, site  # noqa: E402, F401  (fixtures)
from test_web_fixtures import build  # noqa: E402

from askue.devservices.ports import free_port  # noqa: E402

ROOT = "brops"


def shot(pg, name: str) -> None:
    shots.shot(pg, name, full_page=False)  # the 1366×768 viewport


@pytest.fixture
def page(browser):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1366, "height": 768}, locale="ru-RU")
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # a page answering 404, 409 or 422 is what some checks want (another organisation's object, bad
    # input); any other console error (a script, CSP, a missing asset) fails the test
    pg.on("console", lambda m: errors.append(f"console: {m.text}")
          if m.type == "error" and not re.search(r"status of (404|409|422)\b", m.text) else None)
    try:
        yield pg
    finally:
        ctx.close()
    assert errors == [], errors


class Loop:
    """An asyncio loop in a thread: the head-end and the simulated meters live there while the
    browser (Playwright's sync API) drives the pages from the test's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def live(pg_dsn: str, tmp_path: Path, mqtt_broker):
    """The pages of a running head-end with a gateway process and a simulated meter e1."""
    from askue.drivers.dlms.simulator import make_session_factory as dlms_factory
    from askue.drivers.sim.line import serve_tcp
    from askue.drivers.sim.meter import SimMeter
    from askue.headend.app import run_headend
    from askue.headend.config import Settings

    with ThreadPoolExecutor(1) as ex:
        facts = ex.submit(build, pg_dsn, tmp_path).result()
    loop = Loop()
    meter = SimMeter(id="e1", serial="S-E1", password="12345678", address=17)

    async def start():
        server = await serve_tcp(dlms_factory({17: meter}, transport="tcp"))
        stop = asyncio.Event()
        port = free_port()
        s = Settings(dsn=pg_dsn, mqtt_host=mqtt_broker.host, mqtt_port=mqtt_broker.port, mqtt_root=ROOT,
                     mqtt_client_id=f"brops-{port}", api_port=port, command_poll_s=0.5, batch_linger_s=0.02)
        task = asyncio.create_task(run_headend(s, stop=stop))
        return server, stop, task, port

    server, stop, task, port = loop.run(start())
    off = {"register": None, "interval": None, "instant": None, "events": None}
    cfg = {"gateway": {"id": "gw1", "topic_root": ROOT, "health_interval_s": 5},
           "broker": {"host": mqtt_broker.host, "port": mqtt_broker.port, "reconnect_max_s": 2, "keepalive_s": 5},
           "store": {"path": str(tmp_path / "gw1.db")}, "metrics": {"port": None},
           "buses": [{"id": "dl", "type": "tcp", "host": "127.0.0.1", "port": server.sockets[0].getsockname()[1],
                      "timeout_s": 2.0}],
           "meters": [{"id": "e1", "bus": "dl", "driver": "dlms", "address": 17, "serial": "S-E1",
                       "password": "12345678", "schedules": off}]}
    (tmp_path / "gw1.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    gw = Child("gw1", askue_argv("gateway", "--config", str(tmp_path / "gw1.yaml")), tmp_path / "gw1.log")
    gw.start()
    try:
        import time

        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the head-end did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}{W}", facts, meter, pg_dsn
    except BaseException:
        print(gw.tail(60))
        raise
    finally:
        gw.stop()
        loop.loop.call_soon_threadsafe(stop.set)
        loop.run(asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30))
        server.close()
        loop.close()


def _wait_state(page, cid: int, state: str, timeout_ms: int = 30000) -> None:
    page.wait_for_selector(f"#command-{cid}[data-state={state}]", timeout=timeout_ms)


def test_org_admin_polls_and_switches_the_relay_dispatcher_reloads(live, page) -> None:
    url, _, meter, dsn = live
    log_in(page, url, "uk1adm")
    page.goto(f"{url}/meters/e1")
    page.click("#cmd-poll_now button")
    page.wait_for_url("**/meters/e1?cmd=1#commands")
    assert "принята (№ 1)" in page.locator("#cmd-queued").inner_text()
    _wait_state(page, 1, "done")  # the block refreshes itself until the answer is in
    row = page.locator("#command-1").inner_text()
    assert "выполнена" in row and "опрошен, получено значений:" in row
    page.locator("#commands").scroll_into_view_if_needed()
    shot(page, "ops_01_meter_card_commands")

    # bad input next to the field, nothing stored
    page.fill("#cmd-read_profile input[name=start]", "2026-03-05")
    page.fill("#cmd-read_profile input[name=end]", "2026-03-01")
    page.click("#cmd-read_profile button")
    assert "позже начала" in page.locator("#err-end").inner_text()
    shot(page, "ops_02_profile_range_error")

    # the relay: the confirmation page (first), the tick, the browser's dialog (second)
    page.goto(f"{url}/meters/e1")
    page.click("#relay-off")
    page.wait_for_url("**/meters/e1/relay?command=relay_disconnect")
    assert "останется без электроэнергии" in page.locator("#relay-warning").inner_text()
    shot(page, "ops_03_relay_confirmation")
    dialogs: list[str] = []

    def dismiss(d) -> None:
        dialogs.append(d.message)
        d.dismiss()

    page.once("dialog", dismiss)
    page.click("#relay-submit")  # the dialog is dismissed: nothing is sent
    assert dialogs and "Отключить нагрузку прибора учёта e1" in dialogs[0]
    assert page.url.endswith("relay?command=relay_disconnect")
    page.once("dialog", lambda d: d.accept())
    page.click("#relay-submit")  # no tick: refused next to the tick box
    page.wait_for_selector("#err-confirm")
    shot(page, "ops_04_relay_without_tick")
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT count(*) FROM commands WHERE command = 'relay_disconnect'").fetchone()[0] == 0
    page.check("#relay-tick")
    page.once("dialog", lambda d: d.accept())
    page.click("#relay-submit")
    page.wait_for_url("**/meters/e1?cmd=2#commands")
    _wait_state(page, 2, "done")
    assert "нагрузка отключена" in page.locator("#command-2").inner_text()
    assert meter.relay_connected is False
    page.locator("#commands").scroll_into_view_if_needed()
    shot(page, "ops_05_relay_done")

    # another organisation's meter and gateway do not exist for this admin
    assert page.goto(f"{url}/meters/e2/commands").status == 404
    assert page.goto(f"{url}/gateways/gw2").status == 404
    page.goto(f"{url}/gateways/gw1")
    assert page.locator("#cmd-not-allowed").is_visible()

    # the dispatcher: a gateway-wide command
    page.context.clear_cookies()
    log_in(page, url, "disp")
    page.goto(f"{url}/gateways/gw1")
    page.click("#cmd-reload_config button")
    page.wait_for_url("**/gateways/gw1?done=3")
    _wait_state(page, 3, "done")
    assert "конфигурация перечитана: изменений нет" in page.locator("#command-3").inner_text()
    assert page.locator("#command-2").is_visible()  # the gateway page lists its meters' commands too
    shot(page, "ops_06_gateway_commands")
    page.goto(f"{url}/meters/e1/commands")
    assert page.locator("#command-list tbody tr").count() == 2
    shot(page, "ops_07_meter_commands_page")


# ---- reports ---------------------------------------------------------------------------------
@pytest.fixture
def reports_site(site, pg_dsn):  # noqa: F811
    """The demo pages with refusals of every kind, a bare account and verification dates."""
    from test_grafana_reports import add_report_rows

    from askue.contract import PayloadError, decode_data

    add_report_rows(pg_dsn)
    bad = (b'{"v":1,"gateway_id":"gw1","seq":9,"sent_at":"2026-03-01T00:00:00Z","values":[{"meter_id":"e5",'
           b'"obis":"1.0.1.8.0.255","kind":"register","value":"12x","unit":"kWh","received_at":"2026-03-01T00:00:00Z"}]}')
    try:
        decode_data(bad)
    except PayloadError as e:
        reason = str(e)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("INSERT INTO dead_letters (topic, gateway_id, payload, reason) VALUES (%s, 'gw1', %s, %s)",
                  ("askue/v1/gw1/data", bad, reason))
        c.execute("UPDATE meters SET verification_due = (now() AT TIME ZONE 'Europe/Moscow')::date + 45 WHERE code = 'w1'")
    return site


def _cells(page, n: int = 1) -> list[list[str]]:
    return page.eval_on_selector_all(f"#report-{n} tbody tr", "rs => rs.map(r => [...r.cells].map(c => c.innerText))")


def test_org_admin_reports_with_documents_and_bad_input(reports_site, page) -> None:
    url, facts = reports_site
    log_in(page, url, "uk1adm")
    page.click("nav >> text=Отчёты")
    page.wait_for_url("**/reports")
    assert page.locator("#report-list a.report-card").count() == 5
    shot(page, "ops_10_reports")
    page.click("#report-rejected")
    page.wait_for_selector("#report-1")
    rows = _cells(page)
    sources = {r[1] for r in rows}
    assert {"Шлюз", "Ввод вручную"} <= sources
    reasons = " ".join(r[5] for r in rows)
    assert "значение № 1, поле «значение»: ожидалось: число, получено: строка" in reasons
    assert "всплеск потребления" in reasons and "e2" not in {r[3] for r in rows}
    shot(page, "ops_11_rejected_readings")
    with page.expect_download() as dl:
        page.click("#export-csv")
    body = Path(dl.value.path()).read_bytes().decode("utf-8-sig")
    assert body.startswith("Отклонённые показания") and "ожидалось: число" in body
    with page.expect_download() as dl:
        page.click("#export-pdf")
    assert Path(dl.value.path()).read_bytes().startswith(b"%PDF")

    # bad input: the message sits next to the field, no report is made
    page.fill("input[name=from]", "2026-03-10")
    page.fill("input[name=to]", "2026-03-01")
    page.click("#report-form button:has-text('Показать')")
    assert "раньше начала" in page.locator("#err-to").inner_text()
    assert page.locator("#report-1").count() == 0
    shot(page, "ops_12_report_bad_input")
    # another organisation is not there to choose; asked for by hand, it does not exist
    page.goto(f"{url}/reports/balance?org=uk2")
    assert "организация не найдена" in page.locator("#err-org").inner_text()

    page.goto(f"{url}/reports/completeness")
    page.wait_for_selector("#report-1")
    assert "ул. Мира 2" not in page.locator("#report-1").inner_text()  # uk2's house
    shot(page, "ops_13_completeness")
    page.goto(f"{url}/reports/balance")
    assert "потери выше допуска" in page.locator("#report-1").inner_text()
    shot(page, "ops_14_house_balance")
    page.goto(f"{url}/reports/coverage")
    assert [r[0] for r in _cells(page, 2)] == ["LS-10"]
    shot(page, "ops_15_coverage")
    page.goto(f"{url}/reports/verification")
    page.check("input[name=unknown]")
    page.click("#report-form button:has-text('Показать')")
    page.wait_for_url("**unknown=1**")
    rows = _cells(page)
    assert rows[0][0] == "e3" and rows[0][9].startswith("просрочена на 3 дн.")
    assert "hw2" not in {r[0] for r in rows}
    shot(page, "ops_16_verification")
    with page.expect_download() as dl:
        page.click("#export-xlsx")
    import io

    from openpyxl import load_workbook

    ws = load_workbook(io.BytesIO(Path(dl.value.path()).read_bytes())).active
    assert any(r[0] == "e3" for r in ws.iter_rows(values_only=True))


def test_dispatcher_and_admin_see_every_organisation(reports_site, page) -> None:
    url, _ = reports_site
    log_in(page, url, "disp")
    page.goto(f"{url}/reports/completeness?group=gateway")
    groups = {r[1] for r in _cells(page)}
    assert {"gw1", "gw2"} <= groups
    page.context.clear_cookies()
    log_in(page, url, "admin")
    page.goto(f"{url}/reports/verification")
    assert {"e3", "hw2"} <= {r[0] for r in _cells(page)}

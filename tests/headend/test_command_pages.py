"""Command pages over real PostgreSQL (the sending itself: test_commands_e2e.py): the meter
card's command block per role, bad input answered next to the field with nothing stored, the
relay's confirmation page, the gateway page, another organisation's meters and gateways
invisible."""
from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from test_web_fixtures import build
from test_web_pages import W, csrf_of, login

from askue.headend.api.app import create_app
from askue.headend.config import Settings


@pytest.fixture
def site(pg_dsn: str, tmp_path: Path):
    facts = build(pg_dsn, tmp_path)
    with TestClient(create_app(Settings(dsn=pg_dsn))) as client:
        yield client, facts, pg_dsn


def _commands(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT c.command, m.code, c.state, c.created_by FROM commands c "
                         "LEFT JOIN meters m ON m.id = c.meter_id ORDER BY c.id").fetchall()


def test_meter_card_block_and_bad_input(site) -> None:
    client, _, dsn = site
    login(client, "uk1adm")
    card = client.get(f"{W}/meters/e1")
    assert card.status_code == 200
    html = card.text
    for text in ("Команды прибору учёта", "Опросить сейчас", "Синхронизировать часы", "Прочитать профиль за период",
                 "Отключить нагрузку", "Включить нагрузку", "Команд ещё не было", "Время: Europe/Moscow (UTC+03:00)"):
        assert text in html, text
    assert 'id="cmd-gateway-offline"' not in html  # gw1 is online
    csrf = csrf_of(html)
    post = f"{W}/meters/e1/commands"
    for form, field, message in (
            ({"command": "read_profile", "start": "", "end": "2026-03-01"}, "start", "укажите дату"),
            ({"command": "read_profile", "start": "01.03.2026", "end": "2026-03-01"}, "start", "дата в виде"),
            ({"command": "read_profile", "start": "2026-03-05", "end": "2026-03-01"}, "end", "позже начала"),
            ({"command": "read_profile", "start": "2025-01-01", "end": "2025-12-31"}, "end", "длиннее 92 дней")):
        r = client.post(post, data={"csrf": csrf, **form})
        assert r.status_code == 422, (form, r.text[:300])
        err = re.search(rf'<span class="field-error" id="err-{field}">([^<]+)</span>', r.text)
        assert err and message in err.group(1), (form, err)
        assert f'value="{form["start"]}"' in r.text  # what was typed stays in the form
    assert _commands(dsn) == []
    r = client.post(post, data={"csrf": csrf, "command": "poll_now", "back": "card"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/meters/e1?cmd=1#commands")
    card = client.get(r.headers["location"])
    assert "Команда «Опросить сейчас» принята (№ 1)" in card.text
    row = re.search(r'<tr id="command-1" class="cmd-pending highlight"[^>]*>(.*?)</tr>', card.text, re.S).group(1)
    assert "ожидает отправки" in row and "ждёт, когда шлюз выйдет на связь" in row and "Uk1Adm" not in row
    assert 'data-refresh-url="/web/meters/e1/commands/block"' in card.text  # refreshes while under way
    again = client.post(post, data={"csrf": csrf, "command": "poll_now"})
    assert again.status_code == 409 and "уже в очереди: № 1" in again.text
    r = client.post(post, data={"csrf": csrf, "command": "read_profile", "start": "2026-03-01", "end": "2026-03-02"},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"])
    assert "01.03.2026 00:00 – 03.03.2026 00:00" in page.text  # the last day is included, local time
    assert _commands(dsn) == [("poll_now", "e1", "pending", "uk1adm"), ("read_profile", "e1", "pending", "uk1adm")]
    block = client.get(f"{W}/meters/e1/commands/block")
    assert block.status_code == 200 and block.text.lstrip().startswith("<section")


def test_relay_needs_the_tick_and_the_page_explains(site) -> None:
    client, _, dsn = site
    login(client, "disp")
    page = client.get(f"{W}/meters/e1/relay", params={"command": "relay_disconnect"})
    assert page.status_code == 200
    assert "Иванов И.И." in page.text and "останется без электроэнергии" in page.text
    assert 'data-confirm="Отключить нагрузку прибора учёта e1?' in page.text  # the second confirmation
    csrf = csrf_of(page.text)
    r = client.post(f"{W}/meters/e1/commands", data={"csrf": csrf, "command": "relay_disconnect"})
    assert r.status_code == 409  # needs confirmation, as the API answers
    err = re.search(r'<span class="field-error" id="err-confirm">([^<]+)</span>', r.text)
    assert err and "подтвердите" in err.group(1)
    assert _commands(dsn) == []
    r = client.post(f"{W}/meters/e1/commands", data={"csrf": csrf, "command": "relay_disconnect", "confirm": "1",
                                                     "back": "card"}, follow_redirects=False)
    assert r.status_code == 303
    assert _commands(dsn) == [("relay_disconnect", "e1", "pending", "disp")]
    assert client.get(f"{W}/meters/e1/relay", params={"command": "format"}).status_code == 422


def test_roles_and_organisations(site) -> None:
    client, _, dsn = site
    login(client, "viewer1")
    card = client.get(f"{W}/meters/e1").text
    assert "Ваша роль не позволяет отправлять команды." in card and "Опросить сейчас" not in card
    r = client.post(f"{W}/meters/e1/commands", data={"csrf": csrf_of(card), "command": "poll_now"})
    assert r.status_code == 403 and "не может выполнить это действие" in r.text
    assert client.get(f"{W}/meters/e1/relay").status_code == 403
    client.cookies.clear()
    login(client, "uk1adm")
    csrf = csrf_of(client.get(f"{W}/meters/e1").text)
    assert client.post(f"{W}/meters/e2/commands", data={"csrf": csrf, "command": "poll_now"}).status_code == 404
    assert client.get(f"{W}/meters/e2/commands").status_code == 404
    assert client.get(f"{W}/meters/e2/relay").status_code == 404
    assert client.get(f"{W}/gateways/gw2").status_code == 404
    gw1 = client.get(f"{W}/gateways/gw1")
    assert gw1.status_code == 200 and "Команды шлюзу подают диспетчер и администратор." in gw1.text
    assert ">e1<" in gw1.text and ">e2<" not in gw1.text
    assert client.post(f"{W}/gateways/gw1/commands", data={"csrf": csrf, "command": "reload_config"}
                       ).status_code == 403
    assert _commands(dsn) == []
    client.cookies.clear()
    login(client, "uk2adm")
    card = client.get(f"{W}/meters/e2").text
    assert 'id="cmd-gateway-offline"' in card and "Шлюз gw2 сейчас не на связи" in card
    client.cookies.clear()
    login(client, "disp")
    page = client.get(f"{W}/gateways/gw2")
    assert "Перечитать конфигурацию" in page.text
    csrf = csrf_of(page.text)
    r = client.post(f"{W}/gateways/gw2/commands", data={"csrf": csrf, "command": "format_disk"})
    assert r.status_code == 422 and "неизвестная команда" in r.text
    r = client.post(f"{W}/gateways/gw2/commands", data={"csrf": csrf, "command": "reload_config"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("/gateways/gw2?done=1")
    page = client.get(r.headers["location"]).text
    assert "Команда «Перечитать конфигурацию» принята (№ 1)" in page
    assert _commands(dsn) == [("reload_config", None, "pending", "disp")]
    assert '<a href="/web/gateways/gw2">gw2</a>' in client.get(f"{W}/gateways").text

"""A contract's «Администратор» gives colleagues roles on it (the legal-entity cabinet's seed,
13.2.1): assigned by the organisation, one per contract; it sees everyone who has the
contract, gives a role by e-mail (a new colleague gets an invitation letter through the real
SMTP server and sets a password), changes and takes roles away; nobody else may."""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import psycopg
import pytest
from alert_servers import SmtpServer
from cabinet_fixtures import PASSWORD, add_customers
from fastapi.testclient import TestClient
from test_web_fixtures import build
from test_web_pages import W, csrf_of

from askue.headend.api.app import create_app
from askue.headend.auth.permissions import Principal
from askue.headend.config import Settings
from askue.headend.customers import accounts
from askue.headend.errors import Conflict

PUBLIC = "https://askue.sever.example"
STAFF = Principal("admin", "admin", None)


@pytest.fixture
def smtp(tmp_path: Path):
    with SmtpServer(tmp_path) as s:
        yield s


@pytest.fixture
def site(pg_dsn: str, smtp: SmtpServer, tmp_path: Path):
    build(pg_dsn, tmp_path)
    add_customers(pg_dsn)
    with TestClient(create_app(Settings(dsn=pg_dsn, public_url=PUBLIC, **smtp.settings()))) as client:
        yield client, pg_dsn


def _staff(dsn: str, c: accounts.NewCustomer):
    async def go():
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        try:
            return await accounts.create(conn, STAFF, c)
        finally:
            await conn.close()
    return asyncio.run(go())


def _as(client: TestClient, login: str, password: str = PASSWORD) -> TestClient:
    client.cookies.clear()
    page = client.get(f"{W}/login")
    r = client.post(f"{W}/login", data={"login": login, "password": password, "csrf": csrf_of(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303, r.text[-500:]
    return client


def _give(client: TestClient, code: str, email: str, duty: str):
    page = client.get(f"{W}/cabinet/contracts")
    return client.post(f"{W}/cabinet/contracts/{code}/roles",
                       data={"email": email, "duty": duty, "csrf": csrf_of(page.text)})


def _roles(dsn: str, code: str) -> dict[str, str]:
    with psycopg.connect(dsn) as c:
        return dict(c.execute("SELECT u.login, b.duty FROM customer_bindings b JOIN users u ON u.id = b.user_id "
                              "JOIN accounts a ON a.id = b.account_id WHERE a.code = %s", (code,)).fetchall())


def _mail(smtp: SmtpServer, to: str, n: int = 1):
    deadline = time.monotonic() + 10
    while len(smtp.to(to)) < n:
        assert time.monotonic() < deadline, f"no letter to {to}: {[r.rcpt_tos for r in smtp.received]}"
        time.sleep(0.05)
    return smtp.to(to)[n - 1]


def test_the_organisation_assigns_one_administrator_per_contract(site) -> None:
    _, dsn = site
    # «Администратор» as the org admin's form and import file name it
    _staff(dsn, accounts.NewCustomer("ooo", accounts=[("LS-1", "Администратор")]))
    assert _roles(dsn, "LS-1")["ooo"] == "admin"
    with pytest.raises(Conflict) as e:
        _staff(dsn, accounts.NewCustomer("energ", accounts=[("LS-1", "администратор")]))
    assert "уже есть администратор (ooo)" in e.value.message_ru
    assert _roles(dsn, "LS-1")["energ"] == "energetic"  # nothing changed


def test_the_administrator_gives_changes_and_takes_away_roles(site, smtp: SmtpServer) -> None:
    client, dsn = site
    _staff(dsn, accounts.NewCustomer("ooo", accounts=[("LS-1", "admin")]))
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE users SET email = 'buh@sever.example' WHERE login = 'buh'")
    _as(client, "ooo")
    page = client.get(f"{W}/cabinet/contracts")
    assert page.status_code == 200
    section = page.text[page.text.index('id="roles-LS-1"'):]
    assert "Пользователи договора LS-1" in section and "Потребитель energ" in section and "Бухгалтер" in section
    assert 'id="roles-LS-3"' not in page.text  # «Бухгалтер» there: no roles to give

    # a new colleague: a customer login made from the address, invited by letter
    r = _give(client, "LS-1", " New.Energo@Sever.example ", "energetic")
    assert r.status_code == 200 and "Роль «Энергетик» назначена: new.energo@sever.example." in r.text
    letter = _mail(smtp, "new.energo@sever.example")
    assert letter.message["Subject"] == "АСКУЭ: роль «Энергетик» по договору LS-1"
    assert "На договор LS-1 Вам назначена роль «Энергетик»." in letter.text
    link = re.search(r"https://\S+", letter.text).group(0)
    assert link.startswith(PUBLIC + "/web/invite/")
    path = link[len(PUBLIC):]
    assert "new.energo@sever.example" in client.get(path).text
    new_password = "зелёный чайник 42"
    done = client.post(path, data={"password": new_password, "password2": new_password})
    assert done.status_code == 200 and 'id="invite-done"' in done.text, done.text[-500:]
    _as(client, "new.energo@sever.example", new_password)
    assert "S-E1" in client.get(f"{W}/cabinet/readings").text  # LS-1's meter

    # an existing colleague: the role changes, the letter has no invitation
    _as(client, "ooo")
    r = _give(client, "LS-1", "buh@sever.example", "manager")
    assert r.status_code == 200 and "Роль «Руководитель» назначена: buh." in r.text
    assert "/web/invite/" not in _mail(smtp, "buh@sever.example").text
    # take a role away; the Администратор's own cannot be
    page = client.get(f"{W}/cabinet/contracts")
    r = client.post(f"{W}/cabinet/contracts/LS-1/roles/energ/remove", data={"csrf": csrf_of(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303
    assert _roles(dsn, "LS-1") == {"ooo": "admin", "buh": "manager", "new.energo@sever.example": "energetic"}
    r = client.post(f"{W}/cabinet/contracts/LS-1/roles/ooo/remove", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 404 and "нет роли по договору LS-1, которую можно снять" in r.text
    with psycopg.connect(dsn) as c:
        audited = c.execute("SELECT action, object_id FROM audit_log WHERE actor = 'ooo' AND action LIKE 'contract_role%' "
                            "ORDER BY id").fetchall()
    assert audited == [("contract_role_give", "new.energo@sever.example"), ("contract_role_give", "buh"),
                       ("contract_role_take", "energ")]


def test_bad_input_and_other_roles_are_refused(site, smtp: SmtpServer) -> None:
    client, dsn = site
    _staff(dsn, accounts.NewCustomer("ooo", accounts=[("LS-1", "admin")]))
    before = _roles(dsn, "LS-1")
    _as(client, "ooo")
    r = _give(client, "LS-1", "не адрес", "energetic")
    assert r.status_code == 422 and 'id="err-email"' in r.text and "адрес электронной почты" in r.text
    r = _give(client, "LS-1", "x@sever.example", "admin")  # the organisation's to give
    assert r.status_code == 422 and "назначает организация" in r.text
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE users SET email = 'disp@uk.example' WHERE login = 'disp'")
    r = _give(client, "LS-1", "disp@uk.example", "manager")  # a staff user's address
    assert r.status_code == 409 and "сотрудника организации" in r.text
    r = _give(client, "LS-3", "x@sever.example", "manager")  # ooo is «Бухгалтер» on LS-3
    assert r.status_code == 403 and "с ролями других пользователей" in r.text
    r = _give(client, "LS-9", "x@sever.example", "manager")  # another customer's contract
    assert r.status_code == 404
    _as(client, "energ")  # «Энергетик» on LS-1
    assert 'id="no-admin"' in client.get(f"{W}/cabinet/contracts").text
    r = _give(client, "LS-1", "x@sever.example", "manager")
    assert r.status_code == 403
    assert _roles(dsn, "LS-1") == before and smtp.received == []

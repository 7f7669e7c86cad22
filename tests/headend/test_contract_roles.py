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
from test_web_fixtures import PASSWORD as STAFF_PASSWORD
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


# ---- «Запросить доступ»: a customer asks for «Администратор», the organisation answers ----------
def _ask(client: TestClient, code: str, message: str):
    page = client.get(f"{W}/cabinet/contracts?ask={code}")
    return client.post(f"{W}/cabinet/contracts/{code}/admin-request", data={"message": message,
                                                                           "csrf": csrf_of(page.text)})


def _answer(client: TestClient, request_id: int, decision: str, answer: str = ""):
    page = client.get(f"{W}/customers")
    return client.post(f"{W}/customers/admin-requests/{request_id}",
                       data={"decision": decision, "answer": answer, "csrf": csrf_of(page.text)},
                       follow_redirects=False)


def _requests(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT r.id, u.login, a.code, r.status, r.answered_by, r.answer FROM customer_admin_requests r "
                         "JOIN users u ON u.id = r.user_id JOIN accounts a ON a.id = r.account_id ORDER BY r.id").fetchall()


def test_a_customer_asks_for_the_administrator_role_and_the_organisation_gives_it(site, smtp: SmtpServer) -> None:
    client, dsn = site
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE users SET email = 'energ@sever.example' WHERE login = 'energ'")
    _as(client, "energ")  # «Энергетик» on LS-1, which has no «Администратор»
    page = client.get(f"{W}/cabinet/contracts")
    assert 'id="ask-LS-1"' in page.text and "Запросить доступ" in page.text
    form = client.get(f"{W}/cabinet/contracts?ask=LS-1").text
    assert 'id="ask-form"' in form and "Направить обращение" in form and "Права доступа" in form
    r = _ask(client, "LS-1", "   ")
    assert r.status_code == 422 and 'id="ask-error"' in r.text and "чем подтверждаются ваши полномочия" in r.text
    r = _ask(client, "LS-1", "Главный энергетик Петров П. П., доверенность № 12 от 01.12.2026")
    assert r.status_code == 200 and 'id="asked"' in r.text and "отправлен в организацию" in r.text
    assert 'id="ask-LS-1"' not in r.text and "ждёт ответа организации" in r.text
    r = _ask(client, "LS-1", "ещё раз")
    assert r.status_code == 409 and "уже отправлен и ждёт ответа" in r.text
    ((rid, *_),) = _requests(dsn)

    # another organisation's staff neither see nor answer it
    _as(client, "uk2adm", STAFF_PASSWORD)
    assert "доверенность № 12" not in client.get(f"{W}/customers").text
    r = _answer(client, rid, "grant")
    assert "не найден" in r.text and _roles(dsn, "LS-1")["energ"] == "energetic"

    _as(client, "uk1adm", STAFF_PASSWORD)
    page = client.get(f"{W}/customers")
    section = page.text[page.text.index('id="admin-requests"'):]
    assert "Запросы роли «Администратор» (1)" in section and "доверенность № 12 от 01.12.2026" in section
    r = _answer(client, rid, "refuse", " ")
    assert "укажите причину отказа" in r.text and _requests(dsn)[0][3] == "open"
    r = _answer(client, rid, "grant", "Доверенность проверена")
    assert r.status_code == 303
    assert _roles(dsn, "LS-1")["energ"] == "admin"
    assert _requests(dsn) == [(rid, "energ", "LS-1", "granted", "uk1adm", "Доверенность проверена")]
    letter = _mail(smtp, "energ@sever.example")
    assert letter.message["Subject"] == "АСКУЭ: роль «Администратор» по договору LS-1"
    assert "Вам назначена роль «Администратор» по договору LS-1" in letter.text
    assert "Ответ организации: Доверенность проверена" in letter.text
    assert PUBLIC + "/web/cabinet/contracts" in letter.text
    r = _answer(client, rid, "refuse", "поздно")
    assert "уже ответили" in r.text

    _as(client, "energ")  # now the contract's «Администратор»: it gives roles there
    page = client.get(f"{W}/cabinet/contracts").text
    assert 'id="roles-LS-1"' in page and "роль назначена" in page and "Доверенность проверена" in page
    with psycopg.connect(dsn) as c:
        audited = c.execute("SELECT actor, action, object_id FROM audit_log WHERE action LIKE 'admin_role%' "
                            "ORDER BY id").fetchall()
    assert audited == [("energ", "admin_role_request", "LS-1"), ("uk1adm", "admin_role_grant", "energ")]


def test_a_request_refused_and_what_cannot_be_asked_or_given(site, smtp: SmtpServer) -> None:
    client, dsn = site
    _staff(dsn, accounts.NewCustomer("boss", accounts=[("LS-1", "admin")]))
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("UPDATE users SET email = 'ooo@sever.example' WHERE login = 'ooo'")
    _as(client, "ooo")  # «Руководитель» on LS-1 (its «Администратор» is boss), «Бухгалтер» on LS-3
    page = client.get(f"{W}/cabinet/contracts").text
    assert 'id="ask-LS-1"' not in page and 'id="ask-LS-3"' in page
    for code in ("LS-1", "LS-9"):  # a stale or foreign link opens no request form
        assert 'id="ask-form"' not in client.get(f"{W}/cabinet/contracts?ask={code}").text
    r = _ask(client, "LS-1", "хочу управлять ролями")
    assert r.status_code == 409 and "уже есть администратор" in r.text and 'id="ask-error"' in r.text
    r = _ask(client, "LS-9", "чужой договор")
    assert r.status_code == 404
    assert _ask(client, "LS-3", "Директор ООО «Север», приказ № 1").status_code == 200
    ((rid, *_),) = _requests(dsn)

    _as(client, "uk1adm", STAFF_PASSWORD)
    assert _answer(client, rid, "refuse", "Приложите приказ о назначении").status_code == 303
    letter = _mail(smtp, "ooo@sever.example")
    assert "В запросе роли «Администратор» по договору LS-3 отказано." in letter.text
    assert "Ответ организации: Приложите приказ о назначении" in letter.text
    assert _roles(dsn, "LS-3")["ooo"] == "accountant"

    _as(client, "ooo")  # the answer is on the page, and it may ask again
    page = client.get(f"{W}/cabinet/contracts").text
    assert "отказано" in page and "Приложите приказ о назначении" in page and 'id="ask-LS-3"' in page
    assert _ask(client, "LS-3", "Приказ № 1 приложен к письму").status_code == 200
    rid2 = _requests(dsn)[-1][0]
    # meanwhile the organisation made someone else the contract's «Администратор»: no second one
    _staff(dsn, accounts.NewCustomer("chief", accounts=[("LS-3", "admin")]))
    _as(client, "uk1adm", STAFF_PASSWORD)
    r = _answer(client, rid2, "grant")
    assert "уже есть администратор (chief)" in r.text
    assert _roles(dsn, "LS-3") == {"ooo": "accountant", "chief": "admin"}
    assert [x[3] for x in _requests(dsn)] == ["refused", "open"]

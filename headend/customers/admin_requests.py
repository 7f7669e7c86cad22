"""A customer asks for the role «Администратор» on one of its contracts, and the organisation
answers (the legal-entity cabinet's seed, 13.2.1.3: «Запросить доступ» on «Договоры», an appeal
in the section «Права доступа» that the supplier's staff check against their rules before they
assign the role or refuse).

Only a contract without an «Администратор» can be asked for, one open request per customer and
contract. The staff who manage the organisation's customers see the waiting requests and
answer each: the role is assigned (one «Администратор» per contract, as when they assign it
themselves in customers/accounts.py) or refused with a reason. Both sides are audited; the
customer reads the answer on «Договоры» and in a letter sent once the answer has committed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from askue.headend.auth import audit
from askue.headend.auth.permissions import Action, Principal
from askue.headend.errors import Conflict, Invalid, NotFound
from askue.headend.notify.mail import MailSettings, send_later

MESSAGE_MAX = 2000
CABINET_PATH = "/web/cabinet/contracts"


@dataclass
class AdminRequest:
    id: int
    account: str  # the contract's code
    subscriber: str | None
    org_name: str | None
    login: str  # who asked
    name: str | None
    email: str | None
    message: str
    status: str  # open | granted | refused
    created_at: datetime
    answered_at: datetime | None
    answered_by: str | None
    answer: str | None


@dataclass
class CabinetView:
    """What «Договоры» shows a customer of its requests."""

    with_admin: set[str]  # the customer's contracts that have their «Администратор»
    requests: list[AdminRequest]  # its requests, newest first


_SELECT = """
SELECT r.id, a.code, a.subscriber, o.name, u.login, u.name, u.email, r.message, r.status, r.created_at,
       r.answered_at, r.answered_by, r.answer
FROM customer_admin_requests r JOIN accounts a ON a.id = r.account_id JOIN users u ON u.id = r.user_id
LEFT JOIN organisations o ON o.id = a.org_id
"""


def _text(field: str, text: str, en: str, ru: str) -> str:
    text = (text or "").strip()
    if not text:
        raise Invalid(field, en, ru)
    if len(text) > MESSAGE_MAX:
        raise Invalid(field, f"at most {MESSAGE_MAX} characters, please", f"не больше {MESSAGE_MAX} символов")
    return text


async def ask(conn: psycopg.AsyncConnection, principal: Principal, code: str, message: str) -> AdminRequest:
    """The customer asks for «Администратор» on its contract `code`."""
    principal.require(Action.CABINET)
    cond, params = principal.scope.accounts("a")
    cur = await conn.execute(f"SELECT a.id FROM accounts a WHERE a.code = %s AND {cond}", [code, *params])
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"contract {code} is not in your cabinet", f"договора {code} нет в вашем кабинете",
                       field="account")
    aid = row[0]
    text = _text("message", message, "say who you are and what confirms your authority (e.g. a power of attorney)",
                 "укажите, кто вы и чем подтверждаются ваши полномочия (например, доверенность)")
    async with conn.transaction():
        # the contract's row first: a request and an answer on the same contract take turns
        await conn.execute("SELECT 1 FROM accounts WHERE id = %s FOR UPDATE", (aid,))
        cur = await conn.execute("SELECT u.login FROM customer_bindings b JOIN users u ON u.id = b.user_id "
                                 "WHERE b.account_id = %s AND b.duty = 'admin'", (aid,))
        admin = await cur.fetchone()
        if admin is not None:
            if admin[0] == principal.name:
                raise Conflict(f"you are the Администратор of contract {code}",
                               f"вы уже администратор договора {code}")
            raise Conflict(f"contract {code} has its Администратор: ask them for a role",
                           f"у договора {code} уже есть администратор: роль по договору назначает он")
        cur = await conn.execute(
            "INSERT INTO customer_admin_requests (user_id, account_id, message) "
            "SELECT id, %s, %s FROM users WHERE login = %s ON CONFLICT DO NOTHING RETURNING id",
            (aid, text, principal.name))
        made = await cur.fetchone()
        if made is None:
            raise Conflict(f"your request for contract {code} waits for the organisation's answer",
                           f"ваш запрос по договору {code} уже отправлен и ждёт ответа организации")
        await audit.record(conn, principal, "admin_role_request", "account", code, new={"request": made[0]})
    return await _one(conn, made[0])


async def _one(conn: psycopg.AsyncConnection, request_id: int) -> AdminRequest:
    cur = await conn.execute(_SELECT + "WHERE r.id = %s", (request_id,))
    return AdminRequest(*await cur.fetchone())


async def cabinet(conn: psycopg.AsyncConnection, principal: Principal) -> CabinetView:
    """The customer's requests, and which of its contracts have their «Администратор»."""
    principal.require(Action.CABINET)
    ids = [a for a, _ in principal.accounts or ()]
    cur = await conn.execute("SELECT DISTINCT a.code FROM accounts a JOIN customer_bindings b ON b.account_id = a.id "
                             "WHERE a.id = ANY(%s) AND b.duty = 'admin'", (ids,))
    with_admin = {r[0] for r in await cur.fetchall()}
    cur = await conn.execute(_SELECT + "WHERE u.login = %s AND r.account_id = ANY(%s) ORDER BY r.created_at DESC, "
                             "r.id DESC", (principal.name, ids))
    return CabinetView(with_admin, [AdminRequest(*r) for r in await cur.fetchall()])


async def waiting(conn: psycopg.AsyncConnection, principal: Principal) -> list[AdminRequest]:
    """Open requests on the organisation's contracts, oldest first."""
    principal.require(Action.CUSTOMERS_MANAGE)
    cond, params = principal.scope.accounts("a")
    cur = await conn.execute(_SELECT + f"WHERE r.status = 'open' AND {cond} ORDER BY r.created_at, r.id", params)
    return [AdminRequest(*r) for r in await cur.fetchall()]


def letter(code: str, granted: bool, answer: str | None, lang: str, cabinet_url: str) -> tuple[str, str]:
    """(subject, text) of the organisation's answer."""
    if lang == "en":
        head = (f"You have been given the role «Administrator» on contract {code}: you can now give colleagues "
                "roles on it." if granted else f"Your request for the role «Administrator» on contract {code} "
                "has been refused.")
        note = f"\nThe organisation's answer: {answer}\n" if answer else "\n"
        return f"askue: the role Administrator on contract {code}", f"{head}{note}Your cabinet: {cabinet_url}\n"
    head = (f"Вам назначена роль «Администратор» по договору {code}: теперь Вы назначаете роли другим "
            "пользователям договора." if granted else
            f"В запросе роли «Администратор» по договору {code} отказано.")
    note = f"\nОтвет организации: {answer}\n" if answer else "\n"
    return f"АСКУЭ: роль «Администратор» по договору {code}", f"{head}{note}Личный кабинет: {cabinet_url}\n"


async def answer(conn: psycopg.AsyncConnection, principal: Principal, request_id: int, grant: bool, text: str, *,
                 mail: MailSettings | None, base_url: str) -> AdminRequest:
    """Assign the role (`grant`) or refuse it; a refusal says why."""
    principal.require(Action.CUSTOMERS_MANAGE)
    if not grant:
        text = _text("answer", text, "say why the request is refused", "укажите причину отказа")
    elif (text := (text or "").strip()) and len(text) > MESSAGE_MAX:
        raise Invalid("answer", f"at most {MESSAGE_MAX} characters, please", f"не больше {MESSAGE_MAX} символов")
    cond, params = principal.scope.accounts("a")
    async with conn.transaction():
        cur = await conn.execute(
            f"SELECT r.user_id, r.account_id, r.status, a.code, u.login, u.email, u.lang "
            f"FROM customer_admin_requests r JOIN accounts a ON a.id = r.account_id JOIN users u ON u.id = r.user_id "
            f"WHERE r.id = %s AND {cond} FOR UPDATE OF r, a", [request_id, *params])
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"request {request_id} not found", f"запрос {request_id} не найден", field="request")
        uid, aid, status, code, login, email, lang = row
        if status != "open":
            raise Conflict(f"request {request_id} has been answered already", "на этот запрос уже ответили")
        before = None
        if grant:
            cur = await conn.execute("SELECT u.login FROM customer_bindings b JOIN users u ON u.id = b.user_id "
                                     "WHERE b.account_id = %s AND b.duty = 'admin' AND b.user_id <> %s", (aid, uid))
            other = await cur.fetchone()
            if other is not None:
                raise Conflict(f"contract {code} has its Администратор ({other[0]}): refuse the request or take "
                               "the role from them first", f"у договора {code} уже есть администратор ({other[0]}): "
                               "откажите в запросе или сначала снимите роль с него")
            cur = await conn.execute("SELECT duty FROM customer_bindings WHERE user_id = %s AND account_id = %s",
                                     (uid, aid))
            before = await cur.fetchone()
            await conn.execute("INSERT INTO customer_bindings (user_id, account_id, duty) VALUES (%s, %s, 'admin') "
                               "ON CONFLICT (user_id, account_id) DO UPDATE SET duty = 'admin'", (uid, aid))
        await conn.execute("UPDATE customer_admin_requests SET status = %s, answered_at = now(), answered_by = %s, "
                           "answer = %s WHERE id = %s",
                           ("granted" if grant else "refused", principal.name, text or None, request_id))
        await audit.record(conn, principal, "admin_role_grant" if grant else "admin_role_refuse", "user", login,
                           old={"account": code, "duty": before[0] if before else None} if grant else None,
                           new={"account": code, "duty": "admin", "request": request_id} if grant else
                           {"account": code, "request": request_id}, comment=text or None)
    if mail is not None and email:
        subject, body = letter(code, grant, text or None, lang or "ru", base_url + CABINET_PATH)
        send_later(mail, email, subject, body, f"answer to the Администратор request {request_id}", after=conn)
    return await _one(conn, request_id)

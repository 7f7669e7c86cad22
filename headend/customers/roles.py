"""Roles on a contract given by its «Администратор» (the legal-entity cabinet's seed, 13.2.1):
who has the contract in their cabinet and with which role, a role given to a colleague by
e-mail («Руководитель», «Энергетик» or «Бухгалтер»; a new colleague gets an invitation to set
a password), and a role taken away. The «Администратор» itself is assigned by the
organisation (customers/accounts.py), one per contract.

Every change is audited, and the colleague is told by a letter sent once the change has
committed.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import psycopg

from askue.headend.auth import account, audit, users
from askue.headend.auth.permissions import DUTIES, Principal
from askue.headend.customers.accounts import INVITE_LIFETIME, invite_hash
from askue.headend.errors import Conflict, Invalid, NotFound
from askue.headend.notify.mail import MailSettings, send_later

GIVEN = ("manager", "energetic", "accountant")  # what an «Администратор» may give
INVITE_PATH = "/web/invite/"  # the page an invitation opens (web router prefix /web)
CABINET_PATH = "/web/cabinet/readings"
_EMAIL_MAX = 254


@dataclass
class Member:
    login: str
    name: str | None
    email: str | None
    duty: str
    invited: bool  # has not set a password yet
    is_you: bool


@dataclass
class Contract:
    id: int
    code: str
    subscriber: str | None
    members: list[Member]


async def _contract(conn: psycopg.AsyncConnection, principal: Principal, code: str) -> tuple[int, str | None, int]:
    """(id, subscriber, organisation) of a contract on which the principal gives roles."""
    cond, params = principal.scope.accounts("a")
    cur = await conn.execute(f"SELECT a.id, a.subscriber, a.org_id FROM accounts a WHERE a.code = %s AND {cond}",
                             [code, *params])
    row = await cur.fetchone()
    if row is None:
        raise NotFound(f"contract {code} not found", f"договор {code} не найден", field="account")
    principal.require_on(row[0], "roles")
    return row[0], row[1], row[2]


async def contracts(conn: psycopg.AsyncConnection, principal: Principal) -> list[Contract]:
    """The contracts on which the principal is «Администратор», each with everyone who has it."""
    out = []
    for aid, duty in principal.accounts or ():
        if duty != "admin":
            continue
        cur = await conn.execute(
            "SELECT a.code, a.subscriber, u.login, u.name, u.email, b.duty, u.password_hash IS NULL, u.login = %s "
            "FROM accounts a JOIN customer_bindings b ON b.account_id = a.id JOIN users u ON u.id = b.user_id "
            "WHERE a.id = %s ORDER BY b.duty <> 'admin', u.login", (principal.name, aid))
        rows = await cur.fetchall()
        if rows:
            out.append(Contract(aid, rows[0][0], rows[0][1], [Member(*r[2:]) for r in rows]))
    return sorted(out, key=lambda c: c.code)


def _duty(name: str) -> str:
    if name not in GIVEN:
        raise Invalid("duty", "choose Руководитель, Энергетик or Бухгалтер (the organisation assigns "
                      "the Администратор)", "выберите «Руководитель», «Энергетик» или «Бухгалтер» (роль "
                      "«Администратор» назначает организация)")
    return name


def _email(text: str) -> str:
    email = (text or "").strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or len(email) > _EMAIL_MAX or any(ch.isspace() for ch in email):
        raise Invalid("email", "give the colleague's e-mail address, e.g. energy@company.ru",
                      "укажите адрес электронной почты коллеги, например energy@company.ru")
    return email


def letter(code: str, duty: str, lang: str, cabinet: str, invite: str | None) -> tuple[str, str]:
    """(subject, text) telling a colleague of the role given: the seed's words, and the
    invitation link for someone without a password yet."""
    ru, en = DUTIES[duty]
    days = INVITE_LIFETIME.days
    if lang == "en":
        how = (f"Set your password here (the link works once, for {days} days):\n{invite}\n" if invite else
               f"See the changes in your cabinet: {cabinet}\n")
        return (f"askue: the role {en} on contract {code}",
                f"You have been given the role «{en}» on contract {code}.\n{how}")
    how = (f"Задайте пароль для входа по ссылке (она действует один раз, {days} дней):\n{invite}\n" if invite else
           f"Вы можете посмотреть изменения в личном кабинете: {cabinet}\n")
    return (f"АСКУЭ: роль «{ru}» по договору {code}", f"На договор {code} Вам назначена роль «{ru}».\n{how}")


@dataclass
class Given:
    login: str
    email: str
    invite_link: str | None  # for a new colleague: where to set a password (also in the letter)
    mailed: bool  # a letter is sent once the change commits (False: no SMTP server configured)


async def give(conn: psycopg.AsyncConnection, principal: Principal, code: str, email: str, duty: str, *,
               mail: MailSettings | None, base_url: str) -> Given:
    """Give the colleague with this e-mail (a new customer login when nobody has it) the role on
    the contract."""
    aid, _, org = await _contract(conn, principal, code)
    duty, email = _duty(duty), _email(email)
    async with conn.transaction():
        cur = await conn.execute("SELECT id, login, role, lang FROM users WHERE lower(email) = %s FOR UPDATE",
                                 (email,))
        found = await cur.fetchone()  # an address belongs to one user at most (users_email_uq)
        if found is not None and found[2] != "customer":
            raise Conflict(f"{email} is a staff user's address: ask the organisation", f"адрес {email} указан у "
                           "сотрудника организации: обратитесь в организацию", field="email")
        invite = None
        if found is not None:
            uid, login, _, lang = found
            if login == principal.name:
                raise Invalid("email", "this is your own address: your role on the contract stays Администратор",
                              "это ваш собственный адрес: ваша роль по договору остаётся «Администратор»")
            await conn.execute("UPDATE users SET org_ids = (SELECT array_agg(DISTINCT x ORDER BY x) FROM "
                               "unnest(coalesce(org_ids, '{}') || ARRAY[%s]::bigint[]) x) WHERE id = %s", (org, uid))
        else:
            login, lang = email, "ru"
            try:
                u = await users.create_user_async(conn, login, secrets.token_urlsafe(32), "customer", [org])
            except users.UserError:
                raise Invalid("email", f"the login {login} is taken by a user with another address; ask the "
                              "organisation", f"логин {login} занят пользователем с другим адресом; обратитесь в "
                              "организацию") from None
            uid = u.id
            # no usable password until the invitation is accepted
            await conn.execute("UPDATE users SET password_hash = NULL WHERE id = %s", (uid,))
            await account.set_email(conn, u, email, principal.ip)
            invite = secrets.token_urlsafe(32)
            await conn.execute("INSERT INTO customer_invites (token_hash, user_id, created_by, expires_at) "
                               "VALUES (%s, %s, %s, now() + %s)", (invite_hash(invite), uid, principal.name,
                                                                   INVITE_LIFETIME))
        cur = await conn.execute("SELECT duty FROM customer_bindings WHERE user_id = %s AND account_id = %s FOR UPDATE",
                                 (uid, aid))
        before = await cur.fetchone()
        if before is not None and before[0] == "admin":
            raise Conflict(f"{login} is the contract's Администратор", f"{login} — администратор договора")
        await conn.execute("INSERT INTO customer_bindings (user_id, account_id, duty) VALUES (%s, %s, %s) "
                           "ON CONFLICT (user_id, account_id) DO UPDATE SET duty = EXCLUDED.duty", (uid, aid, duty))
        await audit.record(conn, principal, "contract_role_give", "user", login,
                           old={"account": code, "duty": before[0]} if before else None,
                           new={"account": code, "duty": duty, "invite": invite is not None})
    link = base_url + INVITE_PATH + invite if invite else None
    if mail is not None:
        subject, text = letter(code, duty, lang, base_url + CABINET_PATH, link)
        send_later(mail, email, subject, text, f"contract role letter for {login}", after=conn)
    return Given(login, email, link, mail is not None)


async def take_away(conn: psycopg.AsyncConnection, principal: Principal, code: str, login: str) -> None:
    """The colleague no longer has the contract in the cabinet."""
    aid, _, _ = await _contract(conn, principal, code)
    async with conn.transaction():
        cur = await conn.execute(
            "DELETE FROM customer_bindings b USING users u WHERE b.user_id = u.id AND b.account_id = %s "
            "AND u.login = %s AND b.duty <> 'admin' RETURNING b.duty", (aid, login))
        row = await cur.fetchone()
        if row is None:
            raise NotFound(f"{login} has no role on contract {code} you could take away",
                           f"у пользователя {login} нет роли по договору {code}, которую можно снять", field="login")
        await audit.record(conn, principal, "contract_role_take", "user", login, old={"account": code, "duty": row[0]})

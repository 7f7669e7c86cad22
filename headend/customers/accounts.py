"""Customers: users with the role `customer`, bound to accounts (ЛС; a legal entity's
contract) with a role on each («Администратор», one per contract, «Руководитель»,
«Энергетик», «Бухгалтер»; the Администратор gives colleagues the others: customers/roles.py).

An organisation's admin creates a customer with an initial password or an invitation
link (the customer sets the password; the link works once, for 7 days), or imports
many from a CSV file. A customer logs in like everyone else (auth/users, sessions, the
login rate limit); `bindings` gives its principal the accounts it sees.
"""
from __future__ import annotations

import csv
import hashlib
import io
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth import account, audit, users
from askue.headend.auth.passwords import PasswordPolicyError, check_policy
from askue.headend.auth.permissions import DUTIES, Action, Principal
from askue.headend.errors import Conflict, Invalid, NotFound

INVITE_LIFETIME = timedelta(days=7)
# what the import file and the form may call a role
DUTY_BY_NAME = {**{k: k for k in DUTIES}, **{ru.lower(): k for k, (ru, _) in DUTIES.items()},
                **{en.lower(): k for k, (_, en) in DUTIES.items()}}


def invite_hash(token: str) -> str:
    """What is kept of an invitation token (its SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()


async def bindings(conn: psycopg.AsyncConnection, user_id: int) -> tuple[tuple[int, str], ...]:
    cur = await conn.execute("SELECT account_id, duty FROM customer_bindings WHERE user_id = %s ORDER BY account_id",
                             (user_id,))
    return tuple((a, d) for a, d in await cur.fetchall())


def duty_of(name: str) -> str:
    d = DUTY_BY_NAME.get((name or "manager").strip().lower())
    if d is None:
        raise Invalid("duty", f"role {name!r} is unknown; use Руководитель, Энергетик or Бухгалтер",
                      f"роль «{name}» неизвестна; укажите Руководитель, Энергетик или Бухгалтер")
    return d


@dataclass
class NewCustomer:
    login: str
    name: str = ""
    email: str = ""
    accounts: list[tuple[str, str]] = field(default_factory=list)  # (account code, duty)
    password: str = ""  # empty: an invitation link is made instead


@dataclass
class Created:
    login: str
    invite: str | None  # the invitation token (shown once), when no password was given
    new_user: bool


async def _account_ids(conn: psycopg.AsyncConnection, principal: Principal, codes: list[str]) -> dict[str, tuple[int, int]]:
    cond, params = principal.scope.accounts("a")
    cur = await conn.execute(f"SELECT a.code, a.id, a.org_id FROM accounts a WHERE a.code = ANY(%s) AND {cond}",
                             [codes, *params])
    found = {code: (aid, org) for code, aid, org in await cur.fetchall()}
    missing = [c for c in codes if c not in found]
    if missing:
        raise NotFound(f"account(s) {', '.join(missing)} not found", f"лицевой счёт {', '.join(missing)} не найден",
                       field="accounts")
    return found


async def create(conn: psycopg.AsyncConnection, principal: Principal, c: NewCustomer) -> Created:
    """A customer with its accounts, or more accounts for an existing customer of the same login."""
    principal.require(Action.CUSTOMERS_MANAGE)
    login = c.login.strip()
    if not c.accounts:
        raise Invalid("accounts", "give at least one account", "укажите хотя бы один лицевой счёт")
    found = await _account_ids(conn, principal, [a for a, _ in c.accounts])
    duties = [(found[a][0], duty_of(d)) for a, d in c.accounts]
    orgs = sorted({org for _, org in found.values()})
    async with conn.transaction():
        cur = await conn.execute("SELECT id, role, org_ids FROM users WHERE lower(login) = lower(%s) FOR UPDATE",
                                 (login,))
        row = await cur.fetchone()
        invite = None
        if row is not None:
            if row[1] != "customer":
                raise Conflict(f"login {login!r} is taken by a staff user", f"логин {login!r} уже занят сотрудником")
            if principal.org_ids is not None and not set(row[2] or ()) <= principal.org_ids:
                # another organisation's customer: its login is taken, its accounts are not ours to touch
                raise Conflict(f"login {login!r} is taken", f"логин {login!r} уже занят")
            uid = row[0]
            await conn.execute("UPDATE users SET org_ids = (SELECT array_agg(DISTINCT x ORDER BY x) FROM "
                               "unnest(coalesce(org_ids, '{}') || %s::bigint[]) x) WHERE id = %s", (orgs, uid))
        else:
            try:
                if c.password:
                    check_policy(c.password, login, c.name)
                    u = await users.create_user_async(conn, login, c.password, "customer", orgs, c.name or None)
                else:
                    # no usable password until the invitation is accepted
                    u = await users.create_user_async(conn, login, secrets.token_urlsafe(32), "customer", orgs,
                                                      c.name or None)
                    await conn.execute("UPDATE users SET password_hash = NULL WHERE id = %s", (u.id,))
            except users.UserError as e:
                raise Invalid("login", str(e)) from None
            except PasswordPolicyError as e:
                raise Invalid("password", str(e), e.message_ru) from None
            uid = u.id
            if c.email:  # the address a password reset goes to (auth/account.py), as for every user
                await account.set_email(conn, u, c.email, principal.ip)
            if not c.password:
                invite = secrets.token_urlsafe(32)
                await conn.execute("INSERT INTO customer_invites (token_hash, user_id, created_by, expires_at) "
                                   "VALUES (%s, %s, %s, now() + %s)", (invite_hash(invite), uid, principal.name,
                                                                       INVITE_LIFETIME))
        for aid, duty in duties:
            if duty == "admin":
                cur = await conn.execute("SELECT u.login FROM customer_bindings b JOIN users u ON u.id = b.user_id "
                                         "WHERE b.account_id = %s AND b.duty = 'admin' AND b.user_id <> %s", (aid, uid))
                if (other := await cur.fetchone()) is not None:
                    code = next(a for a, (i, _) in found.items() if i == aid)
                    raise Conflict(f"contract {code} already has an Администратор ({other[0]}); a contract has one",
                                   f"у договора {code} уже есть администратор ({other[0]}); он может быть только один")
            await conn.execute("INSERT INTO customer_bindings (user_id, account_id, duty) VALUES (%s, %s, %s) "
                               "ON CONFLICT (user_id, account_id) DO UPDATE SET duty = EXCLUDED.duty", (uid, aid, duty))
        if c.email:
            await conn.execute("UPDATE accounts SET email = coalesce(email, %s) WHERE id = ANY(%s)",
                               (c.email, [aid for aid, _ in duties]))
        await audit.record(conn, principal, "customer_create" if row is None else "customer_bind", "user", login,
                           new={"accounts": [[a, d] for a, d in c.accounts], "invite": invite is not None})
    return Created(login, invite, row is None)


async def invited_login(conn: psycopg.AsyncConnection, token: str) -> str:
    """The login a live invitation is for; NotFound when it is unknown, used or expired."""
    cur = await conn.execute("SELECT u.login FROM customer_invites i JOIN users u ON u.id = i.user_id "
                             "WHERE i.token_hash = %s AND i.used_at IS NULL AND i.expires_at > now()",
                             (invite_hash(token or ""),))
    row = await cur.fetchone()
    if row is None:
        raise NotFound("the invitation link is unknown, used or expired; ask for a new one",
                       "ссылка-приглашение недействительна, уже использована или устарела; попросите новую")
    return row[0]


async def accept_invite(conn: psycopg.AsyncConnection, token: str, password: str) -> str:
    """Set the password of an invited customer; the link works once. Returns the login."""
    async with conn.transaction():
        cur = await conn.execute(
            "SELECT i.user_id, u.login, u.name, u.lang FROM customer_invites i JOIN users u ON u.id = i.user_id "
            "WHERE i.token_hash = %s AND i.used_at IS NULL AND i.expires_at > now() FOR UPDATE OF i",
            (invite_hash(token or ""),))
        row = await cur.fetchone()
        if row is None:
            raise NotFound("the invitation link is unknown, used or expired; ask for a new one",
                           "ссылка-приглашение недействительна, уже использована или устарела; попросите новую")
        uid, login, name, lang = row
        try:
            await users.set_password(conn, users.User(uid, login, name, "customer", None, lang, True), password)
        except PasswordPolicyError as e:
            raise Invalid("password", str(e), e.message_ru) from None
        await conn.execute("UPDATE customer_invites SET used_at = now() WHERE token_hash = %s", (invite_hash(token),))
        await audit.record(conn, login, "customer_invite_accept", "user", login)
    return login


@dataclass
class ImportRow:
    line: int
    login: str
    ok: bool
    message: str
    invite: str | None = None


IMPORT_COLUMNS = ("login", "name", "email", "account", "role", "password")
_HEADERS = {"логин": "login", "имя": "name", "наименование": "name", "e-mail": "email", "почта": "email",
            "лицевой счёт": "account", "лицевой счет": "account", "договор": "account", "роль": "role",
            "пароль": "password", **{c: c for c in IMPORT_COLUMNS}}


async def import_csv(conn: psycopg.AsyncConnection, principal: Principal, text: str) -> list[ImportRow]:
    """Customers from a CSV file (`;` or `,`): login, name, e-mail, account, role, password
    (empty: an invitation link). One row per account; rows of one login make one customer.
    Each row is judged on its own; a bad row says what is wrong and does not stop the others."""
    principal.require(Action.CUSTOMERS_MANAGE)
    sample = text[:2000]
    delim = ";" if sample.count(";") >= sample.count(",") else ","
    reader = csv.reader(io.StringIO(text), delimiter=delim)
    header = next(reader, None)
    if header is None:
        raise Invalid("file", "the file is empty", "файл пуст")
    cols = [_HEADERS.get(h.strip().lower()) for h in header]
    if "login" not in cols or "account" not in cols:
        raise Invalid("file", "the first row must name the columns; login and account are required",
                      "в первой строке — названия столбцов; обязательны «логин» и «лицевой счёт»")
    out: list[ImportRow] = []
    for n, rec in enumerate(reader, start=2):
        if not any(x.strip() for x in rec):
            continue
        r = {c: (rec[i].strip() if i < len(rec) else "") for i, c in enumerate(cols) if c}
        try:
            async with conn.transaction():
                done = await create(conn, principal, NewCustomer(r.get("login", ""), r.get("name", ""),
                                                                 r.get("email", ""),
                                                                 [(r.get("account", ""), r.get("role") or "manager")],
                                                                 r.get("password", "")))
            out.append(ImportRow(n, done.login, True, "создан" if done.new_user else "добавлен лицевой счёт",
                                 done.invite))
        except (Invalid, NotFound, Conflict) as e:
            out.append(ImportRow(n, r.get("login", ""), False, e.message_ru))
    await audit.record(conn, principal, "customer_import", "file", None,
                       new={"rows": len(out), "ok": sum(r.ok for r in out)})
    return out


async def managed(conn: psycopg.AsyncConnection, principal: Principal) -> list[dict]:
    """The customers of this principal's organisations with their accounts and roles."""
    principal.require(Action.CUSTOMERS_MANAGE)
    cond, params = principal.scope.accounts("a")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT u.login, u.name, u.active, u.last_login_at, u.password_hash IS NULL AS invited,
                       array_agg(a.code || ' · ' || b.duty ORDER BY a.code) AS accounts
                FROM users u JOIN customer_bindings b ON b.user_id = u.id JOIN accounts a ON a.id = b.account_id
                WHERE u.role = 'customer' AND {cond} GROUP BY u.id ORDER BY u.login""", params)
        return await cur.fetchall()


async def accounts_of(conn: psycopg.AsyncConnection, principal: Principal) -> list[dict]:
    """The accounts a customer is bound to (or an organisation's, for staff), with the role on each."""
    cond, params = principal.scope.accounts("a")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT a.id, a.code, a.subscriber, o.name AS org_name, o.id AS org_id
                FROM accounts a LEFT JOIN organisations o ON o.id = a.org_id WHERE {cond} ORDER BY a.code""", params)
        rows = await cur.fetchall()
    for r in rows:
        r["duty"] = principal.duty(r["id"]) if principal.is_customer else "manager"
    return rows

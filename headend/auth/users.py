"""Users: create, change, authenticate. Roles are the API roles (admin,
dispatcher, org_admin, viewer; auth/permissions.py says what each may do); an
org_admin is limited to its organisations. Billing systems get API tokens
(`askue.headend.api.auth.create_token`), not users."""
from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.passwords import check_policy, hash_password, needs_rehash, verify_password
from askue.headend.auth.permissions import USER_ROLES, Principal


class UserError(ValueError):
    """Bad user data: says what is wrong and how to fix it."""


@dataclass(frozen=True)
class User:
    id: int
    login: str
    name: str | None
    role: str
    org_ids: frozenset[int] | None
    lang: str
    active: bool

    def principal(self, ip: str | None = None) -> Principal:
        return Principal(self.login, self.role, self.org_ids, ip)


_COLS = "id, login, name, role, org_ids, lang, active"


def _user(row: dict | tuple) -> User:
    if isinstance(row, dict):
        row = tuple(row[c] for c in ("id", "login", "name", "role", "org_ids", "lang", "active"))
    uid, login, name, role, org_ids, lang, active = row
    return User(uid, login, name, role, None if org_ids is None else frozenset(org_ids), lang, active)


def _validate(login: str, role: str, org_ids: list[int] | None) -> None:
    if not login or not login.strip() or len(login) > 100 or any(c.isspace() for c in login):
        raise UserError("login must be 1..100 characters without spaces")
    if role not in USER_ROLES:
        raise UserError(f"role {role!r} is unknown; use one of {', '.join(USER_ROLES)} "
                        "(billing systems get an API token instead)")
    if role == "org_admin" and not org_ids:
        raise UserError("an org_admin user needs at least one organisation")


def org_ids_for(conn: psycopg.Connection, codes: list[str] | None) -> list[int] | None:
    if not codes:
        return None
    found = dict(conn.execute("SELECT code, id FROM organisations WHERE code = ANY(%s)", (codes,)).fetchall())
    missing = [c for c in codes if c not in found]
    if missing:
        raise UserError(f"organisation(s) {', '.join(missing)} not found; import the registry first")
    return [found[c] for c in codes]


def create_user(conn: psycopg.Connection, login: str, password: str, role: str, org_codes: list[str] | None = None,
                name: str | None = None, lang: str = "ru") -> User:
    """Create a user (sync, for the CLI and tests). Raises UserError on bad input."""
    org_ids = org_ids_for(conn, org_codes)
    _validate(login, role, org_ids)
    check_policy(password, login)
    if conn.execute("SELECT 1 FROM users WHERE lower(login) = lower(%s)", (login,)).fetchone():
        raise UserError(f"login {login!r} is taken")
    row = conn.execute(
        f"INSERT INTO users (login, name, role, org_ids, password_hash, lang, password_changed_at) "
        f"VALUES (%s, %s, %s, %s, %s, %s, now()) RETURNING {_COLS}",
        (login, name, role, org_ids, hash_password(password), lang)).fetchone()
    return _user(row)


async def create_user_async(conn: psycopg.AsyncConnection, login: str, password: str, role: str,
                            org_ids: list[int] | None, name: str | None = None, lang: str = "ru") -> User:
    _validate(login, role, org_ids)
    check_policy(password, login)
    if await (await conn.execute("SELECT 1 FROM users WHERE lower(login) = lower(%s)", (login,))).fetchone():
        raise UserError(f"login {login!r} is taken")
    cur = await conn.execute(
        f"INSERT INTO users (login, name, role, org_ids, password_hash, lang, password_changed_at) "
        f"VALUES (%s, %s, %s, %s, %s, %s, now()) RETURNING {_COLS}",
        (login, name, role, org_ids, hash_password(password), lang))
    return _user(await cur.fetchone())


async def authenticate(conn: psycopg.AsyncConnection, login: str, password: str) -> User | None:
    """The active user with this login and password, else None (same cost either way)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLS}, password_hash FROM users WHERE lower(login) = lower(%s)", (login,))
        row = await cur.fetchone()
    ok = verify_password(row["password_hash"] if row else None, password)
    if not ok or row is None or not row["active"]:
        return None
    if needs_rehash(row["password_hash"]):
        await conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (hash_password(password), row["id"]))
    await conn.execute("UPDATE users SET last_login_at = now() WHERE id = %s", (row["id"],))
    return _user(row)


async def list_users(conn: psycopg.AsyncConnection, org_ids: frozenset[int] | None) -> list[dict]:
    """Users an admin (None: all) or an org_admin (users wholly inside its organisations) may manage."""
    cond, params = "TRUE", []
    if org_ids is not None:
        cond, params = "org_ids IS NOT NULL AND org_ids <@ %s::bigint[]", [sorted(org_ids)]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT u.id, u.login, u.name, u.role, u.lang, u.active, u.last_login_at, u.created_at, "
            f"ARRAY(SELECT o.code FROM organisations o WHERE o.id = ANY(u.org_ids) ORDER BY o.code) AS orgs "
            f"FROM users u WHERE {cond} ORDER BY u.login", params)
        return await cur.fetchall()


async def set_active(conn: psycopg.AsyncConnection, user_id: int, active: bool) -> None:
    await conn.execute("UPDATE users SET active = %s WHERE id = %s", (active, user_id))
    if not active:
        await conn.execute("DELETE FROM web_sessions WHERE user_id = %s", (user_id,))


async def set_password(conn: psycopg.AsyncConnection, user: User, password: str) -> None:
    check_policy(password, user.login)
    await conn.execute("UPDATE users SET password_hash = %s, password_changed_at = now() WHERE id = %s",
                       (hash_password(password), user.id))

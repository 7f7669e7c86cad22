"""Users: create, change, authenticate. Roles are the API roles (admin,
dispatcher, org_admin, viewer; auth/permissions.py says what each may do); an
org_admin is limited to its organisations. Billing systems get API tokens
(`askue.headend.api.auth.create_token`), not users."""
from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth import audit
from askue.headend.auth.passwords import (
    PasswordPolicyError,
    check_policy,
    hash_password,
    needs_rehash,
    verify_password,
)
from askue.headend.auth.permissions import GRANTABLE, USER_ROLES, Action, Principal
from askue.headend.errors import Conflict, Forbidden, Invalid, NotFound


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


def user_from_row(row: dict | tuple) -> User:
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
    return user_from_row(row)


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
    return user_from_row(await cur.fetchone())


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
    return user_from_row(row)


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
    """A new password for the user (the account page, a reset link); PasswordPolicyError if weak."""
    check_policy(password, user.login, user.name)
    await conn.execute("UPDATE users SET password_hash = %s, password_changed_at = now() WHERE id = %s",
                       (hash_password(password), user.id))
    # a login that got past the old password and waits for its code must start again
    await conn.execute("DELETE FROM login_challenges WHERE user_id = %s", (user.id,))


# ---- user management by a principal (the «Пользователи» page) ---------------------------------
async def _visible_orgs(conn: psycopg.AsyncConnection, principal: Principal) -> dict[str, int]:
    scope, params = principal.scope.sql("id")
    cur = await conn.execute(f"SELECT code, id FROM organisations WHERE {scope}", params)
    return dict(await cur.fetchall())


async def managed(conn: psycopg.AsyncConnection, principal: Principal) -> list[dict]:
    """The users this principal manages."""
    principal.require(Action.USERS_MANAGE)
    return await list_users(conn, principal.org_ids)


async def create_by(conn: psycopg.AsyncConnection, principal: Principal, login: str, password: str, role: str,
                    org_codes: list[str], name: str | None = None) -> User:
    """A new user; an organisation's admin creates users of its own organisations only."""
    principal.require(Action.USERS_MANAGE)
    visible = await _visible_orgs(conn, principal)
    bad = [o for o in org_codes if o not in visible]
    if bad:
        raise NotFound(f"organisation(s) {', '.join(bad)} not found", f"организация {', '.join(bad)} не найдена")
    if role not in GRANTABLE.get(principal.role, ()):
        raise Forbidden(f"role {principal.role!r} may create users of roles {', '.join(GRANTABLE.get(principal.role, ()))}",
                        "эту роль может назначить только администратор")
    if not principal.scope.everything and not org_codes:
        org_codes = sorted(visible)
    if role == "viewer" and not principal.scope.everything and not org_codes:
        raise Invalid("orgs", "choose an organisation", "выберите организацию")
    try:
        u = await create_user_async(conn, login.strip(), password, role, [visible[o] for o in org_codes] or None, name)
    except PasswordPolicyError as e:
        raise Invalid("password", str(e), e.message_ru) from None
    except ValueError as e:
        raise Invalid("user", str(e)) from None
    await audit.record(conn, principal, "user_create", "user", u.login, new={"role": role, "orgs": org_codes})
    return u


async def set_active_by(conn: psycopg.AsyncConnection, principal: Principal, login: str, active: bool) -> None:
    target = next((u for u in await managed(conn, principal) if u["login"] == login), None)
    if target is None:
        raise NotFound(f"user {login!r} not found", f"пользователь {login!r} не найден")
    if target["login"] == principal.name:
        raise Conflict("you cannot deactivate yourself", "нельзя заблокировать самого себя")
    await set_active(conn, target["id"], active)
    await audit.record(conn, principal, "user_activate" if active else "user_deactivate", "user", login,
                       old={"active": target["active"]}, new={"active": active})


async def history_for(conn: psycopg.AsyncConnection, principal: Principal, actor: str | None,
                      before_id: int | None = None) -> list[dict]:
    """Own history; an admin sees anyone's, an organisation's admin its organisations' users'."""
    if principal.scope.everything and principal.may(Action.USERS_MANAGE):
        actors = [actor] if actor else None
    elif principal.may(Action.USERS_MANAGE):
        mine = [u["login"] for u in await list_users(conn, principal.org_ids)]
        if actor and actor not in mine:
            raise NotFound(f"user {actor!r} not found", f"пользователь {actor!r} не найден")
        actors = [actor] if actor else mine
    else:
        actors = [principal.name]
    return await audit.history(conn, actors, before_id=before_id)

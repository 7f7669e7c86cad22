"""The action history (`audit_log`): who did what to which object, when, from where,
what it was before and after, and why. Every writer of audit rows calls `record`
(or `record_sync` on a synchronous connection); the time is the database's.
"""
from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Principal

_SQL = ("INSERT INTO audit_log (actor, ip, action, object_type, object_id, old, new, comment) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)")


def _params(who: Principal | str, action: str, object_type: str | None, object_id: str | None, old: Any,
            new: Any, comment: str | None, ip: str | None) -> tuple:
    actor, where = (who.name, who.ip) if isinstance(who, Principal) else (who, None)
    return (actor, ip or where, action, object_type, object_id,
            None if old is None else json.dumps(old, default=str, ensure_ascii=False),
            None if new is None else json.dumps(new, default=str, ensure_ascii=False), comment or None)


async def record(conn: psycopg.AsyncConnection, who: Principal | str, action: str, object_type: str | None = None,
                 object_id: str | None = None, *, old: Any = None, new: Any = None, comment: str | None = None,
                 ip: str | None = None) -> None:
    """One audit row. `who` is the acting principal (its name and address) or a system
    actor's name ("vee", "cli"…); `old`/`new` are JSON-able states before and after."""
    await conn.execute(_SQL, _params(who, action, object_type, object_id, old, new, comment, ip))


def record_sync(conn: psycopg.Connection, who: Principal | str, action: str, object_type: str | None = None,
                object_id: str | None = None, *, old: Any = None, new: Any = None, comment: str | None = None,
                ip: str | None = None) -> None:
    conn.execute(_SQL, _params(who, action, object_type, object_id, old, new, comment, ip))


async def history(conn: psycopg.AsyncConnection, actors: list[str] | None, *, limit: int = 200,
                  before_id: int | None = None) -> list[dict]:
    """Newest first; `actors` None means everyone (admins only)."""
    conds, params = ["TRUE"], []
    if actors is not None:
        conds.append("actor = ANY(%s)")
        params.append(actors)
    if before_id is not None:
        conds.append("id < %s")
        params.append(before_id)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT id, at, actor, ip, action, object_type, object_id, old, new, comment "
                          f"FROM audit_log WHERE {' AND '.join(conds)} ORDER BY id DESC LIMIT %s", [*params, limit])
        return await cur.fetchall()


async def object_history(conn: psycopg.AsyncConnection, actions: list[str], object_prefix: str,
                         limit: int = 1000) -> list[dict]:
    """Rows of some actions on objects whose id starts with `object_prefix`, newest first."""
    like = object_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT at, actor, ip, action, object_type, object_id, old, new, comment FROM audit_log "
            "WHERE action = ANY(%s) AND object_id LIKE %s ORDER BY at DESC, id DESC LIMIT %s",
            (actions, like, limit))
        return await cur.fetchall()


async def previous_login(conn: psycopg.AsyncConnection, login: str) -> dict | None:
    """The user's login before the current one (time and address), else the only one:
    «Последний вход: 20.08.2020 10:32 192.168.158.67»."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT at, ip FROM audit_log WHERE actor = %s AND action = 'login' "
                          "ORDER BY at DESC, id DESC LIMIT 2", (login,))
        rows = await cur.fetchall()
    return rows[-1] if rows else None


async def rows_about(conn: psycopg.AsyncConnection, object_types: list[str], object_id: str, *,
                     prefix: bool = False, limit: int = 200) -> list[dict]:
    """Audit rows about one object (or, with `prefix`, every object whose id starts with
    `object_id`: a meter's readings are `code/obis/time`), newest first."""
    if prefix:
        cond, arg = "object_id LIKE %s", object_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    else:
        cond, arg = "object_id = %s", object_id
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT id, at, actor, ip, action, object_type, object_id, old, new, comment FROM audit_log "
            f"WHERE object_type = ANY(%s) AND {cond} ORDER BY at DESC, id DESC LIMIT %s", (object_types, arg, limit))
        return await cur.fetchall()

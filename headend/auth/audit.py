"""The users' action history: every change and every login goes to `audit_log`
(actor, time, IP, action, object, old/new, comment)."""
from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.rows import dict_row


async def record(conn: psycopg.AsyncConnection, actor: str, ip: str | None, action: str,
                 object_type: str | None = None, object_id: str | None = None, *, old: Any = None,
                 new: Any = None, comment: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor, ip, action, object_type, object_id, old, new, comment) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (actor, ip, action, object_type, object_id,
         None if old is None else json.dumps(old, default=str),
         None if new is None else json.dumps(new, default=str), comment))


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

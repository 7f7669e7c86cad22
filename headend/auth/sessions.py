"""Browser sessions: a random cookie value whose SHA-256 is the row key, an
absolute lifetime and an idle timeout, and a per-session CSRF token for forms."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.users import User, user_from_row

COOKIE = "askue_session"
LIFETIME = timedelta(hours=12)
IDLE = timedelta(hours=2)


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str
    token_hash: str
    id: int = 0
    stale: bool = False  # last seen over a minute ago: the caller records the use (TOUCH_SQL)


# Recording a session's use is a write: done on the primary, at most once a minute, so that
# reading a session works on a read replica (and while the primary is away).
TOUCH_SQL = "UPDATE web_sessions SET last_seen_at = now() WHERE token_hash = %s"


def token_hash(token: str) -> str:
    """The row key of the session with this cookie value."""
    return hashlib.sha256(token.encode()).hexdigest()


_hash = token_hash


async def create(conn: psycopg.AsyncConnection, user: User, ip: str | None, user_agent: str | None) -> str:
    """Start a session; returns the cookie value (shown once, stored hashed)."""
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO web_sessions (token_hash, user_id, csrf, ip, user_agent, expires_at) "
        "VALUES (%s, %s, %s, %s, %s, now() + %s)",
        (_hash(token), user.id, secrets.token_urlsafe(24), ip, (user_agent or "")[:300], LIFETIME))
    # expired sessions of everyone are swept here: logins are rare, so this is cheap
    await conn.execute("DELETE FROM web_sessions WHERE expires_at < now() OR last_seen_at < now() - %s", (IDLE,))
    return token


async def load(conn: psycopg.AsyncConnection, token: str | None) -> Session | None:
    """The live session of an active user for this cookie value; else None. It is not
    touched here: `stale` says when to record its use (TOUCH_SQL, on the primary)."""
    if not token or len(token) > 200:
        return None
    cur = await conn.execute(
        """SELECT u.id, u.login, u.name, u.role, u.org_ids, u.lang, u.active, s.csrf, s.token_hash, s.id,
                  s.last_seen_at < now() - interval '1 minute'
           FROM web_sessions s JOIN users u ON u.id = s.user_id
           WHERE s.token_hash = %s AND u.active AND s.expires_at > now() AND s.last_seen_at > now() - %s""",
        (_hash(token), IDLE))
    row = await cur.fetchone()
    if row is None:
        return None
    return Session(user_from_row(row[:7]), row[7], row[8], row[9], bool(row[10]))


async def end(conn: psycopg.AsyncConnection, token: str | None) -> None:
    if token:
        await conn.execute("DELETE FROM web_sessions WHERE token_hash = %s", (_hash(token),))


async def end_others(conn: psycopg.AsyncConnection, user_id: int, keep: str | None) -> int:
    """End every session of the user but the one with cookie value `keep` (a password change);
    None ends them all (a password reset). Returns how many ended."""
    cur = await conn.execute("DELETE FROM web_sessions WHERE user_id = %s AND token_hash <> %s",
                             (user_id, _hash(keep) if keep else ""))
    return cur.rowcount


async def end_by_id(conn: psycopg.AsyncConnection, user_id: int, session_id: int) -> dict | None:
    """End one of the user's own sessions (the «Завершить» button); what it was, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("DELETE FROM web_sessions WHERE user_id = %s AND id = %s RETURNING id, ip, user_agent, "
                          "created_at", (user_id, session_id))
        return await cur.fetchone()


async def live(conn: psycopg.AsyncConnection, user_id: int) -> list[dict]:
    """The user's sessions still in force, the latest used first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id, token_hash, ip, user_agent, created_at, last_seen_at, expires_at FROM web_sessions "
                          "WHERE user_id = %s AND expires_at > now() AND last_seen_at > now() - %s "
                          "ORDER BY last_seen_at DESC, id DESC", (user_id, IDLE))
        return await cur.fetchall()

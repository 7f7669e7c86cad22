"""Logging in: the password, then — for a user with the second factor — a code from the
authenticator app or a recovery code. Every step is rate limited (`auth.ratelimit`) and
audited; a right password alone never ends a run of failed codes. The web page only
reads the form and sets cookies."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from askue.headend.auth import audit, ratelimit, sessions, totp, users
from askue.headend.auth.users import User

CHALLENGE_COOKIE = "askue_login_code"
CHALLENGE_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True)
class Outcome:
    """`state`: "in" (`token` is the session cookie), "code" (`token` is the second step's
    cookie), "wrong" (bad login, password or code), "locked" (too many failures: wait
    `retry_after_s`), "expired" (the second step waited too long: log in again)."""

    state: str
    token: str | None = None
    user: User | None = None
    retry_after_s: int = 0


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _blocked(conn: psycopg.AsyncConnection, login: str, ip: str | None) -> Outcome | None:
    verdict = await ratelimit.check(conn, login, ip)
    if verdict.allowed:
        return None
    await audit.record(conn, login, "login_blocked", "user", login, comment=verdict.reason, ip=ip)
    return Outcome("locked", retry_after_s=verdict.retry_after_s)


async def _session(conn: psycopg.AsyncConnection, user: User, ip: str | None, user_agent: str | None,
                   factor: str | None) -> Outcome:
    token = await sessions.create(conn, user, ip, user_agent)
    await audit.record(conn, user.login, "login", "user", user.login, ip=ip,
                       new={"second_factor": factor} if factor else None)
    return Outcome("in", token, user)


async def with_password(conn: psycopg.AsyncConnection, login: str, password: str, ip: str | None,
                        user_agent: str | None) -> Outcome:
    if (refused := await _blocked(conn, login, ip)) is not None:
        return refused
    user = await users.authenticate(conn, login, password)
    if user is None:
        await ratelimit.note(conn, login, ip, False)
        await audit.record(conn, login, "login_failed", "user", login, ip=ip)
        return Outcome("wrong")
    if await totp.enabled(conn, user.id):
        token = secrets.token_urlsafe(32)
        await conn.execute("DELETE FROM login_challenges WHERE expires_at < now()")
        await conn.execute("INSERT INTO login_challenges (token_hash, user_id, ip, expires_at) "
                           "VALUES (%s, %s, %s, now() + %s)", (_hash(token), user.id, ip, CHALLENGE_LIFETIME))
        return Outcome("code", token, user)
    await ratelimit.note(conn, login, ip, True)
    return await _session(conn, user, ip, user_agent, None)


async def waiting(conn: psycopg.AsyncConnection, challenge: str | None) -> User | None:
    """The user whose second step this cookie is, while it lasts."""
    if not challenge or len(challenge) > 200:
        return None
    cur = await conn.execute("SELECT u.id, u.login, u.name, u.role, u.org_ids, u.lang, u.active FROM login_challenges c "
                             "JOIN users u ON u.id = c.user_id WHERE c.token_hash = %s AND c.expires_at > now() "
                             "AND u.active", (_hash(challenge),))
    row = await cur.fetchone()
    return users.user_from_row(row) if row else None


async def with_code(conn: psycopg.AsyncConnection, challenge: str | None, code: str, ip: str | None,
                    user_agent: str | None) -> Outcome:
    user = await waiting(conn, challenge)
    if user is None:
        return Outcome("expired")
    if (refused := await _blocked(conn, user.login, ip)) is not None:
        await conn.execute("DELETE FROM login_challenges WHERE token_hash = %s", (_hash(challenge or ""),))
        return refused
    factor = await totp.verify(conn, user.id, code)
    if factor is None:
        await ratelimit.note(conn, user.login, ip, False, "totp")
        await audit.record(conn, user.login, "login_code_failed", "user", user.login, ip=ip)
        return Outcome("wrong", user=user)
    await conn.execute("DELETE FROM login_challenges WHERE token_hash = %s", (_hash(challenge or ""),))
    await ratelimit.note(conn, user.login, ip, True, "totp")
    if factor == "recovery":
        left = await totp.recovery_left(conn, user.id)
        await audit.record(conn, user.login, "totp_recovery_used", "user", user.login, ip=ip, new={"left": left})
    return await _session(conn, user, ip, user_agent, factor)

"""Login rate limiting: failures per login and per client address in a sliding
window, kept in PostgreSQL so every head-end process sees the same counts.

Every way in is counted: the password form (`kind` "password", also a wrong current
password on the account page), the second step's code ("totp": a right password does
not end the run of failures while the code is still missing), and password resets
("reset": each request, each unknown or spent link; `check_reset` limits them apart,
so asking for a reset never locks anyone out of the login form)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_LOGIN = 5
MAX_FAILURES_PER_IP = 20
MAX_RESETS_PER_LOGIN = 3
MAX_RESETS_PER_IP = 10
KINDS = ("password", "totp", "reset")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0
    reason: str = ""


async def _count(conn: psycopg.AsyncConnection, sql: str, params: tuple) -> tuple[int, datetime | None]:
    cur = await conn.execute(sql, params)
    n, first = await cur.fetchone()
    return n, first


async def check(conn: psycopg.AsyncConnection, login: str, ip: str | None) -> Verdict:
    """Whether another login attempt (password or code) is allowed now. A completed login
    (or reset) ends the run of failures before it."""
    n_login, first_login = await _count(conn, """
        SELECT count(*), min(at) FROM login_attempts
         WHERE lower(login) = lower(%s) AND NOT ok AND kind <> 'reset' AND at > now() - %s
           AND at > coalesce((SELECT max(at) FROM login_attempts WHERE lower(login) = lower(%s) AND ok),
                             '-infinity')""", (login, WINDOW, login))
    n_ip, first_ip = 0, None
    if ip:
        n_ip, first_ip = await _count(conn, "SELECT count(*), min(at) FROM login_attempts WHERE ip = %s AND NOT ok "
                                            "AND kind <> 'reset' AND at > now() - %s", (ip, WINDOW))
    now = await _now(conn)
    if n_login >= MAX_FAILURES_PER_LOGIN:
        return Verdict(False, _retry(first_login, now), f"{n_login} failed attempts for this login")
    if n_ip >= MAX_FAILURES_PER_IP:
        return Verdict(False, _retry(first_ip, now), f"{n_ip} failed attempts from this address")
    return Verdict(True)


async def check_reset(conn: psycopg.AsyncConnection, ident: str, ip: str | None) -> Verdict:
    """Whether another reset request for `ident` (a login or an e-mail) from `ip` is allowed."""
    n_id, first_id = await _count(conn, "SELECT count(*), min(at) FROM login_attempts WHERE kind = 'reset' "
                                        "AND NOT ok AND lower(login) = lower(%s) AND at > now() - %s",
                                  (ident[:200], WINDOW))
    n_ip, first_ip = 0, None
    if ip:
        n_ip, first_ip = await _count(conn, "SELECT count(*), min(at) FROM login_attempts WHERE kind = 'reset' "
                                            "AND NOT ok AND ip = %s AND at > now() - %s", (ip, WINDOW))
    now = await _now(conn)
    if ident and n_id >= MAX_RESETS_PER_LOGIN:
        return Verdict(False, _retry(first_id, now), f"{n_id} reset requests for this login or e-mail")
    if n_ip >= MAX_RESETS_PER_IP:
        return Verdict(False, _retry(first_ip, now), f"{n_ip} reset requests from this address")
    return Verdict(True)


async def _now(conn: psycopg.AsyncConnection) -> datetime:
    return (await (await conn.execute("SELECT now()")).fetchone())[0]


def wait_words(seconds: int) -> tuple[str, str]:
    """How long to wait as people say it, in English and Russian: ("15 min", "15 мин"), ("40 s", "40 с")."""
    if seconds >= 60:
        m = -(-seconds // 60)
        return f"{m} min", f"{m} мин"
    return f"{seconds} s", f"{seconds} с"


def _retry(first: datetime | None, now: datetime) -> int:
    if first is None:
        return int(WINDOW.total_seconds())
    return max(1, int((first + WINDOW - now).total_seconds()) + 1)


async def note(conn: psycopg.AsyncConnection, login: str, ip: str | None, ok: bool, kind: str = "password") -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown attempt kind {kind!r}")
    await conn.execute("INSERT INTO login_attempts (login, ip, ok, kind) VALUES (%s, %s, %s, %s)",
                       (login[:200], ip, ok, kind))

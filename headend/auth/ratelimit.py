"""Login rate limiting: failures per login and per client address in a sliding
window, kept in PostgreSQL so every head-end process sees the same counts."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_LOGIN = 5
MAX_FAILURES_PER_IP = 20


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0
    reason: str = ""


async def check(conn: psycopg.AsyncConnection, login: str, ip: str | None) -> Verdict:
    """Whether another attempt is allowed now. A success ends the run of failures before it."""
    cur = await conn.execute(
        """SELECT count(*), min(at) FROM login_attempts
           WHERE lower(login) = lower(%s) AND NOT ok AND at > now() - %s
             AND at > coalesce((SELECT max(at) FROM login_attempts WHERE lower(login) = lower(%s) AND ok),
                               '-infinity')""", (login, WINDOW, login))
    n_login, first_login = await cur.fetchone()
    n_ip, first_ip = 0, None
    if ip:
        cur = await conn.execute("SELECT count(*), min(at) FROM login_attempts WHERE ip = %s AND NOT ok "
                                 "AND at > now() - %s", (ip, WINDOW))
        n_ip, first_ip = await cur.fetchone()
    now = (await (await conn.execute("SELECT now()")).fetchone())[0]
    if n_login >= MAX_FAILURES_PER_LOGIN:
        return Verdict(False, _retry(first_login, now), f"{n_login} failed attempts for this login")
    if n_ip >= MAX_FAILURES_PER_IP:
        return Verdict(False, _retry(first_ip, now), f"{n_ip} failed attempts from this address")
    return Verdict(True)


def _retry(first: datetime | None, now: datetime) -> int:
    if first is None:
        return int(WINDOW.total_seconds())
    return max(1, int((first + WINDOW - now).total_seconds()) + 1)


async def note(conn: psycopg.AsyncConnection, login: str, ip: str | None, ok: bool) -> None:
    await conn.execute("INSERT INTO login_attempts (login, ip, ok) VALUES (%s, %s, %s)", (login[:200], ip, ok))

"""The optional second factor: TOTP (RFC 6238, 30-second steps, 6 digits, as every
authenticator app reads from an otpauth:// QR code) and one-time recovery codes.

A secret is stored at enrolment and takes effect once the user confirms it with a code
(a scanned QR code that the phone got wrong must not lock anyone out). A code is
accepted one step either side of now (clock drift) and only once: the last accepted
step is kept. Recovery codes are random, shown once, stored as SHA-256 and each works
once. Audit rows are written by the caller (`auth.account`), never with a secret."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import psycopg
import pyotp
import segno

ISSUER = "АСКУЭ"
DRIFT_STEPS = 1
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: codes are read off paper


@dataclass(frozen=True)
class Enrolment:
    secret: str  # base32, shown grouped for typing into an app by hand
    uri: str  # otpauth://totp/…
    qr: str  # the URI as an SVG data: URI (the pages' CSP allows data: images)

    @property
    def secret_grouped(self) -> str:
        return " ".join(self.secret[i:i + 4] for i in range(0, len(self.secret), 4))


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalise(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def is_totp_code(code: str) -> bool:
    c = normalise(code)
    return len(c) == 6 and c.isdigit()


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The 30-second step whose code `code` is (now ± DRIFT_STEPS), else None."""
    totp = pyotp.TOTP(secret)
    now = time.time() if at is None else at
    step = totp.timecode(int(now))
    c = normalise(code)
    for off in sorted(range(-DRIFT_STEPS, DRIFT_STEPS + 1), key=abs):
        if hmac.compare_digest(totp.at(int(now), counter_offset=off), c):
            return step + off
    return None


async def enabled(conn: psycopg.AsyncConnection, user_id: int) -> bool:
    cur = await conn.execute("SELECT totp_enabled_at IS NOT NULL FROM users WHERE id = %s", (user_id,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def start(conn: psycopg.AsyncConnection, user_id: int, login: str) -> Enrolment:
    """The pending secret (made on first call; the same on a reload, so a scanned code stays right)."""
    cur = await conn.execute("SELECT totp_secret FROM users WHERE id = %s AND totp_enabled_at IS NULL", (user_id,))
    row = await cur.fetchone()
    secret = row[0] if row and row[0] else None
    if secret is None:
        secret = pyotp.random_base32()
        await conn.execute("UPDATE users SET totp_secret = %s, totp_last_step = NULL WHERE id = %s "
                           "AND totp_enabled_at IS NULL", (secret, user_id))
    uri = pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=ISSUER)
    return Enrolment(secret, uri, segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


async def confirm(conn: psycopg.AsyncConnection, user_id: int, code: str) -> list[str] | None:
    """Turn the pending secret on if `code` is its current code; returns new recovery codes, else None."""
    cur = await conn.execute("SELECT totp_secret FROM users WHERE id = %s AND totp_enabled_at IS NULL", (user_id,))
    row = await cur.fetchone()
    if not row or not row[0] or not is_totp_code(code):
        return None
    step = matching_step(row[0], code)
    if step is None:
        return None
    await conn.execute("UPDATE users SET totp_enabled_at = now(), totp_last_step = %s WHERE id = %s", (step, user_id))
    return await new_recovery_codes(conn, user_id)


async def new_recovery_codes(conn: psycopg.AsyncConnection, user_id: int) -> list[str]:
    """Fresh recovery codes; the old ones stop working."""
    codes = ["-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(3))
             for _ in range(RECOVERY_CODES)]
    await conn.execute("DELETE FROM totp_recovery_codes WHERE user_id = %s", (user_id,))
    async with conn.cursor() as cur:
        await cur.executemany("INSERT INTO totp_recovery_codes (user_id, code_hash) VALUES (%s, %s)",
                              [(user_id, _hash(normalise(c))) for c in codes])
    return codes


async def recovery_left(conn: psycopg.AsyncConnection, user_id: int) -> int:
    cur = await conn.execute("SELECT count(*) FROM totp_recovery_codes WHERE user_id = %s AND used_at IS NULL",
                             (user_id,))
    return (await cur.fetchone())[0]


async def verify(conn: psycopg.AsyncConnection, user_id: int, code: str) -> str | None:
    """"totp" or "recovery" when `code` lets the user in (and is spent), else None."""
    if is_totp_code(code):
        cur = await conn.execute("SELECT totp_secret, totp_last_step FROM users WHERE id = %s "
                                 "AND totp_enabled_at IS NOT NULL", (user_id,))
        row = await cur.fetchone()
        if not row:
            return None
        step = matching_step(row[0], code)
        if step is None or (row[1] is not None and step <= row[1]):
            return None
        # the condition makes two concurrent uses of one code let only one in
        cur = await conn.execute("UPDATE users SET totp_last_step = %s WHERE id = %s "
                                 "AND (totp_last_step IS NULL OR totp_last_step < %s)", (step, user_id, step))
        return "totp" if cur.rowcount == 1 else None
    c = normalise(code)
    if len(c) != 12:
        return None
    cur = await conn.execute("UPDATE totp_recovery_codes SET used_at = now() WHERE user_id = %s AND code_hash = %s "
                             "AND used_at IS NULL", (user_id, _hash(c)))
    return "recovery" if cur.rowcount == 1 else None


# Switching the second factor off: the user's page (async) and `askue users totp-off` (sync).
DISABLE_SQL = ("UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = NULL "
               "WHERE id = %s AND totp_enabled_at IS NOT NULL",
               "DELETE FROM totp_recovery_codes WHERE user_id = %s")


async def disable(conn: psycopg.AsyncConnection, user_id: int) -> bool:
    cur = await conn.execute(DISABLE_SQL[0], (user_id,))
    await conn.execute(DISABLE_SQL[1], (user_id,))
    return cur.rowcount == 1

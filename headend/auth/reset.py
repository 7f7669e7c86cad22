"""Password reset by e-mail. A request names a login or an e-mail; if it is an active
user's with an e-mail, a single-use link valid for `LIFETIME` goes to that address in
the user's language. The answer is the same whether or not anyone was found, and the
letter is sent after the answer, so neither the words nor the time tell which logins
exist. Only the token's SHA-256 is stored; setting the new password spends every link of
the user and ends all their sessions. Requests and spent or unknown links are rate
limited (`ratelimit.check_reset`) and audited."""
from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth import audit, notices, ratelimit, sessions, users
from askue.headend.auth.passwords import PasswordPolicyError
from askue.headend.auth.users import User, user_from_row
from askue.headend.errors import Invalid
from askue.headend.notify.mail import MailSettings, send_later

log = logging.getLogger(__name__)
LIFETIME = timedelta(minutes=30)
RESET_PATH = "/web/password/reset"  # the page the link opens (web router prefix /web)


@dataclass(frozen=True)
class Letter:
    to: str
    subject: str
    text: str


@dataclass(frozen=True)
class Answer:
    """What the request page says: `retry_after_s` > 0 when refused for too many requests."""

    retry_after_s: int = 0


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def letter(to: str, login: str, lang: str, link: str) -> Letter:
    minutes = int(LIFETIME.total_seconds() // 60)
    if lang == "en":
        return Letter(to, "askue: password reset",
                      f"Someone (hopefully you) asked to reset the password of the login {login}.\n\n"
                      f"Set a new password here (the link works once, for {minutes} minutes):\n{link}\n\n"
                      "If it was not you, ignore this letter: your password stays as it is.\n")
    return Letter(to, "АСКУЭ: восстановление пароля",
                  f"Для логина {login} запрошено восстановление пароля.\n\n"
                  f"Задайте новый пароль по ссылке (она действует один раз, {minutes} минут):\n{link}\n\n"
                  "Если вы не запрашивали восстановление, просто удалите это письмо: пароль останется прежним.\n")


async def request(conn: psycopg.AsyncConnection, ident: str, ip: str | None, *, mail: MailSettings | None,
                  base_url: str) -> Answer:
    ident = ident.strip()[:200]
    if not ident:
        raise Invalid("ident", "give your login or e-mail", "укажите логин или e-mail")
    verdict = await ratelimit.check_reset(conn, ident, ip)
    if not verdict.allowed:
        await audit.record(conn, "-", "password_reset_blocked", "user", None, comment=verdict.reason, ip=ip)
        return Answer(verdict.retry_after_s)
    await ratelimit.note(conn, ident, ip, False, "reset")
    await conn.execute("DELETE FROM password_resets WHERE expires_at < now() - interval '1 day'")  # kept a day for support
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id, login, lang, email FROM users WHERE active AND email IS NOT NULL "
                          "AND (lower(login) = lower(%s) OR lower(email) = lower(%s))", (ident, ident))
        user = await cur.fetchone()
    if user is None:
        await audit.record(conn, "-", "password_reset_request", "user", None, ip=ip, comment="no active user with "
                           "this login or e-mail, or no e-mail on record: nothing sent")
        return Answer()
    token = secrets.token_urlsafe(32)
    await conn.execute("INSERT INTO password_resets (token_hash, user_id, ip, expires_at) VALUES (%s, %s, %s, now() + %s)",
                       (_hash(token), user["id"], ip, LIFETIME))
    await audit.record(conn, user["login"], "password_reset_request", "user", user["login"], ip=ip,
                       new={"sent_to": user["email"]})
    msg = letter(user["email"], user["login"], user["lang"], f"{base_url}{RESET_PATH}?token={token}")
    if mail is None:
        log.warning("password reset for %s: no SMTP server is configured (smtp_host), the letter is not sent",
                    user["login"])
        return Answer()
    send_later(mail, msg.to, msg.subject, msg.text, f"password reset letter for {user['login']}",
               after=conn)
    return Answer()


async def holder(conn: psycopg.AsyncConnection, token: str | None) -> User:
    """The user a live link is for; else Invalid saying why (unknown, spent, expired)."""
    if not token or len(token) > 200:
        raise Invalid("token", "the link is incomplete; open it from the letter again",
                      "ссылка неполная; откройте её из письма ещё раз")
    async with conn.cursor() as cur:
        await cur.execute("SELECT u.id, u.login, u.name, u.role, u.org_ids, u.lang, u.active, r.used_at, "
                          "r.expires_at < now() FROM password_resets r JOIN users u ON u.id = r.user_id "
                          "WHERE r.token_hash = %s", (_hash(token),))
        row = await cur.fetchone()
    if row is None:
        raise Invalid("token", "this reset link is unknown; ask for a new one",
                      "ссылка для восстановления не найдена; запросите новую")
    if row[7] is not None:
        raise Invalid("token", "this reset link was already used; ask for a new one",
                      "ссылка уже использована; запросите новую", spent=True)
    if row[8] or not row[6]:
        raise Invalid("token", f"this reset link expired (it works {int(LIFETIME.total_seconds() // 60)} minutes); "
                      "ask for a new one", f"срок ссылки истёк (она действует {int(LIFETIME.total_seconds() // 60)} "
                      "минут); запросите новую", spent=True)
    return user_from_row(row[:7])


async def complete(conn: psycopg.AsyncConnection, token: str | None, password: str, again: str,
                   ip: str | None, mail: MailSettings | None = None) -> User:
    """Set the new password from a live link; spends the user's links, ends their sessions,
    and tells the user's address (a link from a mailbox someone else reads is how an
    account is taken over)."""
    verdict = await ratelimit.check_reset(conn, "", ip)
    if not verdict.allowed:
        en, ru = ratelimit.wait_words(verdict.retry_after_s)
        raise Invalid("token", f"too many attempts from this address; try again in {en}",
                      f"слишком много попыток с этого адреса; повторите через {ru}")
    try:
        user = await holder(conn, token)
    except Invalid:
        await ratelimit.note(conn, "", ip, False, "reset")
        raise
    if password != again:
        raise Invalid("again", "the two passwords differ", "пароли не совпадают")
    try:
        await users.set_password(conn, user, password)
    except PasswordPolicyError as e:
        raise Invalid("password", str(e), e.message_ru) from None
    await conn.execute("UPDATE password_resets SET used_at = now() WHERE user_id = %s AND used_at IS NULL", (user.id,))
    ended = await sessions.end_others(conn, user.id, None)
    await ratelimit.note(conn, user.login, ip, True, "reset")  # the login form's lock ends with the reset
    await audit.record(conn, user.login, "password_reset", "user", user.login, ip=ip, new={"sessions_ended": ended})
    await notices.tell(conn, user.id, "password_reset", ip, mail)
    return user

"""A user's own account security, for every role: the e-mail that password resets go
to, changing the password, the sessions in force (end one, or all but this one), and the
second factor (enrol with a QR code or the secret, confirm with a code, new recovery
codes, switch off). Each change is audited (who, from where, what — never a secret).
Re-entering one's password here counts for the login rate limit like the login form."""
from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth import audit, notices, ratelimit, sessions, totp, users
from askue.headend.auth.passwords import PasswordPolicyError, verify_password
from askue.headend.auth.totp import Enrolment
from askue.headend.auth.users import User
from askue.headend.errors import Conflict, Invalid, NotFound
from askue.headend.notify.mail import MailSettings

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Security:
    """What the «Безопасность» page shows."""

    email: str | None
    password_changed_at: object
    totp_on: bool
    recovery_left: int
    sessions: list[dict]  # each with `current`


async def overview(conn: psycopg.AsyncConnection, user: User, cookie: str | None) -> Security:
    """`cookie`: this browser's session cookie (its row is marked `current`)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT email, password_changed_at, totp_enabled_at FROM users WHERE id = %s", (user.id,))
        row = await cur.fetchone()
    mine = sessions.token_hash(cookie) if cookie else None
    live = [{k: v for k, v in s.items() if k != "token_hash"} | {"current": s["token_hash"] == mine}
            for s in await sessions.live(conn, user.id)]
    return Security(row["email"], row["password_changed_at"], row["totp_enabled_at"] is not None,
                    await totp.recovery_left(conn, user.id), live)


async def _confirm_password(conn: psycopg.AsyncConnection, user: User, password: str, ip: str | None,
                            field: str) -> None:
    """The user's current password, rate limited like the login form."""
    verdict = await ratelimit.check(conn, user.login, ip)
    if not verdict.allowed:
        await audit.record(conn, user.login, "login_blocked", "user", user.login, comment=verdict.reason, ip=ip)
        en, ru = ratelimit.wait_words(verdict.retry_after_s)
        raise Invalid(field, f"too many wrong passwords; try again in {en}",
                      f"слишком много неверных паролей; повторите через {ru}")
    cur = await conn.execute("SELECT password_hash FROM users WHERE id = %s", (user.id,))
    if not verify_password((await cur.fetchone())[0], password):
        await ratelimit.note(conn, user.login, ip, False)
        await audit.record(conn, user.login, "password_confirm_failed", "user", user.login, ip=ip)
        raise Invalid(field, "the current password is wrong", "текущий пароль неверен")


async def change_password(conn: psycopg.AsyncConnection, user: User, old: str, new: str, again: str,
                          keep_session: str | None, ip: str | None, mail: MailSettings | None = None) -> int:
    """Set a new password; every other session of the user ends and a notice goes to the
    user's address. Returns how many sessions ended."""
    await _confirm_password(conn, user, old, ip, "old")
    if new != again:
        raise Invalid("again", "the two new passwords differ", "новые пароли не совпадают")
    if new == old:
        raise Invalid("new", "the new password is the same as the current one", "новый пароль совпадает с текущим")
    try:
        await users.set_password(conn, user, new)
    except PasswordPolicyError as e:
        raise Invalid("new", str(e), e.message_ru) from None
    ended = await sessions.end_others(conn, user.id, keep_session)
    await audit.record(conn, user.principal(ip), "password_change", "user", user.login,
                       new={"other_sessions_ended": ended})
    await notices.tell(conn, user.id, "password_change", ip, mail)
    return ended


async def set_email(conn: psycopg.AsyncConnection, user: User, email: str, ip: str | None,
                    mail: MailSettings | None = None) -> str | None:
    """Set (or clear) the address resets and notices go to; the old address is told."""
    email = email.strip()
    if email and (len(email) > 254 or not _EMAIL.match(email)):
        raise Invalid("email", f"{email!r} is not an e-mail address (name@example.ru)",
                      f"«{email}» — не адрес электронной почты (пример: name@example.ru)")
    old = (await (await conn.execute("SELECT email FROM users WHERE id = %s", (user.id,))).fetchone())[0]
    if email and (await (await conn.execute("SELECT 1 FROM users WHERE lower(email) = lower(%s) AND id <> %s",
                                            (email, user.id))).fetchone()):
        raise Invalid("email", "another user has this e-mail; give your own",
                      "этот адрес указан у другого пользователя; укажите свой")
    await conn.execute("UPDATE users SET email = %s WHERE id = %s", (email or None, user.id))
    if (old or "") != email:
        await audit.record(conn, user.principal(ip), "email_change", "user", user.login,
                           old={"email": old}, new={"email": email or None})
        if old:
            await notices.tell(conn, user.id, "email_change", ip, mail, to=old, new_email=email or None)
    return email or None


async def end_session(conn: psycopg.AsyncConnection, user: User, session_id: int, ip: str | None) -> None:
    ended = await sessions.end_by_id(conn, user.id, session_id)
    if ended is None:
        raise NotFound(f"session {session_id} is not yours or already ended",
                       f"сеанс № {session_id} уже завершён или не ваш")
    await audit.record(conn, user.principal(ip), "session_end", "web_session", str(session_id),
                       old={"ip": ended["ip"], "started": ended["created_at"]})


async def end_other_sessions(conn: psycopg.AsyncConnection, user: User, keep_session: str | None,
                             ip: str | None) -> int:
    n = await sessions.end_others(conn, user.id, keep_session)
    await audit.record(conn, user.principal(ip), "sessions_end_others", "user", user.login, new={"ended": n})
    return n


async def totp_start(conn: psycopg.AsyncConnection, user: User) -> Enrolment:
    if await totp.enabled(conn, user.id):
        raise Conflict("the second factor is already on", "вход с кодом уже включён")
    return await totp.start(conn, user.id, user.login)


async def totp_confirm(conn: psycopg.AsyncConnection, user: User, code: str, ip: str | None) -> list[str]:
    """Turn the second factor on; returns the recovery codes (shown once)."""
    if await totp.enabled(conn, user.id):
        raise Conflict("the second factor is already on", "вход с кодом уже включён")
    if not totp.is_totp_code(code):
        raise Invalid("code", "type the 6 digits the app shows", "введите 6 цифр из приложения")
    codes = await totp.confirm(conn, user.id, code)
    if codes is None:
        raise Invalid("code", "the code is wrong: check the phone's clock and type the code the app shows now",
                      "код не подходит: проверьте время на телефоне и введите код, который приложение показывает "
                      "сейчас")
    await audit.record(conn, user.principal(ip), "totp_enable", "user", user.login, new={"recovery_codes": len(codes)})
    return codes


async def totp_disable(conn: psycopg.AsyncConnection, user: User, password: str, ip: str | None,
                       mail: MailSettings | None = None) -> None:
    await _confirm_password(conn, user, password, ip, "disable_password")
    if not await totp.disable(conn, user.id):
        raise Conflict("the second factor is off already", "вход с кодом уже выключен")
    await audit.record(conn, user.principal(ip), "totp_disable", "user", user.login)
    await notices.tell(conn, user.id, "totp_disable", ip, mail)


async def recovery_codes(conn: psycopg.AsyncConnection, user: User, password: str, ip: str | None) -> list[str]:
    await _confirm_password(conn, user, password, ip, "codes_password")
    if not await totp.enabled(conn, user.id):
        raise Conflict("recovery codes need the second factor on", "резервные коды бывают только при входе с кодом")
    codes = await totp.new_recovery_codes(conn, user.id)
    await audit.record(conn, user.principal(ip), "totp_recovery_codes", "user", user.login, new={"codes": len(codes)})
    return codes

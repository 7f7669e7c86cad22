"""Letters that tell a user their account's security changed: the password (on
«Безопасность» or by a reset link), the second factor switched off, the e-mail address
(told to the old address: the new one may be an intruder's). Whoever did it, the owner
learns of it and can act (restore the password, tell the administrator). A letter names
the change, the time and the address it came from, never a secret; it goes only to an
address on record, in the user's language, in the background after the answer."""
from __future__ import annotations

import logging
from datetime import UTC, datetime

import psycopg

from askue.headend import names
from askue.headend.notify.mail import MailSettings, send_later
from askue.headend.storage import meta

log = logging.getLogger(__name__)

# change -> (Russian, English) wording after «В учётной записи <login> …» / "On the account <login> …"
CHANGES: dict[str, tuple[str, str]] = {
    "password_change": ("изменён пароль (на странице «Безопасность»)", "the password was changed (on the Security page)"),
    "password_reset": ("задан новый пароль по ссылке из письма для восстановления",
                       "a new password was set with a password reset link"),
    "totp_disable": ("выключен вход с кодом из приложения (второй фактор)",
                     "sign-in with a code from the app (second factor) was switched off"),
    "email_change": ("изменён адрес для писем: теперь {email}", "the e-mail address was changed to {email}"),
}


def letter(change: str, login: str, lang: str, when: str, ip: str | None, email: str | None) -> tuple[str, str]:
    """(subject, text) of the notice."""
    ru, en = CHANGES[change]
    if lang == "en":
        what = en.format(email=email or "(none)")
        where = f" from the address {ip}" if ip else ""
        return ("askue: your account's security changed",
                f"On the askue account {login}, {what} on {when}{where}.\n\n"
                "If it was you, nothing needs doing.\n"
                "If it was not: set a new password with «Forgot your password?» on the sign-in page and tell "
                "your administrator.\n")
    what = ru.format(email=email or "(не указан)")
    where = f" с адреса {ip}" if ip else ""
    return ("АСКУЭ: изменение безопасности учётной записи",
            f"В учётной записи АСКУЭ {login} {what} — {when}{where}.\n\n"
            "Если это сделали вы, ничего делать не нужно.\n"
            "Если нет: задайте новый пароль по ссылке «Забыли пароль?» на странице входа и сообщите "
            "администратору.\n")


async def tell(conn: psycopg.AsyncConnection, user_id: int, change: str, ip: str | None,
               mail: MailSettings | None, *, to: str | None = None, new_email: str | None = None) -> bool:
    """Send the notice of `change` to the user's address on record (or `to`: the old address
    after an e-mail change). False when there is nowhere or nothing to send it with."""
    cur = await conn.execute("SELECT login, lang, email FROM users WHERE id = %s", (user_id,))
    row = await cur.fetchone()
    if row is None:
        return False
    login, lang, email = row
    address = to or email
    if not address:
        return False
    if mail is None:
        log.warning("security notice (%s) for %s: no SMTP server is configured (smtp_host), not sent", change, login)
        return False
    tz = await meta.timezone(conn)
    now = datetime.now(UTC).astimezone(tz)
    when = f"{now:%d.%m.%Y %H:%M} ({names.tz_short(tz, now, lang)})"
    subject, text = letter(change, login, lang, when, ip, new_email)
    send_later(mail, address, subject, text, f"security notice ({change}) for {login}", after=conn)
    return True

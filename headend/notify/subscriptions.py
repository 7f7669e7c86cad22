"""Alert subscriptions: each user keeps their own — which event kinds, from which
severity up, of which of their organisations, by e-mail or webhook, and whether the
resolution is sent too. An organisation's admin can choose only their organisations;
nobody is ever told about an organisation they cannot see (checked again at sending).

Called alike by the page (`web/pages_alerts.py`) and anything else that manages them;
every change is audited.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth import audit
from askue.headend.auth.permissions import Action, Principal
from askue.headend.auth.users import User
from askue.headend.errors import Invalid, NotFound
from askue.headend.events.catalogue import KINDS
from askue.headend.events.service import SEVERITIES
from askue.headend.notify import outbox
from askue.headend.notify.messages import Notice
from askue.headend.notify.worker import Channels, send
from askue.headend.storage import meta

CHANNELS = ("email", "webhook")
MAX_PER_USER = 20
_EMAIL = re.compile(r"^[^@\s<>,;\"']+@[^@\s<>,;\"']+\.[^@\s<>,;\"'.]{2,}$")


@dataclass
class SubscriptionForm:
    """What a user submits; `orgs` are organisation codes (empty: all of theirs)."""

    channel: str = "email"
    target: str = ""
    secret: str = ""
    kinds: list[str] = field(default_factory=list)
    min_severity: str = "warning"
    orgs: list[str] = field(default_factory=list)
    send_resolved: bool = True
    active: bool = True


def _errors(errors: dict[str, tuple[str, str]]) -> None:
    if errors:
        name, (en, ru) = next(iter(errors.items()))
        raise Invalid(name, en, ru, errors=errors)


async def _org_ids(conn: psycopg.AsyncConnection, principal: Principal, codes: list[str]) -> dict[str, int]:
    scope, params = principal.scope.sql("id")
    cur = await conn.execute(f"SELECT code, id FROM organisations WHERE code = ANY(%s) AND {scope}",
                             [codes, *params])
    return dict(await cur.fetchall())


def _check_target(f: SubscriptionForm, principal: Principal, errors: dict[str, tuple[str, str]]) -> None:
    t = f.target
    if f.channel == "email":
        if not t:
            errors["target"] = ("give the e-mail address", "укажите адрес электронной почты")
        elif len(t) > 254 or not _EMAIL.match(t):
            errors["target"] = (f"{t!r} is not an e-mail address (like name@example.ru)",
                                f"«{t}» — не адрес электронной почты (вида name@example.ru)")
        if f.secret:
            errors["secret"] = ("a secret is for webhooks only", "секрет нужен только для вебхука")
        return
    if not principal.may(Action.ALERTS_WEBHOOK):
        errors["channel"] = ("your role may subscribe by e-mail only", "ваша роль может подписаться только на e-mail")
        return
    parts = urlsplit(t) if t and not any(c.isspace() for c in t) else None
    if not t:
        errors["target"] = ("give the webhook URL", "укажите адрес (URL) вебхука")
    elif parts is None or parts.scheme not in ("http", "https") or not parts.hostname or len(t) > 2000:
        errors["target"] = (f"{t!r} is not an http(s) URL (like https://example.ru/askue-hook)",
                            f"«{t}» — не адрес http(s) (вида https://example.ru/askue-hook)")
    elif parts.username or parts.password:
        errors["target"] = ("put no password in the URL; use the secret to sign requests",
                            "не указывайте пароль в адресе; для подписи запросов есть поле «Секрет»")
    if len(f.secret) > 200:
        errors["secret"] = ("the secret is at most 200 characters", "секрет — не длиннее 200 символов")


async def _validate(conn: psycopg.AsyncConnection, principal: Principal, f: SubscriptionForm) -> list[int] | None:
    errors: dict[str, tuple[str, str]] = {}
    f.target, f.secret = f.target.strip(), f.secret.strip()
    if f.channel not in CHANNELS:
        errors["channel"] = (f"channel {f.channel!r} is unknown; use email or webhook",
                             "выберите канал: электронная почта или вебхук")
    else:
        _check_target(f, principal, errors)
    bad = [k for k in f.kinds if k not in KINDS]
    if bad:
        errors["kinds"] = (f"unknown event kind(s): {', '.join(bad)}", f"неизвестные виды ситуаций: {', '.join(bad)}")
    if f.min_severity not in SEVERITIES:
        errors["min_severity"] = (f"severity {f.min_severity!r} is unknown; use one of {', '.join(SEVERITIES)}",
                                  "выберите важность из списка")
    org_ids = None
    if f.orgs:
        found = await _org_ids(conn, principal, sorted(set(f.orgs)))
        missing = sorted(set(f.orgs) - set(found))
        if missing:  # another organisation's code answers as if it did not exist
            errors["orgs"] = (f"organisation(s) {', '.join(missing)} not found",
                              f"организация {', '.join(missing)} не найдена")
        org_ids = sorted(found.values())
    _errors(errors)
    return org_ids


_COLS = ("id, channel, target, secret IS NOT NULL AS has_secret, kinds, min_severity, org_ids, send_resolved, "
         "active, created_at, updated_at")


async def list_own(conn: psycopg.AsyncConnection, user: User) -> list[dict]:
    """The user's subscriptions with organisation codes, oldest first."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {_COLS}, (SELECT array_agg(o.code ORDER BY o.name) FROM organisations o "
            "WHERE o.id = ANY(s.org_ids)) AS orgs, (SELECT array_agg(o.name ORDER BY o.name) FROM organisations o "
            "WHERE o.id = ANY(s.org_ids)) AS org_names FROM notify_subscriptions s WHERE user_id = %s ORDER BY id",
            (user.id,))
        return await cur.fetchall()


async def get_own(conn: psycopg.AsyncConnection, user: User, sub_id: int) -> dict:
    for s in await list_own(conn, user):
        if s["id"] == sub_id:
            return s
    raise NotFound(f"subscription {sub_id} not found", f"подписка № {sub_id} не найдена")


def _state(f: SubscriptionForm, org_ids: list[int] | None) -> dict:
    return {"channel": f.channel, "target": f.target, "secret": "***" if f.secret else None, "kinds": f.kinds,
            "min_severity": f.min_severity, "org_ids": org_ids, "send_resolved": f.send_resolved,
            "active": f.active}


async def save(conn: psycopg.AsyncConnection, user: User, f: SubscriptionForm, *, sub_id: int | None = None,
               ip: str | None = None) -> dict:
    """Create (sub_id None) or change one of the user's subscriptions. Raises Invalid with
    `errors` {field: (English, Russian)} for every field to fix, and changes nothing then."""
    principal = user.principal(ip)
    principal.require(Action.ALERTS_SUBSCRIBE)
    f.kinds = sorted(set(f.kinds))
    async with conn.transaction():
        old = await get_own(conn, user, sub_id) if sub_id is not None else None
        org_ids = await _validate(conn, principal, f)
        cur = await conn.execute("SELECT count(*), count(*) FILTER (WHERE channel = %s AND target = %s AND id <> %s) "
                                 "FROM notify_subscriptions WHERE user_id = %s",
                                 (f.channel, f.target, sub_id or 0, user.id))
        n, same = await cur.fetchone()
        if same:
            _errors({"target": ("you already have a subscription to this address; change that one",
                                "на этот адрес у вас уже есть подписка — измените её")})
        if old is None and n >= MAX_PER_USER:
            _errors({"target": (f"at most {MAX_PER_USER} subscriptions per user",
                                f"не больше {MAX_PER_USER} подписок на пользователя")})
        secret = f.secret or None
        if old is None:
            cur = await conn.execute(
                "INSERT INTO notify_subscriptions (user_id, channel, target, secret, kinds, min_severity, org_ids, "
                "send_resolved, active) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (user.id, f.channel, f.target, secret, f.kinds, f.min_severity, org_ids, f.send_resolved, f.active))
            sub_id = (await cur.fetchone())[0]
        else:
            # an empty secret field keeps the stored secret (it is never shown again)
            await conn.execute(
                "UPDATE notify_subscriptions SET channel = %s, target = %s, "
                "secret = CASE WHEN %s = 'webhook' THEN coalesce(%s, secret) END, kinds = %s, min_severity = %s, "
                "org_ids = %s, send_resolved = %s, active = %s, updated_at = now() WHERE id = %s",
                (f.channel, f.target, f.channel, secret, f.kinds, f.min_severity, org_ids, f.send_resolved,
                 f.active, sub_id))
        await audit.record(conn, principal, "alert_subscription_" + ("create" if old is None else "update"),
                           "alert_subscription", str(sub_id),
                           old=None if old is None else {k: old[k] for k in ("channel", "target", "kinds",
                                                                             "min_severity", "org_ids",
                                                                             "send_resolved", "active")},
                           new=_state(f, org_ids))
    return await get_own(conn, user, sub_id)


async def set_active(conn: psycopg.AsyncConnection, user: User, sub_id: int, active: bool, *,
                     ip: str | None = None) -> None:
    principal = user.principal(ip)
    principal.require(Action.ALERTS_SUBSCRIBE)
    async with conn.transaction():
        old = await get_own(conn, user, sub_id)
        await conn.execute("UPDATE notify_subscriptions SET active = %s, updated_at = now() WHERE id = %s",
                           (active, sub_id))
        await audit.record(conn, principal, "alert_subscription_update", "alert_subscription", str(sub_id),
                           old={"active": old["active"]}, new={"active": active})


async def remove(conn: psycopg.AsyncConnection, user: User, sub_id: int, *, ip: str | None = None) -> None:
    """Delete a subscription; its notifications not yet sent are dropped, the sent ones stay listed."""
    principal = user.principal(ip)
    principal.require(Action.ALERTS_SUBSCRIBE)
    async with conn.transaction():
        old = await get_own(conn, user, sub_id)
        await conn.execute("UPDATE notify_deliveries SET state = 'cancelled', last_error = %s "
                           "WHERE subscription_id = %s AND state = 'pending'",
                           ("подписка удалена\nsubscription removed", sub_id))
        await conn.execute("DELETE FROM notify_subscriptions WHERE id = %s", (sub_id,))
        await audit.record(conn, principal, "alert_subscription_delete", "alert_subscription", str(sub_id),
                           old={k: old[k] for k in ("channel", "target", "kinds", "min_severity", "org_ids")})


async def send_test(conn: psycopg.AsyncConnection, user: User, sub_id: int, ch: Channels, *,
                    ip: str | None = None) -> None:
    """Send a test notice to a subscription now (no event, nothing queued). Raises
    SendError saying why it did not arrive."""
    principal = user.principal(ip)
    principal.require(Action.ALERTS_SUBSCRIBE)
    await get_own(conn, user, sub_id)
    sub = (await outbox.subscriptions(conn, [sub_id]))[sub_id]
    tz = await meta.timezone(conn)
    now = datetime.now(tz)
    notice = Notice(f"askue-test-{sub_id}-{int(now.timestamp())}", "test", {}, ch.base_url)
    try:
        await send(ch, sub, [notice], tz, now)
    finally:
        await audit.record(conn, principal, "alert_subscription_test", "alert_subscription", str(sub_id),
                           new={"channel": sub.channel, "target": sub.target})


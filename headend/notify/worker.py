"""The alerts background task (`notify_task`, listed in `askue.headend.composition`):
every `notify_poll_s` it turns new outbox rows into deliveries and sends what is due,
one message per transaction; a failed send waits `notify_retry_base_s`·2^(n−1) (at most
an hour) and is given up after `notify_max_attempts`, or at once when the answer will
not change (a refused recipient, a webhook's 4xx)."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, tzinfo

import psycopg

from askue.headend.errors import ServiceError
from askue.headend.notify import outbox
from askue.headend.notify import webhook as webhooks
from askue.headend.notify.mail import MailError, MailSettings, send_mail
from askue.headend.notify.messages import Notice, email_text, payload, subject
from askue.headend.storage import meta

log = logging.getLogger(__name__)
ALERTS_PATH = "/web/alerts"  # the subscriptions page (web router prefix /web)


@dataclass(frozen=True)
class Channels:
    """How to reach people: SMTP (None: not configured), webhook timeout, retry policy, links."""

    mail: MailSettings | None
    webhook_timeout_s: float
    base_url: str
    retry_base_s: float
    max_attempts: int

    @classmethod
    def from_settings(cls, settings) -> Channels:
        return cls(MailSettings.from_settings(settings), settings.webhook_timeout_s, settings.base_url,
                   settings.notify_retry_base_s, settings.notify_max_attempts)


class SendError(ServiceError):
    """A notice that did not go: why (English and Russian), and whether retrying may help."""

    def __init__(self, message: str, message_ru: str, permanent: bool = False) -> None:
        super().__init__(message, message_ru)
        self.permanent = permanent

    @property
    def stored(self) -> str:
        """As kept in notify_deliveries.last_error: the Russian line, then the English one."""
        return f"{self.message_ru}\n{self.message}"


async def send(ch: Channels, sub: outbox.Subscription, notices: list[Notice], tz: tzinfo, now: datetime) -> None:
    """One message with the notices to the subscription's target. Raises SendError."""
    if sub.channel == "email":
        if ch.mail is None:
            raise SendError("e-mail is not configured: set smtp_host and smtp_from in the head-end settings",
                            "отправка e-mail не настроена: укажите smtp_host и smtp_from в настройках головной системы")
        domain = ch.mail.sender.rpartition("@")[2] or "askue"
        try:
            await send_mail(ch.mail, sub.target, subject(notices, sub.lang),
                            email_text(notices, sub.lang, tz, ch.base_url + ALERTS_PATH),
                            message_id=f"<{notices[0].delivery}.{len(notices)}@{domain}>",
                            headers={"X-Askue-Delivery": ", ".join(n.delivery for n in notices)})
        except MailError as e:
            raise SendError(e.message, e.message_ru, e.permanent) from None
        return
    for n in notices:  # webhooks get one POST per notice
        try:
            await webhooks.post(sub.target, payload(n, tz, now), delivery=n.delivery, secret=sub.secret,
                                timeout_s=ch.webhook_timeout_s)
        except webhooks.WebhookError as e:
            raise SendError(e.message, e.message_ru, e.permanent) from None


async def deliver_one(conn: psycopg.AsyncConnection, ch: Channels, tz: tzinfo, due_by: datetime | None = None) -> int:
    """Send the next message due (by `due_by`, else now); returns the deliveries it settled
    (0: nothing was due). Commits on its own: the connection must have no transaction open."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise RuntimeError("deliver_one needs a connection without an open transaction")
    async with conn.transaction():
        batch = await outbox.claim(conn, due_by)
        if not batch:
            return 0
        ids = [d["id"] for d in batch]
        sub_id = batch[0]["subscription_id"]
        sub = (await outbox.subscriptions(conn, [sub_id])).get(sub_id) if sub_id is not None else None
        if sub is None or not (sub.active and sub.user_active):
            await outbox.cancel(conn, ids, "подписка удалена или отключена\nsubscription removed or switched off")
            return len(ids)
        now = datetime.now(tz)
        notices = await outbox.notices(conn, batch, lang=sub.lang, tz=tz, base_url=ch.base_url, now=now)
        hidden = [d["id"] for d, n in zip(batch, notices, strict=True)
                  if not sub.may_hear(_org_id(n))]
        if hidden:  # the user lost sight of that organisation since
            await outbox.cancel(conn, hidden, "нет доступа к организации\nno access to the organisation")
            notices = [n for d, n in zip(batch, notices, strict=True) if d["id"] not in hidden]
            ids = [i for i in ids if i not in hidden]
            if not ids:
                return len(hidden)
        try:
            await send(ch, sub, notices, tz, now)
        except SendError as e:
            log.warning("alert %s to %s failed: %s", ", ".join(n.delivery for n in notices), sub.target, e)
            await outbox.mark_failed(conn, ids, e.stored, permanent=e.permanent, max_attempts=ch.max_attempts,
                                     retry_base_s=ch.retry_base_s)
        else:
            await outbox.mark_sent(conn, ids)
    return len(batch)


def _org_id(n: Notice) -> int | None:
    return n.event.get("org_id")


async def run_once(pool, ch: Channels, max_messages: int = 200) -> tuple[int, int]:
    """Expand the outbox and send what is due; (outbox rows handled, deliveries settled).

    Each expansion and each message is its own committed transaction (so nothing is left
    open around them); a retry that falls due during the round waits for the next one."""
    async with pool.connection() as conn:
        tz = await meta.timezone(conn)
        await conn.commit()
        expanded = 0
        while n := await outbox.expand(conn):
            expanded += n
        started = (await (await conn.execute("SELECT now()")).fetchone())[0]
        await conn.commit()
        settled = 0
        for _ in range(max_messages):
            n = await deliver_one(conn, ch, tz, due_by=started)
            if not n:
                break
            settled += n
    return expanded, settled


async def notify_task(pool, settings) -> None:
    """Run for the life of the head-end (composition.BACKGROUND_TASKS)."""
    ch = Channels.from_settings(settings)
    if ch.mail is None:
        log.info("alerts: no SMTP server configured (smtp_host): e-mail alerts wait until one is")
    while True:
        try:
            await run_once(pool, ch)
        except asyncio.CancelledError:
            raise
        except Exception:  # a lost database connection: try again next round
            log.exception("alerts: a round failed; retrying in %s s", settings.notify_poll_s)
        await asyncio.sleep(settings.notify_poll_s)

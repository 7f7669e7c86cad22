"""Sending e-mail through the operator's SMTP server: STARTTLS (port 587), implicit TLS
(SMTPS, port 465) or plain, with a login when one is configured.

`send_mail` is the head-end's one way to send an e-mail (alerts, password reset links,
account security notices); `send_later` sends one in the background once the transaction
that caused it has committed. `send_mail` raises `MailError`, which says whether trying
again may help (`permanent`): a refused recipient will not be accepted later, a server
that is down may be.
"""
from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import psycopg

from askue.headend.errors import ServiceError
from askue.headend.storage.after_commit import after_commit

log = logging.getLogger(__name__)


class MailError(ServiceError):
    """Why an e-mail did not go (English and Russian); `permanent`: trying again will not help."""

    def __init__(self, message: str, message_ru: str, *, permanent: bool = False) -> None:
        super().__init__(message, message_ru)
        self.permanent = permanent


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int = 587
    security: str = "starttls"  # starttls | tls | none
    username: str | None = None
    password: str | None = None
    sender: str = "askue@localhost"
    ca_file: str | None = None
    timeout_s: float = 30.0

    @classmethod
    def from_settings(cls, settings) -> MailSettings | None:
        """The head-end's SMTP settings (`smtp_*`), or None when no server is configured."""
        if not settings.smtp_host:
            return None
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_security, settings.smtp_username,
                   settings.smtp_password, settings.smtp_from, settings.smtp_ca_file, settings.smtp_timeout_s)


def build_message(sender: str, to: list[str], subject: str, text: str, *, html: str | None = None,
                  message_id: str | None = None, headers: dict[str, str] | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id or make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(text, charset="utf-8")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8")
    return msg


def _tls_context(cfg: MailSettings) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=cfg.ca_file)
    except (OSError, ssl.SSLError) as e:
        raise MailError(f"smtp_ca_file {cfg.ca_file!r} cannot be used: {e}",
                        f"файл smtp_ca_file {cfg.ca_file!r} не подходит: {e}", permanent=True) from None


def send_message_sync(cfg: MailSettings, msg: EmailMessage) -> None:
    """Deliver a built message to the SMTP server (blocking)."""
    where = f"{cfg.host}:{cfg.port}"
    try:
        if cfg.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_s,
                                                   context=_tls_context(cfg))
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        with client:
            client.ehlo()
            if cfg.security == "starttls":
                if not client.has_extn("starttls"):
                    raise MailError(f"SMTP server {where} does not offer STARTTLS; set smtp_security "
                                    "(tls for port 465, none only on a trusted network)",
                                    f"почтовый сервер {where} не предлагает STARTTLS; настройте smtp_security "
                                    "(tls для порта 465, none — только в доверенной сети)", permanent=True)
                client.starttls(context=_tls_context(cfg))
                client.ehlo()
            if cfg.username:
                client.login(cfg.username, cfg.password or "")
            refused = client.send_message(msg)
            if refused:
                who = ", ".join(sorted(refused))
                raise MailError(f"SMTP server {where} refused {who}", f"почтовый сервер {where} не принял {who}",
                                permanent=True)
    except MailError:
        raise
    except smtplib.SMTPAuthenticationError as e:
        answer = f"{e.smtp_code} {_text(e.smtp_error)}"
        raise MailError(f"SMTP server {where} refused the login {cfg.username!r}: {answer}",
                        f"почтовый сервер {where} не принял логин {cfg.username!r}: {answer}") from None
    except smtplib.SMTPRecipientsRefused as e:
        codes = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in e.recipients.items())
        raise MailError(f"SMTP server {where} refused the recipient(s): {codes}",
                        f"почтовый сервер {where} не принял получателя: {codes}",
                        permanent=all(c >= 500 for c, _ in e.recipients.values())) from None
    except smtplib.SMTPResponseException as e:
        answer = f"{e.smtp_code} {_text(e.smtp_error)}"
        raise MailError(f"SMTP server {where} answered {answer}", f"почтовый сервер {where} ответил {answer}",
                        permanent=e.smtp_code >= 500) from None
    except smtplib.SMTPNotSupportedError as e:
        raise MailError(f"SMTP server {where}: {e} (a server that offers AUTH only after STARTTLS needs "
                        "smtp_security: starttls)",
                        f"почтовый сервер {where} не предлагает вход (AUTH); если он принимает логин только после "
                        "STARTTLS, нужен smtp_security: starttls", permanent=True) from None
    except UnicodeEncodeError:
        raise MailError("smtp_username and smtp_password must be ASCII for SMTP AUTH LOGIN",
                        "smtp_username и smtp_password должны быть латиницей (ASCII)", permanent=True) from None
    except ssl.SSLError as e:
        reason = e.reason or str(e)
        raise MailError(f"TLS with SMTP server {where} failed: {reason}",
                        f"не удалось установить TLS с почтовым сервером {where}: {reason}") from None
    except (smtplib.SMTPException, OSError) as e:
        raise MailError(f"SMTP server {where}: {e.__class__.__name__}: {e}",
                        f"почтовый сервер {where} недоступен: {e.__class__.__name__}: {e}") from None


def _text(b: bytes | str) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)


async def send_mail(cfg: MailSettings, to: str | list[str], subject: str, text: str, *, html: str | None = None,
                    message_id: str | None = None, headers: dict[str, str] | None = None) -> str:
    """Send one e-mail; returns its Message-ID. Raises MailError."""
    msg = build_message(cfg.sender, [to] if isinstance(to, str) else list(to), subject, text, html=html,
                        message_id=message_id, headers=headers)
    await asyncio.to_thread(send_message_sync, cfg, msg)
    return msg["Message-ID"]


_sending: set[asyncio.Task] = set()


def send_later(cfg: MailSettings, to: str, subject: str, text: str, what: str, *,
               after: psycopg.AsyncConnection) -> None:
    """Send in the background once `after`'s transaction has committed (never, should it roll
    back: the letter tells of what it wrote); the request that caused it answers at once, its
    time telling nothing about the outcome. A failure is logged with `what` the letter was."""
    async def send() -> None:
        try:
            await send_mail(cfg, to, subject, text)
        except MailError as e:
            log.error("%s was not sent: %s", what, e.message)

    def start() -> None:
        task = asyncio.get_running_loop().create_task(send())
        _sending.add(task)
        task.add_done_callback(_sending.discard)

    after_commit(after, start)


async def drain(timeout: float) -> None:
    """Wait (at a stop) for the letters `send_later` is sending, at most `timeout` seconds;
    those still going then are logged."""
    if not _sending:
        return
    _, left = await asyncio.wait(set(_sending), timeout=timeout)
    if left:
        log.warning("%d letter(s) still being sent %.0f s after the stop began; not waiting longer", len(left),
                    timeout)

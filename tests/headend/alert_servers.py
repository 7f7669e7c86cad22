"""Real servers the alert tests send to (no tests here): an SMTP server (aiosmtpd) that
demands STARTTLS and AUTH LOGIN — or speaks implicit TLS — with a self-signed
certificate made here, and an HTTP receiver for webhooks that answers from a script
(e.g. 503, 503, then 200) and records every request."""
from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from askue.devservices.ports import free_port

SMTP_USER, SMTP_PASSWORD = "askue-alerts", "Pochta-parol-1"


def self_signed(d: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (the certificate is its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "askue test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    crt, k = d / "smtp.crt", d / "smtp.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return crt, k


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None

    @property
    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()


@dataclass
class SmtpServer:
    """aiosmtpd with STARTTLS required before AUTH LOGIN (`implicit_tls`: SMTPS instead)."""

    dir: Path
    implicit_tls: bool = False
    port: int = 0
    received: list[Received] = field(default_factory=list)
    mechanisms: list[str] = field(default_factory=list)
    logins: dict[int, str] = field(default_factory=dict)
    ca_file: Path | None = None
    data_delay_s: float = 0.0  # a slow server: the time it takes before accepting a message

    def __enter__(self) -> SmtpServer:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        crt, key = self_signed(self.dir)
        self.ca_file = crt
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
                await asyncio.sleep(outer.data_delay_s)
                msg = message_from_bytes(envelope.original_content, policy=policy.default)
                tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
                outer.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg, tls,
                                               outer.logins.get(id(session))))
                return "250 OK"

        def authenticator(server, session, envelope, mechanism, auth_data):
            outer.mechanisms.append(mechanism)
            ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
            if ok:
                outer.logins[id(session)] = auth_data.login.decode()
            return AuthResult(success=ok, handled=False)

        self.port = free_port()
        kw = dict(authenticator=authenticator, auth_exclude_mechanism=["PLAIN"])
        if self.implicit_tls:  # the whole session is TLS (aiosmtpd's auth_require_tls looks at STARTTLS only)
            self._c = Controller(Handler(), hostname="127.0.0.1", port=self.port, ssl_context=ctx,
                                 auth_require_tls=False, **kw)
        else:
            self._c = Controller(Handler(), hostname="127.0.0.1", port=self.port, tls_context=ctx,
                                 require_starttls=True, auth_require_tls=True, **kw)
        self._c.start()
        return self

    def __exit__(self, *exc) -> None:
        self._c.stop()

    def settings(self) -> dict:
        """Head-end settings (`smtp_*`) that reach this server."""
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port,
                "smtp_security": "tls" if self.implicit_tls else "starttls", "smtp_username": SMTP_USER,
                "smtp_password": SMTP_PASSWORD, "smtp_from": "askue@uk.example", "smtp_ca_file": str(self.ca_file)}

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


@dataclass
class HookRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class HookReceiver:
    """An HTTP server answering POSTs from `script` (statuses in order, then 200)."""

    def __init__(self, script: list[int] | None = None) -> None:
        self.script = list(script or [])
        self.requests: list[HookRequest] = []
        self.answered: list[int] = []
        self.delay = 0.0  # seconds to wait before answering (a slow receiver)
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append(HookRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if outer.delay:
                    time.sleep(outer.delay)
                status = outer.script.pop(0) if outer.script else 200
                outer.answered.append(status)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"try later")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/askue-hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

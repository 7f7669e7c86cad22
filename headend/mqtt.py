"""The head-end's MQTT 5 session (ingest workers, the command dispatcher): an asyncio
protocol over `mqtt_wire`'s packets, a persistent session under a stable client id, TLS and
credentials from the settings, acknowledgements by hand (a message is acknowledged only
after what it carried is committed, so a crash in between makes the broker deliver it
again) and flow control on reading.

Why not a general client library: an ingest worker must stop *reading* while too many values
wait for their commit. MQTT's Receive Maximum bounds messages in flight, not values (a
gateway's message holds up to 10,000), so a broker backlog would otherwise fill the
worker's memory with decoded values. Here `pause()` stops the transport reading: TCP pushes
back, and the broker keeps the rest queued where it belongs. Protocol keepalive is off for
that reason (unanswered pings while paused would end the session); the kernel's TCP
keepalive detects a dead broker instead. And it is cheap: the link reads in large chunks
and hands each PUBLISH on as topic and payload (paho, driven the same way, cost the ingest
2.3 µs of CPU per value, 14 % of the head-end's, in header reads and property objects).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Iterable

from askue.headend import mqtt_wire as wire
from askue.headend.config import Settings

log = logging.getLogger(__name__)


def tls_context(s: Settings) -> ssl.SSLContext | None:
    if not s.mqtt_tls:
        return None
    ctx = ssl.create_default_context(cafile=s.mqtt_ca_file)
    if s.mqtt_cert_file:
        ctx.load_cert_chain(s.mqtt_cert_file, s.mqtt_key_file)
    return ctx


def client_id(s: Settings, suffix: str = "") -> str:
    """Stable across restarts: a restarted worker must resume its persistent session. A new id
    per process (the pid) left the old session in the shared group, where the broker kept
    queuing its share of the data for nobody (lost on session expiry). Several workers on one
    host in one group need their own mqtt_client_id."""
    base = s.mqtt_client_id or "-".join(x for x in ("askue-headend", socket.gethostname(), s.mqtt_group) if x)
    return base + suffix


def link(s: Settings, identifier: str, on_message: Callable[[Message], None], *,
         receive_maximum: int = 1000) -> MqttLink:
    """A link to the configured broker (credentials and TLS from the settings); call from the loop."""
    return MqttLink(s.mqtt_host, s.mqtt_port, identifier, on_message, username=s.mqtt_username,
                    password=s.mqtt_password, tls=tls_context(s), receive_maximum=receive_maximum)


class LinkLost(Exception):
    """The broker connection could not be made or was lost; the caller reconnects."""


class Message:
    """A PUBLISH received: `mid` and `qos` are what `MqttLink.ack` takes."""

    __slots__ = ("topic", "payload", "mid", "qos")

    def __init__(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        self.topic, self.payload, self.mid, self.qos = topic, payload, mid, qos


class MqttLink(asyncio.Protocol):
    """One connection to the broker; a new link per reconnection. Call from the loop."""

    def __init__(self, host: str, port: int, client_id: str, on_message: Callable[[Message], None], *,
                 username: str | None = None, password: str | None = None, tls: ssl.SSLContext | None = None,
                 receive_maximum: int = 1000, session_expiry_s: int = 86400) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.on_message = on_message
        self._username, self._password, self._tls = username, password, tls
        self._receive_maximum, self._session_expiry_s = receive_maximum, session_expiry_s
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._paused = False
        self._last_read = 0.0  # loop time of the last read from the socket
        self._connected: asyncio.Future[bool] = self._loop.create_future()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self._subs: dict[int, asyncio.Future[None]] = {}
        self._pubs: dict[int, asyncio.Future[None]] = {}
        self._last_id = 0

    # ---- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            _tcp_keepalive(sock)

    def data_received(self, data: bytes) -> None:
        self._last_read = self._loop.time()
        self._buf += data
        if not self._paused:
            self._drain()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._lose(LinkLost(f"connection lost: {exc}" if exc else "the broker closed the connection"))

    # ---- packets -----------------------------------------------------------------------------
    def _drain(self) -> None:
        """Hand on the complete packets read; stop where `pause()` was called."""
        buf = self._buf
        pos, end = 0, len(buf)
        on_message = self.on_message
        try:
            while end - pos >= 2 and not self._paused:
                # the remaining length, inline: this runs once per message
                n, shift, i = 0, 0, pos + 1
                while True:
                    if i >= end:
                        return
                    b = buf[i]
                    n |= (b & 0x7F) << shift
                    i += 1
                    if not b & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise wire.ProtocolError("a remaining length longer than four bytes")
                stop = i + n
                if stop > end:
                    return
                first = buf[pos]
                pos = stop
                if first & 0xF0 == wire.PUBLISH:
                    on_message(Message(*wire.split_publish(first, buf, i, stop)))
                else:
                    self._control(first, bytes(buf[i:stop]))
        except (wire.ProtocolError, ValueError, IndexError) as e:  # struct.error is a ValueError
            self._fail(f"the broker sent a malformed packet: {e}")
        finally:
            del buf[:pos]

    def _control(self, first: int, body: bytes) -> None:
        kind = first & 0xF0
        if kind == wire.PUBACK:
            mid, code = wire.reason_of_ack(body)
            fut = self._pubs.pop(mid, None)
            if fut is not None and not fut.done():
                if code >= 0x80:
                    fut.set_exception(LinkLost(f"broker refused the message: {wire.reason(code)}"))
                else:
                    fut.set_result(None)
        elif kind == wire.SUBACK:
            mid, codes = wire.suback(body)
            fut = self._subs.pop(mid, None)
            if fut is not None and not fut.done():
                bad = [wire.reason(c) for c in codes if c >= 0x80]
                fut.set_exception(LinkLost(f"subscription refused: {bad}")) if bad else fut.set_result(None)
        elif kind == wire.CONNACK:
            present, code, _props = wire.connack(body)
            if not self._connected.done():
                if code >= 0x80:
                    self._connected.set_exception(LinkLost(f"broker refused the connection: {wire.reason(code)}"))
                else:
                    self._connected.set_result(present)
        elif kind == wire.DISCONNECT:
            code, text = wire.disconnect_reason(body)
            self._fail(f"disconnected by the broker: {wire.reason(code)}" + (f": {text}" if text else ""))
        elif kind != wire.PINGRESP:
            raise wire.ProtocolError(f"unexpected packet type {first:#04x}")

    def _fail(self, why: str) -> None:
        self._lose(LinkLost(why))
        if self._transport is not None:
            self._transport.abort()

    def _lose(self, err: Exception) -> None:
        for fut in (self._connected, self.lost, *self._subs.values(), *self._pubs.values()):
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # whoever waits sees it; nobody waiting is no error of its own

    def _send(self, data: bytes) -> None:
        t = self._transport
        if t is None or t.is_closing():
            raise LinkLost("not connected")
        t.write(data)

    def _new_id(self, used: dict[int, asyncio.Future[None]]) -> int:
        for _ in range(65535):
            self._last_id = self._last_id % 65535 + 1
            if self._last_id not in used:
                return self._last_id
        raise LinkLost("65,535 requests waiting for the broker")

    # ---- what the worker calls ----------------------------------------------------------------
    async def connect(self, timeout: float = 30.0) -> bool:
        """Connect (a persistent session: clean start off); returns whether the broker had one."""
        try:
            await asyncio.wait_for(self._loop.create_connection(
                lambda: self, self.host, self.port, ssl=self._tls,
                server_hostname=self.host if self._tls is not None else None), timeout)
        except (OSError, TimeoutError) as e:  # ssl.SSLError is an OSError
            raise LinkLost(f"cannot connect to {self.host}:{self.port}: {e or type(e).__name__}") from None
        # keepalive 0: see the module docstring
        self._send(wire.connect(self.client_id, clean_start=False, session_expiry_s=self._session_expiry_s,
                                receive_maximum=self._receive_maximum, username=self._username,
                                password=self._password))
        try:
            return await asyncio.wait_for(asyncio.shield(self._connected), timeout)
        except TimeoutError:
            raise LinkLost(f"no CONNACK from {self.host}:{self.port} in {timeout:.0f} s") from None

    async def subscribe(self, topics: list[str], timeout: float = 120.0) -> None:
        mid = self._new_id(self._subs)
        fut = self._subs[mid] = self._loop.create_future()
        self._send(wire.subscribe(mid, topics, qos=1))
        # A resumed session's queued messages come before the SUBACK (up to Receive Maximum of
        # them: millions of values behind a broker backlog), and while paused nothing is read at
        # all; so the SUBACK is missing only when the link reads and nothing came for `timeout` s.
        while True:
            since = self._loop.time()
            try:
                await asyncio.wait_for(asyncio.shield(fut), timeout)
                return
            except TimeoutError:
                if not self._paused and self._last_read < since:
                    self._subs.pop(mid, None)
                    raise LinkLost(f"no SUBACK in {timeout:.0f} s") from None

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, expiry_s: int | None = None,
                      timeout: float = 10.0) -> None:
        """Publish; with QoS 1, return once the broker acknowledged the message. `expiry_s`:
        the broker drops the message if it is not delivered within that time."""
        if qos == 0:
            self._send(wire.publish(topic, payload, qos=0, expiry_s=expiry_s))
            return
        mid = self._new_id(self._pubs)
        fut = self._pubs[mid] = self._loop.create_future()
        try:
            self._send(wire.publish(topic, payload, qos=1, packet_id=mid, expiry_s=expiry_s))
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise LinkLost(f"no PUBACK in {timeout:.0f} s") from None
        finally:
            self._pubs.pop(mid, None)

    def ack(self, mid: int, qos: int) -> None:
        self.ack_many([mid] if qos == 1 else [])

    def ack_many(self, mids: Iterable[int]) -> None:
        """Acknowledge QoS 1 messages in one write; on a lost link nothing (the broker sends
        them again on the next session)."""
        t = self._transport
        if t is not None and not t.is_closing():
            t.write(b"".join(map(wire.puback, mids)))

    def pause(self) -> None:
        """Read nothing more from the broker until `resume()`."""
        if not self._paused:
            self._paused = True
            if self._transport is not None:
                self._transport.pause_reading()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._transport is not None:
                self._transport.resume_reading()
            self._loop.call_soon(self._drain)  # what was read before the pause

    @property
    def paused(self) -> bool:
        return self._paused

    async def close(self) -> None:
        t = self._transport
        if t is not None and not t.is_closing():
            if self._connected.done() and not self._connected.exception():
                t.write(wire.disconnect())
            t.close()


def _tcp_keepalive(sock: socket.socket) -> None:
    """A dead broker is noticed in about a minute (no MQTT pings, see the module docstring)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
    except OSError as e:
        log.debug("TCP keepalive not set: %s", e)

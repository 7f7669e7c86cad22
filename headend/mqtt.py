"""The head-end's MQTT 5 session (ingest workers, the command dispatcher): paho's protocol
engine driven by the asyncio loop, a persistent session under a stable client id, TLS and
credentials from the settings, acknowledgements by hand (a message is acknowledged only
after what it carried is committed, so a crash in between makes the broker deliver it
again) and flow control on reading.

Why not a general client library: an ingest worker must stop *reading* while too many values
wait for their commit. MQTT's Receive Maximum bounds messages in flight, not values (a
gateway's message holds up to 10,000), so a broker backlog would otherwise fill the
worker's memory with decoded values. Here `pause()` takes the socket off the loop: paho
reads nothing more, TCP pushes back, and the broker keeps the rest queued where it
belongs. Protocol keepalive is off for that reason (unanswered pings while paused would
end the session); the kernel's TCP keepalive detects a dead broker instead.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

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


def link(s: Settings, identifier: str, on_message: Callable[[mqtt.MQTTMessage], None], *,
         receive_maximum: int = 1000) -> MqttLink:
    """A link to the configured broker (credentials and TLS from the settings); call from the loop."""
    return MqttLink(s.mqtt_host, s.mqtt_port, identifier, on_message, username=s.mqtt_username,
                    password=s.mqtt_password, tls=tls_context(s), receive_maximum=receive_maximum)


class LinkLost(Exception):
    """The broker connection could not be made or was lost; the caller reconnects."""


class MqttLink:
    def __init__(self, host: str, port: int, client_id: str, on_message: Callable[[mqtt.MQTTMessage], None], *,
                 username: str | None = None, password: str | None = None, tls: ssl.SSLContext | None = None,
                 receive_maximum: int = 1000, session_expiry_s: int = 86400) -> None:
        self.host, self.port = host, port
        self.on_message = on_message
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()  # the loop's
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.manual_ack_set(True)
        if username:
            c.username_pw_set(username, password)
        if tls is not None:
            c.tls_set_context(tls)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_publish = self._on_publish
        c.on_message = lambda _c, _u, m: self.on_message(m)
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = lambda _c, _u, sock: self._soon(self._watch_write, True)
        c.on_socket_unregister_write = lambda _c, _u, sock: self._soon(self._watch_write, False)
        self.client = c
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s  # keep unacked messages for us across a restart
        props.ReceiveMaximum = receive_maximum  # in-flight QoS 1 messages the broker may send us
        self._props = props
        self._sock: socket.socket | None = None
        self._fd = -1  # the socket's descriptor as registered with the loop (a closed socket says -1)
        self._writing = False
        self._paused = False
        self._last_read = 0.0  # loop time of the last read from the socket
        self._connected: asyncio.Future[bool] = self._loop.create_future()
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self._subs: dict[int, asyncio.Future[None]] = {}
        self._pubs: dict[int, asyncio.Future[None]] = {}
        self._misc: asyncio.Task | None = None

    # ---- paho callbacks (on the loop's thread, or the connect executor's) ---------------------
    def _soon(self, fn, *args) -> None:
        self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, _c, _u, sock) -> None:
        fd = sock.fileno()  # now, while it is open

        def opened() -> None:
            self._forget_socket()
            self._sock, self._fd = sock, fd
            if isinstance(sock, socket.socket):
                _tcp_keepalive(sock)
            if not self._paused:
                self._loop.add_reader(fd, self._read)
        self._soon(opened)

    def _on_socket_close(self, _c, _u, sock) -> None:
        # paho closes the socket as soon as this returns: on the loop's thread its descriptor
        # leaves the loop now (epoll refuses one that is closed); later would be too late
        if threading.get_ident() == self._thread:
            self._forget_socket()
        else:
            self._soon(self._forget_socket)

    def _forget_socket(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._sock, self._fd, self._writing = None, -1, False

    def _watch_write(self, on: bool) -> None:
        if self._fd < 0 or on == self._writing:
            return
        self._writing = on
        if on:
            self._loop.add_writer(self._fd, self._write)
        else:
            self._loop.remove_writer(self._fd)

    def _on_connect(self, _c, _u, flags, reason_code, _props) -> None:
        def done() -> None:
            if not self._connected.done():
                if reason_code.is_failure:
                    self._connected.set_exception(LinkLost(f"broker refused the connection: {reason_code}"))
                else:
                    self._connected.set_result(bool(flags.session_present))
        self._soon(done)

    def _on_disconnect(self, _c, _u, _flags, reason_code, _props) -> None:
        self._soon(self._lose, LinkLost(f"disconnected: {reason_code}"))

    def _on_subscribe(self, _c, _u, mid, reason_codes, _props) -> None:
        def done() -> None:
            fut = self._subs.pop(mid, None)
            if fut is not None and not fut.done():
                bad = [str(rc) for rc in reason_codes if rc.is_failure]
                fut.set_exception(LinkLost(f"subscription refused: {bad}")) if bad else fut.set_result(None)
        self._soon(done)

    def _on_publish(self, _c, _u, mid, reason_code, _props) -> None:
        def done() -> None:
            fut = self._pubs.pop(mid, None)
            if fut is not None and not fut.done():
                if reason_code.is_failure:
                    fut.set_exception(LinkLost(f"broker refused the message: {reason_code}"))
                else:
                    fut.set_result(None)
        self._soon(done)

    def _lose(self, err: Exception) -> None:
        for fut in (self._connected, self.lost, *self._subs.values(), *self._pubs.values()):
            if not fut.done():
                fut.set_exception(err)
                fut.exception()  # whoever waits sees it; nobody waiting is no error of its own

    def _read(self) -> None:
        self._last_read = self._loop.time()
        try:
            rc = self.client.loop_read()
        except Exception as e:  # a broken socket surfaces here
            self._lose(LinkLost(f"read failed: {e}"))
            return
        if rc != mqtt.MQTT_ERR_SUCCESS and rc != mqtt.MQTT_ERR_AGAIN:
            self._lose(LinkLost(f"read failed: {mqtt.error_string(rc)}"))

    def _write(self) -> None:
        try:
            self.client.loop_write()
        except Exception as e:
            self._lose(LinkLost(f"write failed: {e}"))

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(1)
            if self.client.loop_misc() == mqtt.MQTT_ERR_NO_CONN:
                self._lose(LinkLost("connection closed"))
                return

    # ---- what the worker calls ----------------------------------------------------------------
    async def connect(self, timeout: float = 30.0) -> bool:
        """Connect (a persistent session: clean start off); returns whether the broker had one."""
        try:
            # keepalive 0: see the module docstring
            await self._loop.run_in_executor(None, lambda: self.client.connect(
                self.host, self.port, keepalive=0, clean_start=False, properties=self._props))
        except OSError as e:
            raise LinkLost(f"cannot connect to {self.host}:{self.port}: {e}") from None
        self._misc = asyncio.create_task(self._housekeeping())
        try:
            return await asyncio.wait_for(asyncio.shield(self._connected), timeout)
        except TimeoutError:
            raise LinkLost(f"no CONNACK from {self.host}:{self.port} in {timeout:.0f} s") from None

    async def subscribe(self, topics: list[str], timeout: float = 120.0) -> None:
        rc, mid = self.client.subscribe([(t, SubscribeOptions(qos=1)) for t in topics])
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise LinkLost(f"subscribe failed: {mqtt.error_string(rc)}")
        fut = self._subs[mid] = self._loop.create_future()
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

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, properties: Properties | None = None,
                      timeout: float = 10.0) -> None:
        """Publish; with QoS 1, return once the broker acknowledged the message."""
        info = self.client.publish(topic, payload, qos=qos, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise LinkLost(f"publish failed: {mqtt.error_string(info.rc)}")
        if qos == 0:
            return
        # paho only queues the packet here (it is written from the loop), so the PUBACK
        # cannot come before the future is in place
        fut = self._pubs[info.mid] = self._loop.create_future()
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise LinkLost(f"no PUBACK in {timeout:.0f} s") from None
        finally:
            self._pubs.pop(info.mid, None)

    def ack(self, mid: int, qos: int) -> None:
        self.client.ack(mid, qos)

    def pause(self) -> None:
        """Read nothing more from the broker until `resume()`."""
        if not self._paused:
            self._paused = True
            if self._fd >= 0:
                self._loop.remove_reader(self._fd)

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            if self._fd >= 0:
                self._loop.add_reader(self._fd, self._read)
                self._loop.call_soon(self._read)  # paho may hold bytes it read already (TLS)

    @property
    def paused(self) -> bool:
        return self._paused

    async def close(self) -> None:
        if self._misc is not None:
            self._misc.cancel()
        try:
            self.client.disconnect()
            if self._sock is not None and self.client.want_write():
                self.client.loop_write()
        except Exception:  # closing a link that is already gone
            pass
        self._forget_socket()


def _tcp_keepalive(sock: socket.socket) -> None:
    """A dead broker is noticed in about a minute (no MQTT pings, see the module docstring)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
    except OSError as e:
        log.debug("TCP keepalive not set: %s", e)

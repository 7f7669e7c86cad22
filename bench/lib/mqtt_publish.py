"""A lean MQTT 5 QoS 1 publisher for benchmarks: packets encoded before the clock starts,
written in large chunks, acknowledgements counted.

Why not paho: the live ingest benchmark runs the publisher on the cores the head-end and
PostgreSQL are measured on, yet it stands in for gateways that run on their own hardware.
paho spent about 9 µs of CPU per value (220 µs per 24-value message) publishing at QoS 1,
a quarter of two cores at the head-end's rate; this one spends a small fraction of that,
so the figure is the head-end's and not the stand-in's.
"""
from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Iterator

CONNACK, PUBACK, DISCONNECT = 0x20, 0x40, 0xE0
RECEIVE_MAXIMUM = 0x21  # CONNACK property: QoS 1 messages the broker takes unacknowledged


class PublishError(Exception):
    pass


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str) -> bytes:
    # protocol name and level 5, flags: clean start; keepalive 0; no properties
    body = _string("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 0) + varint(0) + _string(client_id)
    return bytes([0x10]) + varint(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    """QoS 1, no properties."""
    body = _string(topic) + struct.pack("!H", packet_id) + varint(0) + payload
    return bytes([0x32]) + varint(len(body)) + body


def packets(messages: Iterable[tuple[str, bytes]]) -> list[bytes]:
    """PUBLISH packets with packet ids 1..65535 in turn (a window below 65535 keeps them unique)."""
    return [publish_packet(t, p, i % 65535 + 1) for i, (t, p) in enumerate(messages)]


def read_varint(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(value, position after it) of the variable byte integer at `pos`; None if `buf` ends first."""
    n, mult = 0, 1
    while pos < len(buf):
        b = buf[pos]
        n += (b & 0x7F) * mult
        mult <<= 7
        pos += 1
        if not b & 0x80:
            return n, pos
    return None


def _frames(buf: bytearray) -> Iterator[tuple[int, bytes]]:
    """Complete packets at the head of `buf` (removed from it): (first byte, body)."""
    while len(buf) >= 2:
        got = read_varint(buf, 1)
        if got is None:
            return
        n, pos = got
        if len(buf) < pos + n:
            return
        first, body = buf[0], bytes(buf[pos:pos + n])
        del buf[:pos + n]
        yield first, body


class Publisher:
    """One connection; `send` returns once the broker acknowledged every packet."""

    def __init__(self, host: str, port: int, client_id: str, window: int = 1000, timeout: float = 60.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.sock.sendall(connect_packet(client_id))
        first, body = self._next()
        if first != CONNACK or len(body) < 2 or body[1] >= 0x80:
            raise PublishError(f"broker refused the connection: packet {first:#x}, reason {body[1:2].hex()}")
        self.window = min(window, _receive_maximum(body[2:]))

    def _next(self) -> tuple[int, bytes]:
        while True:
            for frame in _frames(self.buf):
                return frame
            self._recv()

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise PublishError("the broker closed the connection")
        self.buf += chunk

    def _acks(self) -> int:
        """Acknowledgements received (at least one: waits for it)."""
        n = 0
        while not n:
            for first, body in _frames(self.buf):
                if first & 0xF0 != PUBACK:
                    raise PublishError(f"unexpected packet {first:#x} from the broker")
                if len(body) > 2 and body[2] >= 0x80:
                    raise PublishError(f"the broker refused message {int.from_bytes(body[:2], 'big')}: "
                                       f"reason {body[2]:#x}")
                n += 1
            if not n:
                self._recv()
        return n

    def send(self, pkts: list[bytes], chunk: int = 64) -> None:
        sent = acked = 0
        while acked < len(pkts):
            if sent < len(pkts) and sent - acked < self.window:
                end = min(len(pkts), sent + chunk, acked + self.window)
                self.sock.sendall(b"".join(pkts[sent:end]))
                sent = end
            else:
                acked += self._acks()

    def close(self) -> None:
        try:
            self.sock.sendall(bytes([DISCONNECT, 0]))
        finally:
            self.sock.close()


def _receive_maximum(props_and_more: bytes) -> int:
    """The CONNACK's Receive Maximum (65,535 when absent)."""
    got = read_varint(props_and_more, 0)
    if got is None:
        return 65535
    n, pos = got
    props, i = bytes(props_and_more[pos:pos + n]), 0
    while i < len(props):
        ident = props[i]
        i += 1
        if ident == RECEIVE_MAXIMUM:
            return struct.unpack("!H", props[i:i + 2])[0]
        # the other CONNACK properties this publisher may see, by their encodings
        if ident in (0x24, 0x25, 0x28, 0x29, 0x2A):  # one byte
            i += 1
        elif ident in (0x13, 0x22):  # two bytes
            i += 2
        elif ident in (0x11, 0x27):  # four bytes
            i += 4
        elif ident in (0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F):  # string or binary
            i += 2 + struct.unpack("!H", props[i:i + 2])[0]
        elif ident == 0x26:  # user property: two strings
            for _ in range(2):
                i += 2 + struct.unpack("!H", props[i:i + 2])[0]
        else:
            break
    return 65535

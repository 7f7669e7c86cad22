"""MQTT 5 packets as bytes, without I/O: what the head-end's link (`askue.headend.mqtt`)
sends and reads. Only what a subscriber that acknowledges by hand and a QoS 1 publisher
need (OASIS MQTT 5.0, sections 2-3): CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH, PUBACK,
DISCONNECT. Properties of received packets are skipped except the few read here."""
from __future__ import annotations

import struct

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGRESP, DISCONNECT = (
    0x10, 0x20, 0x30, 0x40, 0x82, 0x90, 0xD0, 0xE0)
# property identifiers
MESSAGE_EXPIRY_INTERVAL, SESSION_EXPIRY_INTERVAL, REASON_STRING, RECEIVE_MAXIMUM = 0x02, 0x11, 0x1F, 0x21

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class ProtocolError(Exception):
    """The peer sent something MQTT 5 does not allow here."""


def varint(n: int) -> bytes:
    """A variable byte integer (1-4 bytes, 7 bits each, low first)."""
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """(value, position after it) of the variable byte integer at `pos`; None if `buf` ends
    first. ProtocolError past four bytes."""
    n, shift, end = 0, 0, len(buf)
    while pos < end:
        b = buf[pos]
        n |= (b & 0x7F) << shift
        pos += 1
        if not b & 0x80:
            return n, pos
        shift += 7
        if shift > 21:
            raise ProtocolError("a variable byte integer longer than four bytes")
    return None


def string(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return _U16.pack(len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect(client_id: str, *, clean_start: bool, session_expiry_s: int = 0, receive_maximum: int = 65535,
            username: str | None = None, password: str | None = None, keepalive_s: int = 0) -> bytes:
    flags = (0x02 if clean_start else 0) | (0x80 if username else 0) | (0x40 if username and password else 0)
    props = bytes([SESSION_EXPIRY_INTERVAL]) + _U32.pack(session_expiry_s)
    if receive_maximum != 65535:
        props += bytes([RECEIVE_MAXIMUM]) + _U16.pack(receive_maximum)
    body = string("MQTT") + bytes([5, flags]) + _U16.pack(keepalive_s) + varint(len(props)) + props
    body += string(client_id)
    if username:
        body += string(username)
        if password:
            body += string(password)
    return _packet(CONNECT, body)


def subscribe(packet_id: int, topics: list[str], qos: int = 1) -> bytes:
    body = _U16.pack(packet_id) + varint(0) + b"".join(string(t) + bytes([qos]) for t in topics)
    return _packet(SUBSCRIBE, body)


def publish(topic: str, payload: bytes, *, qos: int = 1, packet_id: int = 0, expiry_s: int | None = None) -> bytes:
    props = b"" if expiry_s is None else bytes([MESSAGE_EXPIRY_INTERVAL]) + _U32.pack(expiry_s)
    body = string(topic) + (_U16.pack(packet_id) if qos else b"") + varint(len(props)) + props + payload
    return _packet(PUBLISH | (qos << 1), body)


def puback(packet_id: int) -> bytes:
    return bytes([PUBACK, 2]) + _U16.pack(packet_id)  # reason "success" left out, as MQTT 5 allows


def disconnect() -> bytes:
    return bytes([DISCONNECT, 0])


def frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """The complete packets at the head of `buf`, removed from it: (first byte, body)."""
    out = []
    pos, end = 0, len(buf)
    while end - pos >= 2:
        got = read_varint(buf, pos + 1)
        if got is None:
            break
        n, start = got
        if end < start + n:
            break
        out.append((buf[pos], bytes(buf[start:start + n])))
        pos = start + n
    if pos:
        del buf[:pos]
    return out


def split_publish(first: int, buf: bytes | bytearray, start: int, end: int) -> tuple[str, bytes, int, int]:
    """(topic, payload, packet id (0 at QoS 0), QoS) of the PUBLISH body buf[start:end]."""
    qos = (first >> 1) & 3
    if qos == 3:
        raise ProtocolError("PUBLISH with QoS 3")
    pos = start + 2 + _U16.unpack_from(buf, start)[0]
    topic = buf[start + 2:pos].decode()
    mid = 0
    if qos:
        mid = _U16.unpack_from(buf, pos)[0]
        pos += 2
    got = read_varint(buf, pos)
    if got is None or got[1] + got[0] > end:
        raise ProtocolError("PUBLISH ends inside its properties")
    return topic, bytes(buf[got[1] + got[0]:end]), mid, qos


def reason_of_ack(body: bytes) -> tuple[int, int]:
    """(packet id, reason code) of a PUBACK (reason 0 when left out)."""
    return _U16.unpack_from(body)[0], body[2] if len(body) > 2 else 0


def suback(body: bytes) -> tuple[int, list[int]]:
    """(packet id, reason code per topic) of a SUBACK."""
    mid = _U16.unpack_from(body)[0]
    got = read_varint(body, 2)
    if got is None:
        raise ProtocolError("SUBACK ends inside its properties")
    n, pos = got
    return mid, list(body[pos + n:])


def connack(body: bytes) -> tuple[bool, int, dict[int, int | str]]:
    """(session present, reason code, properties) of a CONNACK."""
    if len(body) < 2:
        raise ProtocolError("CONNACK shorter than two bytes")
    got = read_varint(body, 2)
    props = properties(body[got[1]:got[1] + got[0]]) if got else {}
    return bool(body[0] & 1), body[1], props


def disconnect_reason(body: bytes) -> tuple[int, str | None]:
    """(reason code, reason string) of a DISCONNECT the broker sent."""
    if not body:
        return 0, None
    got = read_varint(body, 1)
    props = properties(body[got[1]:got[1] + got[0]]) if got else {}
    text = props.get(REASON_STRING)
    return body[0], text if isinstance(text, str) else None


# reason codes a broker gives when it refuses or ends a session (MQTT 5.0, 2.4)
REASONS = {
    0x80: "unspecified error", 0x81: "malformed packet", 0x82: "protocol error",
    0x83: "implementation specific error", 0x84: "unsupported protocol version",
    0x85: "client identifier not valid", 0x86: "bad user name or password", 0x87: "not authorized",
    0x88: "server unavailable", 0x89: "server busy", 0x8A: "banned", 0x8B: "server shutting down",
    0x8D: "keep alive timeout", 0x8E: "session taken over", 0x8F: "topic filter invalid",
    0x90: "topic name invalid", 0x93: "receive maximum exceeded", 0x95: "packet too large",
    0x97: "quota exceeded", 0x9C: "use another server", 0x9D: "server moved",
    0x9E: "shared subscriptions not supported", 0x9F: "connection rate exceeded",
    0xA1: "subscription identifiers not supported", 0xA2: "wildcard subscriptions not supported",
}


def reason(code: int) -> str:
    return f"{REASONS.get(code, 'reason')} ({code:#04x})"


# the encodings of the properties a CONNACK or DISCONNECT may carry (MQTT 5.0, 2.2.2.2)
_ONE_BYTE = {0x24, 0x25, 0x28, 0x29, 0x2A}
_TWO_BYTES = {0x13, 0x21, 0x22}
_FOUR_BYTES = {0x11, 0x27}
_BINARY = {0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F}


def properties(props: bytes) -> dict[int, int | str]:
    """Identifier -> value of the properties in `props`: integers, and strings decoded
    (binary data too; user properties skipped)."""
    out: dict[int, int | str] = {}
    i = 0
    while i < len(props):
        ident = props[i]
        i += 1
        if ident in _ONE_BYTE:
            out[ident] = props[i]
            i += 1
        elif ident in _TWO_BYTES:
            out[ident] = _U16.unpack_from(props, i)[0]
            i += 2
        elif ident in _FOUR_BYTES:
            out[ident] = _U32.unpack_from(props, i)[0]
            i += 4
        elif ident in _BINARY:
            n = _U16.unpack_from(props, i)[0]
            out[ident] = props[i + 2:i + 2 + n].decode(errors="replace")
            i += 2 + n
        elif ident == 0x26:  # user property: two strings
            i += 2 + _U16.unpack_from(props, i)[0]
            i += 2 + _U16.unpack_from(props, i)[0]
        else:
            raise ProtocolError(f"unknown property {ident:#x}")
    return out

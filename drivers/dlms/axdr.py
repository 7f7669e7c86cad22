"""A-XDR encoding of COSEM `Data` (IEC 62056-5-3 §8), written independently of gurux.

The simulator encodes every value it serves with these functions and decodes the
parameters of requests (selective access, SET data, ACTION parameters) with
`decode`, so the driver (which uses gurux) is checked against a second
implementation of the same rules.
"""

from __future__ import annotations

import struct

from askue.drivers.errors import ProtocolError

NULL, ARRAY, STRUCTURE, BOOLEAN, BIT_STRING = 0, 1, 2, 3, 4
DOUBLE_LONG, DOUBLE_LONG_UNSIGNED, OCTET_STRING, VISIBLE_STRING, UTF8_STRING = 5, 6, 9, 10, 12
INTEGER, LONG, UNSIGNED, LONG_UNSIGNED, LONG64, LONG64_UNSIGNED, ENUM = 15, 16, 17, 18, 20, 21, 22
FLOAT32, FLOAT64, DATE_TIME, DATE, TIME = 23, 24, 25, 26, 27

_INTS = {
    DOUBLE_LONG: ">i",
    DOUBLE_LONG_UNSIGNED: ">I",
    INTEGER: ">b",
    LONG: ">h",
    UNSIGNED: ">B",
    LONG_UNSIGNED: ">H",
    LONG64: ">q",
    LONG64_UNSIGNED: ">Q",
    ENUM: ">B",
    FLOAT32: ">f",
    FLOAT64: ">d",
}
_FIXED_OCTETS = {DATE_TIME: 12, DATE: 5, TIME: 4}


def length(n: int) -> bytes:
    """A-XDR length: one byte below 0x80, else 0x8N followed by N big-endian bytes."""
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def read_length(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise ProtocolError("A-XDR length missing at end of data")
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    if n == 0 or n > 4 or pos + 1 + n > len(buf):
        raise ProtocolError(f"bad A-XDR length prefix {first:02x} at byte {pos}")
    return int.from_bytes(buf[pos + 1 : pos + 1 + n], "big"), pos + 1 + n


# ---- encoders (each returns tag + content) ----------------------------------------------
def null() -> bytes:
    return b"\x00"


def boolean(v: bool) -> bytes:
    return bytes((BOOLEAN, 1 if v else 0))


def integer(tag: int, v: int | float) -> bytes:
    return bytes((tag,)) + struct.pack(_INTS[tag], v)


def octets(v: bytes) -> bytes:
    return bytes((OCTET_STRING,)) + length(len(v)) + v


def visible(v: str) -> bytes:
    raw = v.encode("ascii")
    return bytes((VISIBLE_STRING,)) + length(len(raw)) + raw


def structure(*items: bytes) -> bytes:
    return bytes((STRUCTURE,)) + length(len(items)) + b"".join(items)


def array(items: list[bytes]) -> bytes:
    return bytes((ARRAY,)) + length(len(items)) + b"".join(items)


# ---- decoder -----------------------------------------------------------------------------
def decode(buf: bytes, pos: int = 0, depth: int = 0) -> tuple[object, int]:
    """One Data value at `pos` -> (python value, next position). Arrays and structures become
    lists, strings bytes/str, numbers int/float. Raises ProtocolError on malformed input."""
    if depth > 16:
        raise ProtocolError("A-XDR data nested deeper than 16 levels")
    if pos >= len(buf):
        raise ProtocolError(f"A-XDR data missing at byte {pos}")
    tag = buf[pos]
    pos += 1
    if tag == NULL:
        return None, pos
    if tag in (ARRAY, STRUCTURE):
        n, pos = read_length(buf, pos)
        if n > len(buf) - pos:
            raise ProtocolError(
                f"A-XDR {'array' if tag == ARRAY else 'structure'} of {n} items in {len(buf) - pos} bytes"
            )
        items = []
        for _ in range(n):
            item, pos = decode(buf, pos, depth + 1)
            items.append(item)
        return items, pos
    if tag == BOOLEAN:
        if pos >= len(buf):
            raise ProtocolError("A-XDR boolean truncated")
        return buf[pos] != 0, pos + 1
    if tag in _INTS:
        size = struct.calcsize(_INTS[tag])
        if pos + size > len(buf):
            raise ProtocolError(f"A-XDR number (type {tag}) truncated")
        return struct.unpack(_INTS[tag], buf[pos : pos + size])[0], pos + size
    if tag in (OCTET_STRING, VISIBLE_STRING, UTF8_STRING, BIT_STRING):
        n, pos = read_length(buf, pos)
        if tag == BIT_STRING:
            n = (n + 7) // 8
        if pos + n > len(buf):
            raise ProtocolError(f"A-XDR string of {n} bytes truncated at byte {pos}")
        raw = bytes(buf[pos : pos + n])
        if tag == VISIBLE_STRING:
            return raw.decode("ascii", "replace"), pos + n
        if tag == UTF8_STRING:
            return raw.decode("utf-8", "replace"), pos + n
        return raw, pos + n
    if tag in _FIXED_OCTETS:
        n = _FIXED_OCTETS[tag]
        if pos + n > len(buf):
            raise ProtocolError(f"A-XDR date/time (type {tag}) truncated")
        return bytes(buf[pos : pos + n]), pos + n
    raise ProtocolError(f"unknown A-XDR data type {tag} at byte {pos - 1}")

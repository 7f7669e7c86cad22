"""Query parameters that are long lists, packed into PostgreSQL's binary array format at C speed.

psycopg dumps a Python list element by element in Python: for the ingest's per-batch
statements, which send one element per channel (tens of thousands), that loop cost more
of the head-end's time than the statements themselves. Here fixed-width elements are
written by slicing whole byte strings (`array` does the big-endian conversion) and text
elements are joined from a per-string cache. Call `enable(conn)` on the connection,
pass the result as a binary parameter and cast it in the SQL (`%b::bigint[]`): the cast
is what gives it its type.

None elements are sent as SQL NULLs; lists without any take the fast path.
"""
from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime

from psycopg import AsyncConnection, Connection
from psycopg.adapt import Dumper
from psycopg.pq import Format

_HEADER = struct.Struct(">iiiii")  # ndim, has nulls, element oid, length, lower bound
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_LITTLE = sys.byteorder == "little"


class Int8Array(bytes):
    """A packed bigint[]."""


class Float8Array(bytes):
    """A packed double precision[]."""


class TimestamptzArray(bytes):
    """A packed timestamptz[]."""


class TextArray(bytes):
    """A packed text[]."""


class BoolArray(bytes):
    """A packed boolean[]."""


_NULL = b"\xff\xff\xff\xff"  # an element's length -1: NULL


def _fixed(values: array, width: int, element_oid: int) -> bytes:
    """Elements of `width` bytes, each behind its int4 length."""
    if _LITTLE:
        values.byteswap()
    data = values.tobytes()
    n = len(values)
    out = bytearray(n * (4 + width))
    out[3::4 + width] = bytes([width]) * n  # the length's low byte; the three above stay zero
    for j in range(width):
        out[4 + j::4 + width] = data[j::width]
    return _HEADER.pack(1, 0, element_oid, n, 1) + out


def _with_nulls(values: Sequence, element: struct.Struct, element_oid: int) -> bytes:
    """Fixed-width elements some of which are None, one by one (the rarer, shorter lists)."""
    prefix = struct.pack(">i", element.size)
    pack = element.pack
    body = b"".join(_NULL if v is None else prefix + pack(v) for v in values)
    return _HEADER.pack(1, 1, element_oid, len(values), 1) + body


_INT8, _FLOAT8, _BOOL = struct.Struct(">q"), struct.Struct(">d"), struct.Struct(">?")


def int8(values: Sequence[int | None]) -> Int8Array:
    if None in values:
        return Int8Array(_with_nulls(values, _INT8, 20))
    return Int8Array(_fixed(array("q", values), 8, 20))  # type: ignore[arg-type]


def float8(values: Sequence[float | None]) -> Float8Array:
    if None in values:
        return Float8Array(_with_nulls(values, _FLOAT8, 701))
    return Float8Array(_fixed(array("d", values), 8, 701))  # type: ignore[arg-type]


def boolean(values: Sequence[bool | None]) -> BoolArray:
    return BoolArray(_with_nulls(values, _BOOL, 16) if None in values
                     else _fixed(array("b", map(bool, values)), 1, 16))


def timestamptz(values: Sequence[datetime | None]) -> TimestamptzArray:
    """Aware datetimes; a batch's values share few distinct times (a poll's registers share
    the meter's clock), so each is converted once."""
    if None in values:
        return TimestamptzArray(_with_nulls([None if t is None else _micros(t) for t in values], _INT8, 1184))
    micros: dict[datetime, int] = {}
    out = array("q", bytes(8 * len(values)))
    for i, t in enumerate(values):
        us = micros.get(t)
        if us is None:
            us = micros[t] = _micros(t)
        out[i] = us
    return TimestamptzArray(_fixed(out, 8, 1184))


_TEXT: dict[str, bytes] = {}


def _micros(t: datetime) -> int:
    d = t - _PG_EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def text(values: Sequence[str | None]) -> TextArray:
    """Strings (channel codes, meter codes) repeat across batches: each is encoded once."""
    cache = _TEXT
    if len(cache) > 100_000:
        cache.clear()
    parts = []
    append = parts.append
    nulls = 0
    for s in values:
        if s is None:
            append(_NULL)
            nulls = 1
            continue
        b = cache.get(s)
        if b is None:
            raw = s.encode()
            b = cache[s] = struct.pack(">i", len(raw)) + raw
        append(b)
    return TextArray(_HEADER.pack(1, nulls, 25, len(values), 1) + b"".join(parts))


class _PackedDumper(Dumper):
    # No oid: a dumper registered with one would also be the one psycopg picks for that type
    # by oid (COPY's set_types, for lists), which this one cannot dump. The SQL's cast tells
    # PostgreSQL the parameter's type.
    format = Format.BINARY

    def dump(self, obj: bytes) -> bytes:
        return obj


_PACKED = (Int8Array, Float8Array, TimestamptzArray, TextArray, BoolArray)


def enable(conn: AsyncConnection | Connection) -> None:
    """Teach `conn` these parameters (else psycopg sends them as bytea). On the connection, not
    psycopg's global map: a connection copies that map when it opens, so one opened before
    this module was imported would not know them."""
    dumpers = conn.adapters
    for cls in _PACKED:
        dumpers.register_dumper(cls, _PackedDumper)

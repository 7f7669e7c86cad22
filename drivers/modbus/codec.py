"""Register values <-> numbers, I/O-free.

Modbus moves 16-bit registers; a meter packs wider values into consecutive
registers. `byte_order` is the order of the two bytes inside each register
(big = high byte first, the Modbus default), `word_order` the order of the
registers of one value (big = most significant register first; "little" is
the swapped "CDAB" layout some meters use).
"""
from __future__ import annotations

import math
import struct
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal

DataType = Literal["u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64"]
Order = Literal["big", "little"]

# registers per value and struct format (big-endian, whole value)
TYPES: dict[str, tuple[int, str]] = {
    "u16": (1, ">H"), "i16": (1, ">h"),
    "u32": (2, ">I"), "i32": (2, ">i"),
    "u64": (4, ">Q"), "i64": (4, ">q"),
    "f32": (2, ">f"), "f64": (4, ">d"),
}
# significant decimal digits a float type carries; decoded floats are rounded to
# this so 231.4 read as f32 comes out as 231.4, not 231.39999389648438
_FLOAT_DIGITS = {"f32": 7, "f64": 15}


def size_of(dtype: str) -> int:
    return TYPES[dtype][0]


def words_to_bytes(words: list[int] | tuple[int, ...], byte_order: Order, word_order: Order) -> bytes:
    """Registers of one value, as read, to the value's big-endian bytes."""
    ws = list(words)
    if word_order == "little":
        ws.reverse()
    out = bytearray()
    for w in ws:
        hi, lo = (w >> 8) & 0xFF, w & 0xFF
        out += bytes((hi, lo)) if byte_order == "big" else bytes((lo, hi))
    return bytes(out)


def bytes_to_words(data: bytes, byte_order: Order, word_order: Order) -> list[int]:
    """A value's big-endian bytes to the registers a meter would hold."""
    ws = []
    for i in range(0, len(data), 2):
        hi, lo = data[i], data[i + 1]
        ws.append((hi << 8 | lo) if byte_order == "big" else (lo << 8 | hi))
    if word_order == "little":
        ws.reverse()
    return ws


def scale_decimals(scale: float) -> int:
    """Decimal places a scale introduces (0.01 -> 2, 10 -> 0)."""
    exp = Decimal(repr(scale)).normalize().as_tuple().exponent
    return max(0, -int(exp))


def round_significant(x: float, digits: int) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def decode_raw(dtype: str, words: list[int] | tuple[int, ...], byte_order: Order, word_order: Order) -> int | float:
    n, fmt = TYPES[dtype]
    if len(words) != n:
        raise ValueError(f"{dtype} needs {n} registers, got {len(words)}")
    return struct.unpack(fmt, words_to_bytes(words, byte_order, word_order))[0]


def decode_value(dtype: str, words: list[int] | tuple[int, ...], byte_order: Order, word_order: Order,
                 scale: float = 1.0) -> float:
    """Registers -> engineering value (raw * scale), rounded to what the type can carry."""
    raw = decode_raw(dtype, words, byte_order, word_order)
    if dtype in _FLOAT_DIGITS:
        if not math.isfinite(raw):
            raise ValueError(f"{dtype} register holds {raw} (meter marks the value invalid)")
        return round_significant(round_significant(raw, _FLOAT_DIGITS[dtype]) * scale, _FLOAT_DIGITS[dtype])
    return round(raw * scale, scale_decimals(scale))


def encode_value(dtype: str, value: float, byte_order: Order, word_order: Order, scale: float = 1.0) -> list[int]:
    """Engineering value -> registers. Integers wrap at their capacity, as a
    meter's counter does; values are quantised to the scale's resolution."""
    n, fmt = TYPES[dtype]
    if dtype in _FLOAT_DIGITS:
        data = struct.pack(fmt, value / scale)
    else:
        raw = round(value / scale)
        bits = 16 * n
        raw %= 1 << bits
        if fmt[1].islower() and raw >= 1 << (bits - 1):  # signed: back into range
            raw -= 1 << bits
        data = struct.pack(fmt, raw)
    return bytes_to_words(data, byte_order, word_order)


# ---- clocks ------------------------------------------------------------------------------
ClockFormat = Literal["unix_u32", "datetime_iec870", "ymdhms_u16"]
CLOCK_SIZES = {"unix_u32": 2, "datetime_iec870": 4, "ymdhms_u16": 6}


def parse_tz(spec: str) -> timezone:
    """'UTC', '+03:00', '-05:30' -> timezone."""
    s = spec.strip()
    if s.upper() in ("UTC", "Z", "+00:00"):
        return UTC
    if len(s) == 6 and s[0] in "+-" and s[3] == ":" and s[1:3].isdigit() and s[4:].isdigit():
        sign = 1 if s[0] == "+" else -1
        return timezone(sign * timedelta(hours=int(s[1:3]), minutes=int(s[4:])))
    raise ValueError(f"timezone {spec!r}: use 'UTC' or an offset like '+03:00'")


def decode_clock(fmt: str, words: list[int], byte_order: Order, word_order: Order, tz: timezone) -> datetime:
    """Meter clock registers -> aware datetime. Raises ValueError on impossible dates."""
    if fmt == "unix_u32":
        secs = decode_raw("u32", words, byte_order, word_order)
        return datetime.fromtimestamp(secs, UTC)
    if byte_order == "little":
        words = [_swap(w) for w in words]
    if fmt == "datetime_iec870":
        # 4 words (IEC 60870-5 style, e.g. Schneider iEM3000): year-2000 in bits 0-6 of word 1;
        # month bits 8-11 and day bits 0-4 of word 2; hour bits 8-12 and minute bits 0-5 of
        # word 3; milliseconds of the minute in word 4.
        w1, w2, w3, w4 = words
        year = 2000 + (w1 & 0x7F)
        month, day = (w2 >> 8) & 0x0F, w2 & 0x1F
        hour, minute = (w3 >> 8) & 0x1F, w3 & 0x3F
        if w4 > 59999:
            raise ValueError(f"milliseconds {w4} > 59999")
        return datetime(year, month, day, hour, minute, w4 // 1000, (w4 % 1000) * 1000, tzinfo=tz)
    if fmt == "ymdhms_u16":
        y, mo, d, h, mi, s = words
        return datetime(y, mo, d, h, mi, s, tzinfo=tz)
    raise ValueError(f"unknown clock format {fmt!r}")


def encode_clock(fmt: str, when: datetime, byte_order: Order, word_order: Order, tz: timezone) -> list[int]:
    """Aware datetime -> the registers a meter shows (whole seconds; iec870 keeps ms)."""
    if fmt == "unix_u32":
        return encode_value("u32", int(when.timestamp()), byte_order, word_order)
    local = when.astimezone(tz)
    if fmt == "datetime_iec870":
        words = [local.year - 2000, local.month << 8 | local.day, local.hour << 8 | local.minute,
                 local.second * 1000 + local.microsecond // 1000]
    elif fmt == "ymdhms_u16":
        words = [local.year, local.month, local.day, local.hour, local.minute, local.second]
    else:
        raise ValueError(f"unknown clock format {fmt!r}")
    return [_swap(w) for w in words] if byte_order == "little" else words


def _swap(w: int) -> int:
    return ((w & 0xFF) << 8) | (w >> 8)


def quantise_clock(fmt: str, when: datetime) -> datetime:
    """The instant the meter's registers can express (what a reader decodes)."""
    if fmt == "datetime_iec870":
        return when.replace(microsecond=when.microsecond // 1000 * 1000)
    return when.replace(microsecond=0)

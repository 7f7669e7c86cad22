"""Wired M-Bus (EN 13757-2 link layer, EN 13757-3 application layer): I/O-free frames.

Hand-written here: the link layer (single character ACK 0xE5, short frame 10 C A CS 16, long
frame 68 L L 68 C A CI data CS 16 with CS = sum of C..data mod 256), the 12-byte fixed data
header of a variable data RSP_UD (CI 0x72: identification number as 8 BCD digits LSB first,
manufacturer as three 5-bit letters, version, medium, access number, status, signature), and
an encoder for the records the simulator serves.

Record decoding (DIF/DIFE/VIF/VIFE, units and multipliers, date types F and G) uses the PyPI
library pymeterbus 0.8.5 (`meterbus`), which decodes the libmbus reference telegrams correctly
(tests/drivers/test_mbus_frames.py). It keeps a record it cannot complete without its data, so
the structure is checked here: a record whose data field is shorter than its DIF says is a
FrameError, never a silently missing value. DIF 0x1F (more records follow in the next
telegram) sets Telegram.more; the driver then asks for the next telegram.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import meterbus

from askue.drivers.errors import FrameError, ProtocolError, Unsupported

ACK = 0xE5
START_SHORT = 0x10
START_LONG = 0x68
STOP = 0x16

C_SND_NKE = 0x40
C_REQ_UD2 = 0x5B
FCB = 0x20  # frame count bit of REQ_UD2 (0x5B / 0x7B)
C_RSP_UD = 0x08  # plus ACD (0x20) and DFC (0x10) bits
CI_RSP_UD_LONG = 0x72  # variable data structure, long (12-byte) header

BROADCAST_REPLY = 0xFE  # every slave answers: only with one slave on the bus
BROADCAST_NO_REPLY = 0xFF
MAX_PRIMARY = 250

MEDIUM_NAMES = {
    0x00: "other", 0x02: "electricity", 0x03: "gas", 0x04: "heat (outlet)", 0x06: "warm water",
    0x07: "water", 0x0A: "cooling (outlet)", 0x0B: "cooling (inlet)", 0x0C: "heat (inlet)",
    0x0D: "heat/cooling", 0x15: "hot water", 0x16: "cold water",
}


class MBusConfigError(Unsupported, ValueError):
    """The configured address or option cannot work with an M-Bus meter."""


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def check_primary(address: int) -> int:
    if not isinstance(address, int) or not (0 <= address <= MAX_PRIMARY or address == BROADCAST_REPLY):
        raise MBusConfigError(f"M-Bus primary address must be 0..{MAX_PRIMARY} (or 254 for one slave), got {address!r}")
    return address


def short_frame(c: int, a: int) -> bytes:
    return bytes([START_SHORT, c, a, checksum(bytes([c, a])), STOP])


def snd_nke(address: int) -> bytes:
    return short_frame(C_SND_NKE, check_primary(address))


def req_ud2(address: int, fcb: bool = False) -> bytes:
    return short_frame(C_REQ_UD2 | (FCB if fcb else 0), check_primary(address))


def long_frame(c: int, a: int, ci: int, data: bytes) -> bytes:
    body = bytes([c, a, ci]) + data
    if len(body) > 255:
        raise ValueError(f"M-Bus long frame user data too long: {len(body)} bytes (max 255)")
    return bytes([START_LONG, len(body), len(body), START_LONG]) + body + bytes([checksum(body), STOP])


@dataclass(frozen=True, slots=True)
class Frame:
    kind: str  # "ack", "short", "long"
    c: int = 0
    a: int = 0
    ci: int = 0
    data: bytes = b""


def frame_length(head: bytes) -> int | None:
    """Total length of the frame starting at head[0]; None until enough bytes arrived."""
    if not head:
        return None
    if head[0] == ACK:
        return 1
    if head[0] == START_SHORT:
        return 5
    if head[0] == START_LONG:
        if len(head) < 4:
            return None
        if head[1] != head[2] or head[3] != START_LONG or head[1] < 3:
            raise FrameError(f"M-Bus long frame header damaged: {head[:4].hex(' ')}")
        return head[1] + 6
    raise FrameError(f"M-Bus: {head[0]:#04x} is not a frame start (E5, 10 or 68)")


def parse_frame(frame: bytes) -> Frame:
    n = frame_length(frame[:4])
    if n is None or len(frame) < n:
        raise FrameError(f"M-Bus frame truncated: {len(frame)} bytes {frame[:16].hex(' ')}")
    if len(frame) > n:
        raise FrameError(f"M-Bus frame has {len(frame) - n} trailing bytes")
    if n == 1:
        return Frame("ack")
    if frame[-1] != STOP:
        raise FrameError(f"M-Bus frame: stop byte is {frame[-1]:#04x}, not 0x16")
    body = frame[1:3] if n == 5 else frame[4:-2]
    if checksum(body) != frame[-2]:
        raise FrameError(f"M-Bus frame checksum {frame[-2]:#04x} != computed {checksum(body):#04x}")
    if n == 5:
        return Frame("short", body[0], body[1])
    return Frame("long", body[0], body[1], body[2], bytes(body[3:]))


# ---- fixed data header --------------------------------------------------------------------
def _bcd_digits(b: bytes) -> str:
    s = "".join(f"{x:02x}" for x in reversed(b))
    if not s.isdigit():
        raise ProtocolError(f"M-Bus: identification number {b.hex(' ')} is not BCD")
    return s


def _to_bcd(digits: str) -> bytes:
    if not digits.isdigit() or len(digits) % 2:
        raise ValueError(f"not an even count of decimal digits: {digits!r}")
    return bytes(int(digits[i:i + 2], 16) for i in range(0, len(digits), 2))[::-1]


def decode_manufacturer(v: int) -> str:
    return "".join(chr(((v >> s) & 0x1F) + 64) for s in (10, 5, 0))


def encode_manufacturer(code: str) -> int:
    if len(code) != 3 or not all("A" <= c <= "Z" for c in code):
        raise ValueError(f"M-Bus manufacturer must be three letters A-Z, got {code!r}")
    return ((ord(code[0]) - 64) << 10) | ((ord(code[1]) - 64) << 5) | (ord(code[2]) - 64)


@dataclass(frozen=True, slots=True)
class Header:
    ident: str  # identification number, 8 digits
    manufacturer: str
    version: int
    medium: int
    access: int
    status: int

    @property
    def medium_name(self) -> str:
        return MEDIUM_NAMES.get(self.medium, f"medium {self.medium:#04x}")


def decode_header(data: bytes) -> Header:
    if len(data) < 12:
        raise FrameError(f"M-Bus RSP_UD: fixed header needs 12 bytes, got {len(data)}")
    return Header(_bcd_digits(data[0:4]), decode_manufacturer(int.from_bytes(data[4:6], "little")),
                  data[6], data[7], data[8], data[9])


def encode_header(h: Header) -> bytes:
    return (_to_bcd(h.ident.rjust(8, "0")) + encode_manufacturer(h.manufacturer).to_bytes(2, "little")
            + bytes([h.version, h.medium, h.access, h.status, 0, 0]))


# ---- records ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Record:
    quantity: str  # pymeterbus VIF name: VOLUME, ENERGY_WH, ENERGY_J, POWER_W, VOLUME_FLOW, FLOW_TEMPERATURE, ...
    unit: str  # pymeterbus unit name: M3, WH, J, W, M3_H, C, K, DATE_TIME, ...
    value: float | datetime | date | str
    storage: int = 0
    function: str = "INSTANTANEOUS_VALUE"
    tariff: int = 0
    subunit: int = 0
    extension: str = ""  # VIFE unit enhancement (e.g. PER_INPUT_PULSE): not the plain quantity


@dataclass(frozen=True, slots=True)
class Telegram:
    address: int
    header: Header
    records: tuple[Record, ...]
    more: bool = False  # DIF 0x1F: the slave has more records in the next telegram


def _record_value(v: object, unit: str) -> float | datetime | date | str:
    if isinstance(v, Decimal | int | float):
        return float(v)
    if isinstance(v, str) and unit in ("DATE_TIME", "DATE"):
        try:
            return datetime.fromisoformat(v) if unit == "DATE_TIME" else date.fromisoformat(v)
        except ValueError:
            return v  # the meter marked its clock invalid or sent nonsense; keep the text
    return str(v)


def decode_rsp_ud(frame: bytes) -> Telegram:
    """A complete RSP_UD long frame -> header and records. FrameError for link-layer damage,
    ProtocolError for a frame that is intact but not a variable-data answer."""
    fr = parse_frame(frame)
    if fr.kind != "long":
        raise ProtocolError(f"M-Bus: expected RSP_UD long frame, got {fr.kind} frame")
    if fr.c & 0xCF != C_RSP_UD:
        raise ProtocolError(f"M-Bus: C field {fr.c:#04x} is not RSP_UD")
    if fr.ci != CI_RSP_UD_LONG:
        raise ProtocolError(f"M-Bus: CI {fr.ci:#04x} is not a variable data response with long header (0x72)")
    header = decode_header(fr.data)
    try:
        tel = meterbus.TelegramLong(list(frame))
        raw = list(tel.records)
    except Exception as e:  # the library raises IndexError/ValueError/its own errors on bad records
        raise FrameError(f"M-Bus: cannot decode the data records: {type(e).__name__}: {e}") from None
    records: list[Record] = []
    more = False
    for i, rec in enumerate(raw):
        try:
            if rec.dib.is_eoud or rec.dib.is_manufacturer_specific:
                more = more or bool(rec.dib.more_records_follow)
                continue
            length, _enc = rec.dib.length_encoding
            if length and len(rec.dataField.parts) != length:
                raise FrameError(f"M-Bus: record {i} has {len(rec.dataField.parts)} of {length} data bytes")
            it = rec.interpreted
        except FrameError:
            raise
        except Exception as e:
            raise FrameError(f"M-Bus: record {i} cannot be decoded: {type(e).__name__}: {e}") from None
        unit = str(it.get("unit", "")).split(".")[-1]
        records.append(Record(
            quantity=str(it.get("type", "")).split(".")[-1], unit=unit,
            value=_record_value(it.get("value"), unit), storage=int(it.get("storage_number", 0) or 0),
            function=str(it.get("function", "")).split(".")[-1], tariff=int(it.get("tariff", 0) or 0),
            subunit=int(it.get("device", 0) or 0), extension=str(it.get("unit_enh", "")).split(".")[-1],
        ))
    return Telegram(fr.a, header, tuple(records), more)


# ---- record encoding (simulator side) -------------------------------------------------------
# DIF data field codes by size: 2 = 16-bit, 4 = 32-bit integer, 0x0C = 8-digit BCD.
DIF_INT16, DIF_INT32, DIF_BCD8 = 0x02, 0x04, 0x0C
VIF_ENERGY_MJ = 0x0E  # 10^6 J
VIF_VOLUME_L = 0x13  # 10^-3 m3
VIF_POWER_W = 0x2B  # 10^0 W
VIF_FLOW_LH = 0x3B  # 10^-3 m3/h
VIF_FLOW_TEMP = 0x59  # 10^-2 degC
VIF_RETURN_TEMP = 0x5D  # 10^-2 degC
VIF_TEMP_DIFF = 0x61  # 10^-2 K
VIF_DATE_G = 0x6C
VIF_DATETIME_F = 0x6D
VIF_FABRICATION = 0x78
DIF_MORE_RECORDS = 0x1F


def encode_int(dif: int, vif: int, value: int) -> bytes:
    size = {DIF_INT16: 2, DIF_INT32: 4}[dif & 0x0F]
    try:
        return bytes([dif, vif]) + int(value).to_bytes(size, "little", signed=True)
    except OverflowError:
        raise ValueError(f"value {value} does not fit {size} bytes (VIF {vif:#04x})") from None


def encode_bcd8(vif: int, digits: str) -> bytes:
    return bytes([DIF_BCD8, vif]) + _to_bcd(digits.rjust(8, "0")[-8:])


def encode_datetime_f(t: datetime) -> bytes:
    """Type F: minute, hour, day + year bits 0-2, month + year bits 3-6 (IV and SU clear)."""
    y = t.year % 100
    return bytes([t.minute & 0x3F, t.hour & 0x1F, (t.day & 0x1F) | ((y & 0x07) << 5), (t.month & 0x0F) | ((y >> 3) << 4)])


def decode_datetime_f(b: bytes) -> datetime | None:
    """Type F to a naive local datetime; None when the invalid bit is set."""
    if len(b) != 4:
        raise ProtocolError(f"M-Bus date/time type F needs 4 bytes, got {len(b)}")
    if b[0] & 0x80:
        return None
    year = 2000 + ((b[2] >> 5) | ((b[3] >> 4) << 3))
    try:
        return datetime(year, b[3] & 0x0F, b[2] & 0x1F, b[1] & 0x1F, b[0] & 0x3F)
    except ValueError as e:
        raise ProtocolError(f"M-Bus date/time type F {b.hex(' ')} is invalid: {e}") from None

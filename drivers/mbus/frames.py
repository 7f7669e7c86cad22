"""Wired M-Bus (EN 13757-2 link layer, EN 13757-3 application layer): I/O-free frames.

Hand-written here: the link layer (single character ACK 0xE5, short frame 10 C A CS 16, long
frame 68 L L 68 C A CI data CS 16 with CS = sum of C..data mod 256), the 12-byte fixed data
header of a variable data RSP_UD (CI 0x72: identification number as 8 BCD digits LSB first,
manufacturer as three 5-bit letters, version, medium, access number, status, signature), and
the encoders the simulator uses for them.

The data records are decoded by `records.py` (I/O-free, EN 13757-3); DIF 0x1F (more records
follow in the next telegram) sets Telegram.more and the driver asks for the next telegram.
"""
from __future__ import annotations

from dataclasses import dataclass

from askue.drivers.errors import FrameError, ProtocolError, Unsupported
from askue.drivers.mbus.records import Record, Skipped, decode_records

ACK = 0xE5
START_SHORT = 0x10
START_LONG = 0x68
STOP = 0x16

C_SND_NKE = 0x40
C_REQ_UD2 = 0x5B
FCB = 0x20  # frame count bit of REQ_UD2 (0x5B / 0x7B)
C_RSP_UD = 0x08  # plus ACD (0x20) and DFC (0x10) bits
CI_RSP_UD_LONG = 0x72  # variable data structure, long (12-byte) header
CI_FIXED, CI_FIXED_MSB = 0x73, 0x77  # fixed data structure (16 bytes, two counters)

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


def to_bcd(digits: str) -> bytes:
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
    return (to_bcd(h.ident.rjust(8, "0")) + encode_manufacturer(h.manufacturer).to_bytes(2, "little")
            + bytes([h.version, h.medium, h.access, h.status, 0, 0]))


# ---- telegram ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Telegram:
    address: int
    header: Header
    records: tuple[Record, ...]
    more: bool = False  # DIF 0x1F: the slave has more records in the next telegram
    skipped: tuple[Skipped, ...] = ()  # records whose VIF means nothing in EN 13757-3
    manufacturer_data: bytes = b""


def decode_rsp_ud(frame: bytes, first_index: int = 0) -> Telegram:
    """A complete RSP_UD long frame -> header and records. FrameError for link-layer damage
    and records that cannot be delimited, ProtocolError for a frame that is intact but not a
    variable-data answer. `first_index` numbers the records of a follow-up telegram on from
    the previous ones."""
    fr = parse_frame(frame)
    if fr.kind != "long":
        raise ProtocolError(f"M-Bus: expected RSP_UD long frame, got {fr.kind} frame")
    if fr.c & 0xCF != C_RSP_UD:
        raise ProtocolError(f"M-Bus: C field {fr.c:#04x} is not RSP_UD")
    if fr.ci in (CI_FIXED, CI_FIXED_MSB):
        raise ProtocolError(f"M-Bus: CI {fr.ci:#04x} is the fixed data structure of early M-Bus meters: not "
                            "supported, only variable data answers (CI 0x72)")
    if fr.ci != CI_RSP_UD_LONG:
        raise ProtocolError(f"M-Bus: CI {fr.ci:#04x} is not a variable data response with long header (0x72)")
    header = decode_header(fr.data)
    d = decode_records(fr.data[12:], first_index)
    return Telegram(fr.a, header, d.records, d.more, d.skipped, d.manufacturer_data)

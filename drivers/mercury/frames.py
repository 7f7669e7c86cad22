"""Меркурий 230/234 (Incotex) exchange protocol: I/O-free frame building and parsing.

Facts used here (Incotex "Протокол обмена трёхфазных счётчиков Меркурий 203.2TD, 204, 208,
230, 231, 234, 236, 238", cross-checked with frames recorded by wirenboard/wb-mqtt-serial
test/TEMDeviceTest.Mercury230*.dat):

* request  = network address (1 byte) + request code + parameters + CRC16;
  reply    = network address + data + CRC16. CRC16 is the Modbus one (poly 0xA001 reflected,
  init 0xFFFF) sent low byte first.
* address 0 is the universal address (every meter answers, so only for a single meter on a
  line), 0xFE the broadcast address (nobody answers), 1..240 individual addresses.
* a reply that carries no data is a 4-byte status frame: address, status, CRC. Status 0 is OK;
  1 invalid command or parameter, 2 internal counter error, 3 insufficient access level,
  4 clock already corrected today, 5 channel not open.
* open channel 0x01: access level (1 user, 2 admin) + 6 password bytes; a password of digits
  is sent as their values (111111 -> 01 01 01 01 01 01).
* read energy arrays 0x05: (array << 4 | month), tariff (0 total, 1..4). The reply holds four
  4-byte values A+, A-, R+, R- in Wh/varh, each in the byte order B2 B3 B0 B1 of the 32-bit
  number (B3 most significant); FF FF FF FF marks a quantity the model does not measure.
* read time 0x04 0x00: sec, min, hour, weekday, day, month, year (BCD), season flag.
* write 0x03: 0x0C sets the full time (sec..year, season flag; level 2), 0x0D corrects it
  by up to +-4 minutes within the same hour (sec, min, hour BCD), once a day: status 1 when
  the step is too large or crosses the hour, 4 when the clock was already corrected today
  (devices-reader/device_2, get_correct2.pas).
* read serial number / date of manufacture 0x08 0x00: four serial bytes (two decimal digits
  each), day, month, year (binary).
* auxiliary parameters 0x08 0x11 BWRI (one value) and 0x08 0x16 BWRI (the phases as a block):
  3-byte values in the byte order B2 B0 B1; for powers bit 7 of the first byte is the active
  and bit 6 the reactive direction (set = negative), the value keeps the low 6 bits.
  BWRI: 0x00+phase P, 0x04+phase Q, 0x08+phase S (phase 0 = sum), 0x11..0x13 U,
  0x21..0x23 I, 0x30+phase cos phi, 0x40 frequency. Scales: P, Q, S, U, f /100, I, cos /1000.
  A 0x08 0x16 block holds sum + 3 phases for powers and cos phi, the 3 phases for U and I
  (answer lengths as read by psxbox/Psxbox.Protocols, Psxbox.Mercury/Mercury230Reader.cs).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum

from askue.drivers.crc import crc16, with_crc
from askue.drivers.errors import AuthError, DriverError, FrameError, ProtocolError, Unsupported

UNIVERSAL_ADDRESS = 0
BROADCAST_ADDRESS = 0xFE
MAX_ADDRESS = 240

STATUS_TEXT = {
    0: "OK",
    1: "invalid command or parameter",
    2: "internal counter error",
    3: "insufficient access level",
    4: "clock already corrected today",
    5: "channel not open",
}

NOT_MEASURED = 0xFFFFFFFF


class Code(IntEnum):
    TEST = 0x00
    OPEN = 0x01
    CLOSE = 0x02
    WRITE = 0x03
    READ_TIME = 0x04  # 04 00: clock; 04 NN RR: record RR of event journal NN (journals.py)
    READ_ARRAY = 0x05
    READ_MEMORY = 0x06  # power-profile memory (profile.py)
    READ_PARAM = 0x08


class WriteParam(IntEnum):
    SET_TIME = 0x0C  # full date and time, access level 2
    CORRECT_TIME = 0x0D  # within +-4 minutes, same hour, once a day


MAX_CORRECTION_S = 240


class Param(IntEnum):
    SERIAL = 0x00
    RATIOS = 0x02  # transformer ratios (params.py)
    AUX_ONE = 0x11
    VARIANT = 0x12  # variant of the model: impulse constant, profile kept (params.py)
    LAST_RECORD = 0x13  # last power-profile record: pointer, time, period (profile.py)
    AUX_BLOCK = 0x16


class Array(IntEnum):
    FROM_RESET = 0
    CURRENT_YEAR = 1
    PREVIOUS_YEAR = 2
    MONTH = 3
    CURRENT_DAY = 4
    PREVIOUS_DAY = 5
    # Energy at a boundary (archives.py): the register value the meter kept at 00:00.
    START_OF_MONTH = 0xB  # month in the low nibble
    START_OF_DAY = 0xC
    START_OF_PREVIOUS_DAY = 0xD


# Lengths of replies, address and CRC included.
STATUS_LEN = 4
ENERGY_LEN = 1 + 16 + 2
TIME_LEN = 1 + 8 + 2
SERIAL_LEN = 1 + 7 + 2
AUX_ONE_LEN = 1 + 3 + 2


class MercuryConfigError(Unsupported, ValueError):
    """The configured address, password or option cannot work with a Mercury meter."""


class MercuryStatusError(ProtocolError):
    """The meter answered with a non-zero status byte."""

    def __init__(self, address: int, status: int, request: str):
        text = STATUS_TEXT.get(status, "unknown status")
        super().__init__(f"Mercury meter {address}: {request} refused with status {status} ({text})")
        self.address, self.status = address, status


class MercuryChannelClosed(MercuryStatusError):
    """Status 5: the channel timed out or was never opened; reopening it helps."""

    retry = True


class MercuryAuthError(AuthError):
    def __init__(self, address: int, status: int, request: str):
        text = STATUS_TEXT.get(status, "unknown status")
        super().__init__(
            f"Mercury meter {address}: {request} refused with status {status} ({text}); "
            "check the password and access level (options.access_level: 1 user, 2 admin)"
        )
        self.address, self.status = address, status


def status_error(address: int, status: int, request: str, opening: bool = False) -> DriverError:
    """The typed error for a status byte. A refused open-channel is an authentication failure."""
    if status == 3 or (opening and status == 1):
        return MercuryAuthError(address, status, request)
    if status == 5:
        return MercuryChannelClosed(address, status, request)
    return MercuryStatusError(address, status, request)


# ---- CRC ---------------------------------------------------------------------------------
def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 3 and crc16(frame[:-2]).to_bytes(2, "little") == frame[-2:]


# ---- requests ----------------------------------------------------------------------------
def check_address(address: int) -> int:
    if not isinstance(address, int) or not (0 <= address <= MAX_ADDRESS or address == BROADCAST_ADDRESS):
        raise MercuryConfigError(f"Mercury network address must be 0..{MAX_ADDRESS} (0 = universal), got {address!r}")
    return address


def request(address: int, code: int, params: bytes = b"") -> bytes:
    return with_crc(bytes([check_address(address), code]) + params)


def password_bytes(password: str | bytes | None, level: int) -> bytes:
    """Six password bytes. Digits are sent as their values; the factory passwords are
    111111 (level 1) and 222222 (level 2)."""
    if password is None:
        password = "111111" if level == 1 else "222222"
    if isinstance(password, bytes):
        raw = password
    else:
        s = str(password)
        if len(s) != 6 or not s.isdigit():
            raise MercuryConfigError(f"Mercury password must be 6 digits, got {len(s)} characters")
        raw = bytes(int(c) for c in s)
    if len(raw) != 6:
        raise MercuryConfigError(f"Mercury password must be 6 bytes, got {len(raw)}")
    return raw


def open_request(address: int, level: int, password: str | bytes | None) -> bytes:
    if level not in (1, 2):
        raise MercuryConfigError(f"Mercury access level must be 1 (user) or 2 (admin), got {level!r}")
    return request(address, Code.OPEN, bytes([level]) + password_bytes(password, level))


def energy_request(address: int, array: int = Array.FROM_RESET, month: int = 0, tariff: int = 0) -> bytes:
    if not (0 <= array <= 15 and 0 <= month <= 12 and 0 <= tariff <= 5):
        raise ValueError(f"bad energy array request: array={array} month={month} tariff={tariff}")
    return request(address, Code.READ_ARRAY, bytes([(array << 4) | month, tariff]))


def time_request(address: int) -> bytes:
    return request(address, Code.READ_TIME, b"\x00")


def set_time_request(address: int, local: datetime) -> bytes:
    return request(address, Code.WRITE, bytes([WriteParam.SET_TIME]) + encode_time(local))


def correct_time_request(address: int, local: datetime) -> bytes:
    return request(address, Code.WRITE, bytes([WriteParam.CORRECT_TIME]) + encode_time(local)[:3])


def serial_request(address: int) -> bytes:
    return request(address, Code.READ_PARAM, bytes([Param.SERIAL]))


def aux_request(address: int, bwri: int, block: bool = False) -> bytes:
    return request(address, Code.READ_PARAM, bytes([Param.AUX_BLOCK if block else Param.AUX_ONE, bwri]))


def aux_block_count(bwri: int) -> int:
    """Values in a 0x08 0x16 reply: sum + 3 phases for powers and cos phi, 3 phases for U and I,
    one frequency."""
    kind = bwri & 0xF0
    if kind in (0x00, 0x30):
        return 4
    if kind in (0x10, 0x20):
        return 3
    return 1


def aux_reply_len(bwri: int, block: bool) -> int:
    return 1 + 3 * (aux_block_count(bwri) if block else 1) + 2


# ---- replies -----------------------------------------------------------------------------
def check_reply(frame: bytes, address: int, expect_len: int, what: str, opening: bool = False) -> bytes:
    """Validate a reply and return its data (between address and CRC). A 4-byte frame with a
    good CRC is a status reply: status 0 is OK where no data is expected, otherwise an error."""
    if len(frame) < STATUS_LEN:
        raise FrameError(f"Mercury meter {address}: {what}: truncated reply of {len(frame)} bytes {frame.hex(' ')}")
    if not crc_ok(frame):
        raise FrameError(f"Mercury meter {address}: {what}: CRC mismatch in {frame.hex(' ')}")
    if frame[0] != address:
        raise FrameError(f"Mercury meter {address}: {what}: reply from address {frame[0]} (late or foreign answer)")
    if len(frame) == STATUS_LEN and expect_len != STATUS_LEN:
        status = frame[1] & 0x0F
        if not status:
            raise ProtocolError(f"Mercury meter {address}: {what}: status OK but no data in {frame.hex(' ')}")
        raise status_error(address, status, what, opening)
    if len(frame) != expect_len:
        raise FrameError(f"Mercury meter {address}: {what}: expected {expect_len} bytes, got {len(frame)}")
    if expect_len == STATUS_LEN:
        status = frame[1] & 0x0F
        if status:
            raise status_error(address, status, what, opening)
    return frame[1:-2]


def status_reply(address: int, status: int = 0) -> bytes:
    return with_crc(bytes([address, status]))


# ---- value codecs ------------------------------------------------------------------------
def decode_u32(b: bytes) -> int | None:
    """A 4-byte energy value (byte order B2 B3 B0 B1); None when the meter marks it unmeasured."""
    v = (b[1] << 24) | (b[0] << 16) | (b[3] << 8) | b[2]
    return None if v == NOT_MEASURED else v


def encode_u32(v: int | None) -> bytes:
    if v is None:
        return b"\xff" * 4
    if not 0 <= v < NOT_MEASURED:
        raise ValueError(f"energy value {v} does not fit 32 bits")
    return bytes([(v >> 16) & 0xFF, (v >> 24) & 0xFF, v & 0xFF, (v >> 8) & 0xFF])


@dataclass(frozen=True, slots=True)
class AuxValue:
    raw: int  # unsigned, direction bits removed
    active_negative: bool
    reactive_negative: bool


def decode_u24(b: bytes) -> AuxValue:
    return AuxValue(((b[0] & 0x3F) << 16) | (b[2] << 8) | b[1], bool(b[0] & 0x80), bool(b[0] & 0x40))


def encode_u24(raw: int, active_negative: bool = False, reactive_negative: bool = False) -> bytes:
    if not 0 <= raw <= 0x3FFFFF:
        raise ValueError(f"auxiliary value {raw} does not fit 22 bits")
    hi = (raw >> 16) | (0x80 if active_negative else 0) | (0x40 if reactive_negative else 0)
    return bytes([hi, raw & 0xFF, (raw >> 8) & 0xFF])


def bcd(b: int, what: str) -> int:
    hi, lo = b >> 4, b & 0x0F
    if hi > 9 or lo > 9:
        raise ProtocolError(f"Mercury: {what} byte {b:#04x} is not BCD")
    return hi * 10 + lo


def to_bcd(v: int) -> int:
    return ((v // 10) << 4) | (v % 10)


@dataclass(frozen=True, slots=True)
class MeterTime:
    local: datetime  # naive, the meter's local time
    weekday: int
    winter: bool


def decode_hms(data: bytes) -> tuple[int, int, int]:
    """(hour, minute, second) from the BCD sec, min, hour of a time correction."""
    if len(data) != 3:
        raise ProtocolError(f"Mercury time correction: expected 3 bytes, got {len(data)}")
    h, m, s = bcd(data[2], "hour"), bcd(data[1], "minute"), bcd(data[0], "second")
    if h > 23 or m > 59 or s > 59:
        raise ProtocolError(f"Mercury time correction: {h:02d}:{m:02d}:{s:02d} is not a time of day")
    return h, m, s


def decode_time(data: bytes) -> MeterTime:
    if len(data) != 8:
        raise ProtocolError(f"Mercury time: expected 8 data bytes, got {len(data)}")
    sec, mnt, hour = bcd(data[0], "second"), bcd(data[1], "minute"), bcd(data[2], "hour")
    day, month, year = bcd(data[4], "day"), bcd(data[5], "month"), bcd(data[6], "year")
    try:
        local = datetime(2000 + year, month, day, hour, mnt, sec)
    except ValueError as e:
        raise ProtocolError(f"Mercury time: invalid date/time {data.hex(' ')}: {e}") from None
    return MeterTime(local, bcd(data[3], "weekday"), bool(data[7]))


def encode_time(local: datetime, winter: bool = True) -> bytes:
    return bytes([
        to_bcd(local.second), to_bcd(local.minute), to_bcd(local.hour), to_bcd(local.isoweekday()),
        to_bcd(local.day), to_bcd(local.month), to_bcd(local.year % 100), 1 if winter else 0,
    ])


def decode_serial(data: bytes) -> tuple[str, date | None]:
    if len(data) != 7:
        raise ProtocolError(f"Mercury serial: expected 7 data bytes, got {len(data)}")
    if any(b > 99 for b in data[:4]):
        raise ProtocolError(f"Mercury serial: bytes {data[:4].hex(' ')} are not two-digit numbers")
    serial = "".join(f"{b:02d}" for b in data[:4])
    try:
        made: date | None = date(2000 + data[6], data[5], data[4])
    except ValueError:
        made = None  # a damaged manufacture date does not make the serial wrong
    return serial, made


def encode_serial(serial: str, made: date) -> bytes:
    if len(serial) != 8 or not serial.isdigit():
        raise ValueError(f"Mercury serial must be 8 digits, got {serial!r}")
    return bytes(int(serial[i:i + 2]) for i in range(0, 8, 2)) + bytes([made.day, made.month, made.year % 100])

"""EN 13757-3 data records as a slave writes them (the simulator's side; I/O-free).

Written apart from the decoder (`records.py`): the simulator builds its telegrams here, the
driver reads them there, and the golden corpus (libmbus test frames) checks the decoder on
bytes neither side wrote.
"""
from __future__ import annotations

from datetime import datetime

from askue.drivers.mbus.frames import to_bcd

# VIBs (VIF and its VIFEs) the simulator serves.
ENERGY_MJ = b"\x0e"  # 10^6 J
ENERGY_KWH_POSITIVE = b"\x86\x3b"  # 10^3 Wh, VIFE: accumulation only of positive contributions (heat)
ENERGY_KWH_NEGATIVE = b"\x86\x3c"  # 10^3 Wh, VIFE: accumulation of negative contributions (cooling)
ENERGY_01_MWH = b"\xfb\x00"  # first extension table: 10^-1 MWh
ENERGY_MWH = b"\xfb\x01"
ENERGY_01_GJ = b"\xfb\x08"  # 10^-1 GJ
ENERGY_GJ = b"\xfb\x09"
VOLUME_L = b"\x13"  # 10^-3 m3
POWER_W = b"\x2b"
FLOW_LH = b"\x3b"  # 10^-3 m3/h
FLOW_TEMP = b"\x59"  # 10^-2 °C
RETURN_TEMP = b"\x5d"
TEMP_DIFF = b"\x61"  # 10^-2 K
DATETIME = b"\x6d"
FABRICATION = b"\x78"
CUSTOMER = b"\xfd\x11"
ERROR_FLAGS = b"\xfd\x17"
UNDEFINED_7B = b"\x7b"  # announces the first extension table without its extension bit: no meaning

DIF_MORE_RECORDS = 0x1F

_INT_DIF = {1: 0x01, 2: 0x02, 3: 0x03, 4: 0x04, 6: 0x06, 8: 0x07}
_BCD_DIF = {1: 0x09, 2: 0x0A, 3: 0x0B, 4: 0x0C, 6: 0x0E}


def dib(code: int, storage: int = 0, tariff: int = 0, subunit: int = 0) -> bytes:
    """DIF (+ DIFEs when storage > 1, tariff or subunit need them) for a data field code."""
    first = code | ((storage & 1) << 6)
    rest, exts = storage >> 1, bytearray()
    while rest or tariff or subunit:
        exts.append((rest & 0x0F) | ((tariff & 0x03) << 4) | ((subunit & 1) << 6))
        rest, tariff, subunit = rest >> 4, tariff >> 2, subunit >> 1
    if not exts:
        return bytes([first])
    for i in range(len(exts) - 1):
        exts[i] |= 0x80
    return bytes([first | 0x80]) + bytes(exts)


def int_record(vib: bytes, value: int, size: int = 4, **where: int) -> bytes:
    try:
        data = int(value).to_bytes(size, "little", signed=True)
    except OverflowError:
        raise ValueError(f"value {value} does not fit {size} bytes (VIB {vib.hex(' ')})") from None
    return dib(_INT_DIF[size], **where) + vib + data


def bcd_record(vib: bytes, value: int | str, size: int = 4, **where: int) -> bytes:
    digits = str(value).rjust(2 * size, "0")
    if len(digits) != 2 * size or not digits.isdigit():
        raise ValueError(f"{value!r} is not {2 * size} BCD digits")
    return dib(_BCD_DIF[size], **where) + vib + to_bcd(digits)


def text_record(vib: bytes, text: str, **where: int) -> bytes:
    """A variable-length (DIF 0x0D) text: LVAR = number of characters, last character first."""
    raw = text.encode("latin-1")
    if len(raw) > 0xBF:
        raise ValueError(f"LVAR text is at most 191 characters, got {len(raw)}")
    return dib(0x0D, **where) + vib + bytes([len(raw)]) + raw[::-1]


def plain_text_vib(label: str) -> bytes:
    """VIF 0x7C: the quantity's name as text (e.g. an Itron Cyble's "cust. ID")."""
    raw = label.encode("latin-1")
    return bytes([0x7C, len(raw)]) + raw[::-1]


def datetime_f(t: datetime, invalid: bool = False) -> bytes:
    """Type F: minute (+ IV bit 7), hour, day + year bits 0-2, month + year bits 3-6."""
    y = t.year % 100
    return bytes([(t.minute & 0x3F) | (0x80 if invalid else 0), t.hour & 0x1F,
                  (t.day & 0x1F) | ((y & 0x07) << 5), (t.month & 0x0F) | ((y >> 3) << 4)])


def datetime_record(t: datetime, invalid: bool = False) -> bytes:
    return dib(0x04) + DATETIME + datetime_f(t, invalid)

"""M-Bus variable data records (EN 13757-3): the user data after the fixed header -> records.

I/O-free. Each record is DIB (DIF + up to 10 DIFEs: data field, function, storage number,
tariff, subunit), VIB (VIF + up to 10 VIFEs: quantity, unit, exponent, qualifiers) and data.

Data fields (DIF bits 0-3): integers of 1, 2, 3, 4, 6, 8 bytes (type B, signed), 32-bit real
(type H), BCD of 2, 4, 6, 8, 12 digits (type A, a leading F nibble is a minus sign), no data,
and variable length (0x0D, LVAR): the first data byte says what follows —
0x00-0xBF text of that many characters (sent last character first), 0xC0-0xC9 positive and
0xD0-0xD9 negative BCD of 2·(LVAR & 0x0F) digits, 0xE0-0xEF a binary number of LVAR-0xE0
bytes, 0xF0-0xF4 binary of 4·(LVAR-0xEC) bytes, 0xF5 48 and 0xF6 64 bytes (0xF7-0xFF reserved).
Dates: type G (2 bytes, date), F (4 bytes, date and time to the minute, bit 7 of byte 0 =
time invalid), I (6 bytes, with seconds, bit 7 of byte 1 = time invalid) and J (3 bytes, time).

Errors: a telegram whose record boundaries cannot be followed (a record running past the end,
more than 10 DIFEs or VIFEs, a reserved LVAR) is a FrameError — nothing after that point can be
located. A record whose boundaries are known but whose VIF (or extension code) means nothing
in EN 13757-3 is skipped and reported in `Decoded.skipped`; the other records are kept. A value
that cannot be what its record says (a BCD digit above 9, a date that does not exist, a
date flagged invalid) keeps its record with `value` None and a flag saying why.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal

from askue.drivers.errors import FrameError
from askue.drivers.mbus import vif as v

MAX_EXTENSIONS = 10  # DIFEs and VIFEs per record (EN 13757-3)

DIF_MANUFACTURER = 0x0F  # manufacturer-specific data to the end of the telegram
DIF_MORE_RECORDS = 0x1F  # the same, and more records follow in the next telegram
DIF_IDLE_FILLER = 0x2F
DIF_GLOBAL_READOUT = 0x7F

FUNCTIONS = ("instantaneous", "maximum", "minimum", "error")
# Data field code -> bytes; 0x0D (variable length) and 0x0F (special functions) are handled apart.
_SIZES = {0x0: 0, 0x1: 1, 0x2: 2, 0x3: 3, 0x4: 4, 0x5: 4, 0x6: 6, 0x7: 8, 0x8: 0,
          0x9: 1, 0xA: 2, 0xB: 3, 0xC: 4, 0xE: 6}
_BCD = frozenset({0x9, 0xA, 0xB, 0xC, 0xE})

Value = int | float | datetime | date | time | str | bytes | None


@dataclass(slots=True)  # not frozen: a frozen dataclass costs a setattr call per field, per record
class Record:
    index: int  # position among the data records of the readout (0-based)
    offset: int  # byte offset of its DIF in the user data after the 12-byte header
    dib: bytes
    vib: bytes
    storage: int
    tariff: int
    subunit: int
    function: str  # instantaneous | maximum | minimum | error
    quantity: str  # vif.Meaning.quantity, "plain_text" (VIF 0x7C), "manufacturer_specific" (0x7F), "any" (0x7E)
    unit: str
    value: Value
    label: str = ""  # the text of a plain-text VIF
    extensions: tuple[str, ...] = ()  # combinable VIFE names (vif.combinable)
    flags: tuple[str, ...] = ()  # time_invalid, date_invalid, bcd_invalid, summer_time


@dataclass(frozen=True, slots=True)
class Skipped:
    index: int
    offset: int
    dib: bytes
    vib: bytes
    reason: str

    def describe(self) -> str:
        return (f"record {self.index} at byte {self.offset} (DIB {self.dib.hex(' ')}, VIB {self.vib.hex(' ')}): "
                f"{self.reason}")


@dataclass(frozen=True, slots=True)
class Decoded:
    records: tuple[Record, ...]
    skipped: tuple[Skipped, ...] = ()
    more: bool = False  # DIF 0x1F: the slave has more records in the next telegram
    manufacturer_data: bytes = b""


@dataclass
class _Cursor:
    data: bytes
    pos: int = 0
    start: int = 0  # DIF position of the record being read

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise FrameError(f"M-Bus: record at byte {self.start} ends inside its {what} "
                             f"(needs {end - self.start} bytes, {len(self.data) - self.start} left)")
        out = self.data[self.pos:end]
        self.pos = end
        return out

    def extensions(self, first: int, what: str) -> bytes:
        """The extension bytes that follow a byte with its extension bit set (`first`)."""
        out = bytearray()
        prev = first
        while prev & 0x80:
            if len(out) == MAX_EXTENSIONS:
                raise FrameError(f"M-Bus: record at byte {self.start} has more than {MAX_EXTENSIONS} {what}s")
            prev = self.take(1, what)[0]
            out.append(prev)
        return bytes(out)


def decode_records(data: bytes, first_index: int = 0) -> Decoded:
    """The records of one telegram's user data (after the fixed header)."""
    c = _Cursor(data)
    records: list[Record] = []
    skipped: list[Skipped] = []
    index = first_index
    while c.pos < len(data):
        c.start = c.pos
        dif = data[c.pos]
        if dif == DIF_IDLE_FILLER:
            c.pos += 1
            continue
        if dif in (DIF_MANUFACTURER, DIF_MORE_RECORDS):
            return Decoded(tuple(records), tuple(skipped), dif == DIF_MORE_RECORDS, data[c.pos + 1:])
        if dif & 0x0F == 0x0F:
            # Reserved special functions (and a global readout request, which only a master
            # sends): the length of what follows is unknown, so nothing after it can be read.
            skipped.append(Skipped(index, c.start, bytes([dif]), b"",
                                   f"special function DIF {dif:#04x}: the remaining {len(data) - c.pos} bytes "
                                   "cannot be decoded"))
            return Decoded(tuple(records), tuple(skipped))
        rec = _record(c, index)
        if isinstance(rec, Skipped):
            skipped.append(rec)
        else:
            records.append(rec)
        index += 1
    return Decoded(tuple(records), tuple(skipped))


def _record(c: _Cursor, index: int) -> Record | Skipped:
    dif = c.take(1, "DIF")[0]
    difes = c.extensions(dif, "DIFE")
    storage = (dif >> 6) & 0x01
    tariff = subunit = 0
    for i, d in enumerate(difes):
        storage |= (d & 0x0F) << (1 + 4 * i)
        tariff |= ((d >> 4) & 0x03) << (2 * i)
        subunit |= ((d >> 6) & 0x01) << i
    vif_byte = c.take(1, "VIF")[0]
    label = ""
    if vif_byte & 0x7F == 0x7C:  # plain-text VIF: length and text (last character first), then VIFEs
        (n,) = c.take(1, "plain-text VIF")
        label = c.take(n, "plain-text VIF")[::-1].decode("latin-1")
    vifes = c.extensions(vif_byte, "VIFE")
    dib = bytes([dif]) + difes
    vib = c.data[c.start + len(dib):c.pos]
    code = dif & 0x0F
    if code == 0x0D:
        (lvar,) = c.take(1, "LVAR")
        raw = c.take(_lvar_length(lvar, c.start), "variable-length data")
    else:
        lvar = None
        raw = c.take(_SIZES[code], "data")

    meaning, qualifiers, reason = _meaning(vif_byte, vifes)
    if meaning is None:
        return Skipped(index, c.start, dib, vib, reason)
    names = tuple(v.combinable(q) for q in qualifiers if v.correction(q) is None)
    flags: list[str] = []
    value = _value(code, lvar, raw, meaning, names, flags)
    if isinstance(value, int | float) and not isinstance(value, bool) and meaning.kind == v.NUMBER:
        value = _scaled(value, meaning, qualifiers)
    return Record(index, c.start, dib, vib, storage, tariff, subunit, FUNCTIONS[(dif >> 4) & 0x03],
                  meaning.quantity, meaning.unit, value, label, names, tuple(flags))


def _lvar_length(lvar: int, start: int) -> int:
    if lvar <= 0xBF:
        return lvar
    if 0xC0 <= lvar <= 0xC9 or 0xD0 <= lvar <= 0xD9:
        return lvar & 0x0F
    if 0xE0 <= lvar <= 0xEF:
        return lvar - 0xE0
    if 0xF0 <= lvar <= 0xF4:
        return 4 * (lvar - 0xEC)
    if lvar == 0xF5:
        return 48
    if lvar == 0xF6:
        return 64
    raise FrameError(f"M-Bus: record at byte {start} has reserved LVAR {lvar:#04x}: its length is unknown")


def _meaning(vif_byte: int, vifes: bytes) -> tuple[v.Meaning | None, bytes, str]:
    """(meaning, the combinable VIFEs, why there is no meaning)."""
    base = vif_byte & 0x7F
    if base in (0x7B, 0x7D):
        if not vifes:
            return None, b"", (f"VIF {vif_byte:#04x} announces an extension table but no VIFE follows "
                               "(the extension bit is clear): its meaning is undefined")
        table = v.extension_fb if base == 0x7B else v.extension_fd
        meaning = table(vifes[0])
        if meaning is None:
            return None, b"", f"VIF {vif_byte:#04x} extension code {vifes[0] & 0x7F:#04x} is reserved in EN 13757-3"
        return meaning, vifes[1:], ""
    if base == 0x7C:
        return v.Meaning("plain_text"), vifes, ""
    if base == 0x7E:
        return v.Meaning("any"), vifes, ""
    if base == 0x7F:
        return v.Meaning("manufacturer_specific"), vifes, ""
    meaning = v.primary(base)
    if meaning is None:
        return None, b"", f"VIF {vif_byte:#04x} is reserved in EN 13757-3"
    return meaning, vifes, ""


def _value(code: int, lvar: int | None, raw: bytes, meaning: v.Meaning, names: tuple[str, ...],
           flags: list[str]) -> Value:
    if code in (0x0, 0x8):
        return None
    is_date = meaning.kind in (v.DATE, v.DATETIME) or any(n in v.DATE_OF for n in names)
    if lvar is not None:
        return _lvar_value(lvar, raw, flags)
    if is_date and len(raw) in (2, 3, 4, 6) and code not in _BCD and code != 0x5:
        return _date(raw, flags)
    if code in _BCD:
        return _bcd(raw, flags)
    if code == 0x5:
        return struct.unpack("<f", raw)[0]
    return int.from_bytes(raw, "little", signed=True)


def _lvar_value(lvar: int, raw: bytes, flags: list[str]) -> Value:
    if lvar <= 0xBF:
        return raw[::-1].decode("latin-1")
    if lvar <= 0xC9:
        return _bcd(raw, flags, sign=False)
    if lvar <= 0xD9:
        n = _bcd(raw, flags, sign=False)
        return None if n is None else -n
    if lvar <= 0xEF:
        return int.from_bytes(raw, "little", signed=True)
    return raw[::-1]  # a long binary field (keys, signatures): most significant byte first


def _bcd(raw: bytes, flags: list[str], sign: bool = True) -> int | None:
    digits = raw[::-1].hex()
    negative = sign and digits[0] == "f"
    if negative:
        digits = digits[1:] or "0"
    if not digits.isdigit():
        flags.append("bcd_invalid")
        return None
    return -int(digits) if negative else int(digits)


def _year(yy: int, hundred: int = 0) -> int:
    # Type F carries a hundred-year field; meters that leave it 0 mean 2000-2080.
    if hundred:
        return 1900 + 100 * hundred + yy
    return 2000 + yy if yy <= 80 else 1900 + yy


def _date(b: bytes, flags: list[str]) -> date | datetime | time | None:
    try:
        if len(b) == 2:  # type G
            return date(_year((b[0] >> 5) | ((b[1] & 0xF0) >> 1)), b[1] & 0x0F, b[0] & 0x1F)
        if len(b) == 3:  # type J
            return time(b[2] & 0x1F, b[1] & 0x3F, b[0] & 0x3F)
        if len(b) == 4:  # type F
            if b[0] & 0x80:
                flags.append("time_invalid")
                return None
            if b[1] & 0x80:
                flags.append("summer_time")
            return datetime(_year((b[2] >> 5) | ((b[3] & 0xF0) >> 1), (b[1] >> 5) & 0x03),
                            b[3] & 0x0F, b[2] & 0x1F, b[1] & 0x1F, b[0] & 0x3F)
        if b[1] & 0x80:  # type I
            flags.append("time_invalid")
            return None
        if b[0] & 0x40:
            flags.append("summer_time")
        return datetime(_year((b[3] >> 5) | ((b[4] & 0xF0) >> 1)), b[4] & 0x0F, b[3] & 0x1F,
                        b[2] & 0x1F, b[1] & 0x3F, b[0] & 0x3F)
    except ValueError:
        flags.append("date_invalid")  # day 0, month 0 or 13-15, hour 24…: not a date
        return None


def _scaled(raw: int | float, meaning: v.Meaning, qualifiers: bytes) -> int | float:
    exponent, add = meaning.exponent, None
    for q in qualifiers:
        corr = v.correction(q)
        if corr is not None:
            kind, e = corr
            if kind == "mul":
                exponent += e
            else:
                add = e
    if exponent == 0 and meaning.scale == 1 and add is None:
        return raw
    if isinstance(raw, float):
        out = raw * meaning.scale * 10.0 ** exponent
    else:  # exact decimal scaling: 129 x 10^-1 is 12.9, not 12.900000000000002
        out = float(Decimal(raw).scaleb(exponent) * meaning.scale)
    if add is not None:
        out = float(Decimal(repr(out)) + Decimal(1).scaleb(add) * meaning.scale)
    return out


def first_date(records: tuple[Record, ...] | list[Record]) -> Record | None:
    """The record the meter's current date and time is in: date/time, storage 0, instantaneous."""
    for r in records:
        if r.quantity == "datetime" and r.storage == 0 and r.function == "instantaneous" and not r.extensions:
            return r
    return None


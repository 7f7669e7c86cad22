"""Меркурий 230/234 power profile (срезы мощности): the pointer to the last record (08 13),
records read from profile memory (06), the energy they hold, and the search for the records
of a time window. I/O-free: the search asks for records through a callback.

Facts and where they come from:

* 08 13 answers nine bytes: the pointer to the last record (two bytes, high first), a status
  byte, the record's time (hour, minute, day, month, year, BCD) and the integration period in
  minutes (devices-reader/device_2 get_graph_top.pas; Prizmer/tu_mercury23X
  Mercury23XDriver.cs ReadLastSlice; lapinpavell/mercury234-emul parameters.json code 0x13).
* Status bits (device_2 support.pas GetStatusName): 0x01 the memory overflowed (the ring has
  wrapped), 0x02 incomplete interval (power or clock changed inside it), 0x04 initialisation,
  0x08 winter time.
* A record takes 16 bytes of memory; 06 03 AH AL 0F reads its 15 bytes: status, hour,
  minute, day, month, year (BCD), period in minutes, then P+, P−, Q+, Q− as 16-bit counts,
  low byte first; FF FF is a quantity the model does not measure (device_2
  get_graph_data.pas; Prizmer ReadSlice).
* Меркурий 230 (64 KiB profile memory): the pointer is the record's byte address; records
  step by 0x10 and wrap from 0x0000 to 0xFFF0 (4,096 records). Меркурий 233/234/236 (128 KiB):
  the pointer is the record number, the byte address is number × 0x10 up to 0x1FFF0 (8,192
  records) and address bit 16 goes into the memory byte, 0x83 instead of 0x03 (device_2
  get_graph_top10.pas and get_graph_data10.pas, "х17 для Меркурий-233"; Prizmer
  ReadPowerSliceSlowAfterSW9, firmware 9 and later).
* Energy of an interval = count / (2 × A) kWh (kvarh for Q), A the meter constant read with
  08 12 (device_2 get_koeffs.pas: Ke = Ki·Ku/(Kp·2) "для расчета энергии по получасам";
  Prizmer ReadSlice: count·(60/T)/(2·A) kW over T minutes).
* A record is stamped with the END of its interval: device_2 get_graph_data.pas files the
  record stamped hh:mm under the half hour before it (HalfIndexToDate(DateToHalfIndex(ti)-1)).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from askue.drivers.errors import DriverError, ProtocolError
from askue.drivers.mercury.frames import Code, Param, bcd, request, to_bcd

LAST_RECORD_LEN = 1 + 9 + 2
RECORD_LEN = 15  # bytes of a record read from memory
RECORD_REPLY_LEN = 1 + RECORD_LEN + 2
RECORD_STEP = 0x10  # bytes of memory per record
PROFILE_MEMORY = 0x03
ADDRESS_BIT16 = 0x80  # in the memory byte: bit 16 of the byte address (128 KiB memory)
NOT_MEASURED = 0xFFFF

STATUS_WRAPPED = 0x01
STATUS_INCOMPLETE = 0x02
STATUS_INIT = 0x04
STATUS_WINTER = 0x08

QUANTITIES = (1, 2, 3, 4)  # OBIS quantity of P+, P−, Q+, Q− (A+, A−, R+, R−)


@dataclass(frozen=True, slots=True)
class Layout:
    """How a model addresses its profile memory."""

    name: str
    capacity: int  # records in the ring
    pointer_is_number: bool  # 08 13 gives the record number (else its byte address)


SMALL = Layout("64k", 4096, False)  # Меркурий 230, 231
LARGE = Layout("128k", 8192, True)  # Меркурий 233, 234, 236
LAYOUTS = {SMALL.name: SMALL, LARGE.name: LARGE}


def layout_for_model(model: str | None) -> Layout:
    """The memory layout a model name suggests (options.profile_memory overrides it)."""
    text = (model or "").lower()
    return LARGE if any(m in text for m in ("233", "234", "236")) else SMALL


@dataclass(frozen=True, slots=True)
class LastRecord:
    index: int  # record number in the ring, 0 .. capacity-1
    status: int
    stamp: datetime | None  # naive meter time; None when the memory holds no record yet
    period_min: int

    @property
    def wrapped(self) -> bool:
        return bool(self.status & STATUS_WRAPPED)


@dataclass(frozen=True, slots=True)
class Record:
    stamp: datetime | None  # naive meter time; None: an empty or unreadable memory slot
    status: int
    period_min: int
    counts: tuple[int | None, ...]  # P+, P−, Q+, Q−; None where the model does not measure it

    @property
    def incomplete(self) -> bool:
        return bool(self.status & STATUS_INCOMPLETE)


# ---- requests ---------------------------------------------------------------------------------
def last_record_request(address: int) -> bytes:
    return request(address, Code.READ_PARAM, bytes([Param.LAST_RECORD]))


def record_address(index: int, layout: Layout) -> int:
    if not 0 <= index < layout.capacity:
        raise ValueError(f"record {index} is outside the {layout.name} profile memory (0..{layout.capacity - 1})")
    return index * RECORD_STEP


def memory_request(address: int, index: int, layout: Layout) -> bytes:
    """06 <memory> <address high> <address low> 0F: one record of the power profile."""
    at = record_address(index, layout)
    memory = PROFILE_MEMORY | (ADDRESS_BIT16 if at > 0xFFFF else 0)
    return request(address, Code.READ_MEMORY, bytes([memory, (at >> 8) & 0xFF, at & 0xFF, RECORD_LEN]))


# ---- decoding ---------------------------------------------------------------------------------
def _stamp(hour: int, minute: int, day: int, month: int, year: int) -> datetime | None:
    """A record's time, or None for an empty or damaged slot (all zero, all FF, not BCD, no date)."""
    try:
        return datetime(2000 + bcd(year, "year"), bcd(month, "month"), bcd(day, "day"), bcd(hour, "hour"),
                        bcd(minute, "minute"))
    except (ProtocolError, ValueError):
        return None


def decode_last_record(data: bytes, layout: Layout) -> LastRecord:
    if len(data) != 9:
        raise ProtocolError(f"Mercury last profile record: expected 9 data bytes, got {len(data)}: {data.hex(' ')}")
    pointer = int.from_bytes(data[0:2], "big")
    if layout.pointer_is_number:
        index = pointer
    else:
        if pointer % RECORD_STEP:
            raise ProtocolError(f"Mercury last profile record: pointer {pointer:#06x} is not a record address "
                                f"(a multiple of 0x10); check options.profile_memory ({layout.name} here)")
        index = pointer // RECORD_STEP
    if index >= layout.capacity:
        raise ProtocolError(f"Mercury last profile record: record {index} is outside the {layout.name} memory; "
                            "check options.profile_memory (64k for Меркурий 230, 128k for 233/234/236)")
    stamp = _stamp(*data[3:8])
    period = data[8]
    if stamp is not None and not 1 <= period <= 60:
        raise ProtocolError(f"Mercury last profile record: integration period {period} min is not 1..60")
    return LastRecord(index, data[2], stamp, period)


def decode_record(data: bytes) -> Record:
    if len(data) != RECORD_LEN:
        raise ProtocolError(f"Mercury profile record: expected {RECORD_LEN} data bytes, got {len(data)}")
    stamp = _stamp(*data[1:6])
    period = data[6]
    if not 1 <= period <= 60:
        stamp = None  # a slot never written or damaged: no usable record
    counts = []
    for i in range(4):
        v = int.from_bytes(data[7 + 2 * i:9 + 2 * i], "little")
        counts.append(None if v == NOT_MEASURED else v)
    return Record(stamp, data[0], period, tuple(counts))


def energy(count: int, constant: int) -> float:
    """kWh (kvarh) of a record's count for a meter of `constant` impulses per kWh."""
    return count / (2 * constant)


# ---- encoding (simulator, tests) --------------------------------------------------------------
def _encode_stamp(stamp: datetime | None) -> bytes:
    if stamp is None:
        return bytes(5)
    return bytes([to_bcd(stamp.hour), to_bcd(stamp.minute), to_bcd(stamp.day), to_bcd(stamp.month),
                  to_bcd(stamp.year % 100)])


def encode_last_record(index: int, status: int, stamp: datetime | None, period_min: int, layout: Layout) -> bytes:
    pointer = index if layout.pointer_is_number else record_address(index, layout)
    return pointer.to_bytes(2, "big") + bytes([status]) + _encode_stamp(stamp) + bytes([period_min])


def encode_record(status: int, stamp: datetime, period_min: int, counts: tuple[int | None, ...]) -> bytes:
    body = bytearray([status]) + _encode_stamp(stamp) + bytes([period_min])
    for c in counts:
        v = NOT_MEASURED if c is None else c
        if not 0 <= v <= NOT_MEASURED:
            raise ValueError(f"profile count {v} does not fit 16 bits")
        body += v.to_bytes(2, "little")
    return bytes(body)


EMPTY_RECORD = b"\xff" * RECORD_LEN  # a slot never written


def count_of(kwh: float, constant: int) -> int:
    """The count a meter of `constant` impulses per kWh stores for kwh (saturating)."""
    return max(0, min(NOT_MEASURED - 1, round(kwh * 2 * constant)))


# ---- finding the records of a window ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Slice:
    end: datetime  # end of the interval, aware
    record: Record


@dataclass
class Window:
    slices: list[Slice] = field(default_factory=list)
    reads: int = 0
    # End of the oldest record still in memory when the window starts before it (the
    # intervals before it were overwritten, or never recorded).
    oldest_end: datetime | None = None
    truncated: bool = False  # stopped at the read budget
    interrupted: DriverError | None = None  # a read failed after some periods were found


class _Budget(Exception):
    pass


async def read_window(fetch: Callable[[int], Awaitable[Record]], top: LastRecord, top_end: datetime,
                      layout: Layout, end_of: Callable[[Record], datetime | None],
                      start: datetime, end: datetime, budget: int) -> Window:
    """Records whose interval ends in [start, end), oldest first, read through fetch(index).

    Records are in time order in the ring, one per period while the meter has power, so the
    record `k` places before the last one ended about k periods earlier; fewer when the meter
    was off (no records then). The search reads that guess, steps towards newer records while
    they end before `start`, then reads forward. It reads no record past the window: the next
    one ends at least one period after the current. A clock stepped back can break the order;
    the window then holds what was found, each end time once. A failed read ends the search
    with what was found before it (the oldest part of the window), or raises if nothing was."""
    w = Window()
    available = layout.capacity if top.wrapped else top.index + 1
    period = timedelta(minutes=top.period_min)
    if top.stamp is None or top_end < start or end <= start:
        return w
    cache: dict[int, Record] = {}

    async def at(p: int) -> Record:  # p records before the last one
        if p not in cache:
            if w.reads >= budget:
                raise _Budget
            w.reads += 1
            cache[p] = await fetch((top.index - p) % layout.capacity)
        return cache[p]

    p = min(available - 1, (top_end - start) // period)
    seen: set[datetime] = set()
    try:
        rec = await at(p)
        e = end_of(rec)
        if e is None or e < start:
            while e is None or e < start:
                p -= 1
                if p < 0:
                    return w
                rec = await at(p)
                e = end_of(rec)
        elif e >= start + period:  # newer than its place says: look for older ones in the window
            while p + 1 < available:
                older = await at(p + 1)
                eo = end_of(older)
                if eo is None or eo < start:
                    break
                p, rec, e = p + 1, older, eo
        if p == available - 1 and e is not None and e - start >= period:
            w.oldest_end = e
        while True:
            if e is not None:
                if e >= end:
                    break
                if e >= start and e not in seen:
                    seen.add(e)
                    w.slices.append(Slice(e, rec))
                if e + timedelta(minutes=rec.period_min) >= end:
                    break
            p -= 1
            if p < 0:
                break
            rec = await at(p)
            e = end_of(rec)
    except _Budget:
        w.truncated = True
    except DriverError as e:
        if not w.slices:
            raise
        w.interrupted = e
    return w

"""Меркурий 230/234 event journals (массивы времён событий), read with 04 NN RR, and their
translation into СПОДЭС journal entries. I/O-free.

Facts and where they come from:

* 04 NN RR reads record RR (0..9) of journal NN: every journal is a ring of ten records. The
  answer holds 12 bytes, two times of sec, min, hour, day, month, year in BCD; a time never
  written is all zeros (GreezXII/Mercury230Configurator M230Protocol:
  ReadJournalRecordRequest.cs, ReadJournalResponse.cs with its 15-byte answer, MeterJournals.cs).
* Journals read here (MeterJournals.cs and the titles of that project's JournalsView.xaml):
  01 the meter switched on and off, 03/04/05 voltage of phase 1/2/3 on and off, 12 the case
  opened and closed. Journal 02, the time before and after a correction, is the Incotex
  description's; no public reader we found reads it, so its layout rests on the common one.
* The two times of a record are taken in the order the titles name them: on then off,
  opened then closed, before then after.

Each time becomes one entry of a СПОДЭС journal (0.0.99.98.N.255) with its event code
(ГОСТ Р 58940-2020 annex Д; the codes of askue.drivers.dlms.cosem): power off 2/1 and on
2/2; phase A/B/C voltage lost 0/1, 0/3, 0/5 and restored 0/2, 0/4, 0/6; case opened 4/4
(СПОДЭС has no code for "closed", so that time is not reported); a clock step 3/68 (time
corrected) when it is within the ±4 min a correction allows, else 3/3 (time set), stamped
with the time after the step.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from askue.drivers.errors import ProtocolError
from askue.drivers.mercury.frames import MAX_CORRECTION_S, Code, bcd, request, to_bcd

JOURNAL_REPLY_LEN = 1 + 12 + 2
RECORDS = 10


class Journal(IntEnum):
    POWER = 0x01
    CLOCK = 0x02
    PHASE_A = 0x03
    PHASE_B = 0x04
    PHASE_C = 0x05
    CASE = 0x12


VOLTAGE_EVENTS = "0.0.99.98.0.255"
POWER_EVENTS = "0.0.99.98.2.255"
PROGRAMMING_EVENTS = "0.0.99.98.3.255"
INFLUENCE_EVENTS = "0.0.99.98.4.255"
POWER_ON, POWER_OFF = 2, 1
CASE_OPENED = 4
TIME_SET, TIME_CORRECTED = 3, 68
_PHASE = {Journal.PHASE_A: 0, Journal.PHASE_B: 1, Journal.PHASE_C: 2}


@dataclass(frozen=True, slots=True)
class JournalRecord:
    first: datetime | None  # naive meter time; None if never written
    second: datetime | None
    damaged: bool = False  # a time that is neither empty nor a valid BCD date


@dataclass(frozen=True, slots=True)
class Event:
    obis: str  # СПОДЭС journal
    code: int
    stamp: datetime  # naive meter time


def journal_request(address: int, journal: int, record: int) -> bytes:
    if not 0 <= record < RECORDS:
        raise ValueError(f"journal record must be 0..{RECORDS - 1}, got {record}")
    return request(address, Code.READ_TIME, bytes([journal, record]))


def _time(b: bytes) -> tuple[datetime | None, bool]:
    if not any(b):
        return None, False
    try:
        return datetime(2000 + bcd(b[5], "year"), bcd(b[4], "month"), bcd(b[3], "day"), bcd(b[2], "hour"),
                        bcd(b[1], "minute"), bcd(b[0], "second")), False
    except (ProtocolError, ValueError):
        return None, True


def decode_journal_record(data: bytes) -> JournalRecord:
    if len(data) != 12:
        raise ProtocolError(f"Mercury journal record: expected 12 data bytes, got {len(data)}: {data.hex(' ')}")
    first, bad1 = _time(data[0:6])
    second, bad2 = _time(data[6:12])
    return JournalRecord(first, second, bad1 or bad2)


def _encode_time(t: datetime | None) -> bytes:
    if t is None:
        return bytes(6)
    return bytes([to_bcd(t.second), to_bcd(t.minute), to_bcd(t.hour), to_bcd(t.day), to_bcd(t.month),
                  to_bcd(t.year % 100)])


def encode_journal_record(first: datetime | None, second: datetime | None) -> bytes:
    return _encode_time(first) + _encode_time(second)


def events_of(journal: int, rec: JournalRecord) -> list[Event]:
    """The СПОДЭС journal entries one record stands for (see the module doc)."""
    out: list[Event] = []
    if journal == Journal.POWER:
        if rec.first:
            out.append(Event(POWER_EVENTS, POWER_ON, rec.first))
        if rec.second:
            out.append(Event(POWER_EVENTS, POWER_OFF, rec.second))
    elif journal in _PHASE:
        n = _PHASE[Journal(journal)]
        if rec.first:
            out.append(Event(VOLTAGE_EVENTS, 2 * n + 2, rec.first))
        if rec.second:
            out.append(Event(VOLTAGE_EVENTS, 2 * n + 1, rec.second))
    elif journal == Journal.CASE:
        if rec.first:
            out.append(Event(INFLUENCE_EVENTS, CASE_OPENED, rec.first))
    elif journal == Journal.CLOCK and rec.second:
        small = rec.first is not None and abs((rec.second - rec.first).total_seconds()) <= MAX_CORRECTION_S
        out.append(Event(PROGRAMMING_EVENTS, TIME_CORRECTED if small else TIME_SET, rec.second))
    return out

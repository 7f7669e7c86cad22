"""Меркурий 230/234 energy at the start of a day or month (request 05, arrays B, C, D): the
registers the meter itself kept at 00:00, read per tariff and stamped with that boundary.

The arrays (lapinpavell/mercury234-emul data.json, code 0x05, whose descriptions follow the
Incotex command list): 0xC0 "at the start of the current day", 0xD0 "at the beginning of the
previous day", 0xB0 | month "at the beginning of the month"; the answer is the same four
4-byte values A+, A−, R+, R− in Wh as the energy since reset (frames.decode_u32). The meter
keeps one value per month number, so the start of month m is the most recent first of m:
this year's for m up to the current month, last year's after it. Days: only today's and
yesterday's start are kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from askue.drivers.mercury.frames import Array

DAY_START = "day_start"
MONTH_START = "month_start"


@dataclass(frozen=True, slots=True)
class ArchiveRead:
    array: int
    month: int  # low nibble of the array byte (0 unless the month array)
    archive: str  # contract Value.archive
    boundary: datetime  # 00:00 meter time (naive) the values belong to


def _midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day)


def months_back(d: date, k: int) -> date:
    """The 1st of the month k months before d's month."""
    n = d.year * 12 + d.month - 1 - k
    return date(n // 12, n % 12 + 1, 1)


def available(archive: str, today: date) -> list[ArchiveRead]:
    """Every boundary of an archive the meter keeps on meter date `today`, oldest first: the
    start of yesterday and of today; the 1st of each of the last twelve months (one value per
    month number, so a year back at most)."""
    if archive == DAY_START:
        return [ArchiveRead(Array.START_OF_PREVIOUS_DAY, 0, DAY_START, _midnight(today - timedelta(days=1))),
                ArchiveRead(Array.START_OF_DAY, 0, DAY_START, _midnight(today))]
    if archive == MONTH_START:
        firsts = [months_back(today, k) for k in range(11, -1, -1)]
        return [ArchiveRead(Array.START_OF_MONTH, d.month, MONTH_START, _midnight(d)) for d in firsts]
    return []


def boundary_of(array: int, month: int, today: date) -> datetime | None:
    """The boundary an archive array holds on meter date `today` (None: not an archive array)."""
    if array == Array.START_OF_DAY and month == 0:
        return _midnight(today)
    if array == Array.START_OF_PREVIOUS_DAY and month == 0:
        return _midnight(today - timedelta(days=1))
    if array == Array.START_OF_MONTH and 1 <= month <= 12:
        year = today.year if month <= today.month else today.year - 1
        return datetime(year, month, 1)
    return None

"""The meter's own memory of its registers at day and month boundaries, without I/O.

Each vendor names these values differently; only names and meanings a public source
confirms are used (tests/drivers/golden/iec62056_21/README.md lists the sources):

Энергомера СЕ301 / СЕ303 (`archive_scheme="energomera"`)
  ENMPE(mm.yy)  A+ total, T1…T5 at the end of month mm.yy, i.e. at 00:00 on the first of
                the next month. In the captured СЕ301 session of energomera-hass-mqtt,
                ENMPE(04.22) equals ET0PE − ECMPE to the last digit for every tariff.
  ECMPE()       energy counted since the start of the current month (same capture).
  EAMPE(mm.yy)  energy counted during month mm.yy (same capture).
  ECDPE()       energy counted today (same capture, "Daily energy").
  No public source names a day archive of these models, so their day-start values are
  not read: ET0PE − ECDPE, two reads apart, is an estimate, not the meter's stored value.
НЕВА МТ 1xx / 3xx (`archive_scheme="neva"`)
  0F0880nn      A+ total, T1…T4 fixed nn+1 months ago, nn = 00…0B (wb-mqtt-serial
                config-neva-mt124.json); 0F088000 is "energy to the beginning of this month"
                (pyneva). So 0F0880nn is the start of the month nn months before this one.
  0F808000      energy to the beginning of this day (pyneva).

A boundary is the first day the values belong to, at 00:00 meter (local standard) time.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from askue.drivers.errors import FrameError

Archive = Literal["day_start", "month_start"]

ENERGOMERA_MONTH_END = "ENMPE"
ENERGOMERA_MONTH_ENERGY = "EAMPE"
ENERGOMERA_THIS_MONTH = "ECMPE"
ENERGOMERA_TODAY = "ECDPE"
NEVA_MONTH_START = "0F0880"  # + two hex digits: months before the current one
NEVA_DAY_START = "0F808000"

MAX_MONTHS = 12  # НЕВА keeps 00…0B; Энергомера's depth is not published, the meter refuses what it lacks


@dataclass(frozen=True, slots=True)
class ArchiveRead:
    archive: Archive
    boundary: date
    name: str
    args: str = ""


def month_start(d: date, months_back: int = 0) -> date:
    """The first day of the month `months_back` months before the month of `d`."""
    n = d.year * 12 + d.month - 1 - months_back
    return date(n // 12, n % 12 + 1, 1)


def month_arg(d: date) -> str:
    """mm.yy, as Энергомера writes a month argument (ENMPE(04.22))."""
    return f"{d.month:02d}.{d.year % 100:02d}"


def parse_month_arg(s: str) -> date:
    """mm.yy -> the first day of that month."""
    parts = s.split(".")
    try:
        if len(parts) != 2 or not all(len(p) == 2 and p.isdigit() for p in parts):
            raise ValueError
        return date(2000 + int(parts[1]), int(parts[0]), 1)
    except ValueError:
        raise FrameError(f"month argument {s!r} is not mm.yy") from None


def month_reads(scheme: str | None, today: date, months: int) -> list[ArchiveRead]:
    """Requests for the start of the current month and of the `months - 1` before it."""
    out = []
    for k in range(min(months, MAX_MONTHS)):
        boundary = month_start(today, k)
        if scheme == "energomera":
            out.append(ArchiveRead("month_start", boundary, ENERGOMERA_MONTH_END,
                                   month_arg(month_start(boundary, 1))))
        elif scheme == "neva":
            out.append(ArchiveRead("month_start", boundary, f"{NEVA_MONTH_START}{k:02X}"))
    return out


def day_read(scheme: str | None, today: date) -> ArchiveRead | None:
    """The request that answers the start of today directly (None: derived or unknown)."""
    if scheme == "neva":
        return ArchiveRead("day_start", today, NEVA_DAY_START)
    return None


def boundary_of(scheme: str | None, name: str, args: str, today: date) -> ArchiveRead | None:
    """The archive entry a request asks for (the simulator's side); None: not an archive read."""
    if scheme == "energomera" and name == ENERGOMERA_MONTH_END:
        return ArchiveRead("month_start", month_start(parse_month_arg(args), -1), name, args)
    if scheme == "neva" and name == NEVA_DAY_START and not args:
        return ArchiveRead("day_start", today, name)
    if scheme == "neva" and name.startswith(NEVA_MONTH_START) and len(name) == 8 and not args:
        try:
            k = int(name[6:], 16)
        except ValueError:
            return None
        return ArchiveRead("month_start", month_start(today, k), name) if k < MAX_MONTHS else None
    return None

"""The register value of one meter channel at a billing boundary (local midnight of the
1st), and where that value came from. Pure: readings in, one reading out.

Billing periods close on the registers at 00:00. The meter itself fixes them (its day- and
month-start archive, contract `Value.archive`); a gateway that polled at 00:05, or was
offline at midnight, has only readings around the boundary. In order of preference:

1. `meter_archive` — the meter's own day/month-start value stamped with the boundary;
2. `poll` / `manual` — a reading taken at the boundary itself (gateway / person or file);
3. `interpolated` — linear between the last reading before and the first after the
   boundary, when both are measured (not estimates), at most `INTERPOLATION_SPAN` apart
   and the register did not go down between them;
4. `estimate` — VEE's substitute «по среднему» stored at the boundary;
5. `nearest_poll` / `manual` / `estimate` — the reading nearest to the boundary within
   the lookback (on a tie the one before), as before interpolation existed.

The snapshot adds `first_in_period` / `last_in_period` for a meter installed or removed
in the period (its first / last reading stands in for the boundary).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

METER_ARCHIVE = "meter_archive"
POLL = "poll"
MANUAL = "manual"
INTERPOLATED = "interpolated"
ESTIMATE = "estimate"
NEAREST_POLL = "nearest_poll"
FIRST_IN_PERIOD = "first_in_period"
LAST_IN_PERIOD = "last_in_period"

# What each source means, for documents and pages (Russian first).
SOURCES: dict[str, tuple[str, str]] = {
    METER_ARCHIVE: ("архив счётчика на начало суток/месяца", "the meter's day/month-start archive"),
    POLL: ("опрос в момент границы", "a poll at the boundary"),
    MANUAL: ("ручной ввод или файл", "entered by hand or from a file"),
    INTERPOLATED: ("интерполяция между опросами", "interpolated between polls"),
    ESTIMATE: ("замещение «по среднему»", "substituted from the average"),
    NEAREST_POLL: ("ближайший опрос", "the nearest poll"),
    FIRST_IN_PERIOD: ("первое показание в периоде", "the first reading in the period"),
    LAST_IN_PERIOD: ("последнее показание в периоде", "the last reading in the period"),
}

# Polls around midnight a day apart (a daily poll at 00:05, or one missed) still give a
# value at 00:00 better than either of them; further apart the nearest reading is kept.
INTERPOLATION_SPAN = timedelta(hours=48)
QUALITY_RANK = {"A": 0, "M": 1, "S": 2, "E": 3}
_ENTERED = frozenset({"manual", "file"})


@dataclass(frozen=True)
class Reading:
    """A register reading; for a snapshot's start or end also how it stands for the
    boundary (`boundary_source`) and, when interpolated, the two readings it lies between."""

    ts: datetime
    value: float
    quality: str = "A"
    source: str = "gateway"
    reasons: tuple[str, ...] = ()
    archive: str | None = None  # day_start | month_start: from the meter's own memory
    boundary_source: str | None = None
    between: tuple[Reading, Reading] | None = None

    @property
    def estimated(self) -> bool:
        return self.quality in ("E", "S") or self.source == "estimate"


def worst_quality(*qs: str | None) -> str | None:
    present = [q for q in qs if q]
    return max(present, key=lambda q: QUALITY_RANK.get(q, 9)) if present else None


def _source_of(r: Reading, *, at_boundary: bool) -> str:
    if r.source == "estimate" or r.quality in ("E", "S"):
        return ESTIMATE
    if r.source in _ENTERED:
        return MANUAL
    if r.archive and at_boundary:
        return METER_ARCHIVE
    return POLL if at_boundary else NEAREST_POLL


def value_at(readings: Sequence[Reading], at: datetime, lookback: timedelta) -> Reading | None:
    """The channel's value at `at` (see the module doc), or None without a reading within
    ±lookback. `readings` need not be sorted."""
    near = [r for r in readings if abs(r.ts - at) <= lookback]
    if not near:
        return None
    exact = [r for r in near if r.ts == at]
    if exact:  # the table's key allows one reading per instant
        r = exact[0]
        if not r.estimated:
            return replace(r, boundary_source=_source_of(r, at_boundary=True))
    measured = [r for r in near if not r.estimated]
    before = max((r for r in measured if r.ts < at), key=lambda r: r.ts, default=None)
    after = min((r for r in measured if r.ts > at), key=lambda r: r.ts, default=None)
    if (before is not None and after is not None and after.ts - before.ts <= INTERPOLATION_SPAN
            and after.value >= before.value):
        share = (at - before.ts) / (after.ts - before.ts)
        nearer = before if at - before.ts <= after.ts - at else after
        return Reading(at, round(before.value + share * (after.value - before.value), 9),
                       worst_quality(before.quality, after.quality) or "A", nearer.source,
                       tuple(sorted(set(before.reasons) | set(after.reasons))),
                       boundary_source=INTERPOLATED, between=(before, after))
    if exact:
        return replace(exact[0], boundary_source=ESTIMATE)
    best = min(near, key=lambda r: (abs(r.ts - at), r.ts > at))
    return replace(best, boundary_source=_source_of(best, at_boundary=False))

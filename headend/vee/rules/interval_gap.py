"""interval_gap: load-profile intervals missing between received ones. Duplicates (the
same interval end twice with different values) and a wrong interval size (period not
the channel's usual one, or an end not on the period grid) are reasons on the values."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

from askue.headend.vee.model import Mark, MeterFacts, MeterValue, Result, by_channel
from askue.headend.vee.rules.common import Ctx, finding, in_service, iso


def expected_period(series: list[MeterValue]) -> int | None:
    """The channel's most common period (the first seen among equals)."""
    first = None
    for v in series:  # the usual channel has one period throughout: no counting then
        p = v.period_s
        if p:
            if first is None:
                first = p
            elif p != first:
                return Counter(v.period_s for v in series if v.period_s).most_common(1)[0][0]
    return first


def check(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> Result:
    res = Result()
    installed = meter.installed_at
    for obis, series in by_channel(values, "interval").items():
        if installed is not None:
            series = [v for v in series if in_service(meter, v)]
        period = expected_period(series)
        if not period:
            continue
        # One pass (the hook judges thousands of channels a batch, most with one stored and one
        # new interval); the findings keep the order of the rule's three questions: duplicates
        # (they do not count as intervals of their own), wrong sizes, gaps between on-grid ones.
        seen: dict = {}
        duplicates: list = []
        sizes: list = []
        gaps_found: list = []
        before: MeterValue | None = None  # the previous unique interval on the grid
        for v in series:
            ts = v.ts
            first = seen.get(ts)
            if first is not None:
                if v.new and abs(first.value - v.value) > 1e-9:
                    duplicates.append((v, first))
                continue
            seen[ts] = v
            on_period = int(ts.timestamp()) % period == 0
            per = v.period_s
            if v.new and ((per and per != period) or not on_period or ts.microsecond):
                sizes.append((v, not on_period or ts.microsecond))
            if on_period and (per is None or per == period):
                if before is not None and (before.new or v.new):
                    missing = int((ts - before.ts).total_seconds() // period) - 1
                    if missing > 0:
                        gaps_found.append((before.ts, ts, missing))
                before = v
        for v, first in duplicates:
            res.marks.append(Mark(meter.code, obis, v.ts, "duplicate"))
            res.findings.append(finding("interval_duplicate", meter, v.ts,
                                        f"interval_duplicate:{meter.code}:{obis}:{iso(v.ts)}", obis=obis,
                                        event=False, first=first.value, second=v.value, row=v.row))
        for v, off_grid in sizes:
            res.marks.append(Mark(meter.code, obis, v.ts, "wrong_period"))
            res.findings.append(finding("interval_size", meter, v.ts,
                                        f"interval_size:{meter.code}:{obis}:{iso(v.ts)}", obis=obis,
                                        event=False, period_s=v.period_s, expected_s=period,
                                        on_grid=not off_grid))
        for a, b, missing in gaps_found:
            first_missing = a + timedelta(seconds=period)
            last_missing = b - timedelta(seconds=period)
            res.findings.append(finding(
                "interval_gap", meter, first_missing,
                f"interval_gap:{meter.code}:{obis}:{iso(first_missing)}", obis=obis,
                first_missing=first_missing, last_missing=last_missing, missing=missing, period_s=period))
    return res


def gaps(series: list[MeterValue], period: int) -> list[tuple[MeterValue, MeterValue, int]]:
    """(interval before, interval after, number missing) for each hole in a sorted series."""
    out = []
    for a, b in zip(series, series[1:], strict=False):
        missing = int((b.ts - a.ts).total_seconds() // period) - 1
        if missing > 0:
            out.append((a, b, missing))
    return out

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
    periods = [v.period_s for v in series if v.period_s]
    if not periods:
        return None
    first = periods[0]
    if periods.count(first) == len(periods):  # the usual channel: one period throughout
        return first
    return Counter(periods).most_common(1)[0][0]


def check(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> Result:
    res = Result()
    installed = meter.installed_at
    for obis, series in by_channel(values, "interval").items():
        if installed is not None:
            series = [v for v in series if in_service(meter, v)]
        period = expected_period(series)
        if not period:
            continue
        # duplicates first: they do not count as intervals of their own
        seen: dict = {}
        uniq: list[MeterValue] = []
        for v in series:
            first = seen.get(v.ts)
            if first is None:
                seen[v.ts] = v
                uniq.append(v)
            elif v.new and abs(first.value - v.value) > 1e-9:
                res.marks.append(Mark(meter.code, obis, v.ts, "duplicate"))
                res.findings.append(finding("interval_duplicate", meter, v.ts,
                                            f"interval_duplicate:{meter.code}:{obis}:{iso(v.ts)}", obis=obis,
                                            event=False, first=first.value, second=v.value, row=v.row))
        for v in uniq:
            if not v.new:
                continue
            off_grid = int(v.ts.timestamp()) % period != 0 or v.ts.microsecond
            if (v.period_s and v.period_s != period) or off_grid:
                res.marks.append(Mark(meter.code, obis, v.ts, "wrong_period"))
                res.findings.append(finding("interval_size", meter, v.ts,
                                            f"interval_size:{meter.code}:{obis}:{iso(v.ts)}", obis=obis,
                                            event=False, period_s=v.period_s, expected_s=period,
                                            on_grid=not off_grid))
        on_grid = [v for v in uniq if (v.period_s in (None, period)) and int(v.ts.timestamp()) % period == 0]
        for a, b in zip(on_grid, on_grid[1:], strict=False):
            if not (a.new or b.new):
                continue
            missing = int((b.ts - a.ts).total_seconds() // period) - 1
            if missing > 0:
                first_missing = a.ts + timedelta(seconds=period)
                last_missing = b.ts - timedelta(seconds=period)
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

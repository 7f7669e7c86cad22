"""Estimation: fill load-profile gaps and substitute a missing billing read.

- gap of up to `linear_max_gap_s` (2 h): linear interpolation between the intervals on
  either side — quality E, reason `method:linear`;
- longer gap: the mean of the same slot on up to `like_days` previous days of the same
  kind (working day / weekend) — quality E, reason `method:like_days`;
- missing billing read: last read + average daily consumption × days («по среднему»)
  — quality S, reason `method:average`.

An estimate never replaces a real value: callers store it only where no value exists,
and a real value arriving later replaces the estimate (see live.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from askue.headend.vee.model import MeterFacts, MeterValue
from askue.headend.vee.rules.common import MSK, forward_delta, in_service, main_register
from askue.headend.vee.rules.interval_gap import expected_period, gaps
from askue.headend.vee.thresholds import Thresholds


@dataclass(frozen=True)
class Estimate:
    meter: str  # meter code
    obis: str
    kind: str
    ts: datetime
    value: float
    quality: str  # E estimated, S substituted
    method: str  # linear | like_days | average
    period_s: int | None = None

    @property
    def reasons(self) -> list[str]:
        return ["estimated" if self.quality == "E" else "substituted", f"method:{self.method}"]


def _weekend(t: datetime, tz: tzinfo) -> bool:
    return t.astimezone(tz).weekday() >= 5


def fill_gaps(series: list[MeterValue], th: Thresholds, tz: tzinfo = MSK,
              history: list[MeterValue] | None = None) -> list[Estimate]:
    """Estimates for the holes of one interval channel (sorted, one meter). `history`
    (same channel, older data) feeds the like-day method."""
    if not series:
        return []
    period = expected_period(series)
    if not period:
        return []
    known = {v.ts: v.value for v in (history or []) + series if v.kind == "interval" and v.quality in ("A", "M")}
    out: list[Estimate] = []
    grid = [v for v in series if int(v.ts.timestamp()) % period == 0 and v.period_s in (None, period)]
    for a, b, missing in gaps(grid, period):
        span = missing * period
        for k in range(1, missing + 1):
            ts = a.ts + timedelta(seconds=k * period)
            if span <= th.linear_max_gap_s:
                val = a.value + (b.value - a.value) * k / (missing + 1)
                out.append(Estimate(a.meter, a.obis, "interval", ts, round(val, 6), "E", "linear", period))
                continue
            like: list[float] = []
            day = 1
            while len(like) < th.like_days and day <= 28:
                cand = ts - timedelta(days=day)
                if _weekend(cand, tz) == _weekend(ts, tz) and cand in known:
                    like.append(known[cand])
                day += 1
            if like:
                out.append(Estimate(a.meter, a.obis, "interval", ts, round(sum(like) / len(like), 6),
                                    "E", "like_days", period))
    return out


def average_daily(meter: MeterFacts, values: list[MeterValue], before: datetime, th: Thresholds) -> float | None:
    """Average daily consumption on the main register over the lookback before `before`."""
    regs = sorted((v for v in values if v.kind == "register" and v.obis == main_register(meter)
                   and v.ts <= before and v.ts >= before - timedelta(days=th.average_lookback_days)
                   and in_service(meter, v) and v.quality in ("A", "M")), key=lambda v: v.ts)
    if len(regs) < 2:
        return None
    span_days = (regs[-1].ts - regs[0].ts).total_seconds() / 86400
    if span_days < th.average_min_days:
        return None
    total = 0.0
    for p, c in zip(regs, regs[1:], strict=False):
        d = forward_delta(p.value, c.value, meter, th)
        if d is None:
            return None  # a reverse in the base period: no trustworthy average
        total += d
    return total / span_days


def billing_read(meter: MeterFacts, values: list[MeterValue], at: datetime, th: Thresholds) -> Estimate | None:
    """A substitute register read at `at` «по среднему», or None without enough history."""
    avg = average_daily(meter, values, at, th)
    if avg is None:
        return None
    last = max((v for v in values if v.kind == "register" and v.obis == main_register(meter) and v.ts <= at
                and v.quality in ("A", "M")), key=lambda v: v.ts)
    val = last.value + avg * (at - last.ts).total_seconds() / 86400
    cap = meter.capacity
    if cap is not None:
        val %= cap
    return Estimate(meter.code, last.obis, "register", at, round(val, 6), "S", "average")

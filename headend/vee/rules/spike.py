"""spike: a day's consumption above `spike_factor` × the median of the previous
`spike_history_days` days (and above `spike_floor`); an interval far above the median
of its neighbours. over_limit: a day or an interval above a configured limit."""
from __future__ import annotations

from datetime import date, timedelta

from askue.headend.vee.model import Mark, MeterFacts, MeterValue, Result, by_channel
from askue.headend.vee.rules.common import (
    PROFILE_TO_REGISTER,
    Ctx,
    daily_consumption,
    day_start,
    finding,
    iso,
    median,
)


def _new_days(values: list[MeterValue], ctx: Ctx) -> set[date]:
    """Days touched by new values (only they are judged; history is context)."""
    out: set[date] = set()
    for v in values:
        if v.new and v.kind in ("register", "interval"):
            t = v.ts - timedelta(seconds=v.period_s or 0) if v.kind == "interval" else v.ts
            d = t.astimezone(ctx.tz).date()
            out |= {d, d - timedelta(days=1)}  # a midnight read closes the previous day
    return out


def check(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> Result:
    res = Result()
    th = ctx.thresholds
    daily = daily_consumption(meter, values, ctx)
    judge = _new_days(values, ctx)
    for d in sorted(daily):
        if d not in judge:
            continue
        q = daily[d]
        hist = [daily[d - timedelta(days=i)] for i in range(1, th.spike_history_days + 1)
                if d - timedelta(days=i) in daily]
        ts = day_start(d + timedelta(days=1), ctx.tz)
        if len(hist) >= th.spike_min_history_days:
            med = median(hist)
            if q > th.spike_floor and q > th.spike_factor * med:
                res.findings.append(finding("spike", meter, ts, f"spike:{meter.code}:day:{d.isoformat()}",
                                            day=d.isoformat(), consumption=q, median=med,
                                            factor=th.spike_factor, history_days=len(hist)))
        if th.daily_limit is not None and q > th.daily_limit:
            res.findings.append(finding("over_limit", meter, ts, f"over_limit:{meter.code}:day:{d.isoformat()}",
                                        day=d.isoformat(), consumption=q, limit=th.daily_limit))
    for obis, series in by_channel(values, "interval").items():
        if obis not in PROFILE_TO_REGISTER:
            continue
        k = th.interval_spike_neighbours
        for i, v in enumerate(series):
            if not v.new:
                continue
            neigh = [x.value for x in series[max(0, i - k):i] + series[i + 1:i + 1 + k]]
            if len(neigh) >= k:  # enough context on at least one side
                med = median(neigh)
                if v.value > th.interval_spike_floor and v.value > th.interval_spike_factor * med:
                    res.marks.append(Mark(meter.code, obis, v.ts, "spike"))
                    res.findings.append(finding(
                        "spike", meter, v.ts, f"spike:{meter.code}:{obis}:{iso(v.ts)}", obis=obis,
                        interval_end=v.ts, value=v.value, neighbours_median=med, factor=th.interval_spike_factor))
            if th.interval_limit is not None and v.value > th.interval_limit:
                res.marks.append(Mark(meter.code, obis, v.ts, "over_limit"))
                res.findings.append(finding("over_limit", meter, v.ts, f"over_limit:{meter.code}:{obis}:{iso(v.ts)}",
                                            obis=obis, interval_end=v.ts, value=v.value, limit=th.interval_limit))
    return res

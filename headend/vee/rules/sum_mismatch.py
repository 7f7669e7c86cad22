"""sum_mismatch: a day's interval sum differs from the register delta between the
daily reads at local midnight by more than `sum_tolerance` (+ one unit of the
register's last digit). Judged only on complete days with both midnight reads."""
from __future__ import annotations

from datetime import timedelta

from askue.headend.vee.model import MeterFacts, MeterValue, Result
from askue.headend.vee.rules.common import (
    Ctx,
    day_start,
    finding,
    forward_delta,
    in_service,
    local_day,
    main_profile,
    main_register,
    reset_between,
)


def check(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> Result:
    res = Result()
    th = ctx.thresholds
    reg_obis, prof_obis = main_register(meter), main_profile(meter)
    regs = [v for v in values if v.kind == "register" and v.obis == reg_obis and in_service(meter, v)]
    ivs = {v.ts: v for v in values if v.kind == "interval" and v.obis == prof_obis and v.period_s
           and in_service(meter, v)}
    if not regs or not ivs:
        return res
    tol = timedelta(seconds=th.sum_boundary_tolerance_s)
    midnight: dict = {}
    for v in regs:
        lt = v.ts.astimezone(ctx.tz)
        d = lt.date() if lt.hour < 12 else lt.date() + timedelta(days=1)
        m = day_start(d, ctx.tz)
        if abs(v.ts - m) <= tol and (d not in midnight or abs(v.ts - m) < abs(midnight[d].ts - m)):
            midnight[d] = v
    for d, start in sorted(midnight.items()):
        end = midnight.get(d + timedelta(days=1))
        if end is None or not (start.new or end.new or _any_new(ivs, d, ctx)):
            continue
        if reset_between(meter, start.ts, end.ts):
            continue
        delta = forward_delta(start.value, end.value, meter, th)
        if delta is None:
            continue  # reverse_reading reports it
        day = [iv for ts, iv in ivs.items() if local_day(ts - timedelta(seconds=iv.period_s or 0), ctx.tz) == d]
        if not day:
            continue
        period = day[0].period_s or 1800
        expected = int((day_start(d + timedelta(days=1), ctx.tz) - day_start(d, ctx.tz)).total_seconds() // period)
        if len(day) < expected:
            continue  # interval_gap reports it; a partial sum says nothing
        total = sum(iv.value for iv in day)
        allowed = th.sum_tolerance * abs(delta) + th.register_resolution
        if abs(total - delta) > allowed + 1e-9:
            res.findings.append(finding(
                "sum_mismatch", meter, end.ts, f"sum_mismatch:{meter.code}:{d.isoformat()}", obis=reg_obis,
                day=d.isoformat(), interval_sum=round(total, 6), register_delta=round(delta, 6),
                difference=round(total - delta, 6), allowed=round(allowed, 6)))
    return res


def _any_new(ivs: dict, d, ctx: Ctx) -> bool:
    return any(iv.new and local_day(ts - timedelta(seconds=iv.period_s or 0), ctx.tz) == d for ts, iv in ivs.items())

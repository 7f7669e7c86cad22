"""zero_consumption: the register has not moved for `zero_days` on a meter that
consumed before (a meter that never moved is not judged: it may be a new, empty flat)."""
from __future__ import annotations

from datetime import timedelta

from askue.headend.vee.model import Clear, MeterFacts, MeterValue, Result, by_channel
from askue.headend.vee.rules.common import Ctx, finding, in_service, iso, main_register


def check(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> Result:
    res = Result()
    if meter.retired:
        return res
    th = ctx.thresholds
    series = [v for v in by_channel(values, "register").get(main_register(meter), []) if in_service(meter, v)]
    if len(series) < 2:
        return res
    # Start of the final run of equal values.
    last = series[-1]
    i = len(series) - 1
    while i > 0 and abs(series[i - 1].value - last.value) <= th.reverse_tolerance:
        i -= 1
    run_start = series[i]
    consumed_before = i > 0
    key = f"zero_consumption:{meter.code}:{iso(run_start.ts)}"
    if consumed_before and last.ts - run_start.ts >= timedelta(days=th.zero_days):
        if any(v.new for v in series[i:]):
            res.findings.append(finding("zero_consumption", meter, last.ts, key, obis=last.obis,
                                        since=run_start.ts, last_read=last.ts, value=last.value,
                                        days=round((last.ts - run_start.ts).total_seconds() / 86400, 2)))
    # The register moved with the newest read: any earlier flat-run event may close.
    if i > 0 and i == len(series) - 1 and last.new:
        res.clears.append(Clear(f"zero_consumption:{meter.code}:", meter.code, last.ts))
    return res

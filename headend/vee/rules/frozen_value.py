"""frozen_value: the same value with the same meter timestamp delivered again as new
(a later receive time): the meter's clock or register stopped, the gateway reads the
same record over and over. An exact replay (same receive time too) is not a finding."""
from __future__ import annotations

from askue.headend.vee.model import Mark, MeterFacts, MeterValue, Result
from askue.headend.vee.rules.common import Ctx, finding, iso


def check(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> Result:
    res = Result()
    first: dict[tuple[str, object], MeterValue] = {}
    reported: set = set()
    for v in sorted(values, key=lambda v: (v.received_at or v.ts)):
        if v.kind not in ("register", "instant"):
            continue
        k = (v.obis, v.ts)
        f = first.get(k)
        if f is None:
            first[k] = v
            continue
        if (v.new and f.value == v.value and v.received_at and f.received_at
                and v.received_at > f.received_at and k not in reported):
            reported.add(k)
            res.marks.append(Mark(meter.code, v.obis, v.ts, "frozen"))
            res.findings.append(finding("frozen_value", meter, v.received_at, f"frozen_value:{meter.code}:{v.obis}:{iso(v.ts)}",
                                        obis=v.obis, meter_time=v.ts, value=v.value,
                                        first_received=f.received_at, again_received=v.received_at))
    return res

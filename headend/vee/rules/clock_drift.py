"""clock_drift: meter time and receive time of a value read live (register, instant)
differ by more than `clock_drift_s`. Intervals, journal entries and archive registers
(day/month starts) carry past meter times by nature, and a value the gateway stamped has
no meter time: none of them is judged, nor clears an episode. One event per episode; a read within the limit
clears it."""
from __future__ import annotations

from operator import attrgetter

from askue.headend.vee.model import Clear, Mark, MeterFacts, MeterValue, Result
from askue.headend.vee.rules.common import Ctx, finding

_LIVE_KINDS = ("register", "instant")
_received = attrgetter("received_at")


def check(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> Result:
    res = Result()
    limit = ctx.thresholds.clock_drift_s
    live = sorted((v for v in values if v.new and v.live_clock and v.received_at and v.kind in _LIVE_KINDS),
                  key=_received)
    key = f"clock_drift:{meter.code}"
    in_episode = False
    cleared = False
    for v in live:
        drift = (v.ts - v.received_at).total_seconds()  # type: ignore[operator]
        if abs(drift) > limit:
            res.marks.append(Mark(meter.code, v.obis, v.ts, "clock_drift"))
            if not in_episode:
                res.findings.append(finding("clock_drift", meter, v.received_at, key, obis=v.obis,  # type: ignore[arg-type]
                                            meter_time=v.ts, received_at=v.received_at,
                                            drift_s=round(drift, 1), limit_s=limit))
                in_episode = True
        else:
            if in_episode or not cleared:  # the first good read, and the first after an episode
                res.clears.append(Clear(key, meter.code, v.received_at))  # type: ignore[arg-type]
                cleared = True
            in_episode = False
    return res

"""reverse_reading: a cumulative register decreased.

Not a reverse: a rollover at the register's digit capacity (99998.1 → 2.3 on five
digits is +4.2), a meter exchange (the new meter has its own id and baseline, or the
same id restarted at a recorded identity change), values from before installation.
"""
from __future__ import annotations

from askue.headend.vee.model import Finding, Mark, MeterFacts, MeterValue, Result, by_channel
from askue.headend.vee.rules.common import Ctx, finding, forward_delta, iso, reset_between


def check(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> Result:
    res = Result()
    th = ctx.thresholds
    # One condition per meter and read time: a step back shows on the total and every
    # tariff register at once; the total (tariff 0) leads, the others are listed with it.
    raised: dict[str, Finding] = {}
    if len({v.obis for v in values}) == len(values):
        return res  # one value per channel (a live poll judged from memory): nothing to compare
    channels = sorted(by_channel(values, "register").items(), key=_channel_order)
    installed, resets = meter.installed_at, meter.baseline_resets  # in_service, reset_between inlined: per value
    for obis, series in channels:
        prev: MeterValue | None = None
        for v in series:
            if installed is not None and v.ts < installed:
                continue
            if prev is not None and v.new and v.ts > prev.ts:
                if (resets and reset_between(meter, prev.ts, v.ts)) or (meter.identity_changed
                                                                        and v.value < prev.value):
                    res.marks.append(Mark(meter.code, obis, v.ts, "meter_exchange"))
                elif v.value < prev.value - th.reverse_tolerance:
                    delta = forward_delta(prev.value, v.value, meter, th, v.ts)
                    if delta is not None:
                        res.marks.append(Mark(meter.code, obis, v.ts, "rollover"))
                    else:
                        res.marks.append(Mark(meter.code, obis, v.ts, "reverse_reading"))
                        key = f"reverse_reading:{meter.code}:{iso(v.ts)}"
                        if key in raised:
                            raised[key].evidence.setdefault("also", []).append(obis)
                        else:
                            raised[key] = finding(
                                "reverse_reading", meter, v.ts, key, obis=obis, previous=prev.value,
                                previous_ts=prev.ts, current=v.value, drop=round(prev.value - v.value, 9))
                            res.findings.append(raised[key])
                        # The reversed value is not a baseline: later reads compare with the last good one,
                        # unless they confirm the new level (then it is the meter's new baseline).
                        if not _confirmed(series, v, th.reverse_tolerance):
                            continue
            if prev is None or v.ts > prev.ts:
                prev = v
    return res


_ORDER: dict[str, tuple[bool, str]] = {}


def _channel_order(kv: tuple[str, list]) -> tuple[bool, str]:
    """Total (tariff 0) first, then by OBIS; memoised: a handful of codes, judged per meter and batch."""
    obis = kv[0]
    key = _ORDER.get(obis)
    if key is None:
        if len(_ORDER) > 10_000:
            _ORDER.clear()
        key = _ORDER[obis] = (_tariff(obis) != "0", obis)
    return key


def _tariff(obis: str) -> str:
    parts = obis.split(".")
    return parts[4] if len(parts) == 6 else "0"


def _confirmed(series: list[MeterValue], v: MeterValue, tol: float) -> bool:
    """The meter went on from the lower value: the next read is not back at the old level."""
    later = [x for x in series if x.ts > v.ts]
    return not later or later[0].value >= v.value - tol

"""Runs the rules. Both the live path and the offline checker call these functions."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from askue.headend.vee.model import MeterFacts, MeterValue, Result
from askue.headend.vee.rules import (
    clock_drift,
    frozen_value,
    house_imbalance,
    interval_gap,
    journal,
    no_contact,
    reverse_reading,
    spike,
    sum_mismatch,
    tamper,
    verification,
    voltage,
    zero_consumption,
)
from askue.headend.vee.rules.common import Ctx, forward_delta, main_register, reset_between
from askue.headend.vee.thresholds import ThresholdConfig

SeriesRule = Callable[[MeterFacts, list[MeterValue], Ctx], Result]

# Rules judged on a meter's value series (new values + history for context).
SERIES_RULES: dict[str, SeriesRule] = {
    "reverse_reading": reverse_reading.check,
    "spike": spike.check,
    "zero_consumption": zero_consumption.check,
    "interval_gap": interval_gap.check,
    "sum_mismatch": sum_mismatch.check,
    "clock_drift": clock_drift.check,
    "frozen_value": frozen_value.check,
    "tamper": tamper.check,
    "journal": journal.check,
    "voltage": voltage.check,
}


# The kinds of value each rule looks at: the others are filtered out before it runs.
RULE_KINDS: dict[str, frozenset[str]] = {
    "reverse_reading": frozenset({"register"}),
    "spike": frozenset({"register", "interval"}),
    "zero_consumption": frozenset({"register"}),
    "interval_gap": frozenset({"interval"}),
    "sum_mismatch": frozenset({"register", "interval"}),
    "clock_drift": frozenset({"register", "instant"}),
    "frozen_value": frozenset({"register", "instant"}),
    "tamper": frozenset({"event"}),
    "journal": frozenset({"event"}),
    "voltage": frozenset({"instant"}),
}


def check_series(meter: MeterFacts, values: list[MeterValue], ctx: Ctx,
                 rules: Iterable[str] | None = None) -> Result:
    res = Result()
    by_kind: dict[str, list[MeterValue]] = {}
    for v in values:
        by_kind.setdefault(v.kind, []).append(v)
    for name in rules or SERIES_RULES:
        present = [by_kind[k] for k in RULE_KINDS[name] if k in by_kind]
        vals = present[0] if len(present) == 1 else [v for lst in present for v in lst]
        if vals or name == "zero_consumption":
            res.extend(SERIES_RULES[name](meter, vals, ctx))
    return res


def check_meter_state(meter: MeterFacts, last_session: datetime | None, ctx: Ctx) -> Result:
    """Rules on the meter's state rather than its values: contact and verification."""
    return Result().extend(no_contact.check_contact(meter, last_session, ctx)).extend(
        verification.check_verification(meter, ctx))


def register_consumption(meter: MeterFacts, values: list[MeterValue], start: datetime, end: datetime,
                         ctx: Ctx) -> float | None:
    """Consumption on the main register between the reads nearest to start and end
    (× the multiplier in force at each read), rollover-aware; None without reads on both sides."""
    regs = sorted((v for v in values if v.kind == "register" and v.obis == main_register(meter)),
                  key=lambda v: v.ts)
    if len(regs) < 2:
        return None
    a = min(regs, key=lambda v: abs(v.ts - start))
    b = min(regs, key=lambda v: abs(v.ts - end))
    if b.ts <= a.ts or abs(a.ts - start) > timedelta(days=1) or abs(b.ts - end) > timedelta(days=1):
        return None
    total = 0.0
    prev = a
    for v in regs:
        if v.ts <= a.ts or v.ts > b.ts:
            continue
        if reset_between(meter, prev.ts, v.ts):
            total += v.value * meter.multiplier_at(v.ts)  # new register from ~0
        else:
            d = forward_delta(prev.value, v.value, meter, ctx.thresholds, v.ts)
            total += (d or 0.0) * meter.multiplier_at(v.ts)
        prev = v
    return total


def check_houses(meters: Mapping[str, MeterFacts], values_by_meter: Mapping[str, list[MeterValue]],
                 period: tuple[datetime, datetime], cfg: ThresholdConfig, now: datetime) -> Result:
    """house_imbalance for every house that has a balance meter and individual meters."""
    res = Result()
    houses: dict[str, list[MeterFacts]] = {}
    for m in meters.values():
        if m.house and not m.retired:
            houses.setdefault(m.house, []).append(m)
    for house, ms in houses.items():
        for bal in (m for m in ms if m.is_balance):
            ctx = Ctx(now=now, thresholds=cfg.for_meter(bal))
            q_bal = register_consumption(bal, values_by_meter.get(bal.code, []), *period, ctx)
            flats: dict[str, float] = {}
            complete = True
            for m in ms:
                if m.is_balance or m.resource != bal.resource:
                    continue
                q = register_consumption(m, values_by_meter.get(m.code, []), *period,
                                         Ctx(now=now, thresholds=cfg.for_meter(m)))
                if q is None:
                    complete = False  # a flat without reads: the sum would be wrong, not imbalanced
                    break
                flats[m.code] = q
            if q_bal is not None and flats and complete:
                res.extend(house_imbalance.check_house(house, bal, q_bal, flats, period, ctx))
    return res

"""What every rule gets besides the values, and shared helpers."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from askue.headend.events import catalogue
from askue.headend.vee.model import Finding, MeterFacts, MeterValue
from askue.headend.vee.thresholds import Thresholds

MSK = ZoneInfo("Europe/Moscow")

# Total cumulative registers (tariff zone 0) and their load-profile channel.
REGISTER_TO_PROFILE: dict[str, str] = {
    "1.0.1.8.0.255": "1.0.1.29.0.255",
    "1.0.2.8.0.255": "1.0.2.29.0.255",
    "1.0.3.8.0.255": "1.0.3.29.0.255",
    "1.0.4.8.0.255": "1.0.4.29.0.255",
    "8.0.1.0.0.255": "8.0.1.29.0.255",
    "9.0.1.0.0.255": "9.0.1.29.0.255",
    "6.0.1.0.0.255": "6.0.1.29.0.255",
    "7.0.3.0.0.255": "7.0.3.29.0.255",
}
# The register a resource is billed on (DESIGN.md channels).
MAIN_REGISTER: dict[str, str] = {
    "electricity": "1.0.1.8.0.255",
    "cold_water": "8.0.1.0.0.255",
    "hot_water": "9.0.1.0.0.255",
    "heat": "6.0.1.0.0.255",
    "gas": "7.0.3.0.0.255",
}
PROFILE_TO_REGISTER = {v: k for k, v in REGISTER_TO_PROFILE.items()}
# Phase voltages L1, L2, L3 (IEC 62056-61).
VOLTAGE_CHANNELS = ("1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255")


@dataclass(frozen=True)
class Ctx:
    now: datetime
    thresholds: Thresholds = field(default_factory=Thresholds)
    tz: tzinfo = MSK  # days are local days


def finding(kind: str, meter: MeterFacts, ts: datetime, key: str, *, obis: str | None = None,
            severity: str | None = None, event: bool = True, **evidence: object) -> Finding:
    ru, en = catalogue.titles(kind)
    return Finding(kind=kind, meter=meter.code, severity=severity or catalogue.severity(kind),  # type: ignore[arg-type]
                   ts=ts, key=key, title_ru=ru, title_en=en, obis=obis, evidence=evidence, event=event)


def iso(t: datetime) -> str:
    """Times in condition keys are UTC, so the same instant always gives the same key."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_day(t: datetime, tz: tzinfo) -> date:
    return t.astimezone(tz).date()


def day_start(d: date, tz: tzinfo) -> datetime:
    return datetime.combine(d, time(0), tzinfo=tz)


def forward_delta(prev: float, cur: float, meter: MeterFacts, th: Thresholds,
                  at: datetime | None = None) -> float | None:
    """Consumption between two register values, rollover-aware (at the capacity in force at
    `at`, the later value's time); None when it went backwards."""
    if cur >= prev - th.reverse_tolerance:
        return max(0.0, cur - prev)
    cap = meter.capacity_at(at)
    if cap is not None:
        wrapped = cur + cap - prev
        if 0 <= wrapped <= th.rollover_max_share * cap:
            return wrapped
    return None


def reset_between(meter: MeterFacts, a: datetime, b: datetime) -> bool:
    return any(a < r <= b for r in meter.baseline_resets)


def in_service(meter: MeterFacts, v: MeterValue) -> bool:
    """Values from before the meter's installation belong to nobody's baseline."""
    return meter.installed_at is None or v.ts >= meter.installed_at


def daily_consumption(meter: MeterFacts, values: list[MeterValue], ctx: Ctx) -> dict[date, float]:
    """Consumption per complete local day: from load-profile intervals where a day is
    complete, else from register reads close to local midnight (rollover-aware)."""
    out: dict[date, float] = {}
    # from intervals: all slots present
    per_day: dict[tuple[str, date], dict[datetime, MeterValue]] = {}
    for v in values:
        if v.kind == "interval" and v.period_s and v.obis in PROFILE_TO_REGISTER and in_service(meter, v):
            if v.obis != _main_profile(meter):
                continue
            d = local_day(v.ts - timedelta(seconds=v.period_s), ctx.tz)
            per_day.setdefault((v.obis, d), {})[v.ts] = v
    for (_, d), slots in per_day.items():
        period = next(iter(slots.values())).period_s or 1800
        expected = int((day_start(d + timedelta(days=1), ctx.tz) - day_start(d, ctx.tz)).total_seconds() // period)
        if len(slots) >= expected and day_start(d + timedelta(days=1), ctx.tz) <= ctx.now:
            out[d] = sum(v.value for v in slots.values())
    # from registers: the read nearest to each local midnight
    regs = sorted((v for v in values if v.kind == "register" and v.obis == _main_register(meter)
                   and in_service(meter, v)), key=lambda v: v.ts)
    if regs:
        tol = timedelta(seconds=max(ctx.thresholds.sum_boundary_tolerance_s, 3600))
        at_midnight: dict[date, MeterValue] = {}
        for v in regs:
            lt = v.ts.astimezone(ctx.tz)
            d = lt.date() if lt.hour < 12 else lt.date() + timedelta(days=1)
            mid = day_start(d, ctx.tz)
            if abs(v.ts - mid) <= tol and (d not in at_midnight or abs(v.ts - mid) < abs(at_midnight[d].ts - mid)):
                at_midnight[d] = v
        for d, v in at_midnight.items():
            nxt = at_midnight.get(d + timedelta(days=1))
            if nxt is None or d in out or reset_between(meter, v.ts, nxt.ts):
                continue
            delta = forward_delta(v.value, nxt.value, meter, ctx.thresholds, nxt.ts)
            if delta is not None:
                out[d] = delta
    return out


def _main_register(meter: MeterFacts) -> str:
    return MAIN_REGISTER.get(meter.resource, MAIN_REGISTER["electricity"])


def _main_profile(meter: MeterFacts) -> str:
    return REGISTER_TO_PROFILE[_main_register(meter)]


main_register = _main_register
main_profile = _main_profile


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0

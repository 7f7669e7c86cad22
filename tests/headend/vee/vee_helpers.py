"""Small value builders shared by the VEE tests."""
from __future__ import annotations

from datetime import datetime, timedelta

from askue.headend.vee.model import Value
from askue.headend.vee.rules.common import MSK, Ctx
from askue.headend.vee.thresholds import Thresholds

T0 = datetime(2026, 11, 1, tzinfo=MSK)
A_PLUS = "1.0.1.8.0.255"
PROFILE = "1.0.1.29.0.255"


def reg(v: float, t: datetime, *, meter: str = "m1", new: bool = True, rx: datetime | None = None) -> Value:
    return Value(meter, A_PLUS, "register", t, v, received_at=rx or t, new=new)


def iv(v: float, t: datetime, period: int = 1800, meter: str = "m1", obis: str = PROFILE) -> Value:
    return Value(meter, obis, "interval", t, v, received_at=t + timedelta(minutes=5), period_s=period)


def ctx(now: datetime = T0 + timedelta(days=40), **th) -> Ctx:
    return Ctx(now=now, thresholds=Thresholds(**th))


def kinds(res) -> list[str]:
    return [f.kind for f in res.findings]

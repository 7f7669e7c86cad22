"""Small value builders shared by the VEE tests."""
from __future__ import annotations

from datetime import datetime, timedelta

from askue.headend.vee.model import MeterValue
from askue.headend.vee.rules.common import MSK, Ctx
from askue.headend.vee.thresholds import Thresholds

T0 = datetime(2026, 11, 1, tzinfo=MSK)
A_PLUS = "1.0.1.8.0.255"
PROFILE = "1.0.1.29.0.255"


def reg(v: float, t: datetime, *, meter: str = "m1", new: bool = True, rx: datetime | None = None) -> MeterValue:
    return MeterValue(meter, A_PLUS, "register", t, v, received_at=rx or t, new=new)


def iv(v: float, t: datetime, period: int = 1800, meter: str = "m1", obis: str = PROFILE) -> MeterValue:
    return MeterValue(meter, obis, "interval", t, v, received_at=t + timedelta(minutes=5), period_s=period)


def ctx(now: datetime = T0 + timedelta(days=40), **th) -> Ctx:
    return Ctx(now=now, thresholds=Thresholds(**th))


def kinds(res) -> list[str]:
    return [f.kind for f in res.findings]


# ---- live path: MQTT contract values and the ingest merge -----------------------------
# The canonical unit of a channel's medium (OBIS group A), as a gateway sends it.
MEDIUM_UNITS = {"1": "kWh", "6": "Gcal", "7": "m3", "8": "m3", "9": "m3"}


def c_reg(meter: str, value: float, at: datetime, obis: str = A_PLUS, recv_delay_s: float = 5):
    from askue.contract import Value as CValue

    return CValue(meter_id=meter, obis=obis, kind="register", value=value, unit=MEDIUM_UNITS.get(obis[0], "kWh"),
                  received_at=at + timedelta(seconds=recv_delay_s), meter_time=at)


def c_val(meter: str, kind: str, obis: str, value: float, at: datetime, recv_delay_s: float = 5,
          period_s: int | None = None):
    from askue.contract import Value as CValue

    unit = MEDIUM_UNITS.get(obis.split(".")[0], "kWh") if kind in ("register", "interval") else ""
    return CValue(meter_id=meter, obis=obis, kind=kind, value=value, unit=unit, period_s=period_s,
                  received_at=at + timedelta(seconds=recv_delay_s), meter_time=at)


def pending(values, gw: str = "gw1", seq: int = 1):
    from askue.contract import DataMessage
    from askue.headend.ingest.batch import Pending

    msg = DataMessage(v=1, gateway_id=gw, seq=seq, sent_at=T0, values=list(values), meters=[])
    p = Pending()
    p.data.append(msg)
    p.seen[gw] = T0
    p.n_values = len(values)
    return p

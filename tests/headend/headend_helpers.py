"""Helpers shared by the head-end storage tests: payload builders."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from askue.contract import DataMessage, MeterStatus, Value, encode

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def reg(meter: str, value: float, at: datetime, obis: str = "1.0.1.8.0.255", recv_delay_s: float = 5) -> Value:
    return Value(meter_id=meter, obis=obis, kind="register", value=value, unit="kWh",
                 received_at=at + timedelta(seconds=recv_delay_s), meter_time=at)


def interval(meter: str, value: float, end: datetime, period_s: int = 1800, obis: str = "1.0.1.29.0.255") -> Value:
    return Value(meter_id=meter, obis=obis, kind="interval", value=value, unit="kWh",
                 received_at=end + timedelta(seconds=30), meter_time=end, period_s=period_s)


def data_msg(values: list[Value], gw: str = "gw1", seq: int = 1, meters: list[MeterStatus] | None = None) -> DataMessage:
    return DataMessage(v=1, gateway_id=gw, seq=seq, sent_at=T0, values=values, meters=meters or [])


def payload(values: list[Value], gw: str = "gw1", seq: int = 1) -> bytes:
    return encode(data_msg(values, gw, seq))

"""Helpers shared by the head-end storage tests: payload builders, batches, merge connections."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from askue.contract import DataMessage, MeterStatus, Value, encode
from askue.headend.ingest import merge
from askue.headend.ingest.batch import Pending

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


# The canonical unit of a channel's medium (OBIS group A): what a gateway sends for it.
MEDIUM_UNITS = {"1": "kWh", "6": "Gcal", "7": "m3", "8": "m3", "9": "m3"}


def reg(meter: str, value: float, at: datetime, obis: str = "1.0.1.8.0.255", recv_delay_s: float = 5,
        unit: str | None = None) -> Value:
    return Value(meter_id=meter, obis=obis, kind="register", value=value,
                 unit=unit or MEDIUM_UNITS.get(obis.split(".")[0], "kWh"),
                 received_at=at + timedelta(seconds=recv_delay_s), meter_time=at)


def interval(meter: str, value: float, end: datetime, period_s: int = 1800, obis: str = "1.0.1.29.0.255") -> Value:
    return Value(meter_id=meter, obis=obis, kind="interval", value=value, unit="kWh",
                 received_at=end + timedelta(seconds=30), meter_time=end, period_s=period_s)


def data_msg(values: list[Value], gw: str = "gw1", seq: int = 1, meters: list[MeterStatus] | None = None) -> DataMessage:
    return DataMessage(v=1, gateway_id=gw, seq=seq, sent_at=T0, values=values, meters=meters or [])


def payload(values: list[Value], gw: str = "gw1", seq: int = 1) -> bytes:
    return encode(data_msg(values, gw, seq))


async def merge_conn(dsn: str) -> psycopg.AsyncConnection:
    """An autocommit connection prepared for merge.write (its staging table exists)."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    return conn


def pending(*msgs: DataMessage) -> Pending:
    """A batch of data messages, as the consumer hands it to merge.write."""
    p = Pending()
    for m in msgs:
        p.data.append(m)
        p.seen[m.gateway_id] = T0
        p.n_values += len(m.values)
    return p


async def wait_healthy(http: httpx.AsyncClient, tries: int = 100) -> None:
    """Until a head-end started in this loop answers /api/v1/health."""
    for _ in range(tries):
        try:
            if (await http.get("/api/v1/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)

"""A batch whose database connection dies before the commit must not pass for written.

The ingest acknowledges a batch's MQTT messages once `merge.write` returns; if it returned
after the server went away (here the backend is terminated inside a batch hook, as a
PostgreSQL crash does), the broker would drop messages that were never stored.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from faultkit import db_count

from askue.contract.payloads import SCHEMA_VERSION, DataMessage, Value
from askue.headend.ingest import merge
from askue.headend.ingest.batch import Pending

pytestmark = pytest.mark.faults


async def _terminate_own_backend(conn: psycopg.AsyncConnection, batch) -> None:
    await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")


async def test_write_never_returns_normally_when_the_connection_died(pg_dsn: str) -> None:
    t0 = datetime.now(UTC).replace(microsecond=0)
    values = [Value(meter_id="c1", obis="1.0.1.8.0.255", kind="register", value=float(i), unit="kWh",
                    received_at=t0, meter_time=t0 + timedelta(seconds=i)) for i in range(5)]
    msg = DataMessage(v=SCHEMA_VERSION, gateway_id="gw-c", seq=1, sent_at=t0, values=values)
    pending = Pending(data=[msg], seen={"gw-c": t0}, n_values=len(values))
    ctx = merge.MergeContext(hooks=[_terminate_own_backend])
    conn = await psycopg.AsyncConnection.connect(pg_dsn)
    await merge.prepare_connection(conn)
    try:
        with pytest.raises(psycopg.OperationalError):
            await merge.write(conn, ctx, pending)
    finally:
        await conn.close()
    # Raised, so the consumer keeps the messages unacknowledged and writes them again.
    assert db_count(pg_dsn) == 0

"""The ingest's pooled connections: stored times come back in the zone decoded values carry."""
from __future__ import annotations

from datetime import UTC

import psycopg
import pytest

from askue.headend.ingest import merge


@pytest.mark.parametrize(("zone", "kept"), [("Etc/UTC", False), ("UTC", True), ("Europe/Moscow", True)])
async def test_utc_under_another_name_becomes_utc(pg_dsn: str, zone: str, kept: bool) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        db = c.info.dbname
        c.execute(f"ALTER DATABASE {db} SET timezone TO '{zone}'")
    conn = await psycopg.AsyncConnection.connect(pg_dsn)
    try:
        await merge.prepare_connection(conn)
        assert conn.info.parameter_status("TimeZone") == (zone if kept else "UTC")
        async with conn.cursor(binary=True) as cur:  # the VEE lookups' cursor kind
            await cur.execute("SELECT now(), '2026-12-01 00:00:00+00'::timestamptz")
            now, t = await cur.fetchone()
        if zone == "Europe/Moscow":  # a real zone other than UTC stays what the server says
            assert str(t.tzinfo) == "Europe/Moscow" and t.utcoffset().total_seconds() == 3 * 3600
        else:  # the very object decoded values carry: compared without working out offsets
            assert now.tzinfo is UTC and t.tzinfo is UTC
        await conn.rollback()
        # the setting outlives the transaction it was made in (the pool hands it on)
        assert (await (await conn.execute("SHOW TimeZone")).fetchone())[0] == (zone if kept else "UTC")
    finally:
        await conn.close()

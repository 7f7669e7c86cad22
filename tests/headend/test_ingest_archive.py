"""Register values from the meter's own archive (contract Value.archive) through the ingest:
stored with their mark, and never taken for the meter's clock by VEE; a live read with a
wrong clock still is. Both the COPY path and the merge path (a replayed batch) keep the mark."""
from __future__ import annotations

from datetime import timedelta

import msgspec
import psycopg
from headend_helpers import T0, data_msg, merge_conn, pending, reg

from askue.headend.ingest import merge
from askue.headend.storage import hooks

A = "1.0.1.8.0.255"


def archived(meter: str, value: float, boundary, archive: str, received_days: float):
    v = reg(meter, value, boundary)
    return msgspec.structs.replace(v, archive=archive, received_at=boundary + timedelta(days=received_days))


async def test_archive_values_are_marked_and_not_judged_as_clock(pg_dsn: str) -> None:
    conn = await merge_conn(pg_dsn)
    ctx = merge.MergeContext(hooks=hooks.composed())
    live_at = T0 + timedelta(days=3, hours=12)
    msg = data_msg([
        archived("m1", 100.0, T0, "month_start", 3.5),  # 1 March 00:00, read 3.5 days later
        archived("m1", 130.0, T0 + timedelta(days=3), "day_start", 0.5),
        reg("m1", 140.0, live_at),  # live, clock right
        reg("m2", 50.0, live_at - timedelta(hours=2), recv_delay_s=2 * 3600),  # live, clock 2 h behind
    ])
    await merge.write(conn, ctx, pending(msg))
    await merge.write(conn, ctx, pending(msg))  # a replay takes the merge path: nothing new, nothing lost
    rows = await (await conn.execute(
        "SELECT m.code, r.ts, r.value, r.archive FROM register_readings r JOIN meters m ON m.id = r.meter_id "
        "ORDER BY m.code, r.ts")).fetchall()
    assert rows == [("m1", T0, 100.0, "month_start"), ("m1", T0 + timedelta(days=3), 130.0, "day_start"),
                    ("m1", live_at, 140.0, None), ("m2", live_at - timedelta(hours=2), 50.0, None)]
    events = await (await conn.execute(
        "SELECT m.code, e.kind FROM abnormal_events e JOIN meters m ON m.id = e.meter_id ORDER BY 1, 2")).fetchall()
    assert ("m2", "clock_drift") in events
    assert not [e for e in events if e[0] == "m1"]
    await conn.close()


async def test_merge_path_keeps_the_archive_mark(pg_dsn: str) -> None:
    conn = await merge_conn(pg_dsn)
    ctx = merge.MergeContext(hooks=hooks.composed())
    first = data_msg([reg("m1", 140.0, T0 + timedelta(days=3, hours=12))], seq=1)
    await merge.write(conn, ctx, pending(first))
    # the same live value again with an archive value: the COPY meets the stored row, the
    # staged merge stores the archive value with its mark
    both = data_msg([reg("m1", 140.0, T0 + timedelta(days=3, hours=12)),
                     archived("m1", 100.0, T0, "month_start", 3.5)], seq=2)
    await merge.write(conn, ctx, pending(both))
    got = await (await conn.execute("SELECT value, archive FROM register_readings ORDER BY ts")).fetchall()
    assert got == [(100.0, "month_start"), (140.0, None)]
    assert not await (await conn.execute("SELECT 1 FROM abnormal_events WHERE kind = 'clock_drift'")).fetchall()
    await conn.close()


def test_migration_adds_the_column(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as c:
        assert c.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 'register_readings' "
                         "AND column_name = 'archive'").fetchone() == ("text",)

"""The live hook against real PostgreSQL: reasons on values, events raised once,
lifecycle, estimates replaced by real values."""
from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from vee_helpers import T0, c_reg, c_val, pending

from askue.headend.ingest import merge
from askue.headend.vee import live


async def _setup(dsn: str) -> tuple[psycopg.AsyncConnection, merge.MergeContext]:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    await conn.execute("INSERT INTO organisations (code, name) VALUES ('UK1', 'УК Один')")
    await conn.execute(
        "INSERT INTO meters (code, serial, resource, digits, org_id, status) "
        "SELECT 'E5', 'S5', 'electricity', 5, id, 'active' FROM organisations WHERE code = 'UK1'")
    return conn, merge.MergeContext(hooks=[live.batch_hook])


async def _events(conn) -> list[tuple]:
    cur = await conn.execute("SELECT kind, m.code, state, e.evidence->>'previous', e.org_id IS NOT NULL "
                             "FROM abnormal_events e LEFT JOIN meters m ON m.id = e.meter_id ORDER BY e.id")
    return await cur.fetchall()


async def test_rollover_marks_reason_and_reverse_raises_once(pg_dsn: str) -> None:
    conn, ctx = await _setup(pg_dsn)
    await merge.write(conn, ctx, pending([c_reg("E5", 99998.1, T0), c_reg("E5", 2.3, T0 + timedelta(hours=1))]))
    assert await _events(conn) == []
    cur = await conn.execute("SELECT value, reasons FROM register_readings ORDER BY ts")
    assert await cur.fetchall() == [(99998.1, []), (2.3, ["rollover"])]
    # a reverse in the next batch, judged against the stored value
    await merge.write(conn, ctx, pending([c_reg("E5", 1.0, T0 + timedelta(hours=2))], seq=2))
    assert await _events(conn) == [("reverse_reading", "E5", "open", "2.3", True)]
    # the same batch replayed and a rescan-like re-judgement change nothing
    await merge.write(conn, ctx, pending([c_reg("E5", 1.0, T0 + timedelta(hours=2))], seq=2))
    async with conn.transaction():
        from askue.headend.storage.values import InsertedBatch, ValueRow

        mid = (await (await conn.execute("SELECT id FROM meters WHERE code='E5'")).fetchone())[0]
        await live.batch_hook(conn, InsertedBatch(rows=[ValueRow("register", mid, "1.0.1.8.0.255",
                                                                 T0 + timedelta(hours=2), "meter",
                                                                 T0 + timedelta(hours=2, seconds=5), 1.0)]))
    assert len(await _events(conn)) == 1
    await conn.close()


async def test_unknown_meter_values_are_judged_too(pg_dsn: str) -> None:
    conn, ctx = await _setup(pg_dsn)
    await merge.write(conn, ctx, pending([c_reg("NEW1", 50.0, T0), c_reg("NEW1", 40.0, T0 + timedelta(hours=1))]))
    assert await _events(conn) == [("reverse_reading", "NEW1", "open", "50.0", False)]
    await conn.close()


async def test_voltage_episode_raised_once_and_auto_closed(pg_dsn: str) -> None:
    conn, ctx = await _setup(pg_dsn)
    u = "1.0.32.7.0.255"
    await merge.write(conn, ctx, pending([c_val("E5", "instant", u, 190.0, T0)]))
    await merge.write(conn, ctx, pending([c_val("E5", "instant", u, 191.0, T0 + timedelta(minutes=1))], seq=2))
    ev = await _events(conn)
    assert [(e[0], e[2]) for e in ev] == [("voltage", "open")]
    await merge.write(conn, ctx, pending([c_val("E5", "instant", u, 230.0, T0 + timedelta(minutes=2))], seq=3))
    row = await (await conn.execute("SELECT state, resolved_by, cleared_at IS NOT NULL, auto_closed "
                                    "FROM abnormal_events")).fetchone()
    assert row == ("resolved", "vee", True, True)
    # a new episode is a new event
    await merge.write(conn, ctx, pending([c_val("E5", "instant", u, 180.0, T0 + timedelta(minutes=3))], seq=4))
    assert [(e[0], e[2]) for e in await _events(conn)] == [("voltage", "resolved"), ("voltage", "open")]
    await conn.close()


async def test_tamper_and_clock_drift_and_gap(pg_dsn: str) -> None:
    conn, ctx = await _setup(pg_dsn)
    prof = "1.0.1.29.0.255"
    vals = [c_val("E5", "event", "0.0.99.98.4.255", 1, T0),
            c_reg("E5", 10.0, T0 + timedelta(minutes=5), recv_delay_s=600),
            c_val("E5", "interval", prof, 0.2, T0 + timedelta(minutes=30), period_s=1800),
            c_val("E5", "interval", prof, 0.2, T0 + timedelta(minutes=150), period_s=1800)]
    await merge.write(conn, ctx, pending(vals))
    assert sorted(e[0] for e in await _events(conn)) == ["clock_drift", "interval_gap", "tamper"]
    reasons = await (await conn.execute("SELECT reasons FROM register_readings")).fetchone()
    assert reasons == (["clock_drift"],)
    await conn.close()


@pytest.mark.storage_modes
async def test_real_value_replaces_an_estimate(pg_dsn: str) -> None:
    conn, ctx = await _setup(pg_dsn)
    prof = "1.0.1.29.0.255"
    mid = (await (await conn.execute("SELECT id FROM meters WHERE code='E5'")).fetchone())[0]
    await conn.execute("SELECT askue_ensure_month_partition('intervals', %s)", (T0.date().replace(day=1),))
    await conn.execute(
        "INSERT INTO intervals (meter_id, obis, ts, received_at, value, quality, reasons, source, period_s) "
        "VALUES (%s, %s, %s, %s, 0.5, 'E', '{estimated,method:linear}', 'estimate', 1800)",
        (mid, prof, T0 + timedelta(minutes=60), T0 + timedelta(hours=3)))
    await conn.execute("INSERT INTO vee_estimate_slots VALUES ('interval', %s, %s, %s)",
                       (mid, prof, T0 + timedelta(minutes=60)))
    await merge.write(conn, ctx, pending([c_val("E5", "interval", prof, 0.31, T0 + timedelta(minutes=60),
                                                period_s=1800)]))
    rows = await (await conn.execute("SELECT value, quality, source FROM intervals")).fetchall()
    assert rows == [(0.31, "A", "gateway")]
    audit = await (await conn.execute("SELECT actor, action, old->>'value', new->>'value' FROM audit_log")).fetchall()
    assert audit == [("vee", "estimate_replaced", "0.5", "0.31")]
    await conn.close()


async def test_a_broken_threshold_row_does_not_stop_vee(pg_dsn: str) -> None:
    conn, ctx = await _setup(pg_dsn)
    await conn.execute("INSERT INTO vee_thresholds (scope, name, settings) VALUES "
                       "('model', 'X', %s), ('default', '', %s)",
                       ('{"no_such": 1}', '{"reverse_tolerance": 0.5}'))
    await merge.write(conn, ctx, pending([c_reg("E5", 100.0, T0), c_reg("E5", 99.6, T0 + timedelta(hours=1)),
                                          c_reg("E5", 99.0, T0 + timedelta(hours=2))]))
    assert [e[0] for e in await _events(conn)] == ["reverse_reading"]  # 0.4 within tolerance, 1.0 not
    await conn.close()


async def test_reverse_against_stored_values_one_batch_at_a_time(pg_dsn: str) -> None:
    """The hook fetches a stored value only when a new one is below it by more than the
    tolerance: the same findings as judging the whole series at once."""
    conn, ctx = await _setup(pg_dsn)
    await conn.execute("INSERT INTO vee_thresholds (scope, name, settings) VALUES ('default', '', %s)",
                       ('{"reverse_tolerance": 0.5}',))
    for i, value in enumerate((100.0, 99.6, 99.0, 99.5, 99999.0, 3.0)):
        await merge.write(conn, ctx, pending([c_reg("E5", value, T0 + timedelta(hours=i))], seq=i))
    # 99.6 within the tolerance of 100.0; 99.0 is 0.6 below 99.6; 99.5 goes on from 99.0 (the
    # meter confirmed its new level); 99999.0 → 3.0 is a rollover on five digits
    assert await _events(conn) == [("reverse_reading", "E5", "open", "99.6", True)]
    cur = await conn.execute("SELECT value, reasons FROM register_readings ORDER BY ts")
    assert await cur.fetchall() == [(100.0, []), (99.6, []), (99.0, ["reverse_reading"]), (99.5, []),
                                    (99999.0, []), (3.0, ["rollover"])]
    await conn.close()


async def test_a_value_delivered_again_does_not_hide_the_latest_stored_one(pg_dsn: str) -> None:
    """A batch with a repeat of an old reading and a new one: the new one is judged against
    the latest stored reading (150 after the reverse), not the repeated older copy (200)."""
    conn, ctx = await _setup(pg_dsn)
    await merge.write(conn, ctx, pending([c_reg("E5", 200.0, T0)]))
    await merge.write(conn, ctx, pending([c_reg("E5", 150.0, T0 + timedelta(hours=1))], seq=2))
    await merge.write(conn, ctx, pending([c_reg("E5", 200.0, T0, recv_delay_s=900),
                                          c_reg("E5", 160.0, T0 + timedelta(hours=2))], seq=3))
    kinds = [k for k, *_ in await _events(conn)]
    assert kinds.count("reverse_reading") == 1 and "frozen_value" in kinds
    await conn.close()


async def test_interval_gaps_against_stored_intervals_one_batch_at_a_time(pg_dsn: str) -> None:
    """The hook fetches a stored interval only when it is not exactly one period before the
    first new one: gaps and period changes against stored intervals are still found."""
    conn, ctx = await _setup(pg_dsn)
    prof = "1.0.1.29.0.255"
    ends = [(30, 1800), (60, 1800), (120, 1800), (135, 900), (150, 900), (181, 900)]
    for i, (minutes, period) in enumerate(ends):
        await merge.write(conn, ctx, pending([c_val("E5", "interval", prof, 0.2, T0 + timedelta(minutes=minutes),
                                                    period_s=period)], seq=i))
    cur = await conn.execute("SELECT kind, ts FROM abnormal_events ORDER BY ts")
    # 60 → 120 misses the interval ending at 90; 135 is a 15-minute interval after a 30-minute
    # one (a tie: the stored one's period counts first); 150 follows 135 in its own period;
    # 181 is off the grid
    assert [(k, ts - T0) for k, ts in await cur.fetchall()] == [("interval_gap", timedelta(minutes=90))]
    cur = await conn.execute("SELECT ts, reasons FROM intervals ORDER BY ts")
    assert [(ts - T0, r) for ts, r in await cur.fetchall()] == [
        (timedelta(minutes=30), []), (timedelta(minutes=60), []), (timedelta(minutes=120), []),
        (timedelta(minutes=135), ["wrong_period"]), (timedelta(minutes=150), []),
        (timedelta(minutes=181), ["wrong_period"])]
    await conn.close()


async def test_frozen_value_raised_live_but_not_for_qos_duplicates(pg_dsn: str) -> None:
    """A new poll returning a stored meter time again (later receive time) is frozen_value;
    a QoS 1 duplicate or replay (same receive time) and a quick re-poll are not."""
    conn, ctx = await _setup(pg_dsn)
    await merge.write(conn, ctx, pending([c_reg("E5", 120.5, T0)]))
    await merge.write(conn, ctx, pending([c_reg("E5", 120.5, T0)]))  # exact replay
    await merge.write(conn, ctx, pending([c_reg("E5", 120.5, T0, recv_delay_s=60)], seq=2))  # within the margin
    assert [k for k, *_ in await _events(conn)] == []
    # polled again 15 minutes later, the meter still reports the same record
    await merge.write(conn, ctx, pending([c_reg("E5", 120.5, T0, recv_delay_s=900)], seq=3))
    kinds = [k for k, *_ in await _events(conn)]
    assert "frozen_value" in kinds
    cur = await conn.execute("SELECT count(*), max(received_at) - min(received_at), array_agg(reasons) "
                             "FROM register_readings")
    n, spread, reasons = await cur.fetchone()
    assert (n, spread) == (1, timedelta(0))  # the first copy stays, unchanged in value and time
    assert "frozen" in reasons[0]  # (with clock_drift: a stopped clock falls behind, which is true too)
    # the next poll with the same stale record does not raise it again
    await merge.write(conn, ctx, pending([c_reg("E5", 120.5, T0, recv_delay_s=1800)], seq=4))
    assert [k for k, *_ in await _events(conn)].count("frozen_value") == 1
    await conn.close()

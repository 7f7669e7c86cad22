"""Batch merge against real PostgreSQL: idempotence, ordering, rollups, unknown meters, dead letters."""
from __future__ import annotations

import asyncio
from datetime import date, timedelta

import psycopg
import pytest
from headend_helpers import T0, data_msg, interval, merge_conn, payload, pending, reg

from askue.contract import MeterStatus, Topics
from askue.headend.ingest import merge
from askue.headend.ingest.batch import Pending
from askue.headend.ingest.consumer import _classify

# storage semantics: once on TimescaleDB, once on plain PostgreSQL
pytestmark = pytest.mark.storage_modes


async def _dump(conn: psycopg.AsyncConnection, table: str) -> list[tuple]:
    cur = await conn.execute(f"SELECT m.code, t.obis, t.ts, t.received_at, t.value, t.quality, t.source, t.gateway_id, "
                             f"t.seq FROM {table} t JOIN meters m ON m.id = t.meter_id ORDER BY 1, 2, 3")
    return await cur.fetchall()


async def test_same_batch_twice_gives_same_rows(pg_dsn: str) -> None:
    msg = data_msg([reg("m1", 100.5, T0), reg("m1", 101.0, T0 + timedelta(hours=1)),
                    interval("m1", 0.25, T0 + timedelta(minutes=30))])
    conn = await merge_conn(pg_dsn)
    ctx = merge.MergeContext(hooks=[])
    first = await merge.write(conn, ctx, pending(msg))
    regs1, ints1 = await _dump(conn, "register_readings"), await _dump(conn, "intervals")
    roll1 = await (await conn.execute("SELECT * FROM rollup_interval_daily")).fetchall()
    second = await merge.write(conn, ctx, pending(msg))
    assert await _dump(conn, "register_readings") == regs1
    assert await _dump(conn, "intervals") == ints1
    assert await (await conn.execute("SELECT * FROM rollup_interval_daily")).fetchall() == roll1
    assert [r[4] for r in regs1] == [100.5, 101.0]
    assert regs1[0][2] == T0 and regs1[0][3] == T0 + timedelta(seconds=5)  # meter time and receive time kept apart
    assert regs1[0][5:] == ("A", "gateway", "gw1", 1)
    assert first.meter_ids and second.rows == []  # no hooks: rows not fetched
    await conn.close()


async def test_hooks_see_only_newly_inserted_rows(pg_dsn: str) -> None:
    seen: list[list] = []

    async def hook(conn, batch) -> None:
        seen.append(sorted((r.obis, r.kind, r.value) for r in batch.rows))

    conn = await merge_conn(pg_dsn)
    ctx = merge.MergeContext(hooks=[hook])
    await merge.write(conn, ctx, pending(data_msg([reg("m1", 1.0, T0)])))
    await merge.write(conn, ctx, pending(data_msg([reg("m1", 1.0, T0), reg("m1", 2.0, T0 + timedelta(hours=1))])))
    assert seen == [[("1.0.1.8.0.255", "register", 1.0)], [("1.0.1.8.0.255", "register", 2.0)]]
    await conn.close()


async def test_failing_hook_does_not_lose_the_batch(pg_dsn: str) -> None:
    async def bad(conn, batch) -> None:
        await conn.execute("SELECT 1/0")

    conn = await merge_conn(pg_dsn)
    await merge.write(conn, merge.MergeContext(hooks=[bad]), pending(data_msg([reg("m1", 1.0, T0)])))
    assert len(await _dump(conn, "register_readings")) == 1
    await conn.close()


async def test_out_of_order_batches_end_equal(pg_dsn: str) -> None:
    vals = [reg("m2", 10.0 + i, T0 + timedelta(hours=i)) for i in range(48)]
    conn = await merge_conn(pg_dsn)
    ctx = merge.MergeContext()
    await merge.write(conn, ctx, pending(data_msg(vals[24:], seq=2)))
    await merge.write(conn, ctx, pending(data_msg(vals[:30], seq=1)))
    rows = await _dump(conn, "register_readings")
    assert [r[4] for r in rows] == [10.0 + i for i in range(48)]
    # Moscow days: 2026-03-01 03:00 local onwards; daily register rollup keeps first/last by meter time
    cur = await conn.execute("SELECT day, first_value, last_value, n FROM rollup_register_daily ORDER BY day")
    daily = await cur.fetchall()
    assert daily == [(date(2026, 3, 1), 10.0, 30.0, 21), (date(2026, 3, 2), 31.0, 54.0, 24),
                     (date(2026, 3, 3), 55.0, 57.0, 3)]
    # each bucket knows the previous bucket's last reading, whatever the arrival order
    cur = await conn.execute("SELECT day, prev_value FROM rollup_register_daily ORDER BY day")
    assert await cur.fetchall() == [(date(2026, 3, 1), None), (date(2026, 3, 2), 30.0), (date(2026, 3, 3), 54.0)]
    await conn.close()


async def test_late_day_between_two_days_updates_prev_of_the_next(pg_dsn: str) -> None:
    conn = await merge_conn(pg_dsn)
    ctx = merge.MergeContext()
    noon = T0 + timedelta(hours=9)  # 12:00 Moscow
    await merge.write(conn, ctx, pending(data_msg([reg("g1", 100.0, noon), reg("g1", 130.0, noon + timedelta(days=2))])))
    q = "SELECT day, prev_value FROM rollup_register_daily ORDER BY day"
    assert await (await conn.execute(q)).fetchall() == [(date(2026, 3, 1), None), (date(2026, 3, 3), 100.0)]
    await merge.write(conn, ctx, pending(data_msg([reg("g1", 110.0, noon + timedelta(days=1))])))
    assert await (await conn.execute(q)).fetchall() == [(date(2026, 3, 1), None), (date(2026, 3, 2), 100.0),
                                                        (date(2026, 3, 3), 110.0)]
    # a later reading on 1 March raises that day's last value: the next day's prev follows
    await merge.write(conn, ctx, pending(data_msg([reg("g1", 105.0, noon + timedelta(hours=5))])))
    assert await (await conn.execute(q)).fetchall() == [(date(2026, 3, 1), None), (date(2026, 3, 2), 105.0),
                                                        (date(2026, 3, 3), 110.0)]
    monthly = await (await conn.execute("SELECT month, first_value, last_value, prev_value "
                                        "FROM rollup_register_monthly")).fetchall()
    assert monthly == [(date(2026, 3, 1), 100.0, 130.0, None)]
    await conn.close()


async def test_late_interval_changes_daily_rollup(pg_dsn: str) -> None:
    # 2026-03-01 21:00Z = 2026-03-02 00:00 in Moscow: intervals ending 21:30Z..23:00Z are on 2 March local
    day_start = T0 + timedelta(hours=21)
    first = [interval("m3", 1.0, day_start + timedelta(minutes=30 * k)) for k in (1, 2, 4)]
    conn = await merge_conn(pg_dsn)
    ctx = merge.MergeContext()
    await merge.write(conn, ctx, pending(data_msg(first)))
    q = "SELECT value, n FROM rollup_interval_daily WHERE day = '2026-03-02'"
    assert await (await conn.execute(q)).fetchall() == [(3.0, 3)]
    # the late interval (ending 22:30Z) fills the gap; a replay of an old one adds nothing
    await merge.write(conn, ctx, pending(data_msg([interval("m3", 2.5, day_start + timedelta(minutes=90)), first[0]])))
    assert await (await conn.execute(q)).fetchall() == [(5.5, 4)]
    # the interval ending exactly at local midnight belongs to the day before
    await merge.write(conn, ctx, pending(data_msg([interval("m3", 7.0, day_start)])))
    assert await (await conn.execute(q)).fetchall() == [(5.5, 4)]
    prev = await (await conn.execute("SELECT value FROM rollup_interval_daily WHERE day = '2026-03-01'")).fetchall()
    assert prev == [(7.0,)]
    monthly = await (await conn.execute("SELECT month, value FROM rollup_interval_monthly")).fetchall()
    assert monthly == [(date(2026, 3, 1), 12.5)]
    await conn.close()


async def test_unknown_meter_kept_as_unassigned(pg_dsn: str) -> None:
    conn = await merge_conn(pg_dsn)
    await conn.execute("INSERT INTO meters (code, status, resource) VALUES ('known', 'active', 'electricity')")
    msg = data_msg([reg("known", 5.0, T0), reg("stranger", 7.0, T0)],
                   meters=[MeterStatus(meter_id="stranger", last_contact=T0 + timedelta(seconds=9), ok=False,
                                       last_error="timeout", serial="SN9")])
    await merge.write(conn, merge.MergeContext(), pending(msg))
    cur = await conn.execute("SELECT code, status, gateway_id, last_contact, last_ok, last_error, reported_serial "
                             "FROM meters ORDER BY code")
    rows = await cur.fetchall()
    assert rows[0][:2] == ("known", "active") and rows[0][3] == T0 + timedelta(seconds=5)
    assert rows[1] == ("stranger", "unassigned", "gw1", T0 + timedelta(seconds=9), False, "timeout", "SN9")
    assert [r[4] for r in await _dump(conn, "register_readings")] == [5.0, 7.0]
    gw = await (await conn.execute("SELECT id, online, last_seq FROM gateways")).fetchall()
    assert gw == [("gw1", True, 1)]
    await conn.close()


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "not valid JSON"),
    (b'{"v": 1, "gateway_id": "gw1", "seq": 1, "sent_at": "2026-03-01T00:00:00Z", "values": [{"meter_id": "m1", '
     b'"obis": "1.0.1.8.0", "kind": "register", "value": 1, "unit": "kWh", "received_at": "2026-03-01T00:00:00Z"}]}',
     "obis"),
    (b'{"v": 1, "gateway_id": "gw1", "seq": 1, "sent_at": "2026-03-01T00:00:00Z", "values": [{"meter_id": "m1", '
     b'"obis": "1.0.1.29.0.255", "kind": "interval", "value": 1, "unit": "kWh", '
     b'"received_at": "2026-03-01T00:00:00Z"}]}', "period_s"),
    (b'{"v": 9, "gateway_id": "gw1", "seq": 1, "sent_at": "2026-03-01T00:00:00Z", "values": []}', "version 9"),
    (payload([reg("m1", 1.0, T0)], gw="other"), "differs from the topic"),
])
async def test_malformed_payload_goes_to_dead_letters(pg_dsn: str, raw: bytes, reason: str) -> None:
    conn = await merge_conn(pg_dsn)
    p = Pending()
    _classify(Topics(), "askue/v1/gw1/data", raw, p)
    _classify(Topics(), "askue/v1/gw1/data", payload([reg("ok1", 3.0, T0)]), p)
    await merge.write(conn, merge.MergeContext(), p)
    dead = await (await conn.execute("SELECT topic, gateway_id, payload, reason FROM dead_letters")).fetchall()
    assert len(dead) == 1 and dead[0][:3] == ("askue/v1/gw1/data", "gw1", raw)
    assert reason in dead[0][3]
    # the good message in the same batch is stored; nothing of the bad one is
    assert [(r[0], r[4]) for r in await _dump(conn, "register_readings")] == [("ok1", 3.0)]
    assert [r[0] for r in await (await conn.execute("SELECT code FROM meters")).fetchall()] == ["ok1"]
    await conn.close()


async def test_meter_without_clock_keyed_by_receive_time(pg_dsn: str) -> None:
    from askue.contract import Value

    v = Value(meter_id="w1", obis="8.0.1.0.0.255", kind="register", value=12.345, unit="m3", received_at=T0)
    conn = await merge_conn(pg_dsn)
    await merge.write(conn, merge.MergeContext(), pending(data_msg([v])))
    row = await (await conn.execute("SELECT ts, ts_source, received_at FROM register_readings")).fetchone()
    assert row == (T0, "gateway", T0)
    await conn.close()


@pytest.mark.parametrize("storage_mode", ["plain"], indirect=True)  # hypertables make their own chunks
async def test_values_in_a_new_month_get_their_partition(pg_dsn: str) -> None:
    conn = await merge_conn(pg_dsn)
    ctx = merge.MergeContext()
    await merge.write(conn, ctx, pending(data_msg([reg("m1", 1.0, T0 - timedelta(days=400))])))
    where = await (await conn.execute("SELECT tableoid::regclass::text FROM register_readings")).fetchone()
    assert where == ("register_readings_202501",)
    await conn.close()


async def test_payload_the_database_refuses_goes_to_dead_letters_alone(pg_dsn: str, mqtt_broker) -> None:
    """seq beyond bigint passes the contract but not PostgreSQL: that message is dead-lettered, others stored."""
    from askue.headend.app import open_pool
    from askue.headend.config import Settings
    from askue.headend.ingest.consumer import Consumer

    s = Settings(dsn=pg_dsn, mqtt_host=mqtt_broker.host, mqtt_port=mqtt_broker.port, pool_max=1)
    pool = await open_pool(s, configure=merge.prepare_connection)
    try:
        c = Consumer(s, pool, merge.MergeContext())
        p = Pending()
        _classify(Topics(), "askue/v1/gw1/data", payload([reg("good", 1.0, T0)], seq=5), p)
        _classify(Topics(), "askue/v1/gw1/data", payload([reg("bad", 2.0, T0)], seq=2**70), p)
        await c._commit(p)
        async with pool.connection() as conn:
            stored = await (await conn.execute("SELECT m.code FROM register_readings r JOIN meters m "
                                               "ON m.id = r.meter_id")).fetchall()
            dead = await (await conn.execute("SELECT gateway_id, reason FROM dead_letters")).fetchall()
        assert stored == [("good",)]
        assert len(dead) == 1 and dead[0][0] == "gw1" and "database refused" in dead[0][1]
        assert c.stats.dead_letters == 1 and c.stats.batches == 1
    finally:
        await pool.close()


@pytest.mark.parametrize("storage_mode", ["plain"], indirect=True)  # TimescaleDB: interval rollups are caggs
async def test_recompute_rebuilds_buckets_after_an_edit(pg_dsn: str) -> None:
    from askue.headend.storage import rollups

    conn = await merge_conn(pg_dsn)
    day_start = T0 + timedelta(hours=21)
    await merge.write(conn, merge.MergeContext(), pending(data_msg(
        [interval("m5", 1.0, day_start + timedelta(minutes=30 * k)) for k in (1, 2, 3)])))
    # an in-place correction (as VEE editing does) is not seen by the insert path ...
    await conn.execute("UPDATE intervals SET value = 4.0, quality = 'M' WHERE ts = %s",
                       (day_start + timedelta(minutes=60),))
    q = "SELECT value, n FROM rollup_interval_daily WHERE day = '2026-03-02'"
    assert await (await conn.execute(q)).fetchall() == [(3.0, 3)]
    # ... until the channel's range is recomputed
    mid = (await (await conn.execute("SELECT id FROM meters WHERE code = 'm5'")).fetchone())[0]
    await rollups.recompute(conn, mid, "1.0.1.29.0.255", day_start, day_start + timedelta(hours=2))
    assert await (await conn.execute(q)).fetchall() == [(6.0, 3)]
    assert await (await conn.execute("SELECT value FROM rollup_interval_monthly")).fetchall() == [(6.0,)]
    await conn.close()


async def test_recompute_rebuilds_register_buckets_after_an_edit(pg_dsn: str) -> None:
    """Register rollups are tables kept by triggers in both modes: an in-place edit shows only
    once the channel is recomputed, and then in the day, the month and the next day's prev."""
    from askue.headend.storage import rollups

    conn = await merge_conn(pg_dsn)
    day = T0 + timedelta(hours=21)  # local midnight, 2 March
    await merge.write(conn, merge.MergeContext(), pending(data_msg(
        [reg("m6", v, day + timedelta(hours=h)) for h, v in ((1, 10.0), (12, 14.0), (23, 15.0), (25, 16.0))])))
    await conn.execute("UPDATE register_readings SET value = 14.5 WHERE ts = %s", (day + timedelta(hours=23),))
    q = ("SELECT day, first_value, last_value, prev_value FROM rollup_register_daily r JOIN meters m "
         "ON m.id = r.meter_id WHERE m.code = 'm6' ORDER BY day")
    assert await (await conn.execute(q)).fetchall() == [(date(2026, 3, 2), 10.0, 15.0, None),
                                                        (date(2026, 3, 3), 16.0, 16.0, 15.0)]
    mid = (await (await conn.execute("SELECT id FROM meters WHERE code = 'm6'")).fetchone())[0]
    await rollups.recompute(conn, mid, "1.0.1.8.0.255", day, day + timedelta(hours=23))
    assert await (await conn.execute(q)).fetchall() == [(date(2026, 3, 2), 10.0, 14.5, None),
                                                        (date(2026, 3, 3), 16.0, 16.0, 14.5)]
    month = await (await conn.execute("SELECT last_value FROM rollup_register_monthly")).fetchall()
    assert month == [(16.0,)]
    await conn.close()


async def test_values_with_and_without_reasons_in_one_batch(pg_dsn: str) -> None:
    """Decoded values without reasons carry none (not an empty list each); beside values with
    reasons, on the COPY path, the merge path and a meter planned value by value, every row
    keeps an empty array, never NULL."""
    flagged = reg("m7", 5.0, T0 + timedelta(hours=1))
    flagged.reasons = ["clock_invalid"]
    raw = payload([reg("m7", 4.0, T0), flagged, reg("m8", 1.0, T0)])
    conn = await merge_conn(pg_dsn)
    ctx = merge.MergeContext(hooks=[])
    for _ in range(2):  # a new meter (planned value by value), then the same batch again (merge path)
        p = Pending()
        _classify(Topics(), Topics().data("gw1"), raw, p)
        await merge.write(conn, ctx, p)
    later = [reg("m7", 6.0, T0 + timedelta(hours=2)), reg("m7", 7.0, T0 + timedelta(hours=3))]
    later[1].reasons = ["clock_invalid"]
    p = Pending()
    _classify(Topics(), Topics().data("gw1"), payload(later, seq=2), p)
    await merge.write(conn, ctx, p)  # a bound meter: the COPY path
    cur = await conn.execute("SELECT m.code, r.value, r.reasons FROM register_readings r JOIN meters m "
                             "ON m.id = r.meter_id ORDER BY 1, 2")
    assert await cur.fetchall() == [("m7", 4.0, []), ("m7", 5.0, ["clock_invalid"]), ("m7", 6.0, []),
                                    ("m7", 7.0, ["clock_invalid"]), ("m8", 1.0, [])]
    await conn.close()


async def test_a_meter_bound_by_a_concurrent_batch_is_not_quarantined(pg_dsn: str, monkeypatch) -> None:
    """Two batches meet a never-bound meter at once: the first binds it (first contact) and
    commits while the second is resolving, after the second's lookup found no binding. The
    second must find the binding (its values stored), not take the pair for a gateway that
    does not write that code (its values quarantined for the life of the process)."""
    from askue.headend.ingest import identity

    setup = await merge_conn(pg_dsn)
    await setup.execute("INSERT INTO meters (code, serial, resource, status) VALUES ('m7', 'S7', 'electricity', "
                        "'active')")
    first, second = await merge_conn(pg_dsn), await merge_conn(pg_dsn)
    ctx_first, ctx_second = merge.MergeContext(hooks=[]), merge.MergeContext(hooks=[])
    await first.execute("BEGIN")
    await merge.resolve_meters(first, ctx_first, pending(data_msg([reg("m7", 1.0, T0)])))  # binds m7, uncommitted
    ever_bound = identity._ever_bound  # noqa: SLF001

    async def racing(conn, meter_ids: list[int]) -> set[int]:
        if first.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            await first.execute("COMMIT")  # the first batch commits between the lookup and this check
        return await ever_bound(conn, meter_ids)

    monkeypatch.setattr(identity, "_ever_bound", racing)
    await merge.write(second, ctx_second, pending(data_msg([reg("m7", 2.0, T0 + timedelta(hours=1))], seq=2)))
    n = await (await setup.execute("SELECT count(*) FROM register_readings")).fetchone()
    q = await (await setup.execute("SELECT count(*) FROM quarantined_values")).fetchone()
    assert (n[0], q[0]) == (1, 0)
    # and the next message of that meter is stored too (the process's view holds the binding)
    await merge.write(second, ctx_second, pending(data_msg([reg("m7", 3.0, T0 + timedelta(hours=2))], seq=3)))
    n = await (await setup.execute("SELECT count(*) FROM register_readings")).fetchone()
    assert n[0] == 2
    for c in (setup, first, second):
        await c.close()


async def _held_at_lock_point(pg_dsn: str, monkeypatch) -> tuple[merge.MergeContext, asyncio.Event, list[str]]:
    """A context whose first batch stops after storing its values, before locking its meters'
    rows (in `_meter_status`) until the returned event is set; the list records which
    batches (by their first value's meter code) built their rows, in order."""
    ctx = merge.MergeContext(hooks=[])
    # the meters known and the month's partitions (chunks) there: a new chunk is another lock
    seed = await merge_conn(pg_dsn)
    await merge.write(seed, ctx, pending(data_msg([reg(c, 0.5, T0 - timedelta(hours=1)) for c in ("m1", "m3")]),
                                         data_msg([reg("m2", 0.5, T0 - timedelta(hours=1))], gw="gw2")))
    await seed.close()
    release = asyncio.Event()
    built: list[str] = []
    meter_status, rows = merge._meter_status, merge._rows  # noqa: SLF001

    async def held(conn, plan, p):
        if p.data[0].values[0].meter_id == "m1":
            await release.wait()
        await meter_status(conn, plan, p)

    def recorded(plan, p):
        built.append(p.data[0].values[0].meter_id)
        return rows(plan, p)

    monkeypatch.setattr(merge, "_meter_status", held)
    monkeypatch.setattr(merge, "_rows", recorded)
    return ctx, release, built


async def test_a_batch_of_other_meters_is_written_beside_an_unfinished_one(pg_dsn: str, monkeypatch) -> None:
    """Concurrent writers: a batch whose meters the batch before it does not hold goes straight
    on (its COPY and commit in a second backend), without waiting for the first to lock its rows."""
    ctx, release, built = await _held_at_lock_point(pg_dsn, monkeypatch)
    a, b = await merge_conn(pg_dsn), await merge_conn(pg_dsn)
    first = asyncio.create_task(merge.write(a, ctx, pending(data_msg([reg("m1", 1.0, T0)]))))
    while not built:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(merge.write(b, ctx, pending(data_msg([reg("m2", 5.0, T0)], gw="gw2"))), 30)
    assert not first.done()
    release.set()
    await first
    cur = await b.execute("SELECT m.code, r.value FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                          "ORDER BY 1")
    assert await cur.fetchall() == [("m1", 0.5), ("m1", 1.0), ("m2", 0.5), ("m2", 5.0), ("m3", 0.5)]
    assert ctx.in_flight == []
    for c in (a, b):
        await c.close()


async def test_a_batch_sharing_a_meter_waits_for_the_earlier_one(pg_dsn: str, monkeypatch) -> None:
    """A meter's values are written (and judged by VEE) in arrival order: a batch with a meter
    the unfinished batch before it holds builds nothing until that one has locked its rows."""
    ctx, release, built = await _held_at_lock_point(pg_dsn, monkeypatch)
    a, b = await merge_conn(pg_dsn), await merge_conn(pg_dsn)
    first = asyncio.create_task(merge.write(a, ctx, pending(data_msg([reg("m1", 1.0, T0)]))))
    while not built:
        await asyncio.sleep(0.01)
    second = asyncio.create_task(merge.write(b, ctx, pending(
        data_msg([reg("m3", 7.0, T0), reg("m1", 2.0, T0 + timedelta(hours=1))]))))
    while len(ctx.in_flight) < 2 or not ctx.in_flight[1].resolved.done():
        await asyncio.sleep(0.01)
    for _ in range(20):
        await asyncio.sleep(0)
    assert built == ["m1"] and not second.done()
    release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 30)
    assert built == ["m1", "m3"]
    cur = await b.execute("SELECT m.code, r.value FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                          "ORDER BY 1, 2")
    assert await cur.fetchall() == [("m1", 0.5), ("m1", 1.0), ("m1", 2.0), ("m2", 0.5), ("m3", 0.5), ("m3", 7.0)]
    for c in (a, b):
        await c.close()

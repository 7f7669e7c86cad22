"""Rollups kept by the value tables' triggers (migration 0007) against real PostgreSQL.

Whatever order and whatever writer the rows come by (ingest COPY, the ON CONFLICT
merge, plain INSERTs), the incrementally kept rollups must equal a rebuild from the
stored values, and the organisation/house daily consumption must equal the sum of
the per-meter rollups, before and after compaction and across registry changes.
"""
from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from headend_helpers import data_msg, interval, merge_conn, pending, reg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Scope
from askue.headend.ingest import merge
from askue.headend.storage import rollups
from askue.headend.storage.queries import consumption as cq

pytestmark = pytest.mark.storage_modes

START = datetime(2026, 2, 26, 20, 0, tzinfo=UTC)  # late evening in Moscow: days and a month turn inside the data
ROLLUP_TABLES = ("rollup_register_daily", "rollup_register_monthly", "rollup_interval_hourly",
                 "rollup_interval_daily", "rollup_interval_monthly")


async def _rollups(conn: psycopg.AsyncConnection) -> dict[str, list[tuple]]:
    out = {}
    for t in ROLLUP_TABLES:
        cur = await conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2, 3")
        # sums of floats in another order may differ in the last bits
        out[t] = [tuple(round(x, 9) if isinstance(x, float) else x for x in r) for r in await cur.fetchall()]
    return out


async def _registry(conn: psycopg.AsyncConnection) -> None:
    await conn.execute("INSERT INTO organisations (code, name) VALUES ('uk1', 'УК 1'), ('uk2', 'УК 2')")
    await conn.execute("INSERT INTO sites (code, org_id) VALUES ('h1', 1), ('h2', 1), ('h3', 2)")
    await conn.execute(
        "INSERT INTO meters (code, resource, org_id, site_id, digits, multiplier, is_balance) VALUES "
        "('e1', 'electricity', 1, 1, 5, 1, false), ('e2', 'electricity', 1, 1, 5, 1, false), "
        "('e3', 'electricity', 1, 2, 5, 40, false), ('odpu', 'electricity', 1, 1, 6, 30, true), "
        "('w1', 'cold_water', 1, 2, 5, 1, false), ('e4', 'electricity', 2, 3, 5, 1, false)")


def _values(rng: random.Random) -> list:
    """Half-hourly registers (two tariff zones on e1) and intervals over four days, one rollover."""
    out = []
    for code, zones in (("e1", (1, 2)), ("e2", (0,)), ("e3", (0,)), ("odpu", (0,)), ("w1", (0,)), ("e4", (0,))):
        total = {z: 99_950.0 if code == "e2" else 1000.0 * (1 + z) for z in zones}
        for k in range(4 * 48):
            t = START + timedelta(minutes=30 * k)
            for z in zones:
                total[z] += rng.choice((0.0, 0.5, 1.25, 3.0))
                value = total[z] % 100_000 if code == "e2" else total[z]
                obis = "8.0.1.0.0.255" if code == "w1" else f"1.0.1.8.{z}.255"
                out.append(reg(code, round(value, 2), t, obis=obis))
            if code == "e1":
                out.append(interval(code, rng.choice((0.25, 0.5, 1.0)), t + timedelta(minutes=30)))
    return out


async def _channels(conn: psycopg.AsyncConnection) -> list[tuple[int, str]]:
    cur = await conn.execute("SELECT DISTINCT meter_id, obis FROM register_readings UNION "
                             "SELECT DISTINCT meter_id, obis FROM intervals ORDER BY 1, 2")
    return await cur.fetchall()


async def _rebuild_all(conn: psycopg.AsyncConnection) -> None:
    for mid, obis in await _channels(conn):
        await rollups.recompute(conn, mid, obis, START - timedelta(days=1), START + timedelta(days=6))


async def test_rollups_from_shuffled_replayed_batches_equal_a_rebuild(pg_dsn: str) -> None:
    rng = random.Random(11)
    conn = await merge_conn(pg_dsn)
    await _registry(conn)
    values = _values(rng)
    rng.shuffle(values)  # late and out-of-order data in every batch
    ctx = merge.MergeContext(hooks=[])
    cuts = sorted(rng.sample(range(1, len(values)), 12))
    chunks = [values[a:b] for a, b in zip([0, *cuts], [*cuts, len(values)], strict=True)]
    for i, chunk in enumerate(chunks):
        await merge.write(conn, ctx, pending(data_msg(chunk, seq=i)))
        if i % 3 == 0:  # replays of earlier batches (the merge path) add nothing
            await merge.write(conn, ctx, pending(data_msg(chunks[rng.randrange(i + 1)], seq=i)))
    # some through plain INSERTs, as manual readings and imports write
    await conn.execute("INSERT INTO register_readings (meter_id, obis, ts, received_at, value, source) "
                       "SELECT 1, '1.0.1.8.1.255', ts + interval '10 days', now(), value + 500, 'manual' "
                       "FROM register_readings WHERE meter_id = 1 AND obis = '1.0.1.8.1.255' "
                       "AND ts < %s + interval '1 day'", (START,))
    n = (await (await conn.execute("SELECT count(*) FROM register_readings")).fetchone())[0]
    assert n == sum(1 for v in values if v.kind == "register") + 48
    kept = await _rollups(conn)
    assert all(kept[t] for t in ROLLUP_TABLES)
    await _rebuild_all(conn)
    assert await _rollups(conn) == kept
    # prev_value is the last reading of the bucket before, over gaps too
    cur = await conn.execute(
        "SELECT count(*) FROM rollup_register_daily r WHERE prev_value IS DISTINCT FROM ("
        "SELECT x.last_value FROM rollup_register_daily x WHERE x.meter_id = r.meter_id AND x.obis = r.obis "
        "AND x.day < r.day ORDER BY x.day DESC LIMIT 1)")
    assert (await cur.fetchone())[0] == 0
    await conn.close()


async def _both_paths(conn: psycopg.AsyncConnection, q: cq.ConsumptionQuery) -> tuple[list, list]:
    """The query's answer (pre-summed daily figures) and the same summed from per-meter rollups."""
    fast = await cq.consumption(conn, q, Scope(None))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(cq._sql(q, "TRUE"), {"key": q.key, "start": q.start, "end": q.end,
                                               "resource": q.resource, "is_balance": q.meter_class == "balance"})
        slow = await cur.fetchall()

    def norm(rows):
        return [(r["bucket"], r["resource"], r["zone"], r["meter_class"], r["group_key"], round(r["value"], 6),
                 r["meters"]) for r in rows]
    return norm(fast), norm(slow)


async def test_presummed_consumption_equals_per_meter_sums(pg_dsn: str) -> None:
    rng = random.Random(5)
    conn = await merge_conn(pg_dsn)
    await _registry(conn)
    values = _values(rng)
    rng.shuffle(values)
    ctx = merge.MergeContext(hooks=[])
    for i in range(0, len(values), 500):
        await merge.write(conn, ctx, pending(data_msg(values[i:i + 500], seq=i)))
    queries = [cq.ConsumptionQuery(level="organisation", key="uk1", start=date(2026, 2, 26), end=date(2026, 3, 3)),
               cq.ConsumptionQuery(level="organisation", key="uk1", start=date(2026, 2, 26), end=date(2026, 3, 3),
                                   group="house"),
               cq.ConsumptionQuery(level="organisation", key="uk2", start=date(2026, 2, 27), end=date(2026, 3, 1)),
               cq.ConsumptionQuery(level="house", key="h1", start=date(2026, 2, 26), end=date(2026, 3, 3),
                                   meter_class="balance"),
               cq.ConsumptionQuery(level="house", key="h2", start=date(2026, 2, 26), end=date(2026, 3, 3),
                                   resource="electricity")]

    async def check(stage: str) -> None:
        for q in queries:
            fast, slow = await _both_paths(conn, q)
            assert fast and fast == slow, f"{stage}: {q}"

    await check("pending only")
    folded = (await (await conn.execute("SELECT askue_consumption_compact()")).fetchone())[0]
    assert folded > 0
    assert (await (await conn.execute("SELECT count(*) FROM rollup_consumption_pending")).fetchone())[0] == 0
    await check("compacted")
    # the rollover on e2 (99,999 → 0) counts as use, not as a negative figure
    fast, _ = await _both_paths(conn, queries[0])
    assert all(r[5] >= 0 for r in fast)
    # registry changes move a meter's days: another house and organisation, a new CT ratio, a class
    await conn.execute("UPDATE meters SET site_id = 3, org_id = 2 WHERE code = 'e2'")
    await conn.execute("UPDATE meters SET multiplier = 80 WHERE code = 'e3'")
    await conn.execute("UPDATE meters SET is_balance = true WHERE code = 'e1'")
    await conn.execute("UPDATE meters SET last_contact = now()")  # not a registry change: nothing moves
    await check("after registry changes")
    # late data for a day in the middle, and an in-place edit rebuilt by recompute
    mid = (await (await conn.execute("SELECT id FROM meters WHERE code = 'e3'")).fetchone())[0]
    t = START + timedelta(days=1, minutes=5)
    await merge.write(conn, ctx, pending(data_msg([reg("e3", 1500.0, t)], seq=10**6)))
    await conn.execute("UPDATE register_readings SET value = value + 7 WHERE meter_id = %s AND ts > %s",
                       (mid, START + timedelta(days=2)))
    await rollups.recompute(conn, mid, "1.0.1.8.0.255", START, START + timedelta(days=4))
    await check("after late data and an edit")
    await conn.execute("SELECT askue_consumption_compact()")
    await check("compacted again")
    await conn.close()


async def test_copy_path_and_merge_path(pg_dsn: str) -> None:
    """New values go in by COPY; a batch holding a stored value takes the merge path, and the
    next few batches too (a replay usually spans several)."""
    conn = await merge_conn(pg_dsn)
    ctx = merge.MergeContext(hooks=[])
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    await merge.write(conn, ctx, pending(data_msg([reg("m1", 1.0, t0), reg("m1", 2.0, t0 + timedelta(hours=1))])))
    assert ctx.merge_only == 0
    batch = await merge.write(conn, ctx, pending(data_msg([reg("m1", 2.0, t0 + timedelta(hours=1)),
                                                           reg("m1", 3.0, t0 + timedelta(hours=2))])))
    assert ctx.merge_only == merge.MERGE_ONLY_AFTER_CONFLICT - 1
    assert batch.rows == []  # no hooks: rows not fetched
    cur = await conn.execute("SELECT value FROM register_readings ORDER BY ts")
    assert [r[0] for r in await cur.fetchall()] == [1.0, 2.0, 3.0]
    cur = await conn.execute("SELECT first_value, last_value, n FROM rollup_register_daily")
    assert await cur.fetchall() == [(1.0, 3.0, 3)]
    # two copies of one value in a single batch (a QoS 1 redelivery): stored once
    ctx2 = merge.MergeContext(hooks=[])
    v = reg("m1", 4.0, t0 + timedelta(hours=3))
    await merge.write(conn, ctx2, pending(data_msg([v]), data_msg([v])))
    cur = await conn.execute("SELECT count(*), max(n) FROM register_readings, rollup_register_daily")
    assert await cur.fetchone() == (4, 4)
    await conn.close()

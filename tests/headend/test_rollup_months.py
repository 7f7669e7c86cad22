"""Monthly register rollups kept for closed months only (migration 0052) against real
PostgreSQL: the open months live in the daily rollup, a month is folded from its days once it
has ended, and the consumption figures are the same before and after, and the same as when
every month is kept by the insert trigger (a database whose open months start today)."""
from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from headend_helpers import data_msg, merge_conn, pending, reg

from askue.devservices.postgres import PgCluster
from askue.headend.auth.permissions import Scope
from askue.headend.ingest import merge
from askue.headend.storage import rollups, tasks
from askue.headend.storage.queries import consumption as cq

pytestmark = pytest.mark.storage_modes

START = datetime(2026, 1, 30, 20, 0, tzinfo=UTC)  # three local month ends inside the data
OPEN_FROM = date(2026, 1, 1)  # in the database under test, every month of the data is open
_names = itertools.count()


@pytest.fixture
def reference_dsn(pg_cluster: PgCluster, pg_templates: Callable[[str], str], storage_mode: str) -> Iterator[str]:
    """A second fresh database: its open months start at the migration (today), so the insert
    trigger keeps every month of the test's data in the monthly rollup itself."""
    name = f"ref_months_{next(_names)}"
    dsn = pg_cluster.create_database(name, template=pg_templates(storage_mode))
    try:
        yield dsn
    finally:
        pg_cluster.drop_database(name)


async def _registry(conn: psycopg.AsyncConnection) -> None:
    await conn.execute("INSERT INTO organisations (code, name) VALUES ('uk1', 'УК 1')")
    await conn.execute("INSERT INTO sites (code, org_id) VALUES ('h1', 1), ('h2', 1)")
    await conn.execute(
        "INSERT INTO meters (code, resource, org_id, site_id, digits, multiplier) VALUES "
        "('e1', 'electricity', 1, 1, 5, 1), ('e2', 'electricity', 1, 1, 5, 1), "
        "('e3', 'electricity', 1, 2, 5, 40), ('w1', 'cold_water', 1, 2, 5, 1)")


def _values(rng: random.Random) -> list:
    """Two-hourly registers over ~70 days (a silent week on e3, a rollover on e2)."""
    out = []
    for code, zones in (("e1", (1, 2)), ("e2", (0,)), ("e3", (0,)), ("w1", (0,))):
        total = {z: 99_000.0 if code == "e2" else 1000.0 * (1 + z) for z in zones}
        for k in range(70 * 12):
            t = START + timedelta(hours=2 * k)
            if code == "e3" and 200 <= k < 290:
                continue
            for z in zones:
                total[z] += rng.choice((0.0, 0.5, 1.25, 3.0))
                value = total[z] % 100_000 if code == "e2" else total[z]
                obis = "8.0.1.0.0.255" if code == "w1" else f"1.0.1.8.{z}.255"
                out.append(reg(code, round(value, 2), t, obis=obis))
    return out


async def _load(dsn: str, values: list, open_from: date | None) -> psycopg.AsyncConnection:
    conn = await merge_conn(dsn)
    if open_from is not None:
        await conn.execute("UPDATE rollup_register_months SET open_from = %s", (open_from,))
    await _registry(conn)
    ctx = merge.MergeContext(hooks=[])
    for i in range(0, len(values), 700):
        await merge.write(conn, ctx, pending(data_msg(values[i:i + 700], seq=i)))
    return conn


async def _figures(conn: psycopg.AsyncConnection) -> list[tuple]:
    out = []
    for gran, group in (("month", "total"), ("month", "meter"), ("year", "house"), ("day", "meter")):
        q = cq.ConsumptionQuery(level="organisation", key="uk1", granularity=gran, group=group,
                                start=date(2026, 1, 1), end=date(2026, 5, 1))
        out += [(gran, r["bucket"], r["zone"], r["group_key"], round(r["value"], 6), r["meters"])
                for r in await cq.consumption(conn, q, Scope(None))]
    return out


async def _monthly(conn: psycopg.AsyncConnection) -> list[tuple]:
    cur = await conn.execute("SELECT * FROM rollup_register_monthly ORDER BY 1, 2, 3")
    return [tuple(round(x, 9) if isinstance(x, float) else x for x in r) for r in await cur.fetchall()]


async def test_open_months_come_from_days_and_closed_ones_are_folded_the_same(pg_dsn: str,
                                                                               reference_dsn: str) -> None:
    values = _values(random.Random(3))
    random.Random(4).shuffle(values)  # late and out-of-order data in every batch
    conn = await _load(pg_dsn, values, OPEN_FROM)
    ref = await _load(reference_dsn, values, None)
    assert await _monthly(conn) == []  # the ingest kept days only
    expected = await _figures(ref)
    assert [f for f in expected if f[0] == "month"], "the reference has monthly figures"
    assert await _figures(conn) == expected

    # the storage task's call closes nothing in the future; closing up to April folds Jan-Mar
    assert await tasks.close_months(conn) > 0  # today is after the data: every month of it ends
    assert await _monthly(conn) == await _monthly(ref)
    assert (await (await conn.execute("SELECT open_from FROM rollup_register_months")).fetchone())[0] > date(2026, 4, 1)
    assert await tasks.close_months(conn) == 0
    assert await _figures(conn) == expected

    # late data into a closed month, then an in-place edit rebuilt: both databases alike
    late = [reg("e1", 1001.0, datetime(2026, 2, 14, 3, 0, tzinfo=UTC), obis="1.0.1.8.1.255"),
            reg("e3", 1500.0, datetime(2026, 2, 10, 3, 0, tzinfo=UTC))]
    for c in (conn, ref):
        await merge.write(c, merge.MergeContext(hooks=[]), pending(data_msg(late, seq=10**6)))
        mid = (await (await c.execute("SELECT id FROM meters WHERE code = 'e2'")).fetchone())[0]
        await c.execute("UPDATE register_readings SET value = value + 7 WHERE meter_id = %s AND ts > %s",
                        (mid, datetime(2026, 3, 20, tzinfo=UTC)))
        await rollups.recompute(c, mid, "1.0.1.8.0.255", datetime(2026, 3, 20, tzinfo=UTC),
                                datetime(2026, 4, 10, tzinfo=UTC))
    assert await _monthly(conn) == await _monthly(ref)
    assert await _figures(conn) == await _figures(ref)
    await conn.close()
    await ref.close()


async def test_a_month_is_closed_only_after_its_writers_committed(pg_dsn: str) -> None:
    """The fold waits for a transaction still writing days of the month it closes, then
    folds them too; a writer after the fold sees the month closed and keeps it itself."""
    conn = await _load(pg_dsn, [], OPEN_FROM)
    writer = await merge_conn(pg_dsn)
    folder = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    t = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)
    ctx = merge.MergeContext(hooks=[])
    await merge.write(conn, ctx, pending(data_msg([reg("e1", 10.0, t)])))
    async with writer.transaction():
        await merge.write(writer, merge.MergeContext(hooks=[]), pending(data_msg([reg("e1", 12.5, t + timedelta(days=1))], seq=2)))
        fold = asyncio.ensure_future(folder.execute("SELECT askue_rollup_close_months('2026-03-01')"))
        await asyncio.sleep(1.0)
        assert not fold.done(), "the fold must wait for the writer's commit"
    await asyncio.wait_for(fold, 30)
    cur = await conn.execute("SELECT month, first_value, last_value, n FROM rollup_register_monthly")
    assert await cur.fetchall() == [(date(2026, 2, 1), 10.0, 12.5, 2)]
    # February is closed now: the insert trigger keeps its monthly bucket from here on
    await merge.write(conn, ctx, pending(data_msg([reg("e1", 14.0, t + timedelta(days=5))], seq=3)))
    cur = await conn.execute("SELECT last_value, n FROM rollup_register_monthly")
    assert await cur.fetchall() == [(14.0, 3)]
    # March is still open: its values stay in the days
    await merge.write(conn, ctx, pending(data_msg([reg("e1", 20.0, datetime(2026, 3, 5, tzinfo=UTC))], seq=4)))
    cur = await conn.execute("SELECT count(*) FROM rollup_register_monthly")
    assert (await cur.fetchone())[0] == 1
    for c in (conn, writer, folder):
        await c.close()

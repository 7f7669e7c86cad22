"""Billing against a real PostgreSQL (the session cluster, a fresh migrated database per
test): the feed while writers insert concurrently, snapshots across a rollover and a
meter exchange, closing and recalculation, imports that store nothing when broken."""
from __future__ import annotations

import asyncio
import io
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest
from openpyxl import load_workbook

from askue.headend.auth.permissions import Principal
from askue.headend.billing import exporters, feed, importers, snapshots, tasks
from askue.headend.billing.formats import integral_xlsx, xml80020
from askue.headend.billing.formats.errors import ExportFormatError, IncompleteDataError
from askue.headend.readings import service as readings
from askue.headend.readings import window

MSK = ZoneInfo("Europe/Moscow")
A_PLUS = "1.0.1.8.0.255"


async def _conn(dsn: str, autocommit: bool = True) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(dsn, autocommit=autocommit)


async def _org(conn, code="uk1", inn="7707083893") -> int:
    cur = await conn.execute("INSERT INTO organisations (code, name, inn) VALUES (%s, %s, %s) RETURNING id",
                             (code, f"УК {code}", inn))
    return (await cur.fetchone())[0]


async def _meter(conn, code, org_id, **kw) -> int:
    cols = ["code", "org_id", *kw]
    cur = await conn.execute(f"INSERT INTO meters ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
                             "RETURNING id", (code, org_id, *kw.values()))
    return (await cur.fetchone())[0]


async def _reg(conn, mid, ts, value, obis=A_PLUS, quality="A", source="gateway"):
    await conn.execute("INSERT INTO register_readings (meter_id, obis, ts, received_at, value, quality, source) "
                       "VALUES (%s, %s, %s, %s, %s, %s, %s)", (mid, obis, ts, ts, value, quality, source))


def _local(y, m, d, h=0) -> datetime:
    return datetime(y, m, d, h, tzinfo=MSK)


# ------------------------------------------------------------------------------- feed

async def _drain(conn, cursor: feed.Cursor, seen: list, limit: int, org_ids=None) -> feed.Cursor:
    while True:
        page = await feed.fetch_page(conn, cursor, limit=limit, org_ids=org_ids)
        seen += [(i.meter, i.ts) for i in page.items]
        cursor = feed.Cursor.decode(page.next_cursor)
        if not page.has_more:
            return cursor


@pytest.mark.storage_modes
async def test_late_commit_is_not_skipped(pg_dsn):
    """A transaction that started writing first but commits last: an id cursor would
    skip its rows; the feed holds later rows back until it has finished."""
    admin = await _conn(pg_dsn)
    org = await _org(admin)
    mid = await _meter(admin, "m1", org)
    # another meter: writers of one meter's month wait for each other on its rollup row
    mid2 = await _meter(admin, "m2", org)
    # the month's storage exists before: the first writer of a new TimescaleDB chunk holds its
    # creation lock until commit, so the second writer would wait for the slow one
    await _reg(admin, mid2, datetime(2024, 1, 3, tzinfo=UTC), 0.0)
    await admin.execute("DELETE FROM register_readings")
    slow = await _conn(pg_dsn, autocommit=False)
    await _reg(slow, mid, datetime(2024, 1, 1, tzinfo=UTC), 1.0)  # takes the lower id, commits last
    await _reg(admin, mid2, datetime(2024, 1, 2, tzinfo=UTC), 2.0)

    seen: list = []
    cur = await _drain(admin, feed.Cursor(), seen, 10)
    assert seen == []  # the later row waits: delivering it now would put the cursor past the slow one
    # what an id cursor would have done: it sees id 2 now and moves past id 1 for good
    naive = await (await admin.execute("SELECT max(id) FROM register_readings")).fetchone()
    await slow.commit()
    missed_by_id_cursor = await (await admin.execute(
        "SELECT count(*) FROM register_readings WHERE id <= %s AND value = 1.0", (naive[0],))).fetchone()
    assert missed_by_id_cursor[0] == 1
    cur = await _drain(admin, cur, seen, 10)
    assert [v for _, v in seen] == [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)]
    seen2: list = []
    await _drain(admin, cur, seen2, 10)
    assert seen2 == []
    await slow.close()
    await admin.close()


@pytest.mark.storage_modes
async def test_paging_with_concurrent_writers_every_row_once(pg_dsn):
    admin = await _conn(pg_dsn)
    org = await _org(admin)
    other = await _org(admin, "uk2", "5257072937")
    mids = [await _meter(admin, f"m{i}", org if i % 4 else other) for i in range(8)]
    rng = random.Random(7)
    written: list[tuple[str, datetime]] = []
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    counter = iter(range(1_000_000))

    async def writer(wid: int) -> None:
        conn = await _conn(pg_dsn, autocommit=False)
        for _ in range(25):
            rows = []
            for _ in range(rng.randint(1, 12)):
                n = next(counter)
                # each writer its own two meters: writers of one meter's month wait for each other
                # on its rollup row, and here they hold their transactions open on purpose
                i = rng.choice((wid, wid + 4))
                rows.append((mids[i], t0 + timedelta(minutes=n), f"m{i}"))
            for mid, ts, _code in rows:
                await _reg(conn, mid, ts, float(wid))
            await asyncio.sleep(rng.random() * 0.02)  # hold the transaction open while others commit
            if rng.random() < 0.1:
                await conn.rollback()  # rolled-back rows must never appear
            else:
                await conn.commit()
                written.extend((code, ts) for _, ts, code in rows)
        await conn.close()

    reader = await _conn(pg_dsn)
    seen: list = []
    cursor = feed.Cursor()
    writers = [asyncio.create_task(writer(w)) for w in range(4)]
    while not all(w.done() for w in writers):
        cursor = await _drain(reader, cursor, seen, rng.randint(1, 7), frozenset({org}))
        await asyncio.sleep(0.005)
    await asyncio.gather(*writers)
    cursor = await _drain(reader, cursor, seen, 5, frozenset({org}))
    mine = {f"m{i}" for i in range(8) if i % 4}
    expected = sorted((c, t) for c, t in written if c in mine)
    assert len(seen) == len(set(seen)), "a row was delivered twice"
    assert sorted(seen) == expected, "a row was missed or one of another organisation leaked"
    assert len(expected) > 50
    await reader.close()
    await admin.close()


@pytest.mark.storage_modes
async def test_pages_split_one_statement_batch(pg_dsn):
    """The change log keeps one entry per writing statement; pages must cut through it."""
    conn = await _conn(pg_dsn)
    org = await _org(conn)
    mid = await _meter(conn, "m1", org)
    for start in (0, 5):  # two statements of five readings each
        await conn.execute("INSERT INTO register_readings (meter_id, obis, ts, received_at, value) "
                           "SELECT %s, %s, timestamptz '2024-01-01' + make_interval(days => g), now(), g "
                           "FROM generate_series(%s::int, %s::int) g", (mid, A_PLUS, start, start + 4))
    for limit in (1, 2, 3, 7):
        cursor, values = feed.Cursor(), []
        for _ in range(20):
            page = await feed.fetch_page(conn, cursor, limit=limit)
            assert len(page.items) <= limit
            values += [i.value for i in page.items]
            cursor = feed.Cursor.decode(page.next_cursor)
            if not page.has_more:
                break
        assert values == [float(v) for v in range(10)], limit
    await conn.close()


@pytest.mark.storage_modes
async def test_update_redelivers_and_bad_cursor(pg_dsn):
    conn = await _conn(pg_dsn)
    org = await _org(conn)
    mid = await _meter(conn, "m1", org)
    await _reg(conn, mid, datetime(2024, 1, 1, tzinfo=UTC), 5.0, quality="E")
    page = await feed.fetch_page(conn, feed.Cursor())
    assert [(i.value, i.quality) for i in page.items] == [(5.0, "E")]
    assert page.items[0].as_dict()["estimated"] is True
    await conn.execute("UPDATE register_readings SET value = 6, quality = 'A' WHERE meter_id = %s", (mid,))
    page2 = await feed.fetch_page(conn, feed.Cursor.decode(page.next_cursor))
    assert [(i.value, i.quality) for i in page2.items] == [(6.0, "A")]
    await conn.execute("UPDATE register_readings SET reasons = '{spike}' WHERE meter_id = %s", (mid,))
    page3 = await feed.fetch_page(conn, feed.Cursor.decode(page2.next_cursor), exclude_reasons=["spike"])
    assert page3.items == []
    with pytest.raises(feed.CursorError, match="next_cursor"):
        feed.Cursor.decode("garbage!")
    await conn.close()


# -------------------------------------------------------------------------- snapshots

async def test_snapshot_across_rollover_and_meter_exchange(pg_dsn):
    conn = await _conn(pg_dsn)
    org = await _org(conn)
    # 5-digit register, CT ratio 2: 99 990 → … → 00 015 over the month
    a = await _meter(conn, "rollover", org, digits=5, multiplier=2.0)
    await _reg(conn, a, _local(2024, 3, 1), 99_900.0)
    await _reg(conn, a, _local(2024, 3, 10), 99_990.0)
    await _reg(conn, a, _local(2024, 3, 20), 5.5)
    await _reg(conn, a, _local(2024, 4, 1), 15.5)
    # meter B exchanged for C on 15 March
    b = await _meter(conn, "old", org, decommissioned_at=date(2024, 3, 15), status="decommissioned")
    c = await _meter(conn, "new", org, installed_at=date(2024, 3, 15), replaces_id=b)
    await conn.execute("UPDATE meters SET replaced_by_id = %s WHERE id = %s", (c, b))
    await _reg(conn, b, _local(2024, 2, 29, 23), 5000.0)  # an hour before the boundary: still "at" it
    await _reg(conn, b, _local(2024, 3, 8), 5100.0)
    await _reg(conn, b, _local(2024, 3, 15, 9), 5180.0)  # final reading at removal
    await _reg(conn, c, _local(2024, 3, 15, 10), 0.2)  # new meter's first reading
    await _reg(conn, c, _local(2024, 4, 1), 160.2, quality="S", source="estimate")
    # another organisation's meter never shows up
    other = await _org(conn, "uk2", "5257072937")
    x = await _meter(conn, "foreign", other)
    await _reg(conn, x, _local(2024, 3, 1), 1.0)

    snaps = {s.meter: s for s in await snapshots.period_snapshots(conn, org, date(2024, 3, 1), tz=MSK)}
    assert set(snaps) == {"rollover", "old", "new"}
    r = snaps["rollover"]
    assert r.start.value == 99_900.0 and r.end.value == 15.5
    assert r.consumption == pytest.approx((100_000 - 99_900 + 15.5) * 2)
    assert "rollover" in r.flags and r.quality == "A" and not r.estimated
    old, new = snaps["old"], snaps["new"]
    assert old.start.value == 5000.0 and old.end.value == 5180.0 and old.consumption == pytest.approx(180.0)
    assert "removed_in_period" in old.flags and old.details["replaced_by"] == "new"
    assert new.start.value == pytest.approx(0.2) and new.consumption == pytest.approx(160.0)
    assert "installed_in_period" in new.flags and new.details["replaces"] == "old"
    assert new.estimated and new.quality == "S" and new.source == "estimate"
    # April starts where March ended: months add up without gap or overlap
    april = {s.meter: s for s in await snapshots.period_snapshots(conn, org, date(2024, 4, 1), tz=MSK)}
    assert april["rollover"].start == r.end
    await conn.close()


def test_compute_snapshot_reverse_is_flagged_not_counted():
    m = snapshots.MeterInfo(1, "m", digits=6)
    s0, s1 = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 4, 1, tzinfo=UTC)
    rs = [snapshots.Reading(s0, 500.0), snapshots.Reading(s0 + timedelta(days=5), 520.0),
          snapshots.Reading(s0 + timedelta(days=6), 300.0), snapshots.Reading(s1, 350.0)]
    snap = snapshots.compute_snapshot(m, A_PLUS, rs, s0, s1)
    assert snap.consumption == pytest.approx(20 + 50)
    assert "reverse_reading" in snap.flags and snap.details["reverse_steps"][0]["to"] == 300.0
    none = snapshots.compute_snapshot(m, A_PLUS, [], s0, s1)
    assert none.consumption is None and {"start_missing", "end_missing"} <= set(none.flags)


@pytest.mark.storage_modes
async def test_close_then_correction_becomes_recalculation(pg_dsn):
    conn = await _conn(pg_dsn)
    org = await _org(conn)
    mid = await _meter(conn, "m1", org)
    await _reg(conn, mid, _local(2024, 3, 1), 100.0)
    await _reg(conn, mid, _local(2024, 4, 1), 250.0, quality="E", source="estimate")
    frozen = await snapshots.close_period(conn, org, date(2024, 3, 1), "billing-bot")
    assert [s.consumption for s in frozen] == [150.0]
    with pytest.raises(snapshots.PeriodError, match="already closed"):
        await snapshots.close_period(conn, org, date(2024, 3, 1), "billing-bot")
    assert await snapshots.recalculate(conn, org, date(2024, 3, 1), "billing-bot") == []  # nothing changed
    # the real reading arrives and replaces the estimate
    before_change = (await (await conn.execute("SELECT now()")).fetchone())[0]
    await conn.execute("UPDATE register_readings SET value = 240, quality = 'A', source = 'gateway' "
                       "WHERE meter_id = %s AND ts = %s", (mid, _local(2024, 4, 1)))
    later = before_change + timedelta(hours=1)
    assert await tasks.auto_recalculate(conn, later) == []  # no change after `later`: March is not touched
    made = await snapshots.recalculate(conn, org, date(2024, 3, 1), "billing-bot", "real reading replaced estimate")
    assert len(made) == 1 and made[0]["old_consumption"] == 150.0 and made[0]["new_consumption"] == 140.0
    assert made[0]["delta"] == pytest.approx(-10.0)
    assert await snapshots.recalculate(conn, org, date(2024, 3, 1), "billing-bot") == []  # recorded once
    # the background task finds changed closed months by itself
    await conn.execute("UPDATE register_readings SET value = 245 WHERE meter_id = %s AND ts = %s",
                       (mid, _local(2024, 4, 1)))
    auto = await tasks.auto_recalculate(conn, before_change)
    assert [(r["old_consumption"], r["new_consumption"]) for r in auto] == [(140.0, 145.0)]
    period = await snapshots.get_period(conn, org, date(2024, 3, 1))
    (sid, kept), = await snapshots.closed_snapshot(conn, period["id"])
    assert kept.consumption == 150.0 and kept.estimated  # what billing was given is never changed silently
    recs = await snapshots.recalculations(conn, period["id"])
    assert len(recs) == 2 and recs[1]["created_by"] == "askue"
    assert recs[0]["reason"] == "real reading replaced estimate" and recs[0]["new"]["end"]["quality"] == "A"
    await conn.close()


# ----------------------------------------------------------------------------- 80020

async def test_80020_export_import_round_trip_through_db(pg_dsn):
    conn = await _conn(pg_dsn)
    org_id = await _org(conn)
    mid = await _meter(conn, "tp12", org_id, multiplier=40.0)
    await conn.execute("INSERT INTO billing_80020_points (meter_id, code, name) VALUES (%s, %s, %s)",
                       (mid, "520000000101101", "ТП-12, ввод 1"))
    day = date(2024, 3, 5)
    slots = xml80020.day_slots(day, MSK)
    for i, (t, *_) in enumerate(slots):
        for obis, v in (("1.0.1.29.0.255", 0.25 * i), ("1.0.2.29.0.255", 0.0)):
            await conn.execute(
                "INSERT INTO intervals (meter_id, obis, ts, received_at, value, quality, period_s) "
                "VALUES (%s, %s, %s, %s, %s, %s, 1800)",
                (mid, obis, t + timedelta(minutes=30), t, v, "E" if i == 7 else "A"))
    org = await exporters.get_org(conn, "uk1")
    name, body = await exporters.export_80020(conn, org, day, tz=MSK, now=datetime(2024, 3, 6, tzinfo=UTC))
    assert name == "80020_7707083893_20240305_1.xml"
    msg = xml80020.parse(body, tz=MSK)
    ch = msg.areas[0].points[0].channels[0]
    assert msg.areas[0].points[0].code == "520000000101101"
    assert ch.periods[10].value == Decimal("100")  # 0.25 × 10 × 40
    assert ch.periods[7].status == 1 and ch.periods[8].status == 0
    name2, _ = await exporters.export_80020(conn, org, day, tz=MSK)
    assert name2.endswith("_2.xml")  # numbers increase per sender
    nxt = xml80020.day_slots(date(2024, 3, 6), MSK)[0][0] + timedelta(minutes=30)
    await conn.execute("INSERT INTO intervals (meter_id, obis, ts, received_at, value, period_s) "
                       "VALUES (%s, '1.0.1.29.0.255', %s, %s, 1, 1800)", (mid, nxt, nxt))
    with pytest.raises(IncompleteDataError, match="520000000101101/01/0030"):
        await exporters.export_80020(conn, org, date(2024, 3, 6), tz=MSK)
    await conn.execute("DELETE FROM intervals WHERE ts = %s", (nxt,))
    name3, _ = await exporters.export_80020(conn, org, day, tz=MSK)
    assert name3.endswith("_3.xml")  # the failed day drew no number

    before = await (await conn.execute("SELECT obis, ts, value FROM intervals ORDER BY 1, 2")).fetchall()
    await conn.execute("DELETE FROM intervals")
    rep = await importers.import_80020(conn, body, org_ids=frozenset({org_id}), author="t", tz=MSK, file_name=name)
    assert (rep.points, rep.inserted, rep.kept_existing) == (1, 96, 0)
    after = await (await conn.execute("SELECT obis, ts, value FROM intervals ORDER BY 1, 2")).fetchall()
    assert [(o, t) for o, t, _ in after] == [(o, t) for o, t, _ in before]
    assert all(v1 == pytest.approx(v0) for (_, _, v0), (_, _, v1) in zip(before, after, strict=True))
    q = await (await conn.execute("SELECT DISTINCT quality, source FROM intervals ORDER BY 1")).fetchall()
    assert q == [("A", "file"), ("S", "file")]
    daily = await (await conn.execute("SELECT value FROM rollup_interval_daily WHERE meter_id = %s "
                                      "AND obis = '1.0.1.29.0.255' AND day = '2024-03-05'", (mid,))).fetchone()
    assert daily[0] == pytest.approx(0.25 * sum(range(48)))  # rollups rebuilt for the imported day
    # again: nothing new, nothing overwritten
    rep2 = await importers.import_80020(conn, body, org_ids=frozenset({org_id}), author="t", tz=MSK)
    assert (rep2.inserted, rep2.kept_existing) == (0, 96)
    await conn.close()


async def test_80020_import_unknown_point_or_other_org_stores_nothing(pg_dsn):
    conn = await _conn(pg_dsn)
    org_id = await _org(conn)
    other = await _org(conn, "uk2", "5257072937")
    await _meter(conn, "520000000101101", other)
    from pathlib import Path

    golden = (Path(__file__).parents[1] / "billing_golden" / "80020_7707083893_20240305_12.xml").read_bytes()
    with pytest.raises(ExportFormatError) as e:
        await importers.import_80020(conn, golden, org_ids=frozenset({org_id}), author="t", tz=MSK)
    assert "no metering point" in e.value.issues[0].what
    with pytest.raises(ExportFormatError, match="number 13 in the name"):
        await importers.import_80020(conn, golden, org_ids=None, author="t", tz=MSK,
                                     file_name="80020_7707083893_20240305_13.xml")
    assert (await (await conn.execute("SELECT count(*) FROM intervals")).fetchone())[0] == 0
    await conn.close()


# ------------------------------------------------------------------- hourly and integral

async def test_hourly_profile_export_cell_by_cell(pg_dsn):
    conn = await _conn(pg_dsn)
    org_id = await _org(conn)
    mid = await _meter(conn, "m1", org_id, serial="01284918", multiplier=2.0)
    start = _local(2024, 2, 1).astimezone(UTC)
    for i in range(48):  # first day, half-hours; the last hour of the day misses one half
        if i == 47:
            continue
        end = start + timedelta(minutes=30 * (i + 1))
        await conn.execute("INSERT INTO intervals (meter_id, obis, ts, received_at, value, period_s) "
                           "VALUES (%s, '1.0.1.29.0.255', %s, %s, %s, 1800)", (mid, end, end, 0.5 + i % 2))
    prof = await exporters.hourly_profile(conn, "m1", date(2024, 2, 1), tz=MSK)
    from askue.headend.billing.formats import hourly_xlsx

    ws = load_workbook(io.BytesIO(hourly_xlsx.write_hourly_xlsx([prof])))["01284918"]
    assert ws["A2"].value == "00-01" and ws["B1"].value == datetime(2024, 2, 1)
    assert ws["B2"].value == pytest.approx((0.5 + 1.5) * 2)
    assert ws["B24"].value == pytest.approx(4.0)  # 22-23
    assert ws["B25"].value is None  # 23-24 incomplete: left empty, not a partial sum
    assert ws["C2"].value is None
    with pytest.raises(exporters.ExportError):
        await exporters.hourly_profile(conn, "m1", date(2024, 2, 1), org_ids=frozenset({999}), tz=MSK)
    await conn.close()


async def _window_everywhere(conn) -> None:
    await window.set_window(conn, None, window.Window(open_day=1, close_day=28, max_age_days=10))


async def test_integral_template_and_import(pg_dsn):
    conn = await _conn(pg_dsn)
    org_id = await _org(conn)
    await _window_everywhere(conn)
    m2 = await _meter(conn, "m2", org_id, serial="01284918", tariff_zones=2)
    m1 = await _meter(conn, "m1", org_id, serial="20300109", tariff_zones=1)
    now = datetime(2024, 3, 25, 9, tzinfo=UTC)
    for mid, obis, v in ((m2, "1.0.1.8.1.255", 1000.0), (m2, "1.0.1.8.2.255", 400.0), (m1, A_PLUS, 435.0)):
        await _reg(conn, mid, now - timedelta(days=40), v - 100, obis=obis)
        await _reg(conn, mid, now - timedelta(days=30), v, obis=obis)  # before March: the template's previous
    org = await exporters.get_org(conn, "uk1")
    body = await exporters.integral_template(conn, org, date(2024, 3, 1), tz=MSK)
    ws = load_workbook(io.BytesIO(body)).active
    rows = [[c.value for c in r] for r in ws.iter_rows(min_row=2)]
    assert [(r[3], r[5], r[6], r[7]) for r in rows] == [
        ("20300109", "А+", "Сутки", 435.0), ("01284918", "А+", "День", 1000.0), ("01284918", "А+", "Ночь", 400.0)]

    def filled(values):
        wb = load_workbook(io.BytesIO(body))
        for i, v in enumerate(values):
            wb.active.cell(row=2 + i, column=9, value=v)
        buf = io.BytesIO()
        wb.save(buf)
        return buf.getvalue()

    # a broken row: nothing stored, row-level errors
    res = await importers.import_integral(conn, filled(["470,5", "1030", "abc"]), org_ids=frozenset({org_id}),
                                          author="ivanov", now=now)
    assert [r.status for r in res] == ["ok", "error", "error"]  # the night zone is wrong: the day zone waits too
    assert "I4" in res[2].issues[0].where and "all its zones" in res[1].issues[0].what
    assert "not stored" in res[0].message
    count = "SELECT count(*) FROM register_readings WHERE quality = 'M'"
    assert (await (await conn.execute(count)).fetchone())[0] == 0
    # a reading below the previous one is rejected by the expected-value check: still nothing stored
    res = await importers.import_integral(conn, filled(["470,5", "1030", "300"]), org_ids=frozenset({org_id}),
                                          author="ivanov", now=now)
    assert [r.status for r in res] == ["not_stored", "not_stored", "error"]
    assert "below the previous" in res[2].issues[0].what
    assert (await (await conn.execute(count)).fetchone())[0] == 0
    # a good file: stored as manual values from a file, audited with the author
    res = await importers.import_integral(conn, filled(["470,5", "1030", "410.25"]), org_ids=frozenset({org_id}),
                                          author="ivanov", now=now)
    assert [r.status for r in res] == ["ok", "ok", "ok"], [r.message for r in res]
    stored = await (await conn.execute(
        "SELECT meter_id, obis, value, source, reasons FROM register_readings WHERE quality = 'M' ORDER BY 1, 2"
    )).fetchall()
    assert stored == [(m2, "1.0.1.8.1.255", 1030.0, "file", ["consumer_reported"]),
                      (m2, "1.0.1.8.2.255", 410.25, "file", ["consumer_reported"]),
                      (m1, A_PLUS, 470.5, "file", ["consumer_reported"])]
    audit = await (await conn.execute("SELECT object_id FROM audit_log WHERE actor = 'ivanov' "
                                      "AND action = 'manual_reading' ORDER BY object_id")).fetchall()
    assert [a[0].rsplit("/", 1)[0] for a in audit] == ["m1/1.0.1.8.0.255", "m2/1.0.1.8.1.255", "m2/1.0.1.8.2.255"]
    # the consumption rollups the read API serves know about the new readings
    monthly = await (await conn.execute("SELECT last_value FROM rollup_register_monthly WHERE meter_id = %s "
                                        "AND obis = %s AND month = '2024-03-01'", (m1, A_PLUS))).fetchone()
    assert monthly == (470.5,)
    await conn.close()


async def test_manual_window_and_expected_value(pg_dsn):
    conn = await _conn(pg_dsn)
    org_id = await _org(conn)
    mid = await _meter(conn, "m1", org_id, digits=5)
    now = datetime(2024, 3, 20, 9, tzinfo=UTC)
    for d in range(0, 31, 5):
        await _reg(conn, mid, now - timedelta(days=40 - d), 1000.0 + 10 * d)  # 10 kWh/day, last 1300 ten days ago
    orgs = frozenset({org_id})

    async def one(value, at=now, confirm=False, ts=None):
        (r,) = await readings.submit(conn, Principal("op", "billing", orgs), [readings.ReadingInput("m1", A_PLUS, value,
                                                                                                   ts=ts)],
                                     now=at, confirm=confirm)
        return r

    r = await one(1800.0)  # 500 kWh in 10 days where 100 were expected
    assert r.status == "needs_confirmation" and r.expected == pytest.approx(1400.0, rel=0.01)
    assert r.previous == 1300.0 and "ожидаемое показание около 1400" in r.message_ru
    assert (await one(1390.0, ts=now - timedelta(minutes=1))).status == "accepted"
    assert (await one(1800.0, confirm=True)).status == "accepted"
    assert (await one(1510.0, at=datetime(2024, 3, 10, tzinfo=UTC))).status == "rejected"  # before the 15th
    late = await one(1510.0, at=now, ts=now - timedelta(days=11))
    assert late.status == "rejected" and "older than 10 days" in late.message_en
    assert (await one(1400.0, at=now + timedelta(hours=1))).status == "rejected"  # below the previous
    assert (await one(1.0, at=now)).status in ("rejected", "needs_confirmation")
    assert (await one(100_000.0)).status == "rejected"  # beyond 5 digits
    await snapshots.close_period(conn, org_id, date(2024, 3, 1), "b")
    assert "closed" in (await one(1520.0, at=now + timedelta(hours=2))).message_en
    foreign = await readings.submit(conn, Principal("x", "billing", frozenset({999})),
                                    [readings.ReadingInput("m1", A_PLUS, 1.0)], now=now)
    assert foreign[0].status == "rejected" and "not found" in foreign[0].message_en
    await conn.close()


def test_window_month_for():
    w = window.Window(open_day=15, close_day=5)
    assert w.month_for(date(2024, 3, 14)) is None
    assert w.month_for(date(2024, 3, 15)) == date(2024, 3, 1)
    assert w.month_for(date(2024, 4, 5)) == date(2024, 3, 1)
    assert w.month_for(date(2024, 4, 6)) is None
    assert w.month_for(date(2025, 1, 3)) == date(2024, 12, 1)
    wide = window.Window(open_day=1, close_day=28)
    assert wide.month_for(date(2024, 4, 10)) == date(2024, 3, 1)  # last month's window wins while open


def test_integral_obis_mapping():
    assert integral_xlsx.register_obis("A-", 3) == "1.0.2.8.3.255"
    assert integral_xlsx.zone_tariff("Полупик") == 3 and integral_xlsx.zone_tariff("T2") == 2


async def test_hourly_import_round_trip_and_broken_file(pg_dsn):
    from askue.headend.billing.formats import hourly_xlsx

    conn = await _conn(pg_dsn)
    org_id = await _org(conn)
    mid = await _meter(conn, "m1", org_id, serial="01284918", multiplier=2.0)
    start = _local(2024, 2, 1).astimezone(UTC)
    for i in range(24 * 3):  # three days of hourly profile
        end = start + timedelta(hours=i + 1)
        await conn.execute("INSERT INTO intervals (meter_id, obis, ts, received_at, value, period_s) "
                           "VALUES (%s, '1.0.1.29.0.255', %s, %s, %s, 3600)", (mid, end, end, 0.5 + i % 5))
    body = hourly_xlsx.write_hourly_xlsx([await exporters.hourly_profile(conn, "m1", date(2024, 2, 1), tz=MSK)])
    before = await (await conn.execute("SELECT ts, value FROM intervals ORDER BY ts")).fetchall()
    await conn.execute("DELETE FROM intervals")
    # a broken copy first: one bad cell, nothing stored
    wb = load_workbook(io.BytesIO(body))
    wb.active["C3"] = "много"
    buf = io.BytesIO()
    wb.save(buf)
    with pytest.raises(ExportFormatError) as e:
        await importers.import_hourly(conn, buf.getvalue(), "01284918", org_ids=frozenset({org_id}), author="t",
                                      tz=MSK)
    assert e.value.issues[0].where == "C3"
    assert (await (await conn.execute("SELECT count(*) FROM intervals")).fetchone())[0] == 0
    rep = await importers.import_hourly(conn, body, "01284918", org_ids=frozenset({org_id}), author="t", tz=MSK)
    assert (rep.hours, rep.inserted, rep.kept_existing) == (72, 72, 0)
    after = await (await conn.execute("SELECT ts, value FROM intervals ORDER BY ts")).fetchall()
    assert [t for t, _ in after] == [t for t, _ in before]
    assert all(a == pytest.approx(b) for (_, a), (_, b) in zip(after, before, strict=True))
    with pytest.raises(ExportFormatError, match="not found"):
        await importers.import_hourly(conn, body, "01284918", org_ids=frozenset({999}), author="t", tz=MSK)
    await conn.close()


async def test_silent_meter_still_listed_in_snapshot(pg_dsn):
    conn = await _conn(pg_dsn)
    org = await _org(conn)
    mid = await _meter(conn, "quiet", org)
    await _reg(conn, mid, _local(2023, 12, 1), 10.0)  # read long ago, nothing near March
    (snap,) = await snapshots.period_snapshots(conn, org, date(2024, 3, 1), tz=MSK)
    assert snap.meter == "quiet" and snap.consumption is None
    assert {"start_missing", "end_missing"} <= set(snap.flags)
    await conn.close()


@pytest.mark.storage_modes
async def test_feed_sees_the_real_ingest_merge_path(pg_dsn):
    """Values merged by the storage ingest (COPY into staging, INSERT … ON CONFLICT in a
    CTE, the after-insert hooks the head-end registers) reach the feed once; a replay adds nothing."""
    from askue.contract import DataMessage, Value
    from askue.headend.ingest import merge
    from askue.headend.ingest.batch import Pending
    from askue.headend.storage import hooks

    conn = await _conn(pg_dsn)
    await merge.prepare_connection(conn)
    org = await _org(conn)
    await _meter(conn, "m1", org)
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    values = [Value(meter_id="m1", obis=A_PLUS, kind="register", value=100.0 + i, unit="kWh",
                    received_at=t0 + timedelta(hours=i, seconds=5), meter_time=t0 + timedelta(hours=i))
              for i in range(5)]
    msg = DataMessage(v=1, gateway_id="gw1", seq=1, sent_at=t0, values=values)

    def pending() -> Pending:
        p = Pending()
        p.data.append(msg)
        p.seen["gw1"] = t0
        p.n_values = len(values)
        return p

    ctx = merge.MergeContext(hooks=hooks.composed())
    await merge.write(conn, ctx, pending())
    page = await feed.fetch_page(conn, feed.Cursor(), org_ids=frozenset({org}))
    assert [(i.meter, i.value, i.source) for i in page.items] == [("m1", 100.0 + i, "gateway") for i in range(5)]
    await merge.write(conn, ctx, pending())  # QoS 1 replay
    again = await feed.fetch_page(conn, feed.Cursor.decode(page.next_cursor), org_ids=frozenset({org}))
    assert again.items == []
    await conn.close()


def test_replaced_meter_keeps_boundary_rule_in_earlier_months():
    """A meter replaced later (no removal date known) is billed by the normal boundary
    rule in the months before: months still add up."""
    s0, s1, s2 = (datetime(2024, m, 1, tzinfo=UTC) for m in (2, 3, 4))
    m = snapshots.MeterInfo(1, "old", replaced_by_id=2, replaced_by_code="new")
    rs = [snapshots.Reading(s0, 10.0), snapshots.Reading(s1, 40.0), snapshots.Reading(s1 + timedelta(days=2), 45.0),
          snapshots.Reading(s1 + timedelta(days=9), 60.0)]
    feb = snapshots.compute_snapshot(m, A_PLUS, rs, s0, s1)
    mar = snapshots.compute_snapshot(m, A_PLUS, rs, s1, s2)
    assert feb.end == mar.start and feb.consumption == 30.0
    assert mar.end.value == 60.0 and "removed_in_period" in mar.flags and mar.consumption == 20.0

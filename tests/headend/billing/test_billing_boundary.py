"""Billing boundary values: the meter's own day/month-start archive over a poll near the
boundary or an interpolation, and which source each snapshot end used — pure cases, then
three meters through the real ingest (one polled at 00:05 with archives, one offline at
midnight whose archive replaces VEE's substitute after the month was closed, one without
archives), the billing API's JSON and CSV, the frozen rows and a recalculation."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import msgspec
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from askue.contract import DataMessage, Value
from askue.headend.api.app import create_app
from askue.headend.api.auth import create_token
from askue.headend.billing import boundary, snapshots
from askue.headend.billing.boundary import Reading
from askue.headend.config import Settings
from askue.headend.ingest import merge
from askue.headend.ingest.batch import Pending
from askue.headend.storage import hooks
from askue.headend.vee import scan

MSK = ZoneInfo("Europe/Moscow")
A_PLUS = "1.0.1.8.0.255"
B = datetime(2026, 4, 1, tzinfo=MSK)
DAY = timedelta(days=3)


# ------------------------------------------------------------------------------ pure

def test_archive_beats_a_poll_five_minutes_later_and_an_interpolation():
    rs = [Reading(B - timedelta(hours=11, minutes=55), 90.0), Reading(B + timedelta(minutes=5), 100.2),
          Reading(B, 99.5, archive="month_start")]
    got = boundary.value_at(rs, B, DAY)
    assert (got.value, got.boundary_source, got.ts) == (99.5, "meter_archive", B)


def test_poll_at_the_boundary_then_interpolation_then_nearest():
    at = boundary.value_at([Reading(B, 50.0), Reading(B + timedelta(hours=1), 51.0)], B, DAY)
    assert (at.value, at.boundary_source) == (50.0, "poll")
    around = [Reading(B - timedelta(minutes=10), 40.0), Reading(B + timedelta(minutes=30), 44.0)]
    got = boundary.value_at(around, B, DAY)
    assert got.boundary_source == "interpolated" and got.value == pytest.approx(41.0) and got.ts == B
    assert got.between == tuple(around) and got.source == "gateway"
    # too far apart for a straight line: the nearest reading, as billing always did
    far = [Reading(B - timedelta(hours=1), 40.0), Reading(B + timedelta(days=2, hours=1), 60.0)]
    got = boundary.value_at(far, B, DAY)
    assert (got.value, got.boundary_source) == (40.0, "nearest_poll")
    # a rollover between the two: no line through it
    wrap = [Reading(B - timedelta(hours=1), 99_999.0), Reading(B + timedelta(hours=1), 3.0)]
    assert boundary.value_at(wrap, B, DAY).boundary_source == "nearest_poll"
    assert boundary.value_at([Reading(B - timedelta(days=4), 1.0)], B, DAY) is None


def test_estimates_and_manual_readings():
    substitute = Reading(B, 70.0, "S", "estimate")
    real = [Reading(B - timedelta(hours=3), 60.0), Reading(B + timedelta(hours=1), 64.0)]
    # measured readings around the boundary beat VEE's «по среднему» substitute …
    got = boundary.value_at([substitute, *real], B, DAY)
    assert (got.boundary_source, got.value, got.quality) == ("interpolated", pytest.approx(63.0), "A")
    # … which beats a reading far from it
    got = boundary.value_at([substitute, Reading(B - timedelta(days=2), 50.0)], B, DAY)
    assert (got.boundary_source, got.value, got.quality) == ("estimate", 70.0, "S")
    manual = Reading(B - timedelta(days=1), 55.0, "M", "manual")
    assert boundary.value_at([manual], B, DAY).boundary_source == "manual"
    mixed = boundary.value_at([manual, Reading(B + timedelta(hours=2), 57.0)], B, DAY)
    assert mixed.boundary_source == "interpolated" and mixed.quality == "M"


def test_snapshot_ends_and_consumption_through_an_interpolated_boundary():
    m = snapshots.MeterInfo(1, "m")
    s0, s1 = datetime(2026, 3, 1, tzinfo=MSK), B
    rs = [Reading(s0 - timedelta(minutes=10), 100.0), Reading(s0 + timedelta(minutes=10), 102.0),
          Reading(s0 + timedelta(days=15), 150.0), Reading(s1, 200.0, archive="month_start"),
          Reading(s1 + timedelta(minutes=5), 201.0)]
    snap = snapshots.compute_snapshot(m, A_PLUS, rs, s0, s1)
    assert snap.start.boundary_source == "interpolated" and snap.start.value == pytest.approx(101.0)
    assert snap.end.boundary_source == "meter_archive" and snap.consumption == pytest.approx(99.0)
    assert snap.details["readings_used"] == 4  # start, 00:10 on the 1st, the 16th, the end
    d = snap.as_dict()
    assert d["start"]["boundary_source"] == "interpolated" and len(d["start"]["interpolated_from"]) == 2
    assert d["end"]["boundary_source"] == "meter_archive" and "interpolated_from" not in d["end"]
    nxt = snapshots.compute_snapshot(m, A_PLUS, rs, s1, datetime(2026, 5, 1, tzinfo=MSK))
    assert nxt.start == snap.end  # months add up


# ------------------------------------------------------------------------ through the ingest

def reg(meter: str, value: float, at: datetime) -> Value:
    return Value(meter_id=meter, obis=A_PLUS, kind="register", value=value, unit="kWh",
                 received_at=at + timedelta(seconds=5), meter_time=at)


def _energy(t: datetime) -> float:
    """A household day: 0.2 kWh/h, 2 kWh/h from 18:00 to midnight (local), from 1000 kWh
    on 1 February — a straight line between polls is not the midnight value."""
    start = datetime(2026, 2, 1, tzinfo=MSK)
    days, rest = divmod((t - start).total_seconds(), 86400)
    h = rest / 3600
    return round(1000.0 + days * (18 * 0.2 + 6 * 2.0) + (0.2 * min(h, 18) + 2.0 * max(h - 18, 0)), 6)


def _archive(meter: str, at: datetime, kind: str, received: datetime):
    v = reg(meter, _energy(at), at.astimezone(UTC))
    return msgspec.structs.replace(v, archive=kind, received_at=received.astimezone(UTC))


def _polls(meter: str, start: datetime, end: datetime, every: timedelta, offset: timedelta):
    t = start + offset
    while t < end:
        yield reg(meter, _energy(t), t.astimezone(UTC))
        t += every


def _told(r: Reading) -> tuple:
    """What billing is told about a boundary value."""
    return r.ts, r.value, r.quality, r.source, r.boundary_source, r.between


async def _ingest(conn, ctx, values, seq):
    for i in range(0, len(values), 400):
        p = Pending()
        p.data.append(DataMessage(v=1, gateway_id="gw1", seq=seq * 1000 + i, sent_at=values[i].received_at,
                                  values=values[i:i + 400]))
        p.seen["gw1"] = values[i].received_at
        p.n_values = len(p.data[0].values)
        await merge.write(conn, ctx, p)


@pytest.mark.storage_modes
async def test_three_meters_through_the_ingest_api_close_and_recalculation(pg_dsn):
    conn = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    await merge.prepare_connection(conn)
    org = (await (await conn.execute("INSERT INTO organisations (code, name, inn) VALUES "
                                     "('uk1', 'УК 1', '7707083893') RETURNING id")).fetchone())[0]
    for code in ("polled", "offline", "plain"):
        await conn.execute("INSERT INTO meters (code, org_id, resource, digits) VALUES (%s, %s, 'electricity', 6)",
                           (code, org))
    ctx = merge.MergeContext(hooks=hooks.composed())
    m1, feb = datetime(2026, 3, 1, tzinfo=MSK), datetime(2026, 2, 20, tzinfo=MSK)
    # «polled»: the gateway polls at 00:05 and 12:05 and reads the meter's day and month starts
    # (on the 1st both stamped 00:00: the month start wins, the day start is the same instant)
    polled = list(_polls("polled", feb, datetime(2026, 4, 4, tzinfo=MSK), timedelta(hours=12), timedelta(minutes=5)))
    for day in (m1, B - timedelta(days=1), B, B + timedelta(days=1)):
        got = day + timedelta(minutes=5, seconds=20)
        if day.day == 1:
            polled.append(_archive("polled", day, "month_start", got))
        polled.append(_archive("polled", day, "day_start", got))
    # «plain»: a meter without archives, hourly polls at :50
    plain = list(_polls("plain", feb, datetime(2026, 4, 4, tzinfo=MSK), timedelta(hours=1), timedelta(minutes=50)))
    # «offline»: hourly polls at :30, silent from 31 March 20:00 to 2 April 10:00
    offline = [v for v in _polls("offline", feb, datetime(2026, 4, 4, tzinfo=MSK), timedelta(hours=1),
                                 timedelta(minutes=30))
               if not (B - timedelta(hours=4) <= v.meter_time.astimezone(MSK) < B + timedelta(days=1, hours=10))]
    offline.append(_archive("offline", m1, "month_start", m1 + timedelta(seconds=30)))
    back = B + timedelta(days=1, hours=10)
    late = [_archive("offline", B, "month_start", back), _archive("offline", B + timedelta(days=1), "day_start", back)]
    await _ingest(conn, ctx, polled + plain + [v for v in offline if v.meter_time < back], seq=1)

    # a day after the month start VEE substitutes the read the offline meter missed «по среднему»
    await scan.scan_once(conn, (B + timedelta(days=1, hours=9)).astimezone(UTC))
    got = await (await conn.execute(
        "SELECT r.quality, r.source FROM register_readings r JOIN meters m ON m.id = r.meter_id "
        "WHERE m.code = 'offline' AND r.ts = %s", (B,))).fetchone()
    assert got == ("S", "estimate")

    snaps = {s.meter: s for s in await snapshots.period_snapshots(conn, org, m1.date(), tz=MSK)}
    p = snaps["polled"]
    assert (p.start.boundary_source, p.end.boundary_source) == ("meter_archive", "meter_archive")
    assert (p.start.value, p.end.value) == (_energy(m1), _energy(B))
    assert p.consumption == pytest.approx(_energy(B) - _energy(m1))
    assert p.end.ts == B and p.end.archive == "month_start"
    pl = snaps["plain"]
    assert (pl.start.boundary_source, pl.end.boundary_source) == ("interpolated", "interpolated")
    lo, hi = _energy(B - timedelta(minutes=10)), _energy(B + timedelta(minutes=50))
    assert pl.end.value == pytest.approx(lo + (hi - lo) / 6) and pl.end.value != _energy(B)
    assert [r.ts for r in pl.end.between] == [B - timedelta(minutes=10), B + timedelta(minutes=50)]
    off = snaps["offline"]
    assert (off.start.boundary_source, off.end.boundary_source) == ("meter_archive", "estimate")
    assert off.estimated and off.quality == "S"

    # the billing API says where each boundary value came from, in JSON and CSV
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        token = create_token(c, "billing-uk1", "billing", ["uk1"])
    pool = AsyncConnectionPool(pg_dsn, min_size=1, max_size=2, open=False)
    await pool.open(wait=True)
    app = create_app(Settings(dsn=pg_dsn), pool=pool)
    app.state.pool = pool
    h = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t/api/v1") as http:
            rows = {r["meter"]: r for r in (await http.get("/billing/periods/2026-03", headers=h)).json()["rows"]}
            assert rows["polled"]["end"]["boundary_source"] == "meter_archive"
            assert rows["plain"]["start"]["boundary_source"] == "interpolated"
            assert [x["value"] for x in rows["plain"]["end"]["interpolated_from"]] == [lo, hi]
            assert rows["offline"]["end"]["boundary_source"] == "estimate"
            csv = (await http.get("/billing/periods/2026-03", params={"format": "csv"}, headers=h)).text
            head, *lines = csv.lstrip("\ufeff").splitlines()
            cols = head.split(";")
            assert cols[-2:] == ["start_boundary_source", "end_boundary_source"]
            by_meter = {ln.split(";")[0]: ln.split(";") for ln in lines}
            assert by_meter["polled"][-2:] == ["meter_archive", "meter_archive"]
            assert by_meter["offline"][-2:] == ["meter_archive", "estimate"]
            # the feed marks archive values
            feed = (await http.get("/billing/readings", params={"limit": 10000}, headers=h)).json()["items"]
            marked = {(i["meter"], i["ts"], i["archive"]) for i in feed if i["archive"]}
            assert ("polled", B.astimezone(UTC).isoformat(), "month_start") in marked

            # March is closed on the substitute; the frozen rows keep each boundary's source
            await snapshots.close_period(conn, org, m1.date(), "billing-bot")
            assert await snapshots.recalculate(conn, org, m1.date(), "billing-bot") == []
            period = await snapshots.get_period(conn, org, m1.date())
            frozen = {s.meter: s for _, s in await snapshots.closed_snapshot(conn, period["id"])}
            for code in ("plain", "polled"):
                assert _told(frozen[code].end) == _told(snaps[code].end)
            assert frozen["offline"].end.boundary_source == "estimate"

            # the gateway is back: the meter's own month start replaces the substitute, and
            # billing gets a recalculation saying so
            await _ingest(conn, ctx, late + [v for v in offline if v.meter_time >= back], seq=2)
            made = await snapshots.recalculate(conn, org, m1.date(), "billing-bot", "archive read")
            (rec,) = [r for r in await snapshots.recalculations(conn, period["id"]) if r["id"] == made[0]["id"]]
            assert len(made) == 1 and rec["meter"] == "offline"
            assert rec["old"]["end"]["boundary_source"] == "estimate"
            assert rec["new"]["end"]["boundary_source"] == "meter_archive"
            assert rec["new"]["end"]["value"] == _energy(B) and rec["new"]["end"]["quality"] == "A"
            closed = (await http.get("/billing/periods/2026-03", headers=h)).json()
            assert closed["state"] == "closed" and len(closed["recalculations"]) == 1
            april = {s.meter: s for s in await snapshots.period_snapshots(conn, org, B.date(), tz=MSK)}
            assert april["offline"].start.boundary_source == "meter_archive" and not april["offline"].estimated
    finally:
        await pool.close()
        await conn.close()

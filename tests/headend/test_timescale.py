"""What TimescaleDB adds, on the real extension (the build `make deps` installs): its
policies run from its own scheduler and do their work, continuous aggregates equal the raw
sums with real-time aggregation over the last hours, compressed chunks answer every query
exactly as plain PostgreSQL does with the same data, late data and corrections land in
compressed chunks, retention drops instant values only, and the billing feed captures
every change on the hypertables.

Dates are relative to the real clock: the policies compare chunk ages with now().
"""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient
from headend_helpers import data_msg, interval, pending, reg

from askue.headend.api.app import create_app
from askue.headend.api.auth import create_token
from askue.headend.billing import exporters, feed
from askue.headend.config import Settings
from askue.headend.ingest import merge
from askue.headend.registry.importer import import_file
from askue.headend.vee import live, scan

pytestmark = pytest.mark.timescale

MSK = ZoneInfo("Europe/Moscow")
A_PLUS = "1.0.1.8.0.255"
COLD = "8.0.1.0.0.255"
PROFILE = "1.0.1.29.0.255"
NOW = datetime.now(UTC).replace(microsecond=0)


def _jobs(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    return {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT job_id, proc_name, hypertable_name FROM timescaledb_information.jobs WHERE job_id >= 1000")}


def _run_policies(conn: psycopg.Connection, proc: str) -> None:
    """Run every policy of one kind now, in this session (what the scheduler calls)."""
    for job_id, (name, _) in sorted(_jobs(conn).items()):
        if name == proc:
            conn.execute(f"CALL run_job({job_id})")


def _chunks(conn: psycopg.Connection, table: str) -> list[tuple[datetime, datetime, bool]]:
    return conn.execute("SELECT range_start, range_end, is_compressed FROM timescaledb_information.chunks "
                        "WHERE hypertable_name = %s ORDER BY range_start", (table,)).fetchall()


def _hour_key(end: datetime, period_s: int) -> datetime:
    start = end - timedelta(seconds=period_s)
    return start.replace(minute=0, second=0, microsecond=0)  # Moscow is a whole-hour offset from UTC


def _interval_sums(rows: list[tuple[datetime, float]], period_s: int = 1800) -> dict[str, dict]:
    """The interval rollups computed here from the values written: an interval counts in the
    local hour, day and month it ran in (its timestamp is its end)."""
    out: dict[str, dict] = {"hourly": defaultdict(float), "daily": defaultdict(float), "monthly": defaultdict(float)}
    for end, v in rows:
        local = (end - timedelta(seconds=period_s)).astimezone(MSK)
        out["hourly"][_hour_key(end, period_s)] += v
        out["daily"][local.date()] += v
        out["monthly"][local.date().replace(day=1)] += v
    return out


def _interval_rollups(conn: psycopg.Connection) -> dict[str, dict]:
    got = {}
    for name, col in (("hourly", "hour"), ("daily", "day"), ("monthly", "month")):
        got[name] = {r[0]: r[1] for r in conn.execute(
            f"SELECT {col}, value FROM rollup_interval_{name} WHERE meter_id = 1 AND obis = %s", (PROFILE,))}
    return got


def _approx(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-9 for k in a)


def _wait_for_runs(conn: psycopg.Connection, since: datetime, jobs: set[int], timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = conn.execute(
            "SELECT job_id, last_run_status, job_status FROM timescaledb_information.job_stats "
            "WHERE job_id = ANY(%s) AND last_run_started_at >= %s", (sorted(jobs), since)).fetchall()
        done = {r[0]: r[1] for r in rows if r[1] is not None and r[2] != "Running"}
        if done.keys() == jobs or time.monotonic() > deadline:
            return done
        time.sleep(0.3)


def test_policies_run_from_the_scheduler_and_do_their_work(pg_dsn: str) -> None:
    old = (NOW - timedelta(days=100)).replace(minute=0, second=0)  # to be compressed (policies: after 60 days)
    ancient = (NOW - timedelta(days=440)).replace(minute=0, second=0)  # instant values dropped (after 400 days)
    recent = NOW.replace(minute=0, second=0) - timedelta(hours=4)  # ends an hour ago: stays row-store
    intervals: list[tuple[datetime, float]] = []
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO meters (code, resource) VALUES ('e1', 'electricity')")
        for k, t0 in enumerate((ancient, old, recent)):
            n = 6 if t0 is recent else 48
            for i in range(n):
                end = t0 + timedelta(minutes=30 * (i + 1))
                intervals.append((end, 0.25 * (i % 5) + k))
                conn.execute("INSERT INTO register_readings (meter_id, obis, ts, received_at, value) "
                             "VALUES (1, %s, %s, %s, %s)", (A_PLUS, end, end, 1000 + 10 * k + i))
                conn.execute("INSERT INTO instant_values (meter_id, obis, ts, received_at, value) "
                             "VALUES (1, '1.0.32.7.0.255', %s, %s, 230)", (end, end))
            conn.execute("INSERT INTO meter_events (meter_id, obis, ts, received_at, value) "
                         "VALUES (1, '0.0.96.11.0.255', %s, %s, 1)", (t0, t0))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO intervals (meter_id, obis, ts, received_at, value, period_s) "
                            "VALUES (1, %s, %s, %s, %s, 1800)", [(PROFILE, e, e, v) for e, v in intervals])

        # every policy due now, taken by TimescaleDB's own scheduler (the test template paused them)
        jobs = _jobs(conn)
        assert sorted(p for p, _ in jobs.values()) == (["policy_compression"] * 3 + ["policy_refresh_continuous_aggregate"]
                                                       * 3 + ["policy_retention"])
        since = conn.execute("SELECT now()").fetchone()[0]
        conn.execute("SELECT alter_job(job_id, scheduled => true, next_start => now()) "
                     "FROM timescaledb_information.jobs WHERE job_id >= 1000")
        done = _wait_for_runs(conn, since, set(jobs))
        # Policies started together can deadlock on each other's locks (a compression and a
        # refresh of the same hypertable); TimescaleDB runs a failed job again after its retry
        # period. Give those the second run the scheduler would, now; any other error fails.
        deadlocked = {j for j, e in conn.execute(
            "SELECT job_id, sqlerrcode FROM timescaledb_information.job_errors WHERE start_time >= %s",
            (since,)).fetchall() if e == "40P01"}
        if deadlocked:
            again = conn.execute("SELECT now()").fetchone()[0]
            conn.execute("SELECT alter_job(job_id, next_start => now()) FROM timescaledb_information.jobs "
                         "WHERE job_id = ANY(%s)", (sorted(deadlocked),))
            done.update(_wait_for_runs(conn, again, deadlocked))
        errors = conn.execute("SELECT job_id, sqlerrcode, err_message FROM timescaledb_information.job_errors "
                              "WHERE start_time >= %s", (since,)).fetchall()
        assert done == {j: "Success" for j in jobs}, f"policy runs: {done}; errors: {errors}"
        assert all(e[1] == "40P01" for e in errors), errors

        # compression: chunks wholly older than 60 days are compressed, the current ones are not
        cutoff = conn.execute("SELECT now() - interval '60 days'").fetchone()[0]
        for table in ("register_readings", "intervals", "instant_values"):
            chunks = _chunks(conn, table)
            assert chunks and all(c[2] == (c[1] <= cutoff) for c in chunks), (table, chunks)
            assert any(c[2] for c in chunks), table
        # retention: instant values older than 400 days are gone, billing evidence of that age is kept
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM instant_values WHERE ts < %(t)s), "
            "(SELECT count(*) FROM register_readings WHERE ts < %(t)s), "
            "(SELECT count(*) FROM intervals WHERE ts < %(t)s), (SELECT count(*) FROM meter_events WHERE ts < %(t)s)",
            {"t": ancient + timedelta(days=2)}).fetchone()
        assert counts == (0, 48, 48, 1)
        assert conn.execute("SELECT count(*) FROM instant_values").fetchone()[0] == 48 + 6

        # the refresh policies materialized the interval rollups (compressed months included) ...
        mat = conn.execute("SELECT materialization_hypertable_schema, materialization_hypertable_name "
                           "FROM timescaledb_information.continuous_aggregates "
                           "WHERE view_name = 'cagg_interval_hourly'").fetchone()
        assert conn.execute(f'SELECT count(*) FROM "{mat[0]}"."{mat[1]}"').fetchone()[0] > 0
        # ... and the figures are the raw sums: materialized up to an hour ago, real-time after it
        for name in ("hourly", "daily", "monthly"):
            assert _approx(_interval_rollups(conn)[name], _interval_sums(intervals)[name]), name

        # real-time aggregation: a value of the last half hour counts at once, without a refresh
        conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                     "WHERE job_id >= 1000")
        latest = NOW.replace(second=0) - timedelta(minutes=NOW.minute % 30)
        intervals.append((latest, 9.5))
        conn.execute("INSERT INTO intervals (meter_id, obis, ts, received_at, value, period_s) "
                     "VALUES (1, %s, %s, now(), 9.5, 1800) ON CONFLICT DO NOTHING", (PROFILE, latest))
        assert _approx(_interval_rollups(conn)["hourly"], _interval_sums(intervals)["hourly"])
        # late data below the watermark, into a compressed chunk: counted at the policy's next run
        late = old + timedelta(days=1, minutes=30)
        intervals.append((late, 4.0))
        conn.execute("INSERT INTO intervals (meter_id, obis, ts, received_at, value, period_s) "
                     "VALUES (1, %s, %s, now(), 4.0, 1800)", (PROFILE, late))
        assert _approx(_interval_rollups(conn)["daily"], _interval_sums(intervals[:-1])["daily"])  # not yet
        _run_policies(conn, "policy_refresh_continuous_aggregate")
        for name in ("hourly", "daily", "monthly"):
            assert _approx(_interval_rollups(conn)[name], _interval_sums(intervals)[name]), name


# --------------------------------------------------------------------------------------------
# The same month of data in a TimescaleDB database (then compressed) and a plain one.

REGISTRY = """org_code,org_name,org_inn,house_code,house_address,account,subscriber,meter_id,serial,resource,digits,multiplier,tariff_zones,is_balance,gateway_id
uk1,УК Север,7707083893,h1,ул. Ленина 1,LS-1,Иванов,e1,S-E1,electricity,6,1,1,no,gw1
uk1,УК Север,7707083893,h1,ул. Ленина 1,LS-2,Петров,w1,S-W1,cold_water,5,1,1,no,gw1
uk1,УК Север,7707083893,h2,ул. Мира 2,LS-3,Сидоров,e2,S-E2,electricity,5,40,1,no,gw1
"""
MONTH = (NOW.astimezone(MSK) - timedelta(days=130)).date().replace(day=1)  # compressed by the policy
START = datetime.combine(MONTH, datetime.min.time(), MSK).astimezone(UTC)
NEXT = (MONTH + timedelta(days=32)).replace(day=1)
# e1's profile misses two hours near the month's end (inside the VEE scan's window)
GAP = [datetime.combine(NEXT - timedelta(days=4), datetime.min.time(), MSK).astimezone(UTC)
       + timedelta(hours=13, minutes=30 * k) for k in range(1, 5)]


def _month_values() -> list:
    """Hourly registers of three meters (e2 rolls over 99999 → 0) and e1/e2 half-hour profiles."""
    out = []
    hours = int((datetime.combine(NEXT, datetime.min.time(), MSK).astimezone(UTC) - START).total_seconds() // 3600)
    e1, w1, e2 = 5000.0, 300.0, 99_800.0
    for h in range(1, hours + 1):
        t = START + timedelta(hours=h)
        e1 += 0.75 + (h % 7) * 0.125
        w1 += 0.015625 * (h % 3)
        e2 = (e2 + 0.5) % 100_000
        out += [reg("e1", e1, t), reg("w1", w1, t, obis=COLD), reg("e2", e2, t)]
        for half in (t - timedelta(minutes=30), t):
            if half not in GAP:
                out.append(interval("e1", 0.375 + (h % 4) * 0.125, half))
            out.append(interval("e2", 0.25, half))
    return out


async def _load(dsn: str) -> None:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    ctx = merge.MergeContext(hooks=[live.batch_hook])
    values = _month_values()
    for i in range(0, len(values), 2000):
        await merge.write(conn, ctx, pending(data_msg(values[i:i + 2000], seq=i)))
    await conn.close()


def _api(client: TestClient, token: str, path: str, **params) -> list:
    r = client.get(f"/api/v1{path}", params=params, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def _feed(dsn: str) -> dict[tuple, tuple]:
    """The billing feed read to the end and upserted by (meter, obis, ts), as its consumers do;
    and how many items it delivered."""
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    state, cursor, n = {}, feed.Cursor(), 0
    while True:
        page = await feed.fetch_page(conn, cursor, limit=700)
        for i in page.items:
            state[(i.meter, i.obis, i.ts)] = (i.value, i.quality, tuple(i.reasons), i.source)
        n += len(page.items)
        cursor = feed.Cursor.decode(page.next_cursor)
        if not page.has_more:
            break
    stored = await (await conn.execute(
        "SELECT m.code, r.obis, r.ts, r.value, r.quality, r.reasons, r.source FROM register_readings r "
        "JOIN meters m ON m.id = r.meter_id")).fetchall()
    await conn.close()
    assert state == {(c, o, t): (v, q, tuple(rs), s) for c, o, t, v, q, rs, s in stored}  # every reading, as stored
    return state


async def _exports(dsn: str) -> dict:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    org = await exporters.get_org(conn, "uk1")
    name, xml = await exporters.export_80020(conn, org, MONTH + timedelta(days=4), number=7,
                                             now=datetime(2026, 1, 1, tzinfo=UTC))
    profile = await exporters.hourly_profile(conn, "e1", MONTH)
    end = datetime.combine(NEXT, datetime.min.time(), MSK).astimezone(UTC)
    csv = {kind: "".join([c async for c in exporters.readings_csv_chunks(conn, org, START, end, kind=kind)])
           for kind in ("register", "interval")}
    await conn.close()
    return {"80020": (name, xml), "hourly": profile.values, "csv": csv}


async def _scan(dsn: str) -> tuple:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    stats = await scan.scan_once(conn, datetime.combine(NEXT, datetime.min.time(), MSK) + timedelta(hours=3))
    events = await (await conn.execute(
        "SELECT e.kind, m.code, e.obis, e.ts, e.state FROM abnormal_events e LEFT JOIN meters m ON m.id = e.meter_id "
        "ORDER BY 1, 2, 3, 4")).fetchall()
    estimates = await (await conn.execute(
        "SELECT m.code, i.obis, i.ts, i.value, i.quality FROM intervals i JOIN meters m ON m.id = i.meter_id "
        "WHERE i.source = 'estimate' ORDER BY 1, 2, 3")).fetchall()
    await conn.close()
    return (stats.meters, stats.judged, stats.raised, stats.estimates), events, estimates


def _rounded(x):
    """Sums of the same floats added in another order may differ in the last bits."""
    if isinstance(x, float):
        return round(x, 9)
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_rounded(v) for v in x)
    return x


def _answers(client: TestClient, dsn: str, token: str) -> dict:
    frm, to = MONTH.isoformat(), NEXT.isoformat()
    return _rounded({
        "org_days": _api(client, token, "/consumption/organisation/uk1", **{"from": frm, "to": to}),
        "org_months": _api(client, token, "/consumption/organisation/uk1", granularity="month",
                           **{"from": frm, "to": to}),
        "org_year": _api(client, token, "/consumption/organisation/uk1", granularity="year"),
        "houses": _api(client, token, "/consumption/organisation/uk1", group="house", **{"from": frm, "to": to}),
        "h1_meters": _api(client, token, "/consumption/house/h1", group="meter", **{"from": frm, "to": to}),
        "e1_days": _api(client, token, "/consumption/meter/e1", **{"from": frm, "to": to}),
        "e2_days": _api(client, token, "/consumption/meter/e2", **{"from": frm, "to": to}),
        "feed": asyncio.run(_feed(dsn)),
        "exports": asyncio.run(_exports(dsn)),
    })


def _daily_from_values(values: list, meter: str, multiplier: float = 1, digits: int = 5) -> dict[date, float]:
    """Daily consumption computed here from the readings (later values of the same time win):
    last of the day − last of the day before."""
    last: dict[date, tuple[datetime, float]] = {}
    for v in values:
        if v.meter_id == meter and v.kind == "register":
            d = v.meter_time.astimezone(MSK).date()
            if d not in last or v.meter_time >= last[d][0]:
                last[d] = (v.meter_time, v.value)
    out, prev = {}, None
    for d in sorted(last):
        cur = last[d][1]
        if prev is not None and d < NEXT:
            diff = cur - prev
            out[d] = (diff + 10 ** digits if diff < 0 else diff) * multiplier
        prev = cur
    return out


@pytest.fixture
def twin(pg_dsn: str, pg_cluster, pg_templates, tmp_path: Path):
    """(TimescaleDB database, plain database), same registry and month of data, each with an API client."""
    plain = f"{pg_dsn.rsplit('/', 1)[1]}_plain"
    plain_dsn = pg_cluster.create_database(plain, template=pg_templates("plain"))
    (tmp_path / "reg.csv").write_text(REGISTRY, encoding="utf-8")
    sides = {}
    try:
        for mode, dsn in (("timescale", pg_dsn), ("plain", plain_dsn)):
            assert import_file(dsn, tmp_path / "reg.csv").errors == []
            asyncio.run(_load(dsn))
            with psycopg.connect(dsn) as conn:
                token = create_token(conn, f"t-{mode}", "admin")
            sides[mode] = (dsn, token)
        with TestClient(create_app(Settings(dsn=pg_dsn))) as ts_client, \
                TestClient(create_app(Settings(dsn=plain_dsn))) as plain_client:
            yield {"timescale": (ts_client, *sides["timescale"]), "plain": (plain_client, *sides["plain"])}
    finally:
        pg_cluster.drop_database(plain)


def test_compressed_chunks_answer_every_query_as_plain_postgresql(twin) -> None:
    with psycopg.connect(twin["timescale"][1], autocommit=True) as conn:
        assert not any(c[2] for c in _month_chunks(conn))
        _run_policies(conn, "policy_compression")
        assert _month_chunks(conn) and all(c[2] for c in _month_chunks(conn)), _month_chunks(conn)

    before = {mode: _answers(*side) for mode, side in twin.items()}
    assert before["timescale"] == before["plain"]
    ans = before["timescale"]
    values = _month_values()
    e2 = _daily_from_values(values, "e2", multiplier=40)
    got_e2 = _days(ans["e2_days"])
    assert got_e2.pop(MONTH) == pytest.approx(40 * 0.5 * 22)  # the first day counts from its own first reading
    assert got_e2 == pytest.approx(e2) and got_e2[MONTH + timedelta(days=16)] == pytest.approx(40 * 12)  # rollover
    assert len(ans["feed"]) == sum(v.kind == "register" for v in values)
    assert ans["exports"]["80020"][0].startswith("80020_7707083893_") and ans["exports"]["hourly"]

    # the VEE scan reads compressed months and writes its estimates into them
    scans = {mode: asyncio.run(_scan(side[1])) for mode, side in twin.items()}
    assert scans["timescale"] == scans["plain"]
    assert [e[2] for e in scans["timescale"][2]] == GAP

    # late data and corrections land in the compressed month
    by_key = {(v.meter_id, v.obis, v.meter_time): v.value for v in values if v.kind == "register"}
    noon = START + timedelta(days=14, hours=12)
    late = [reg("e1", (by_key[("e1", A_PLUS, noon)] + by_key[("e1", A_PLUS, noon + timedelta(hours=1))]) / 2,
                noon + timedelta(minutes=30)),  # between two hourly readings
            interval("e1", 0.5, GAP[0]),  # the real value replaces the estimate
            reg("w1", by_key[("w1", COLD, START + timedelta(hours=5))], START + timedelta(hours=5), obis=COLD)]  # replay
    evening = START + timedelta(days=20, hours=23)  # e1's last reading of that day
    corrected = by_key[("e1", A_PLUS, evening)] + 10
    for client, dsn, token in twin.values():
        async def write(dsn: str = dsn) -> None:
            conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
            await merge.prepare_connection(conn)
            await merge.write(conn, merge.MergeContext(hooks=[live.batch_hook]),
                              pending(data_msg(late, seq=99)))
            await conn.close()

        asyncio.run(write())
        corr = {"kind": "register", "obis": A_PLUS, "ts": evening.isoformat(), "value": corrected,
                "reason": "опечатка при вводе показаний"}
        r = client.post("/api/v1/meters/e1/corrections", json=corr, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
    after = {mode: _answers(*side) for mode, side in twin.items()}
    assert after["timescale"] == after["plain"]
    ans = after["timescale"]
    e1 = _daily_from_values([*values, *late[:1], reg("e1", corrected, evening)], "e1")
    got_e1 = _days(ans["e1_days"])
    got_e1.pop(MONTH)
    assert got_e1 == pytest.approx(e1)
    day = evening.astimezone(MSK).date()
    assert got_e1[day] == pytest.approx(_days(before["timescale"]["e1_days"])[day] + 10)
    assert ans["feed"][("e1", A_PLUS, evening)][:2] == (corrected, "M")
    assert ans["feed"][("e1", A_PLUS, late[0].meter_time)][0] == late[0].value
    assert len(ans["feed"]) == len(before["timescale"]["feed"]) + 1
    with psycopg.connect(twin["timescale"][1]) as conn:
        row = conn.execute("SELECT value, source FROM intervals i JOIN meters m ON m.id = i.meter_id "
                           "WHERE m.code = 'e1' AND ts = %s", (GAP[0],)).fetchone()
        assert row == (0.5, "gateway")
        # the month stays compressed; the late rows sit beside it until the next compression run
        assert _month_chunks(conn) and all(c[2] for c in _month_chunks(conn))


def _month_chunks(conn: psycopg.Connection) -> list[tuple[datetime, datetime, bool]]:
    end = datetime.combine(NEXT, datetime.min.time(), MSK)
    return [c for t in ("register_readings", "intervals") for c in _chunks(conn, t) if c[0] < end and c[1] > START]


def _days(rows: list[dict]) -> dict[date, float]:
    return {date.fromisoformat(r["bucket"]): r["value"] for r in rows}

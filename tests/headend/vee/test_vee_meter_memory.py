"""What the meters' memory brings to VEE, through the real ingest: the values come from the
Меркурий and DLMS drivers reading the simulators (over a pty / TCP) and are turned into
contract values as the gateway does (`gateway.bus_worker.to_values`).

- Day starts from the meter's archive let the sum rule judge a day's profile sum.
- Journal entries become abnormal events: tamper, power loss, phase loss, clock set,
  meter faults, each with its Russian sentence.
- An archive value arriving days after live values of later times raises no reverse or
  spike, is not a frozen repeat of a poll at the same instant, and leaves the rollups as a
  rebuild would make them.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import psycopg
import pytest
from vee_helpers import c_reg, pending

from askue.drivers.base import MeterSpec, get_driver
from askue.drivers.dlms.simulator import make_session_factory as dlms_sessions
from askue.drivers.mercury.simulator import make_session_factory as mercury_sessions
from askue.drivers.sim.line import PtyServer, serve_tcp
from askue.drivers.sim.meter import MSK, Faults, JournalEntry, SimMeter
from askue.drivers.transport import SerialTransport, TcpTransport
from askue.gateway.bus_worker import to_values
from askue.headend.events.describe import describe
from askue.headend.ingest import merge
from askue.headend.storage import hooks
from askue.headend.vee import scan

NOW = datetime(2026, 11, 18, 10, 7, 30, tzinfo=UTC)
PROFILE = "1.0.1.29.0.255"


class Clock:
    def __init__(self, t: datetime):
        self.t = t

    def __call__(self) -> datetime:
        return self.t


async def _conn(dsn: str) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    return conn


async def _write(conn, values, seq: int) -> None:
    ctx = merge.MergeContext(hooks=hooks.composed())
    for i in range(0, len(values), 500):
        await merge.write(conn, ctx, pending(values[i:i + 500], seq=seq * 100 + i))


async def _events(conn, kind: str | None = None) -> list[dict]:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    await cur.execute("SELECT m.code AS meter, e.kind, e.state, e.ts, e.obis, e.evidence, e.severity "
                      "FROM abnormal_events e JOIN meters m ON m.id = e.meter_id "
                      "WHERE %s::text IS NULL OR e.kind = %s ORDER BY m.code, e.ts, e.kind", (kind, kind))
    return await cur.fetchall()


def _ru(e: dict) -> str:
    return describe(e["kind"], e["evidence"], resource="electricity", obis=e["obis"], tz=MSK, now=NOW)


def _mercury(addr: int, clock: Clock, **kw) -> SimMeter:
    return SimMeter(id=f"merc{addr}", serial=f"{40000000 + addr:08d}", address=addr, password="111111",
                    now=clock, seed=addr, **kw)


def _mercury_spec(addr: int) -> MeterSpec:
    return MeterSpec(id=f"merc{addr}", driver="mercury", address=addr, serial=f"{40000000 + addr:08d}",
                     password="111111", options={"timeout": 1.0})


# -------------------------------------------------------------------- sum rule on archives

@pytest.mark.storage_modes
async def test_day_starts_from_the_archive_judge_the_profile_sum(pg_dsn, tmp_path):
    """Two Меркурий meters polled at 10:07 (no read near midnight): only once the meter's
    day starts arrive can the sum rule judge yesterday; the meter whose profile lost a
    burst of pulses raises sum_mismatch, the sound one nothing."""
    clock = Clock(NOW)
    meters = {1: _mercury(1, clock), 2: _mercury(2, clock)}
    pty = await PtyServer(mercury_sessions(meters, transport="serial"), tmp_path / "ttyM").start()
    transport = SerialTransport(str(tmp_path / "ttyM"))
    live, archived = [], []
    try:
        for addr in meters:
            drv = get_driver("mercury")(transport, _mercury_spec(addr))
            await drv.connect()
            profile = await drv.read_profile(NOW - timedelta(days=2), NOW)
            live += to_values(f"merc{addr}", [*profile, *await drv.read_registers()], NOW)
            archived += to_values(f"merc{addr}", await drv.read_archive("day_start", NOW - timedelta(days=2), NOW),
                                  NOW + timedelta(hours=2))
    finally:
        await transport.close()
        await pty.stop()
    yesterday = (NOW.astimezone(MSK) - timedelta(days=1)).date()
    midnight = datetime.combine(yesterday, datetime.min.time(), MSK)
    assert {v.meter_time for v in archived} == {midnight.astimezone(UTC), (midnight + timedelta(days=1)).astimezone(UTC)}
    # merc2's profile counted 1.5 kWh too much at 14:00 yesterday
    burst = (midnight + timedelta(hours=14)).astimezone(UTC)
    live = [msgspec.structs.replace(v, value=v.value + 1.5)
            if (v.meter_id, v.obis, v.meter_time) == ("merc2", PROFILE, burst) else v for v in live]

    conn = await _conn(pg_dsn)
    await _write(conn, live, seq=1)
    await scan.scan_once(conn, NOW + timedelta(minutes=1))
    assert await _events(conn, "sum_mismatch") == []  # no register read near midnight: nothing to judge
    await _write(conn, archived, seq=2)
    await scan.scan_once(conn, NOW + timedelta(hours=2, minutes=1))
    (e,) = await _events(conn, "sum_mismatch")
    reg = {v.meter_time: v.value for v in archived if v.meter_id == "merc2" and v.obis == "1.0.1.8.0.255"}
    delta = reg[(midnight + timedelta(days=1)).astimezone(UTC)] - reg[midnight.astimezone(UTC)]
    assert e["meter"] == "merc2" and e["evidence"]["day"] == yesterday.isoformat()
    assert e["evidence"]["register_delta"] == pytest.approx(delta, abs=1e-6)
    assert e["evidence"]["difference"] == pytest.approx(1.5, abs=0.01)
    assert _ru(e).startswith(f"Сумма интервалов за {yesterday:%d.%m.%Y}")
    await conn.close()


# ------------------------------------------------------------------------ journals → events

async def _mercury_journal(tmp_path) -> tuple[list, SimMeter]:
    clock = Clock(NOW)
    cuts = NOW - timedelta(hours=5)
    m = _mercury(8, clock, faults=Faults(power_cuts_at=cuts, power_cuts=2, cover_open_at=NOW - timedelta(hours=2)))
    m.journal += [JournalEntry("0.0.99.98.0.255", NOW - timedelta(hours=4), 3),  # phase B lost …
                  JournalEntry("0.0.99.98.0.255", NOW - timedelta(hours=3, minutes=50), 4)]  # … and back
    clock.t = NOW - timedelta(hours=1)
    m.set_clock(NOW - timedelta(minutes=50))  # stepped by 10 min: a time set, not a correction
    clock.t = NOW
    pty = await PtyServer(mercury_sessions({8: m}, transport="serial"), tmp_path / "ttyJ").start()
    t = SerialTransport(str(tmp_path / "ttyJ"))
    try:
        drv = get_driver("mercury")(t, _mercury_spec(8))
        await drv.connect()
        return to_values("merc8", await drv.read_events(None), NOW), m
    finally:
        await t.close()
        await pty.stop()


async def _dlms_journal() -> list:
    tamper = NOW - timedelta(hours=6)
    m = SimMeter(id="dlms1", serial="01234567", password="12345678", now=lambda: NOW,
                 faults=Faults(tamper_at=tamper, power_cuts_at=NOW - timedelta(hours=3), power_cuts=1,
                               power_cut_s=4 * 3600.0, clock_reset_at=NOW - timedelta(minutes=30),
                               # the driver reads journals from 2000-01-01 00:00 UTC on
                               clock_reset_to=datetime(2000, 1, 1, 12, tzinfo=MSK)))
    m.set_clock(NOW - timedelta(minutes=20), t=NOW - timedelta(minutes=20))  # someone set the lost clock right
    server = await serve_tcp(dlms_sessions({17: m}, transport="tcp"))
    t = TcpTransport("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        drv = get_driver("dlms")(t, MeterSpec(id="dlms1", driver="dlms", address=17, password="12345678",
                                              options={"timeout": 2.0}))
        await drv.connect()
        events = await drv.read_events(None)
        await drv.close()
        return to_values("dlms1", events, NOW)
    finally:
        await t.close()
        server.close()


@pytest.mark.storage_modes
async def test_journal_entries_from_mercury_and_dlms_become_events(pg_dsn, tmp_path):
    merc, m = await _mercury_journal(tmp_path)
    dlms = await _dlms_journal()
    codes = {(v.meter_id, v.obis, int(v.value)) for v in merc + dlms}
    # what the drivers really sent (СПОДЭС journals and codes)
    assert {("merc8", "0.0.99.98.2.255", 1), ("merc8", "0.0.99.98.2.255", 2), ("merc8", "0.0.99.98.0.255", 3),
            ("merc8", "0.0.99.98.0.255", 4), ("merc8", "0.0.99.98.4.255", 4), ("merc8", "0.0.99.98.3.255", 3),
            ("dlms1", "0.0.99.98.4.255", 1), ("dlms1", "0.0.99.98.4.255", 2), ("dlms1", "0.0.99.98.2.255", 1),
            ("dlms1", "0.0.99.98.7.255", 5)} <= codes
    conn = await _conn(pg_dsn)
    await _write(conn, merc + dlms, seq=1)
    await _write(conn, merc + dlms, seq=2)  # the journal read again: nothing twice
    evs = await _events(conn)
    got = sorted((e["meter"], e["kind"], e["state"]) for e in evs)
    assert got == sorted([
        ("merc8", "power_loss", "resolved"), ("merc8", "power_loss", "resolved"),  # two cuts, power back
        ("merc8", "phase_loss", "resolved"),  # phase B back after 10 minutes
        ("merc8", "tamper", "open"),  # case opened
        ("merc8", "clock_set", "open"),
        ("dlms1", "tamper", "open"),  # magnetic field start; its end is no event
        ("dlms1", "power_loss", "open"),  # still off: the cut lasts four hours from 3 h ago …
        ("dlms1", "meter_fault", "open"),  # the clock lost its time …
        ("dlms1", "clock_set", "open"),  # … and was set again
    ]), got
    sentences = {(e["meter"], e["kind"]): _ru(e) for e in evs}
    cut = (NOW - timedelta(hours=5)).astimezone(MSK)
    assert sentences[("merc8", "power_loss")] in (
        f"Журнал включений/выключений счётчика: питание отключено {cut:%d.%m.%Y %H:%M}, "
        f"включено {cut:%d.%m.%Y %H:%M} (через 1 мин)",
        f"Журнал включений/выключений счётчика: питание отключено {cut + timedelta(minutes=5):%d.%m.%Y %H:%M}, "
        f"включено {cut + timedelta(minutes=6):%d.%m.%Y %H:%M} (через 1 мин)")
    lost = (NOW - timedelta(hours=4)).astimezone(MSK)
    assert sentences[("merc8", "phase_loss")] == (
        f"Журнал напряжения счётчика: пропадание напряжения фазы L2 {lost:%d.%m.%Y %H:%M}, "
        f"восстановлено {lost + timedelta(minutes=10):%d.%m.%Y %H:%M} (через 10 мин)")
    assert sentences[("merc8", "tamper")] == "Журнал внешних воздействий: событие с кодом 4 — вскрыт корпус счётчика"
    assert sentences[("merc8", "clock_set")].startswith("Журнал программирования счётчика: установлено время ")
    assert sentences[("dlms1", "tamper")].endswith("воздействие магнитного поля (начало)")
    assert sentences[("dlms1", "meter_fault")].startswith("Журнал самодиагностики счётчика: ошибка часов (код 5)")
    assert all("=" not in s and s for s in sentences.values())
    # … and when the journal says power came back, the outage is over
    (off,) = [v for v in dlms if v.obis == "0.0.99.98.2.255" and v.value == 1.0]
    on = msgspec.structs.replace(off, meter_time=NOW + timedelta(hours=1), received_at=NOW + timedelta(hours=2),
                                 value=2.0)
    await _write(conn, [on], seq=3)
    (outage,) = [e for e in await _events(conn, "power_loss") if e["meter"] == "dlms1"]
    assert outage["state"] == "resolved"
    await conn.close()


# ------------------------------------------------------------ a late archive value is quiet

@pytest.mark.storage_modes
async def test_a_late_archive_value_raises_nothing_and_keeps_rollups(pg_dsn):
    """Hourly polls for twelve days (one exactly at midnight of the 9th), then — days late —
    the meter's day starts for the last five: no reverse, spike or frozen event, and the
    register rollups equal a full rebuild."""
    t0 = datetime(2026, 11, 1, tzinfo=MSK)

    def energy(t: datetime) -> float:
        return round(5000.0 + 0.7 * (t - t0).total_seconds() / 3600, 3)

    conn = await _conn(pg_dsn)
    await conn.execute("INSERT INTO organisations (code, name) VALUES ('uk1', 'УК 1')")
    await conn.execute("INSERT INTO sites (code, org_id) SELECT 'H1', id FROM organisations")
    await conn.execute("INSERT INTO meters (code, org_id, site_id, resource, digits) "
                       "SELECT 'm1', o.id, s.id, 'electricity', 6 FROM organisations o, sites s")
    at = [t0 + timedelta(hours=h, minutes=0 if h == 9 * 24 else 7) for h in range(12 * 24)]
    polls = [c_reg("m1", energy(t), t.astimezone(UTC)) for t in at]
    await _write(conn, polls, seq=1)
    await scan.scan_once(conn, (t0 + timedelta(days=12)).astimezone(UTC))
    late = t0 + timedelta(days=16)
    days = [t0 + timedelta(days=d) for d in range(7, 12)]
    archive = [msgspec.structs.replace(c_reg("m1", energy(d), d.astimezone(UTC)), archive="day_start",
                                       received_at=late.astimezone(UTC)) for d in days]
    before = await _rollups(conn)
    await _write(conn, archive, seq=2)
    await scan.scan_once(conn, (late + timedelta(minutes=1)).astimezone(UTC))
    assert [(e["kind"], e["meter"], e["ts"]) for e in await _events(conn)] == []
    stored = await (await conn.execute(
        "SELECT ts, archive, reasons FROM register_readings WHERE ts = ANY(%s) ORDER BY ts", (days,))).fetchall()
    # the poll at midnight of the 9th keeps its place; the other day starts are stored, unflagged
    assert [(ts, a) for ts, a, _ in stored] == [(d, None if d == t0 + timedelta(days=9) else "day_start")
                                                for d in days]
    assert all(r == [] for _, _, r in stored)
    incremental = await _rollups(conn)
    assert incremental != before  # the day starts are in the rollups …
    await conn.execute("SELECT askue_rollup_rebuild(id, '1.0.1.8.0.255', %s, %s) FROM meters",
                       (t0, t0 + timedelta(days=12)))
    assert await _rollups(conn) == incremental  # … exactly as a rebuild puts them
    await conn.close()


async def _rollups(conn) -> dict:
    out = {}
    await conn.execute("SELECT askue_consumption_compact()")
    for table in ("rollup_register_daily", "rollup_register_monthly", "consumption_daily"):
        cur = await conn.execute(f"SELECT * FROM {table}")  # noqa: S608
        out[table] = sorted(tuple(round(x, 6) if isinstance(x, float) else x for x in r)
                            for r in await cur.fetchall())
    return out

"""The VEE hook's memory of stored register readings (vee/register_tails.py): it answers for
the usual poll without asking the database, and never when another transaction changed the
meter's registers (another writer, a deletion, a rolled-back batch, an archive delivered late)."""
from __future__ import annotations

import random
from datetime import timedelta

import psycopg
import pytest
from vee_helpers import A_PLUS, T0, c_reg, pending

from askue.headend.ingest import merge
from askue.headend.vee import live, register_tails

A_MINUS = "1.0.2.8.0.255"
pytestmark = pytest.mark.storage_modes  # the triggers that mark writers, on hypertables and partitions


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch) -> register_tails.RegisterTails:
    tails = register_tails.RegisterTails()
    monkeypatch.setattr(register_tails, "TAILS", tails)
    return tails


async def _setup(dsn: str, *codes: str) -> tuple[psycopg.AsyncConnection, merge.MergeContext]:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    for code in codes or ("E5",):
        await conn.execute("INSERT INTO meters (code, serial, resource, digits, status) "
                           "VALUES (%s, %s, 'electricity', 6, 'active')", (code, "S" + code))
    await conn.execute("INSERT INTO vee_thresholds (scope, name, settings) VALUES ('default', '', %s)",
                       ('{"reverse_tolerance": 0.5}',))
    return conn, merge.MergeContext(hooks=[live.batch_hook])


def _count_register_lookups(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = live._lookup

    async def counting(conn, kind, firsts, lows, since, *args, **kw):
        if kind == "register" and since is not None:  # (not the lookups over whole histories after it)
            calls.append(len(firsts))
        return await real(conn, kind, firsts, lows, since, *args, **kw)

    monkeypatch.setattr(live, "_lookup", counting)
    return calls


async def _reverse_events(conn: psycopg.AsyncConnection) -> list[tuple]:
    cur = await conn.execute("SELECT m.code, e.evidence->>'previous' FROM abnormal_events e "
                             "JOIN meters m ON m.id = e.meter_id WHERE kind = 'reverse_reading' ORDER BY e.id")
    return await cur.fetchall()


async def _store_elsewhere(dsn: str, sql: str, *params) -> None:
    """Another writer (a person's correction, a second worker): its own connection, no hook."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as other:
        await other.execute(sql, params)


async def test_the_usual_poll_is_answered_from_memory(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    conn, ctx = await _setup(pg_dsn)
    lookups = _count_register_lookups(monkeypatch)

    async def poll(hour: int, a_plus: float, a_minus: float) -> None:
        await merge.write(conn, ctx, pending([c_reg("E5", a_plus, T0 + timedelta(hours=hour)),
                                              c_reg("E5", a_minus, T0 + timedelta(hours=hour), obis=A_MINUS)],
                                             seq=hour + 1))

    await poll(0, 100.0, 5.0)
    assert lookups == [2]  # met for the first time: both channels asked, nothing remembered
    await poll(1, 101.0, 5.2)
    assert lookups == [2, 2]  # met again: asked, and what it leaves remembered
    await poll(2, 102.0, 5.3)
    await poll(3, 103.0, 5.4)
    assert lookups == [2, 2]  # the meter's memory is its own: nothing asked
    # a value below the remembered one is asked for, and judged against the stored reading
    await poll(4, 99.0, 5.5)
    assert lookups == [2, 2, 1]
    assert await _reverse_events(conn) == [("E5", "103.0")]
    await poll(5, 99.5, 5.6)
    assert lookups == [2, 2, 1]
    await conn.close()


async def test_another_writers_reading_is_not_missed(pg_dsn: str) -> None:
    conn, ctx = await _setup(pg_dsn)
    await merge.write(conn, ctx, pending([c_reg("E5", 100.0, T0)]))
    await _store_elsewhere(pg_dsn, "INSERT INTO register_readings (meter_id, obis, ts, received_at, value, source) "
                           "SELECT id, %s, %s, %s, 200, 'manual' FROM meters WHERE code = 'E5'",
                           A_PLUS, T0 + timedelta(hours=1), T0 + timedelta(hours=1))
    # remembered: 100, below 150; stored since by someone else: 200, above it
    await merge.write(conn, ctx, pending([c_reg("E5", 150.0, T0 + timedelta(hours=2))], seq=2))
    assert await _reverse_events(conn) == [("E5", "200.0")]
    await conn.close()


async def _reasons(conn: psycopg.AsyncConnection) -> list[tuple]:
    cur = await conn.execute("SELECT value, reasons FROM register_readings ORDER BY ts")
    return await cur.fetchall()


async def test_a_reading_deleted_elsewhere_uncovers_the_one_before(pg_dsn: str) -> None:
    conn, ctx = await _setup(pg_dsn)
    await merge.write(conn, ctx, pending([c_reg("E5", 300.0, T0)]))
    await merge.write(conn, ctx, pending([c_reg("E5", 100.0, T0 + timedelta(hours=1))], seq=2))
    await _store_elsewhere(pg_dsn, "DELETE FROM register_readings WHERE ts = %s", T0 + timedelta(hours=1))
    # remembered: 100, below 200; stored: 300 only, above it
    await merge.write(conn, ctx, pending([c_reg("E5", 200.0, T0 + timedelta(hours=2))], seq=3))
    assert await _reasons(conn) == [(300.0, []), (200.0, ["reverse_reading"])]
    await conn.close()


async def test_a_corrected_reading_is_not_judged_against(pg_dsn: str) -> None:
    conn, ctx = await _setup(pg_dsn)
    await merge.write(conn, ctx, pending([c_reg("E5", 100.0, T0)]))
    await _store_elsewhere(pg_dsn, "UPDATE register_readings SET value = 400, quality = 'M' WHERE ts = %s", T0)
    await merge.write(conn, ctx, pending([c_reg("E5", 200.0, T0 + timedelta(hours=1))], seq=2))
    assert await _reverse_events(conn) == [("E5", "400.0")]
    await conn.close()


async def test_a_rolled_back_batch_leaves_nothing_trusted(pg_dsn: str) -> None:
    conn, ctx = await _setup(pg_dsn)
    await merge.write(conn, ctx, pending([c_reg("E5", 300.0, T0)]))
    async with conn.transaction(force_rollback=True):  # the hook ran; the commit never came
        await merge._write_tx(conn, ctx, pending([c_reg("E5", 100.0, T0 + timedelta(hours=1))], seq=2))
    # remembered (by the rolled-back batch): 100, below 200; stored: 300, above it
    await merge.write(conn, ctx, pending([c_reg("E5", 200.0, T0 + timedelta(hours=2))], seq=3))
    assert await _reasons(conn) == [(300.0, []), (200.0, ["reverse_reading"])]
    await conn.close()


async def test_a_batch_failing_halfway_leaves_nothing_trusted(pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory answering for one channel is updated in place before the lookup of another;
    the lookup fails, the batch rolls back: the half-updated memory must go with it."""
    conn, ctx = await _setup(pg_dsn)
    await merge.write(conn, ctx, pending([c_reg("E5", 100.0, T0), c_reg("E5", 10.0, T0, obis=A_MINUS)]))
    real = live._lookup

    async def lost(*args, **kw):
        raise psycopg.OperationalError("connection lost")

    monkeypatch.setattr(live, "_lookup", lost)
    with pytest.raises(psycopg.OperationalError):  # A- 9.6: within the tolerance, from memory; A+ 50: asked
        await merge.write(conn, ctx, pending([c_reg("E5", 50.0, T0 + timedelta(hours=1)),
                                              c_reg("E5", 9.6, T0 + timedelta(hours=1), obis=A_MINUS)], seq=2))
    monkeypatch.setattr(live, "_lookup", real)
    # stored before 9.3: 10.0, beyond the tolerance (the rolled-back 9.6 would not be)
    await merge.write(conn, ctx, pending([c_reg("E5", 100.5, T0 + timedelta(hours=2)),
                                          c_reg("E5", 9.3, T0 + timedelta(hours=2), obis=A_MINUS)], seq=3))
    cur = await conn.execute("SELECT value, reasons FROM register_readings WHERE obis = %s ORDER BY ts", (A_MINUS,))
    assert await cur.fetchall() == [(10.0, []), (9.3, ["reverse_reading"])]
    await conn.close()


async def test_an_archive_delivered_late_is_not_taken_for_the_latest(pg_dsn: str) -> None:
    conn, ctx = await _setup(pg_dsn)
    await merge.write(conn, ctx, pending([c_reg("E5", 100.0, T0)]))
    await merge.write(conn, ctx, pending([c_reg("E5", 300.0, T0 + timedelta(hours=3))], seq=2))
    await merge.write(conn, ctx, pending([c_reg("E5", 150.0, T0 + timedelta(hours=1)),
                                          c_reg("E5", 200.0, T0 + timedelta(hours=2))], seq=3))
    # the newest stored is still 300 (03:00), not the archive's 200 (02:00)
    await merge.write(conn, ctx, pending([c_reg("E5", 250.0, T0 + timedelta(hours=4))], seq=4))
    assert await _reverse_events(conn) == [("E5", "300.0")]
    await conn.close()


async def test_judgements_are_the_same_with_and_without_memory(pg_dsn: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """One random history (polls, reverses, channels coming and going, archives delivered
    late, values delivered again, other writers' insertions, corrections and deletions,
    rolled-back batches) written twice: to meters M* with the memory, to meters N* without.
    Every stored reading's reasons and every event come out the same."""
    rnd = random.Random(20261203)
    conn, ctx = await _setup(pg_dsn, "M1", "M2", "N1", "N2")
    with_memory, without = register_tails.RegisterTails(), register_tails.RegisterTails(capacity=0)
    level = {("1", A_PLUS): 1000.0, ("1", A_MINUS): 10.0, ("2", A_PLUS): 500.0, ("2", A_MINUS): 20.0}
    t = T0
    for seq in range(1, 61):
        t += timedelta(minutes=30)
        values: list[tuple[str, float, object, str]] = []
        for (m, obis), v in level.items():
            if rnd.random() < 0.15:
                continue  # not read this time
            step = rnd.choice([0.0, 0.3, 1.0, 2.5, -0.3, -2.0]) if rnd.random() < 0.3 else rnd.uniform(0, 2)
            level[(m, obis)] = v + step
            values.append((m, level[(m, obis)], t, obis))
            if rnd.random() < 0.1:  # an archive reading delivered late
                values.append((m, v - rnd.uniform(0, 3), t - timedelta(minutes=rnd.choice([10, 50, 200])), obis))
        other = rnd.random()
        for prefix, tails in (("M", with_memory), ("N", without)):
            monkeypatch.setattr(register_tails, "TAILS", tails)
            msg = pending([c_reg(prefix + m, v, at, obis=obis) for m, v, at, obis in values], seq=seq)
            if other < 0.05:
                async with conn.transaction(force_rollback=True):
                    await merge._write_tx(conn, ctx, msg)
                continue
            await merge.write(conn, ctx, msg)
            if other < 0.12:
                await _store_elsewhere(
                    pg_dsn, "INSERT INTO register_readings (meter_id, obis, ts, received_at, value, source) "
                    "SELECT id, %s, %s, %s, %s, 'manual' FROM meters WHERE code = %s ON CONFLICT DO NOTHING",
                    A_PLUS, t + timedelta(minutes=10), t + timedelta(minutes=10), level[("1", A_PLUS)] + 5,
                    prefix + "1")
            elif other < 0.17:
                await _store_elsewhere(
                    pg_dsn, "DELETE FROM register_readings r USING meters m WHERE m.id = r.meter_id AND m.code = %s "
                    "AND r.ts = (SELECT max(ts) FROM register_readings WHERE meter_id = m.id)", prefix + "2")
            elif other < 0.22:
                await _store_elsewhere(
                    pg_dsn, "UPDATE register_readings r SET value = value + 3 FROM meters m WHERE m.id = r.meter_id "
                    "AND m.code = %s AND r.ts = (SELECT max(ts) FROM register_readings WHERE meter_id = m.id)",
                    prefix + "1")
    assert len(with_memory) > 0 and len(without) == 0

    async def judged(prefix: str) -> tuple[list, list]:
        cur = await conn.execute(
            "SELECT substr(m.code, 2), r.obis, r.ts, r.value, r.reasons FROM register_readings r "
            "JOIN meters m ON m.id = r.meter_id WHERE m.code LIKE %s ORDER BY 1, 2, 3", (prefix + "%",))
        rows = await cur.fetchall()
        cur = await conn.execute(
            "SELECT substr(m.code, 2), e.kind, e.ts, e.evidence->>'previous', e.state FROM abnormal_events e "
            "JOIN meters m ON m.id = e.meter_id WHERE m.code LIKE %s ORDER BY 1, 2, 3", (prefix + "%",))
        return rows, await cur.fetchall()

    memory_rows, memory_events = await judged("M")
    plain_rows, plain_events = await judged("N")
    assert memory_rows == plain_rows
    assert memory_events == plain_events
    assert any(kind == "reverse_reading" for _, kind, *_ in memory_events)
    assert any(r[4] for r in memory_rows)  # some readings carry reasons
    await conn.close()

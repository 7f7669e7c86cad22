"""The periodic scan against real PostgreSQL: raised once, not again on rescan; gaps
estimated and flagged; contact resumed clears no_contact."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from vee_helpers import c_val, pending

from askue.headend.ingest import merge
from askue.headend.vee import live, scan

# storage semantics: once on TimescaleDB, once on plain PostgreSQL
pytestmark = pytest.mark.storage_modes

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PROF = "1.0.1.29.0.255"


async def _conn(dsn: str) -> psycopg.AsyncConnection:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await merge.prepare_connection(conn)
    await conn.execute("INSERT INTO organisations (code, name) VALUES ('UK1', 'УК Один')")
    await conn.execute(
        "INSERT INTO meters (code, resource, digits, org_id, status, verification_due, last_contact) "
        "SELECT 'E7', 'electricity', 6, id, 'active', DATE '2026-11-01', %s FROM organisations", (NOW,))
    await conn.execute(
        "INSERT INTO meters (code, resource, status, last_contact) VALUES "
        "('SILENT', 'electricity', 'active', %s), ('GONE', 'electricity', 'decommissioned', %s)",
        (NOW - timedelta(days=3), NOW - timedelta(days=30)))
    return conn


async def _events(conn) -> list[tuple]:
    cur = await conn.execute("SELECT e.kind, m.code, e.state, e.evidence->>'bucket' FROM abnormal_events e "
                             "JOIN meters m ON m.id = e.meter_id ORDER BY m.code, e.kind")
    return await cur.fetchall()


async def test_scan_raises_once_and_clears_on_contact(pg_dsn: str) -> None:
    conn = await _conn(pg_dsn)
    await scan.scan_once(conn, NOW)
    first = await _events(conn)
    assert first == [("verification_overdue", "E7", "open", None), ("no_contact", "SILENT", "open", "1w")]
    await scan.scan_once(conn, NOW + timedelta(minutes=5))
    await scan.scan_once(conn, NOW + timedelta(days=1))
    assert await _events(conn) == first
    # the silent meter talks again
    await conn.execute("UPDATE meters SET last_contact = %s WHERE code = 'SILENT'", (NOW + timedelta(days=1),))
    await scan.scan_once(conn, NOW + timedelta(days=1, minutes=5))
    ev = await _events(conn)
    assert ("no_contact", "SILENT", "resolved", "1w") in ev
    row = await (await conn.execute("SELECT resolved_by, cleared_at IS NOT NULL FROM abnormal_events "
                                    "e JOIN meters m ON m.id = e.meter_id WHERE kind = 'no_contact' "
                                    "AND m.code = 'SILENT'")).fetchone()
    assert row == ("vee", True)
    await conn.close()


async def test_scan_estimates_short_gap_and_real_value_wins(pg_dsn: str) -> None:
    conn = await _conn(pg_dsn)
    ctx = merge.MergeContext(hooks=[live.batch_hook])
    t = NOW - timedelta(hours=6)
    vals = [c_val("E7", "interval", PROF, 0.2, t, period_s=1800),
            c_val("E7", "interval", PROF, 0.4, t + timedelta(minutes=90), period_s=1800)]  # 2 missing = 1 h
    await merge.write(conn, ctx, pending(vals))
    await scan.scan_once(conn, NOW)
    rows = await (await conn.execute("SELECT ts, value, quality, reasons, source FROM intervals ORDER BY ts")).fetchall()
    assert [(r[1], r[2], r[4]) for r in rows] == [
        (0.2, "A", "gateway"), (0.266667, "E", "estimate"), (0.333333, "E", "estimate"), (0.4, "A", "gateway")]
    assert rows[1][3] == ["estimated", "method:linear"]
    roll = await (await conn.execute("SELECT sum(value) FROM rollup_interval_daily")).fetchone()
    assert abs(roll[0] - 1.2) < 1e-6
    # a rescan does not estimate again; the real value arriving late replaces the estimate
    await scan.scan_once(conn, NOW + timedelta(minutes=5))
    await scan.scan_once(conn, NOW + timedelta(hours=2))
    assert (await (await conn.execute("SELECT count(*) FROM intervals")).fetchone())[0] == 4
    await merge.write(conn, ctx, pending([c_val("E7", "interval", PROF, 0.25, t + timedelta(minutes=30),
                                                period_s=1800)], seq=2))
    rows = await (await conn.execute("SELECT value, quality, source FROM intervals ORDER BY ts")).fetchall()
    assert rows[1] == (0.25, "A", "gateway")
    roll = await (await conn.execute("SELECT sum(value) FROM rollup_interval_daily")).fetchone()
    assert abs(roll[0] - (0.2 + 0.25 + 0.333333 + 0.4)) < 1e-6
    await conn.close()


async def test_scan_zero_consumption_and_no_repeat(pg_dsn: str) -> None:
    conn = await _conn(pg_dsn)
    ctx = merge.MergeContext(hooks=[live.batch_hook])
    base = NOW - timedelta(days=10)
    vals = [c_val("E7", "register", "1.0.1.8.0.255", 100.0, base)]
    vals += [c_val("E7", "register", "1.0.1.8.0.255", 105.0, base + timedelta(days=d)) for d in range(1, 10)]
    await merge.write(conn, ctx, pending(vals))
    await scan.scan_once(conn, NOW)
    await scan.scan_once(conn, NOW + timedelta(minutes=5))
    kinds = [k for k, code, *_ in await _events(conn) if code == "E7"]
    assert kinds.count("zero_consumption") == 1
    await conn.close()


async def test_scan_house_imbalance_filed_under_the_house(pg_dsn: str) -> None:
    conn = await _conn(pg_dsn)
    await conn.execute("INSERT INTO sites (code, org_id, kind) SELECT 'h1', id, 'house' FROM organisations")
    await conn.execute(
        "INSERT INTO meters (code, resource, status, site_id, org_id, is_balance, last_contact) "
        "SELECT c, 'electricity', 'active', s.id, s.org_id, c = 'ODPU', %s FROM sites s, "
        "unnest(ARRAY['ODPU', 'F1', 'F2']) AS c", (NOW,))
    ctx = merge.MergeContext(hooks=[live.batch_hook])
    day0 = datetime(2026, 11, 18, 21, 0, tzinfo=UTC)  # local midnight 19.11 (MSK)
    day1 = day0 + timedelta(days=1)
    q = {"ODPU": 100.0, "F1": 40.0, "F2": 40.0}  # 20 % lost
    vals = [c_val(c, "register", "1.0.1.8.0.255", 1000.0, day0) for c in q]
    vals += [c_val(c, "register", "1.0.1.8.0.255", 1000.0 + x, day1) for c, x in q.items()]
    await merge.write(conn, ctx, pending(vals))
    await scan.scan_once(conn, NOW)
    await scan.scan_once(conn, NOW + timedelta(hours=2))
    cur = await conn.execute("SELECT s.code, e.evidence->>'imbalance_pct', e.evidence->>'flats' FROM abnormal_events e "
                             "JOIN sites s ON s.id = e.site_id WHERE e.kind = 'house_imbalance'")
    assert await cur.fetchall() == [("h1", "20.0", "2")]
    await conn.close()


async def test_reverse_then_new_serial_closes_as_exchange(pg_dsn: str) -> None:
    conn = await _conn(pg_dsn)
    await conn.execute("UPDATE meters SET serial = 'S-OLD' WHERE code = 'E7'")
    ctx = merge.MergeContext(hooks=[live.batch_hook])
    t = NOW - timedelta(hours=3)
    await merge.write(conn, ctx, pending([c_val("E7", "register", "1.0.1.8.0.255", 5000.0, t),
                                          c_val("E7", "register", "1.0.1.8.0.255", 1.0, t + timedelta(hours=1))]))
    assert [k for k, c, *_ in await _events(conn) if c == "E7"] == ["reverse_reading"]
    # the gateway's identity check reports the new meter's serial
    await conn.execute("UPDATE meters SET reported_serial = 'S-NEW' WHERE code = 'E7'")
    await scan.scan_once(conn, NOW)
    row = await (await conn.execute("SELECT state, resolved_by, comment FROM abnormal_events "
                                    "WHERE kind = 'reverse_reading'")).fetchone()
    assert row[:2] == ("resolved", "vee") and "S-OLD → S-NEW" in row[2]
    # from now on a drop on this meter is an exchange, not a reverse
    await merge.write(conn, ctx, pending([c_val("E7", "register", "1.0.1.8.0.255", 0.5, t + timedelta(hours=2))],
                                         seq=2))
    assert [k for k, c, *_ in await _events(conn) if c == "E7" and k == "reverse_reading"] == ["reverse_reading"]
    await conn.close()


async def test_verification_done_closes_the_overdue_event(pg_dsn: str) -> None:
    conn = await _conn(pg_dsn)
    await scan.scan_once(conn, NOW)
    await conn.execute("UPDATE meters SET verification_due = DATE '2026-12-05' WHERE code = 'E7'")  # within 30 d
    await scan.scan_once(conn, NOW + timedelta(minutes=5))
    ev = [(k, s) for k, c, s, _ in await _events(conn) if c == "E7"]
    assert ev == [("verification_due", "open"), ("verification_overdue", "resolved")]
    await conn.execute("UPDATE meters SET verification_due = DATE '2034-11-01' WHERE code = 'E7'")  # verified
    await scan.scan_once(conn, NOW + timedelta(minutes=10))
    ev = [(k, s) for k, c, s, _ in await _events(conn) if c == "E7"]
    assert ev == [("verification_due", "resolved"), ("verification_overdue", "resolved")]
    await conn.close()

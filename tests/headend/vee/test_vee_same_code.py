"""The offline checker and the live path judge the same readings the same way: a file
checked with `askue vee check` and the same rows ingested through the merge + batch hook
give the same per-value findings."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
from vee_helpers import pending

from askue.contract import Value as CValue
from askue.headend.ingest import merge
from askue.headend.vee import live, offline
from askue.headend.vee.thresholds import ThresholdConfig

METERS = """meter_id,serial,resource,digits,multiplier,installed_at,replaces,verification_due
E1,111,electricity,5,1,2025-01-01,,
"""
READINGS = """meter_id,channel,kind,ts,received_at,value,period_s
E1,1.0.1.8.0.255,register,2026-11-19T00:00:00+03:00,2026-11-19T00:00:10+03:00,99998.1,
E1,1.0.1.8.0.255,register,2026-11-19T01:00:00+03:00,2026-11-19T01:00:10+03:00,2.3,
E1,1.0.1.8.0.255,register,2026-11-19T02:00:00+03:00,2026-11-19T02:05:00+03:00,1.0,
E1,1.0.1.8.0.255,register,2026-11-19T03:00:00+03:00,2026-11-19T03:00:10+03:00,1.5,
E1,1.0.32.7.0.255,instant,2026-11-19T03:00:00+03:00,2026-11-19T03:00:10+03:00,260.0,
E1,1.0.32.7.0.255,instant,2026-11-19T03:30:00+03:00,2026-11-19T03:30:10+03:00,231.0,
E1,0.0.99.98.4.255,event,2026-11-19T02:30:00+03:00,2026-11-19T03:00:10+03:00,1,
E1,0.0.99.98.4.255,event,2026-11-19T02:40:00+03:00,2026-11-19T03:00:10+03:00,2,
E1,1.0.1.29.0.255,interval,2026-11-19T01:00:00+03:00,2026-11-19T03:00:10+03:00,0.4,1800
E1,1.0.1.29.0.255,interval,2026-11-19T03:00:00+03:00,2026-11-19T03:00:10+03:00,0.4,1800
"""
PER_VALUE_KINDS = {"reverse_reading", "clock_drift", "tamper", "voltage", "phase_loss", "interval_gap"}


async def test_offline_and_live_agree(pg_dsn: str, tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text(METERS, encoding="utf-8")
    (tmp_path / "r.csv").write_text(READINGS, encoding="utf-8")
    meters, values, errors = offline.load(tmp_path / "m.csv", tmp_path / "r.csv")
    assert errors == []
    found = offline.check(meters, values, datetime(2026, 11, 19, 4, tzinfo=UTC), ThresholdConfig())
    off = {(f.kind, f.ts.astimezone(UTC), f.key) for f in found if f.kind in PER_VALUE_KINDS}
    assert {k for k, _, _ in off} == PER_VALUE_KINDS - {"phase_loss"}

    conn = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    await merge.prepare_connection(conn)
    await conn.execute("INSERT INTO meters (code, serial, resource, digits, status, installed_at) "
                       "VALUES ('E1', '111', 'electricity', 5, 'active', DATE '2025-01-01')")
    rows = [CValue(meter_id=v.meter, obis=v.obis, kind=v.kind, value=v.value, period_s=v.period_s,
                   unit="kWh" if v.kind in ("register", "interval") else "",
                   received_at=v.received_at, meter_time=v.ts) for v in values]
    # one value per batch, in file order, as a gateway would deliver them over time
    ctx = merge.MergeContext(hooks=[live.batch_hook])
    for i, r in enumerate(rows):
        await merge.write(conn, ctx, pending([r], seq=i))
    cur = await conn.execute("SELECT kind, ts, dedup_key FROM abnormal_events")
    on = {(k, ts.astimezone(UTC), key) for k, ts, key in await cur.fetchall()}
    assert on == off
    await conn.close()

"""The batch hook: runs inside the ingest transaction on every merged batch.

Judges the newly inserted values with the per-value rules (reverse reading with
rollover/exchange, interval gaps/duplicates/size, clock drift, tamper, voltage)
against the last stored value of each channel, adds reasons to the new values and
raises events once per condition. Day-level rules (spike, zero consumption, sum
mismatch), contact, verification, imbalance and gap estimation run in the periodic
scan (scan.py) so the ingest stays fast.

Registered in headend/app.py BATCH_HOOKS as "askue.headend.vee.live:batch_hook".
"""
from __future__ import annotations

import json
import logging

import psycopg

from askue.headend.vee import engine, store
from askue.headend.vee.model import Result, Value
from askue.headend.vee.rules.common import Ctx

log = logging.getLogger(__name__)

HOOK_RULES = ("reverse_reading", "interval_gap", "clock_drift", "tamper", "voltage", "frozen_value")

_PREV_SQL = """
SELECT k.meter_id, k.obis, p.ts, p.value, p.received_at, p.quality {extra}
FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS k(meter_id, obis, ts)
CROSS JOIN LATERAL (
    SELECT ts, value, received_at, quality {extra_inner} FROM {table} t
    WHERE t.meter_id = k.meter_id AND t.obis = k.obis AND t.ts < k.ts
    ORDER BY t.ts DESC LIMIT 1) p
"""


async def _previous(conn: psycopg.AsyncConnection, kind: str, firsts: dict[tuple[int, str], object],
                    codes: dict[int, str]) -> list[Value]:
    if not firsts:
        return []
    keys = list(firsts)
    extra = ", p.period_s" if kind == "interval" else ", NULL::int"
    sql = _PREV_SQL.format(extra=extra, extra_inner=", period_s" if kind == "interval" else "",
                           table=store.TABLES[kind])
    cur = await conn.execute(sql, ([k[0] for k in keys], [k[1] for k in keys], [firsts[k] for k in keys]))
    return [Value(codes[mid], obis, kind, ts, value, received_at=rx, quality=q, period_s=per, new=False)
            for mid, obis, ts, value, rx, q, per in await cur.fetchall()]


async def batch_hook(conn: psycopg.AsyncConnection, batch) -> None:
    """BATCH_HOOKS entry: judge `batch.rows` (askue.headend.ingest.batch.InsertedRow)."""
    repeated = getattr(batch, "repeated", [])
    if not batch.rows and not repeated:
        await _note_replaced(conn, set())
        return
    tz = await store.db_timezone(conn)
    meters = await store.load_meters(conn, tz, sorted({r.meter_id for r in batch.rows}
                                                      | {r.meter_id for r in repeated}))
    codes = {mid: m.facts.meter_id for mid, m in meters.items()}
    new_by_meter: dict[int, list[Value]] = {}
    firsts: dict[str, dict[tuple[int, str], object]] = {"register": {}, "interval": {}}
    kinds_by_obis: dict[tuple[str, str], str] = {}
    for r in batch.rows:
        if r.meter_id not in codes:
            continue
        v = Value(codes[r.meter_id], r.obis, r.kind, r.ts, r.value, received_at=r.received_at, period_s=r.period_s)
        new_by_meter.setdefault(r.meter_id, []).append(v)
        kinds_by_obis[(v.meter_id, r.obis)] = r.kind
        if r.kind in firsts:
            k = (r.meter_id, r.obis)
            if k not in firsts[r.kind] or r.ts < firsts[r.kind][k]:  # type: ignore[operator]
                firsts[r.kind][k] = r.ts
    history: dict[int, list[Value]] = {}
    for r in repeated:  # the stored first copy as history, the repeat under check
        if r.meter_id not in codes:
            continue
        code = codes[r.meter_id]
        history.setdefault(r.meter_id, []).append(
            Value(code, r.obis, r.kind, r.ts, r.first_value, received_at=r.first_received_at, new=False))
        new_by_meter.setdefault(r.meter_id, []).append(
            Value(code, r.obis, r.kind, r.ts, r.value, received_at=r.received_at))
        kinds_by_obis[(code, r.obis)] = r.kind
    ids = {c: m for m, c in codes.items()}
    for kind in ("register", "interval"):
        for v in await _previous(conn, kind, firsts[kind], codes):
            history.setdefault(ids[v.meter_id], []).append(v)
    cfg = await store.load_thresholds(conn)
    res = Result()
    for mid, vals in new_by_meter.items():
        m = meters[mid]
        ctx = Ctx(now=max(v.received_at or v.ts for v in vals), thresholds=cfg.for_meter(m.facts), tz=tz)
        res.extend(engine.check_series(m.facts, history.get(mid, []) + vals, ctx, HOOK_RULES))
    await store.apply_result(conn, res, meters, kinds_by_obis, cfg)
    await _note_replaced(conn, set(meters))


async def _note_replaced(conn: psycopg.AsyncConnection, meter_ids: set[int]) -> None:
    """Estimates the ingest just replaced by real values: audit them and rebuild the rollups."""
    if not meter_ids:
        return
    cur = await conn.execute(
        "DELETE FROM vee_replaced_estimates WHERE meter_id = ANY(%s) "
        "RETURNING kind, meter_id, obis, ts, old_value, new_value", (sorted(meter_ids),))
    rows = await cur.fetchall()
    if not rows:
        return
    from askue.headend.storage import rollups

    spans: dict[tuple[int, str], list] = {}
    for kind, mid, obis, ts, old, new in rows:
        await conn.execute(
            "INSERT INTO audit_log (actor, action, object_type, object_id, old, new, comment) "
            "VALUES ('vee', 'estimate_replaced', %s, %s, %s, %s, %s)",
            (kind, f"{mid}/{obis}/{ts.isoformat()}", json.dumps({"value": old, "quality": "E"}),
             json.dumps({"value": new, "quality": "A"}), "real value arrived / получено фактическое значение"))
        s = spans.setdefault((mid, obis), [ts, ts])
        s[0], s[1] = min(s[0], ts), max(s[1], ts)
    for (mid, obis), (a, b) in spans.items():
        await rollups.recompute(conn, mid, obis, a, b)

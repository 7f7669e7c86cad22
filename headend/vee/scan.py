"""The periodic scan: rules that need days of data or no data at all.

Every `SCAN_INTERVAL_S` it judges no_contact and verification (every meter); every
`SERIES_EVERY` spike / zero_consumption / sum_mismatch on the last `spike_history_days`
+ 2 days of the meters heard from since the previous such run, house_imbalance for the
previous local day, and fills load-profile gaps older than two hours with estimates (E,
linear or like days). Once a day it substitutes a missing month-start billing read «по среднему» (S).
Events are raised once per condition (database unique indexes), so rescans add nothing.

Registered in headend/app.py BACKGROUND_TASKS as "askue.headend.vee.scan:scan_task".
"""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

import psycopg

from askue.headend.vee import engine, estimate, store
from askue.headend.vee.model import Result, Value
from askue.headend.vee.rules.common import Ctx, main_profile, main_register
from askue.headend.vee.thresholds import ThresholdConfig

log = logging.getLogger(__name__)

SCAN_INTERVAL_S = 300.0
SERIES_EVERY = timedelta(hours=1)  # day rules and estimation need no 5-minute freshness
CHUNK = 200  # meters per value query
ESTIMATE_MIN_AGE = timedelta(hours=2)  # the replace-estimate trigger relies on this (migration 0100)
DAY_RULES = ("spike", "zero_consumption", "sum_mismatch")


@dataclass
class ScanStats:
    meters: int = 0
    judged: int = 0
    raised: int = 0
    estimates: int = 0
    substitutes: int = 0


async def scan_task(pool, settings) -> None:
    """BACKGROUND_TASKS entry: scan forever; a failed scan is logged and retried next round."""
    while True:
        try:
            async with pool.connection() as conn:
                stats = await scan_once(conn, datetime.now(UTC))
            log.info("VEE scan: %s", stats)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("VEE scan failed; retrying in %.0f s", SCAN_INTERVAL_S)
        await asyncio.sleep(SCAN_INTERVAL_S)


async def _state(conn: psycopg.AsyncConnection, name: str) -> datetime | None:
    row = await (await conn.execute("SELECT at FROM vee_scan_state WHERE name = %s", (name,))).fetchone()
    return row[0] if row else None


async def _set_state(conn: psycopg.AsyncConnection, name: str, at: datetime) -> None:
    await conn.execute("INSERT INTO vee_scan_state (name, at) VALUES (%s, %s) "
                       "ON CONFLICT (name) DO UPDATE SET at = EXCLUDED.at", (name, at))


async def scan_once(conn: psycopg.AsyncConnection, now: datetime) -> ScanStats:
    stats = ScanStats()
    tz = await store.db_timezone(conn)
    async with conn.transaction():
        cfg = await store.load_thresholds(conn)
        meters = await store.load_meters(conn, tz, where="m.status <> 'decommissioned'")
        stats.meters = len(meters)
        res = Result()
        for m in meters.values():
            th = cfg.for_meter(m.facts)
            res.extend(engine.check_meter_state(m.facts, m.last_contact, Ctx(now=now, thresholds=th, tz=tz)))
        stats.raised += await store.apply_result(conn, res, meters, {}, cfg)
        await _exchanges(conn)
    since = await _state(conn, "series")
    if since is not None and now - since < SERIES_EVERY:
        return stats
    heard = [mid for mid, m in meters.items() if m.last_contact and (since is None or m.last_contact > since)]
    stats.judged = len(heard)
    for i in range(0, len(heard), CHUNK):
        chunk = {mid: meters[mid] for mid in heard[i:i + CHUNK]}
        async with conn.transaction():
            raised, n_est = await _judge_chunk(conn, chunk, cfg, now, tz)
        stats.raised += raised
        stats.estimates += n_est
    async with conn.transaction():
        stats.raised += await _houses(conn, meters, cfg, now, tz)
        stats.substitutes += await _month_start_reads(conn, meters, cfg, now, tz)
        await _set_state(conn, "series", now)
    return stats


async def _exchanges(conn: psycopg.AsyncConnection) -> int:
    """A reverse raised shortly before the gateway saw a new serial was the exchange itself:
    close it with the serials as the reason (the registry still has to be updated)."""
    cur = await conn.execute(
        "UPDATE abnormal_events e SET state = 'resolved', resolved_by = 'vee', resolved_at = now(), "
        "cleared_at = now(), auto_closed = true, comment = coalesce(e.comment || '; ', '') || "
        "format('замена счётчика: серийный номер %s → %s / meter exchange: serial %s → %s', "
        "m.serial, m.reported_serial, m.serial, m.reported_serial) "
        "FROM meters m WHERE e.meter_id = m.id AND e.kind = 'reverse_reading' AND e.state <> 'resolved' "
        "AND m.serial IS NOT NULL AND m.reported_serial IS NOT NULL AND m.serial <> m.reported_serial "
        "AND e.raised_at > now() - interval '2 days' RETURNING e.id")
    return len(await cur.fetchall())


async def _judge_chunk(conn: psycopg.AsyncConnection, chunk: dict[int, store.MeterRow], cfg: ThresholdConfig,
                       now: datetime, tz: tzinfo) -> tuple[int, int]:
    days = max(cfg.for_meter(m.facts).spike_history_days for m in chunk.values()) + 2
    start = now - timedelta(days=days)
    codes = {mid: m.facts.meter_id for mid, m in chunk.items()}
    channels = sorted({main_register(m.facts) for m in chunk.values()} | {main_profile(m.facts) for m in chunk.values()})
    values = await store.load_values(conn, list(chunk), codes, ("register", "interval"), start, now, channels)
    res = Result()
    estimates: list[estimate.Estimate] = []
    for mid, m in chunk.items():
        th = cfg.for_meter(m.facts)
        vals = [Value(v.meter_id, v.obis, v.kind, v.ts, v.value, v.received_at, v.period_s, v.quality, True)
                for v in values[mid] if v.quality != "E"]  # estimates are not evidence
        res.extend(engine.check_series(m.facts, vals, Ctx(now=now, thresholds=th, tz=tz), DAY_RULES))
        prof = [v for v in vals if v.kind == "interval" and v.obis == main_profile(m.facts)]
        for e in estimate.fill_gaps(prof, th, tz, history=prof):
            if e.ts <= now - ESTIMATE_MIN_AGE:
                estimates.append(e)
    raised = await store.apply_result(conn, res, chunk, {}, cfg)
    ids = {m.facts.meter_id: mid for mid, m in chunk.items()}
    n = await insert_estimates(conn, estimates, ids, now, tz)
    return raised, n


async def _ensure_partitions(conn: psycopg.AsyncConnection, table: str, tss: list[datetime]) -> None:
    mode = await (await conn.execute("SELECT value FROM askue_meta WHERE key = 'storage_mode'")).fetchone()
    if not mode or mode[0] != "plain":
        return
    for month in sorted({t.astimezone(UTC).date().replace(day=1) for t in tss}):
        await conn.execute("SELECT askue_ensure_month_partition(%s, %s)", (table, month))


async def insert_estimates(conn: psycopg.AsyncConnection, ests: list[estimate.Estimate], ids: dict[str, int],
                           now: datetime, tz: tzinfo) -> int:
    """Store estimates where no value exists (never over a real one); audit and rebuild rollups."""
    if not ests:
        return 0
    n = 0
    for kind, table in (("interval", "intervals"), ("register", "register_readings")):
        rows = [e for e in ests if e.kind == kind]
        if not rows:
            continue
        await _ensure_partitions(conn, table, [e.ts for e in rows])
        per = ", period_s" if kind == "interval" else ""
        per_arr = ", %s::int[]" if kind == "interval" else ""
        params: list = [[ids[e.meter_id] for e in rows], [e.obis for e in rows], [e.ts for e in rows],
                        [now] * len(rows), [e.value for e in rows], [e.quality for e in rows],
                        [",".join(e.reasons) for e in rows]]
        if kind == "interval":
            params.append([e.period_s for e in rows])
        cur = await conn.execute(
            f"INSERT INTO {table} (meter_id, obis, ts, ts_source, received_at, value, quality, reasons, source{per}) "
            f"SELECT u.m, u.o, u.t, 'meter', u.r, u.v, u.q, string_to_array(u.rs, ','), 'estimate'{per} "
            f"FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::float8[], "
            f"%s::text[], %s::text[]{per_arr}) AS u(m, o, t, r, v, q, rs{per}) "
            "ON CONFLICT (meter_id, obis, ts) DO NOTHING RETURNING meter_id, obis, ts, value", params)
        done = await cur.fetchall()
        n += len(done)
        if done:  # the replace-estimate trigger looks these up first (migration 0101)
            await conn.execute(
                "INSERT INTO vee_estimate_slots (kind, meter_id, obis, ts) "
                "SELECT %s, * FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) ON CONFLICT DO NOTHING",
                (kind, [d[0] for d in done], [d[1] for d in done], [d[2] for d in done]))
        spans: dict[tuple[int, str], list] = {}
        for mid, obis, ts, _value in done:
            s = spans.setdefault((mid, obis), [ts, ts, 0])
            s[0], s[1], s[2] = min(s[0], ts), max(s[1], ts), s[2] + 1
        methods = {(ids[e.meter_id], e.obis): e.method for e in rows}
        for (mid, obis), (a, b, count) in spans.items():
            await conn.execute(
                "INSERT INTO audit_log (actor, action, object_type, object_id, old, new, comment) "
                "VALUES ('vee', 'estimate', %s, %s, NULL, %s, %s)",
                (kind, f"{mid}/{obis}", json.dumps({"from": a.isoformat(), "to": b.isoformat(), "count": count,
                                                      "method": methods.get((mid, obis))}),
                 "оценка пропущенных значений / missing values estimated"))
        from askue.headend.storage import rollups

        for (mid, obis), (a, b, _) in spans.items():
            await rollups.recompute(conn, mid, obis, a, b)
    return n


async def _houses(conn: psycopg.AsyncConnection, meters: dict[int, store.MeterRow], cfg: ThresholdConfig,
                  now: datetime, tz: tzinfo) -> int:
    """house_imbalance for the previous complete local day."""
    in_houses = {mid: m for mid, m in meters.items() if m.facts.house and not m.facts.retired}
    houses_with_balance = {m.facts.house for m in in_houses.values() if m.facts.is_balance}
    members = {mid: m for mid, m in in_houses.items() if m.facts.house in houses_with_balance}
    if not members:
        return 0
    today = now.astimezone(tz).date()
    period = (datetime.combine(today - timedelta(days=1), time(0), tzinfo=tz), datetime.combine(today, time(0), tzinfo=tz))
    codes = {mid: m.facts.meter_id for mid, m in members.items()}
    values = await store.load_values(conn, list(members), codes, ("register",), period[0] - timedelta(hours=12),
                                     period[1] + timedelta(hours=12),
                                     sorted({main_register(m.facts) for m in members.values()}))
    res = engine.check_houses({m.facts.meter_id: m.facts for m in members.values()},
                              {codes[mid]: v for mid, v in values.items()}, period, cfg, now)
    if not res.findings:
        return 0
    cur = await conn.execute("SELECT code, id FROM sites WHERE code = ANY(%s)",
                             (sorted({str(f.evidence["house"]) for f in res.findings}),))
    site_ids = dict(await cur.fetchall())
    return await store.apply_result(conn, res, members, {}, cfg, site_ids)


async def _month_start_reads(conn: psycopg.AsyncConnection, meters: dict[int, store.MeterRow],
                             cfg: ThresholdConfig, now: datetime, tz: tzinfo) -> int:
    """Once a day: a missing read at the start of this month is substituted «по среднему»."""
    last = await _state(conn, "billing_reads")
    local = now.astimezone(tz)
    if last is not None and last.astimezone(tz).date() == local.date():
        return 0
    month_start = datetime.combine(local.date().replace(day=1), time(0), tzinfo=tz)
    if now - month_start < timedelta(days=1):
        return 0  # the read may still come
    await _set_state(conn, "billing_reads", now)
    active = {mid: m for mid, m in meters.items() if not m.facts.retired and m.status == "active"}
    if not active:
        return 0
    tol = timedelta(hours=2)
    cur = await conn.execute(
        "SELECT DISTINCT meter_id FROM register_readings WHERE meter_id = ANY(%s) AND ts BETWEEN %s AND %s",
        (list(active), month_start - tol, month_start + tol))
    have = {r[0] for r in await cur.fetchall()}
    missing = [mid for mid in active if mid not in have]
    ests: list[estimate.Estimate] = []
    for i in range(0, len(missing), CHUNK):
        chunk = missing[i:i + CHUNK]
        codes = {mid: active[mid].facts.meter_id for mid in chunk}
        lookback = max(cfg.for_meter(active[mid].facts).average_lookback_days for mid in chunk)
        values = await store.load_values(conn, chunk, codes, ("register",), month_start - timedelta(days=lookback),
                                         month_start, sorted({main_register(active[m].facts) for m in chunk}))
        for mid in chunk:
            e = estimate.billing_read(active[mid].facts, values[mid], month_start, cfg.for_meter(active[mid].facts))
            if e is not None:
                ests.append(e)
    return await insert_estimates(conn, ests, {m.facts.meter_id: mid for mid, m in active.items()}, now, tz)

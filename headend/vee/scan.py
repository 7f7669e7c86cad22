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
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo

import psycopg

from askue.headend.auth import audit
from askue.headend.storage import meta, values
from askue.headend.vee import engine, estimate, store
from askue.headend.vee.model import MeterValue, Result
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
    tz = await meta.timezone(conn)
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
    codes = {mid: m.facts.code for mid, m in chunk.items()}
    channels = sorted({main_register(m.facts) for m in chunk.values()} | {main_profile(m.facts) for m in chunk.values()})
    values = await store.load_values(conn, list(chunk), codes, ("register", "interval"), start, now, channels)
    res = Result()
    estimates: list[estimate.Estimate] = []
    for mid, m in chunk.items():
        th = cfg.for_meter(m.facts)
        vals = [MeterValue(v.meter, v.obis, v.kind, v.ts, v.value, v.received_at, v.period_s, v.quality, True)
                for v in values[mid] if v.quality != "E"]  # estimates are not evidence
        res.extend(engine.check_series(m.facts, vals, Ctx(now=now, thresholds=th, tz=tz), DAY_RULES))
        prof = [v for v in vals if v.kind == "interval" and v.obis == main_profile(m.facts)]
        for e in estimate.fill_gaps(prof, th, tz, history=prof):
            if e.ts <= now - ESTIMATE_MIN_AGE:
                estimates.append(e)
    raised = await store.apply_result(conn, res, chunk, {}, cfg)
    ids = {m.facts.code: mid for mid, m in chunk.items()}
    n = await insert_estimates(conn, estimates, ids, now, tz)
    return raised, n


async def insert_estimates(conn: psycopg.AsyncConnection, ests: list[estimate.Estimate], ids: dict[str, int],
                           now: datetime, tz: tzinfo) -> int:
    """Store estimates where no value exists (never over a real one) and audit them."""
    if not ests:
        return 0
    stored = await values.insert(conn, [
        values.ValueRow(e.kind, ids[e.meter], e.obis, e.ts, "meter", now, e.value, e.quality, e.reasons, "estimate",
                        period_s=e.period_s) for e in ests])
    done = stored.rows
    for kind in ("interval", "register"):
        rows = [r for r in done if r.kind == kind]
        if not rows:
            continue
        # the replace-estimate trigger looks these up first (migration 0101)
        await conn.execute(
            "INSERT INTO vee_estimate_slots (kind, meter_id, obis, ts) "
            "SELECT %s, * FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) ON CONFLICT DO NOTHING",
            (kind, [r.meter_id for r in rows], [r.obis for r in rows], [r.ts for r in rows]))
        spans: dict[tuple[int, str], list] = {}
        for r in rows:
            s = spans.setdefault((r.meter_id, r.obis), [r.ts, r.ts, 0])
            s[0], s[1], s[2] = min(s[0], r.ts), max(s[1], r.ts), s[2] + 1
        methods = {(ids[e.meter], e.obis): e.method for e in ests if e.kind == kind}
        for (mid, obis), (a, b, count) in spans.items():
            await audit.record(conn, "vee", "estimate", kind, f"{mid}/{obis}",
                               new={"from": a.isoformat(), "to": b.isoformat(), "count": count,
                                    "method": methods.get((mid, obis))},
                               comment="оценка пропущенных значений / missing values estimated")
    return len(done)


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
    codes = {mid: m.facts.code for mid, m in members.items()}
    values = await store.load_values(conn, list(members), codes, ("register",), period[0] - timedelta(hours=12),
                                     period[1] + timedelta(hours=12),
                                     sorted({main_register(m.facts) for m in members.values()}))
    res = engine.check_houses({m.facts.code: m.facts for m in members.values()},
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
        codes = {mid: active[mid].facts.code for mid in chunk}
        lookback = max(cfg.for_meter(active[mid].facts).average_lookback_days for mid in chunk)
        values = await store.load_values(conn, chunk, codes, ("register",), month_start - timedelta(days=lookback),
                                         month_start, sorted({main_register(active[m].facts) for m in chunk}))
        for mid in chunk:
            e = estimate.billing_read(active[mid].facts, values[mid], month_start, cfg.for_meter(active[mid].facts))
            if e is not None:
                ests.append(e)
    return await insert_estimates(conn, ests, {m.facts.code: mid for mid, m in active.items()}, now, tz)

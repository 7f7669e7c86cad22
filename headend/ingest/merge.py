"""Write one batch in one transaction: COPY into staging, then merge idempotently.

Values go by COPY into a temp staging table, then `INSERT … SELECT … ON CONFLICT
DO NOTHING` on the natural key (meter_id, obis, ts) into each value table; its
RETURNING rows (exactly the new ones) feed the rollup upserts in the same
statement and the batch hooks, so a replayed or duplicated message changes nothing.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import msgspec
import psycopg
from psycopg import sql

from askue.headend.ingest import dead_letters
from askue.headend.ingest.batch import KIND_TABLE, InsertedBatch, InsertedRow, Pending, RepeatedRow
from askue.headend.storage import rollups

log = logging.getLogger(__name__)

STAGE_COLUMNS = ("kind", "meter_id", "obis", "ts", "ts_source", "received_at", "value", "quality", "reasons",
                 "source", "gateway_id", "seq", "period_s")
STAGE_TYPES = ("text", "int8", "text", "timestamptz", "text", "timestamptz", "float8", "text", "text[]",
               "text", "text", "int8", "int4")
_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS _stage (
    kind text, meter_id bigint, obis text, ts timestamptz, ts_source text, received_at timestamptz,
    value double precision, quality text, reasons text[], source text, gateway_id text, seq bigint,
    period_s integer) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _touched (meter_id bigint, obis text, kind text, ts timestamptz)
    ON COMMIT DELETE ROWS;
"""
_VALUE_COLS = "meter_id, obis, ts, ts_source, received_at, value, quality, reasons, source, gateway_id, seq"


@dataclass
class MergeContext:
    """Per-process state: meter code → id cache and partitions known to exist."""

    mode: str = "plain"  # plain | timescale
    tz: str = "Europe/Moscow"
    meter_ids: dict[str, int] = field(default_factory=dict)
    partitions: set[tuple[str, date]] = field(default_factory=set)
    hooks: list = field(default_factory=list)  # async hook(conn, InsertedBatch)


async def prepare_connection(conn: psycopg.AsyncConnection) -> None:
    await conn.execute(_STAGE_DDL)
    await conn.commit()


async def ensure_partitions(conn: psycopg.AsyncConnection, ctx: MergeContext, pending: Pending) -> None:
    """Create monthly partitions for the batch's months before its transaction (plain mode only)."""
    if ctx.mode != "plain":
        return
    need: set[tuple[str, date]] = set()
    for msg in pending.data:
        for v in msg.values:
            t = v.meter_time or v.received_at
            t = t.astimezone(UTC)
            need.add((KIND_TABLE[v.kind], date(t.year, t.month, 1)))
    missing = sorted(need - ctx.partitions)
    for table, month in missing:
        async with conn.transaction():
            await conn.execute("SELECT askue_ensure_month_partition(%s, %s)", (table, month))
        ctx.partitions.add((table, month))


async def resolve_meters(conn: psycopg.AsyncConnection, ctx: MergeContext, pending: Pending) -> None:
    """Map meter codes to ids; unknown codes become meters with status 'unassigned', never dropped."""
    unknown: dict[str, str] = {}
    for msg in pending.data:
        for code in {v.meter_id for v in msg.values} | {m.meter_id for m in msg.meters}:
            if code not in ctx.meter_ids:
                unknown.setdefault(code, msg.gateway_id)
    if not unknown:
        return
    codes = sorted(unknown)
    await conn.execute(
        "INSERT INTO meters (code, status, resource, gateway_id) "
        "SELECT c, 'unassigned', 'unknown', g FROM unnest(%s::text[], %s::text[]) AS u(c, g) "
        "ORDER BY c ON CONFLICT (code) DO NOTHING",
        (codes, [unknown[c] for c in codes]))
    cur = await conn.execute("SELECT code, id FROM meters WHERE code = ANY(%s)", (codes,))
    for code, mid in await cur.fetchall():
        ctx.meter_ids[code] = mid


async def _copy_values(conn: psycopg.AsyncConnection, ctx: MergeContext, pending: Pending,
                       staged: dict[str, int]) -> set[int]:
    touched: set[int] = set()
    ids = ctx.meter_ids
    async with conn.cursor() as cur:
        async with cur.copy(f"COPY _stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(STAGE_TYPES)
            for msg in pending.data:
                gw, seq = msg.gateway_id, msg.seq
                for v in msg.values:
                    mid = ids[v.meter_id]
                    touched.add(mid)
                    staged[v.kind] = staged.get(v.kind, 0) + 1
                    if v.meter_time is not None:
                        ts, ts_source = v.meter_time, "meter"
                    else:
                        ts, ts_source = v.received_at, "gateway"
                    await copy.write_row((v.kind, mid, v.obis, ts, ts_source, v.received_at, v.value, v.quality,
                                          v.reasons, "gateway", gw, seq, v.period_s))
    return touched


# A new poll that returns a stored meter time again (received well after the stored copy;
# QoS 1 duplicates and replays carry the same received_at). The margin keeps meters whose
# clock has minute resolution (M-Bus) from looking frozen when polled twice in a minute.
_REPEATED_SQL = """
SELECT s.meter_id, s.obis, s.kind, s.ts, s.received_at, s.value, r.received_at, r.value
FROM _stage s JOIN {t} r ON r.meter_id = s.meter_id AND r.obis = s.obis AND r.ts = s.ts
WHERE s.kind = %(kind)s AND s.ts_source = 'meter' AND s.received_at > r.received_at + interval '90 seconds'
"""


async def _merge_values(conn: psycopg.AsyncConnection, ctx: MergeContext, kinds: set[str],
                        want_rows: bool, staged: dict[str, int] | None = None,
                        repeated: list[RepeatedRow] | None = None) -> list[InsertedRow]:
    """One statement per kind: insert new rows, feed the rollups from exactly those (plain mode)."""
    rows: list[InsertedRow] = []
    for kind in sorted(kinds):
        table = KIND_TABLE[kind]
        period = "period_s" if kind == "interval" else "NULL::int AS period_s"
        extra = ", period_s" if kind == "interval" else ""
        ctes = [sql.SQL(
            "ins AS (INSERT INTO {t} (" + _VALUE_COLS + extra + ") "
            "SELECT " + _VALUE_COLS + extra + " FROM _stage WHERE kind = %(kind)s "
            "ON CONFLICT (meter_id, obis, ts) DO NOTHING "
            "RETURNING %(kind)s::text AS kind, meter_id, obis, ts, received_at, value, " + period + ")"
        ).format(t=sql.Identifier(table))]
        if ctx.mode == "plain":
            ctes += [sql.SQL(f"r{i} AS ({stmt})") for i, stmt in enumerate(rollups.statements(kind, "ins"))]
            if kind == "register":  # keys for the prev_value refresh below (it must see the upserts)
                ctes.append(sql.SQL("t AS (INSERT INTO _touched SELECT meter_id, obis, kind, ts FROM ins)"))
        final = ("SELECT meter_id, obis, kind, ts, received_at, value, period_s FROM ins" if want_rows
                 else "SELECT count(*) FROM ins")
        cur = await conn.execute(sql.SQL("WITH ") + sql.SQL(", ").join(ctes) + sql.SQL(" " + final),
                                 {"kind": kind, "tz": ctx.tz})
        if want_rows:
            new_rows = [InsertedRow(*r) for r in await cur.fetchall()]
            rows += new_rows
            # Only when something was not inserted (rare on live data) look for repeats.
            if (repeated is not None and staged is not None and kind in ("register", "instant")
                    and len(new_rows) < staged.get(kind, 0)):
                cur = await conn.execute(sql.SQL(_REPEATED_SQL).format(t=sql.Identifier(table)), {"kind": kind})
                repeated += [RepeatedRow(*r) for r in await cur.fetchall()]
        if kind == "register" and ctx.mode == "plain":
            await rollups.fix_prev(conn, "_touched", ctx.tz)
    return rows


async def _meter_status(conn: psycopg.AsyncConnection, ctx: MergeContext, pending: Pending) -> None:
    """Per-meter last contact (newest receive time seen) and the gateway's view of each meter."""
    last: dict[int, datetime] = {}
    status: dict[int, tuple] = {}
    for msg in pending.data:
        for v in msg.values:
            mid = ctx.meter_ids[v.meter_id]
            if mid not in last or v.received_at > last[mid]:
                last[mid] = v.received_at
        for m in msg.meters:
            mid = ctx.meter_ids[m.meter_id]
            if m.last_contact is not None and (mid not in last or m.last_contact > last[mid]):
                last[mid] = m.last_contact
            status[mid] = (m.ok, m.last_error, m.clock_drift_s, m.serial)
    if not last and not status:
        return
    mids = sorted(set(last) | set(status))
    await conn.execute(
        "UPDATE meters m SET last_contact = greatest(m.last_contact, u.lc), "
        "last_ok = coalesce(u.ok, m.last_ok), last_error = CASE WHEN u.ok IS NULL THEN m.last_error ELSE u.err END, "
        "clock_drift_s = coalesce(u.drift, m.clock_drift_s), reported_serial = coalesce(u.serial, m.reported_serial) "
        "FROM unnest(%s::bigint[], %s::timestamptz[], %s::bool[], %s::text[], %s::float8[], %s::text[]) "
        "AS u(id, lc, ok, err, drift, serial) WHERE m.id = u.id",
        (mids, [last.get(i) for i in mids], [status.get(i, (None,))[0] for i in mids],
         [status.get(i, (None, None))[1] for i in mids], [status.get(i, (None,) * 3)[2] for i in mids],
         [status.get(i, (None,) * 4)[3] for i in mids]))


async def _gateways(conn: psycopg.AsyncConnection, pending: Pending) -> None:
    seqs: dict[str, int] = {}
    for msg in pending.data:
        seqs[msg.gateway_id] = max(seqs.get(msg.gateway_id, -1), msg.seq)
    gws = sorted(pending.seen)
    alive = {m.gateway_id for m in pending.data} | {h.gateway_id for h in pending.healths}
    if gws:
        # data or health from a gateway means it is online; its state messages (the
        # last will says offline) are applied after, in arrival order
        await conn.execute(
            "INSERT INTO gateways AS g (id, last_seen, last_seq, online) "
            "SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::bigint[], %s::bool[]) ORDER BY 1 "
            "ON CONFLICT (id) DO UPDATE SET last_seen = greatest(g.last_seen, EXCLUDED.last_seen), "
            "last_seq = coalesce(greatest(g.last_seq, EXCLUDED.last_seq), g.last_seq), "
            "online = g.online OR EXCLUDED.online",
            (gws, [pending.seen[g] for g in gws], [seqs.get(g) for g in gws], [g in alive for g in gws]))
    for st in pending.states:
        await conn.execute(
            "UPDATE gateways SET online = %s, version = coalesce(%s, version), started_at = coalesce(%s, started_at), "
            "meters = coalesce(%s, meters), state_at = %s WHERE id = %s",
            (st.online, st.version, st.started_at, st.meters, pending.seen[st.gateway_id], st.gateway_id))
    for h in pending.healths:
        await conn.execute(
            "UPDATE gateways SET queue_depth = %s, oldest_unsent_s = %s, health = %s::jsonb, health_at = %s "
            "WHERE id = %s AND (health_at IS NULL OR health_at <= %s)",
            (h.queue_depth, h.oldest_unsent_s, msgspec.json.encode(h).decode(), h.at, h.gateway_id, h.at))


async def write(conn: psycopg.AsyncConnection, ctx: MergeContext, pending: Pending) -> InsertedBatch:
    """Write the whole batch in one transaction; return what was newly inserted (after commit)."""
    await ensure_partitions(conn, ctx, pending)
    batch = InsertedBatch(gateway_ids=set(pending.seen))
    known = set(ctx.meter_ids)
    try:
        await _write_tx(conn, ctx, pending, batch)
        if conn.broken:
            # psycopg ends a transaction block on a broken connection without committing and
            # without an error: the batch must not pass for written (its messages would be acked)
            raise psycopg.OperationalError("the database connection was lost before the commit")
    except BaseException:
        # ids of meters created in the rolled-back transaction do not exist
        for code in set(ctx.meter_ids) - known:
            del ctx.meter_ids[code]
        raise
    return batch


async def _write_tx(conn: psycopg.AsyncConnection, ctx: MergeContext, pending: Pending, batch: InsertedBatch) -> None:
    async with conn.transaction():
        await resolve_meters(conn, ctx, pending)
        kinds = {v.kind for msg in pending.data for v in msg.values}
        if kinds:
            # normally empty (ON COMMIT DELETE ROWS); not when a caller wrapped us in its own transaction
            await conn.execute("TRUNCATE _stage, _touched")
            staged: dict[str, int] = {}
            batch.meter_ids = await _copy_values(conn, ctx, pending, staged)
            batch.rows = await _merge_values(conn, ctx, kinds, want_rows=bool(ctx.hooks), staged=staged,
                                             repeated=batch.repeated)
        await _meter_status(conn, ctx, pending)
        await _gateways(conn, pending)
        await dead_letters.store(conn, pending.dead)
        for hook in ctx.hooks:
            # a failing hook (VEE, …) must not lose or block the data: its savepoint
            # rolls back alone and the batch still commits
            try:
                async with conn.transaction():
                    await hook(conn, batch)
            except psycopg.OperationalError:
                raise  # the connection is gone, not the hook's fault: nothing commits, the batch is retried
            except Exception:
                log.exception("batch hook %r failed; the batch is stored without it", hook)


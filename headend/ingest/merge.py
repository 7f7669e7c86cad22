"""Write one batch in one transaction, idempotently on the natural key (meter_id, obis, ts).

Fast path: the values are COPYed straight into their tables inside a savepoint.
Live data is almost always new, and COPY is the cheapest way in. If any value is
already stored (a replay, a QoS 1 duplicate, a backlog sent twice), the savepoint
rolls back and the batch takes the merge path: COPY into a temp staging table,
then `INSERT … SELECT … ON CONFLICT DO NOTHING` per value table, whose RETURNING
rows are exactly the new ones. Either way only newly inserted rows reach the
rollups (statement triggers on the value tables, migration 0007) and the batch
hooks, so a replayed or duplicated message changes nothing.
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from operator import itemgetter

import msgspec
import psycopg
from psycopg import sql

from askue.headend.ingest import dead_letters
from askue.headend.ingest.batch import KIND_TABLE, InsertedBatch, InsertedRow, Pending, RepeatedRow

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
"""
_VALUE_COLS = "meter_id, obis, ts, ts_source, received_at, value, quality, reasons, source, gateway_id, seq"


@dataclass
class MergeContext:
    """Per-process state: meter code → id cache and partitions known to exist."""

    mode: str = "plain"  # plain | timescale
    meter_ids: dict[str, int] = field(default_factory=dict)
    partitions: set[tuple[str, date]] = field(default_factory=set)
    hooks: list = field(default_factory=list)  # async hook(conn, InsertedBatch)
    # batches left to send through the merge path after a COPY met stored values: a
    # replay usually spans several batches, and a failed COPY costs a second write
    merge_only: int = 0


MERGE_ONLY_AFTER_CONFLICT = 8


async def prepare_connection(conn: psycopg.AsyncConnection) -> None:
    await conn.execute(_STAGE_DDL)
    await conn.commit()


async def ensure_partitions(conn: psycopg.AsyncConnection, ctx: MergeContext, pending: Pending) -> None:
    """Create monthly partitions for the batch's months before its transaction (plain mode only)."""
    if ctx.mode != "plain":
        return
    months: set[tuple[str, int, int]] = set()
    for msg in pending.data:
        for v in msg.values:
            t = v.meter_time or v.received_at
            if t.tzinfo is not UTC:  # decoded times are UTC already; convert only what is not
                t = t.astimezone(UTC)
            months.add((v.kind, t.year, t.month))
    need = {(KIND_TABLE[k], date(y, m, 1)) for k, y, m in months}
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


def _rows(ctx: MergeContext, pending: Pending) -> tuple[list[tuple], Counter[str], bool]:
    """Stage rows (STAGE_COLUMNS order) of every value in the batch, the count of each kind,
    and whether any value carries quality reasons."""
    rows: list[tuple] = []
    append = rows.append
    ids = ctx.meter_ids
    reasons = False
    for msg in pending.data:
        gw, seq = msg.gateway_id, msg.seq
        for v in msg.values:
            if v.meter_time is None:
                ts, ts_source = v.received_at, "gateway"
            else:
                ts, ts_source = v.meter_time, "meter"
            if v.reasons:
                reasons = True
            append((v.kind, ids[v.meter_id], v.obis, ts, ts_source, v.received_at, v.value, v.quality, v.reasons,
                    "gateway", gw, seq, v.period_s))
    return rows, Counter(r[0] for r in rows), reasons


async def _copy(conn: psycopg.AsyncConnection, statement: str, types: tuple[str, ...], rows) -> None:
    async with conn.cursor() as cur:
        async with cur.copy(statement) as copy:
            copy.set_types(types)
            for r in rows:
                await copy.write_row(r)


async def _copy_direct(conn: psycopg.AsyncConnection, rows: list[tuple], kinds: set[str], reasons: bool) -> None:
    """COPY each kind's rows into its value table; UniqueViolation if any is already stored.

    Without quality reasons in the batch (the usual case) the column is left to its
    default, '{}': dumping an empty array per row costs more than the rest of the row.
    """
    for kind in sorted(kinds):
        keep = [i for i, c in enumerate(STAGE_COLUMNS)
                if c != "kind" and (c != "period_s" or kind == "interval") and (c != "reasons" or reasons)]
        cols = ", ".join(STAGE_COLUMNS[i] for i in keep)
        get = itemgetter(*keep)
        await _copy(conn, f"COPY {KIND_TABLE[kind]} ({cols}) FROM STDIN (FORMAT BINARY)",
                    tuple(STAGE_TYPES[i] for i in keep), (get(r) for r in rows if r[0] == kind))


# A new poll that returns a stored meter time again (received well after the stored copy;
# QoS 1 duplicates and replays carry the same received_at). The margin keeps meters whose
# clock has minute resolution (M-Bus) from looking frozen when polled twice in a minute.
_REPEATED_SQL = """
SELECT s.meter_id, s.obis, s.kind, s.ts, s.received_at, s.value, r.received_at, r.value
FROM _stage s JOIN {t} r ON r.meter_id = s.meter_id AND r.obis = s.obis AND r.ts = s.ts
WHERE s.kind = %(kind)s AND s.ts_source = 'meter' AND s.received_at > r.received_at + interval '90 seconds'
"""


async def _merge_stage(conn: psycopg.AsyncConnection, kinds: set[str], want_rows: bool,
                       staged: Mapping[str, int], repeated: list[RepeatedRow]) -> list[InsertedRow]:
    """One INSERT … SELECT FROM _stage … ON CONFLICT DO NOTHING per kind; returns the new rows."""
    inserted: list[InsertedRow] = []
    for kind in sorted(kinds):
        table = KIND_TABLE[kind]
        period = "period_s" if kind == "interval" else "NULL::int AS period_s"
        extra = ", period_s" if kind == "interval" else ""
        cur = await conn.execute(sql.SQL(
            "INSERT INTO {t} (" + _VALUE_COLS + extra + ") "
            "SELECT " + _VALUE_COLS + extra + " FROM _stage WHERE kind = %(kind)s "
            "ON CONFLICT (meter_id, obis, ts) DO NOTHING "
            + ("RETURNING meter_id, obis, %(kind)s::text AS kind, ts, received_at, value, " + period
               if want_rows else "")
        ).format(t=sql.Identifier(table)), {"kind": kind})
        new = cur.rowcount
        if want_rows:
            inserted += [InsertedRow(*r) for r in await cur.fetchall()]
        # only when something was not inserted look for values repeated by a new poll
        if kind in ("register", "instant") and new < staged.get(kind, 0):
            cur = await conn.execute(sql.SQL(_REPEATED_SQL).format(t=sql.Identifier(table)), {"kind": kind})
            repeated += [RepeatedRow(*r) for r in await cur.fetchall()]
    return inserted


async def _write_values(conn: psycopg.AsyncConnection, ctx: MergeContext, pending: Pending,
                        batch: InsertedBatch) -> None:
    rows, staged, reasons = _rows(ctx, pending)
    batch.meter_ids = {r[1] for r in rows}
    kinds = set(staged)
    want_rows = bool(ctx.hooks)
    if ctx.merge_only <= 0:
        try:
            async with conn.transaction():
                await _copy_direct(conn, rows, kinds, reasons)
        except psycopg.errors.UniqueViolation:
            ctx.merge_only = MERGE_ONLY_AFTER_CONFLICT
        else:
            if want_rows:
                batch.rows = [InsertedRow(r[1], r[2], r[0], r[3], r[5], r[6], r[12]) for r in rows]
            return
    ctx.merge_only -= 1
    # normally empty (ON COMMIT DELETE ROWS); not when a caller wrapped us in its own transaction
    await conn.execute("TRUNCATE _stage")
    await _copy(conn, f"COPY _stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN (FORMAT BINARY)", STAGE_TYPES, rows)
    batch.rows = await _merge_stage(conn, kinds, want_rows, staged, batch.repeated)


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
        if any(msg.values for msg in pending.data):
            await _write_values(conn, ctx, pending, batch)
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


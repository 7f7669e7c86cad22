"""Write one batch of MQTT messages in one transaction.

The ingest's part is what only messages carry: which meter each gateway's code means and
in which unit a value came (`identity`: bindings, units, quarantine, serial holds; unknown
codes become meters with status 'unassigned'), the gateways' view of their meters and of
themselves (state, health), dead letters. The values themselves go through the one write path,
`askue.headend.storage.values.insert` (COPY fast path, idempotent merge, after-insert
hooks), inside the same transaction.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from operator import attrgetter

import msgspec
import psycopg

from askue.contract import Topics
from askue.headend.ingest import dead_letters, identity
from askue.headend.ingest.batch import Pending
from askue.headend.registry import cache as registry_cache
from askue.headend.storage import hooks as hook_registry
from askue.headend.storage import pgarrays, values
from askue.headend.storage.values import MERGE_ONLY_AFTER_CONFLICT, InsertedBatch

__all__ = ["MERGE_ONLY_AFTER_CONFLICT", "MergeContext", "prepare_connection", "write"]

prepare_connection = values.prepare_connection


@dataclass
class MergeContext(values.InsertState):
    """Per-process state: the registry's bindings, serials and resources in memory, the
    hooks to run (none unless given: the head-end passes its registry, tests and benchmarks
    choose), where dead letters say a data message came from."""

    registry: registry_cache.RegistryView | None = None
    hooks: hook_registry.Hooks | list = field(default_factory=list)
    topics: Topics = field(default_factory=Topics)
    # batches being written, in arrival order: see _write_tx
    in_flight: list[InFlight] = field(default_factory=list)


@dataclass(eq=False)
class InFlight:
    """A batch being written, as later batches see it: when its meters are known, which
    they are, and when it has stored its values and locked those meters' rows."""

    resolved: asyncio.Future
    locked: asyncio.Future
    meter_ids: frozenset[int] = frozenset()


def _months(pending: Pending) -> Iterator[tuple[str, date]]:
    """(table, month) of every value; a generator: TimescaleDB makes its chunks itself and
    `ensure_partitions` then never asks (a pass over every value of the batch saved)."""
    months: set[tuple[str, int, int]] = set()
    for msg in pending.data:
        for v in msg.values:
            t = v.meter_time or v.received_at
            if t.tzinfo is not UTC:  # decoded times are UTC already; convert only what is not
                t = t.astimezone(UTC)
            months.add((v.kind, t.year, t.month))
    yield from {(values.TABLES[k], date(y, m, 1)) for k, y, m in months}


async def resolve_meters(conn: psycopg.AsyncConnection, ctx: MergeContext, pending: Pending) -> identity.BatchPlan:
    """Which meter each value is for, in which unit (`identity.plan`); unknown codes become
    meters with status 'unassigned', never dropped."""
    ctx.registry = await registry_cache.fresh(conn, ctx.registry)
    return await identity.plan(conn, ctx.registry, pending, ctx.topics)


def _rows(plan: identity.BatchPlan, pending: Pending) -> list[tuple]:
    """Every value of the batch as a `values.ValueRow`-shaped tuple (built as plain tuples:
    this loop runs for every value the head-end receives)."""
    rows: list[tuple] = []
    append = rows.append
    row, new = values.ValueRow, tuple.__new__  # ValueRows made once: the hooks get them as they are
    for msg, ids, planned in zip(pending.data, plan.ids, plan.rows, strict=True):
        gw, seq = msg.gateway_id, msg.seq
        if ids is not None:
            for v in msg.values:
                if v.meter_time is None:
                    ts, ts_source = v.received_at, "gateway"
                else:
                    ts, ts_source = v.meter_time, "meter"
                append(new(row, (v.kind, ids[v.meter_id], v.obis, ts, ts_source, v.received_at, v.value, v.quality,
                                 list(rs) if (rs := v.reasons) else None, "gateway", gw, seq, v.period_s, v.archive,
                                 None, None)))
            continue
        for v, mid, value, orig_value, orig_unit, reasons in planned:  # converted, held or set aside: see identity
            if v.meter_time is None:
                ts, ts_source = v.received_at, "gateway"
            else:
                ts, ts_source = v.meter_time, "meter"
            append(new(row, (v.kind, mid, v.obis, ts, ts_source, v.received_at, value, v.quality, reasons,
                             "gateway", gw, seq, v.period_s, v.archive, orig_value, orig_unit)))
    return rows


_RECEIVED = attrgetter("received_at")


async def _meter_status(conn: psycopg.AsyncConnection, plan: identity.BatchPlan, pending: Pending) -> None:
    """Per-meter last contact (newest receive time seen) and the gateway's view of each meter."""
    last: dict[int, datetime] = {}
    status: dict[int, tuple] = {}
    for msg, ids, planned, statuses in zip(pending.data, plan.ids, plan.rows, plan.statuses, strict=True):
        if ids is not None and len(ids) == 1:  # one meter's poll, the usual message
            (mid,) = ids.values()
            rx = max(map(_RECEIVED, msg.values))
            if mid not in last or rx > last[mid]:
                last[mid] = rx
        else:
            pairs = ((v, ids[v.meter_id]) for v in msg.values) if ids is not None else ((r[0], r[1]) for r in planned)
            for v, mid in pairs:
                if mid not in last or v.received_at > last[mid]:
                    last[mid] = v.received_at
        for m, mid in statuses:
            if m.last_contact is not None and (mid not in last or m.last_contact > last[mid]):
                last[mid] = m.last_contact
            status[mid] = (m.ok, m.last_error, m.clock_drift_s, m.serial)
    if not last and not status:
        return
    mids = sorted(set(last) | set(status))
    pgarrays.enable(conn)
    await conn.execute(
        "UPDATE meters m SET last_contact = greatest(m.last_contact, u.lc), "
        "last_ok = coalesce(u.ok, m.last_ok), last_error = CASE WHEN u.ok IS NULL THEN m.last_error ELSE u.err END, "
        "clock_drift_s = coalesce(u.drift, m.clock_drift_s), reported_serial = coalesce(u.serial, m.reported_serial) "
        "FROM unnest(%b::bigint[], %b::timestamptz[], %b::bool[], %b::text[], %b::float8[], %b::text[]) "
        "AS u(id, lc, ok, err, drift, serial) WHERE m.id = u.id",
        (pgarrays.int8(mids), pgarrays.timestamptz([last.get(i) for i in mids]),
         pgarrays.boolean([status.get(i, (None,))[0] for i in mids]),
         pgarrays.text([status.get(i, (None, None))[1] for i in mids]),
         pgarrays.float8([status.get(i, (None,) * 3)[2] for i in mids]),
         pgarrays.text([status.get(i, (None,) * 4)[3] for i in mids])))


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
    # partitions first, committed on their own: creating one locks its table
    await values.ensure_partitions(conn, _months(pending))
    batch, plan = await _write_tx(conn, ctx, pending)
    if conn.broken:
        # psycopg ends a transaction block on a broken connection without committing and
        # without an error: the batch must not pass for written (its messages would be acked)
        raise psycopg.OperationalError("the database connection was lost before the commit")
    # only now: meters and bindings created in a rolled-back transaction do not exist
    identity.commit(ctx.registry, plan)
    return batch


async def _write_tx(conn: psycopg.AsyncConnection, ctx: MergeContext,
                    pending: Pending) -> tuple[InsertedBatch, identity.BatchPlan]:
    # Batches written at once take a meter's rows in the order they arrived: a batch resolves
    # its meters after every earlier one has (first contacts and bindings in arrival order),
    # then waits for each earlier batch that shares one of its meters to have stored its
    # values and locked their rows. A batch of other meters goes straight on: its COPY and
    # triggers run in a second backend beside the earlier batch's. So VEE judges each meter's
    # values in arrival order (a later poll committed first would make the earlier one look
    # missing: a false interval gap), and no batch waits here while holding rows an earlier
    # batch needs (that would wait forever: these waits are invisible to PostgreSQL).
    loop = asyncio.get_running_loop()
    earlier = [e for e in ctx.in_flight if e.locked.get_loop() is loop]
    me = InFlight(loop.create_future(), loop.create_future())
    ctx.in_flight.append(me)
    try:
        unresolved = [e.resolved for e in earlier if not e.resolved.done()]
        if unresolved:
            await asyncio.wait(unresolved)  # their outcome is their own business
        return await _write_locked(conn, ctx, pending, me, earlier)
    finally:
        for f in (me.resolved, me.locked):
            if not f.done():
                f.set_result(None)
        ctx.in_flight.remove(me)


def _meter_ids(plan: identity.BatchPlan) -> frozenset[int]:
    ids: set[int] = set()
    for by_code, planned, statuses in zip(plan.ids, plan.rows, plan.statuses, strict=True):
        if by_code is not None:
            ids.update(by_code.values())
        elif planned:
            ids.update(r[1] for r in planned)
        ids.update(mid for _, mid in statuses)
    ids.update(plan.holds)
    ids.update(f.meter_id for f in plan.findings if f.meter_id is not None)
    return frozenset(ids)


async def _write_locked(conn: psycopg.AsyncConnection, ctx: MergeContext, pending: Pending, me: InFlight,
                        earlier: list[InFlight]) -> tuple[InsertedBatch, identity.BatchPlan]:
    plan: identity.BatchPlan

    async def state() -> None:
        # after the values: concurrent writers of the same meters then wait for each other only
        # at the end of their COPY (on the rollup rows), not before it; before the hooks: they
        # judge the values knowing, e.g., a new serial the gateway reported
        await _meter_status(conn, plan, pending)
        await identity.record(conn, plan)
        if not me.locked.done():
            me.locked.set_result(None)

    async with conn.transaction():
        # A batch's statements are planned over tens of thousands of rows, past the JIT
        # threshold, and run once: compiling them cost ~8 ms each for nothing.
        await conn.execute("SET LOCAL jit = off")
        plan = await resolve_meters(conn, ctx, pending)
        me.meter_ids = _meter_ids(plan)
        me.resolved.set_result(None)
        sharing = [e.locked for e in earlier if not e.locked.done() and not e.meter_ids.isdisjoint(me.meter_ids)]
        if sharing:
            await asyncio.wait(sharing)
        hooks = ctx.hooks if isinstance(ctx.hooks, hook_registry.Hooks) else hook_registry.Hooks(ctx.hooks)
        batch = await values.insert(conn, _rows(plan, pending), hooks=hooks, state=ctx, keep_rows=False,
                                    partitions_ready=True, gateway_ids=pending.seen, before_hooks=state)
        # Last, just before the commit: every batch updates the rows of the gateways it heard
        # from, so a concurrent writer waits on them until this one commits. Taken before the
        # hooks, that lock made the writers take turns for the hooks' whole run (measured: a
        # third of the live benchmark's database time was this wait); no hook reads gateways.
        await _gateways(conn, pending)
        await dead_letters.store(conn, pending.dead + plan.dead)
    return batch, plan

"""The one write path for metered values: kind → table, month partitions, `insert()`.

Every writer of register readings, intervals, instant values and journal events goes
through `insert()`: the MQTT ingest, manual readings, estimates, file imports. It
stores a batch idempotently on the natural key (meter_id, obis, ts), tells exactly
which rows were new, and runs the after-insert hooks (storage/hooks.py) on them
inside the same transaction.

How it stores: the rows are COPYed straight into their tables inside a savepoint.
Live data is almost always new, and COPY is the cheapest way in. If any row is
already stored (a replay, a QoS 1 duplicate, a second entry for the same time), the
savepoint rolls back and the batch takes the merge path: COPY into a temp staging
table, then `INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING` per table, whose
rows are exactly the new ones. Either way only new rows reach the rollups
(statement triggers on the value tables) and the hooks.

Values changed in place go through `correct()`, which rebuilds the rollups of what
it touched.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from operator import itemgetter
from typing import NamedTuple

import psycopg
from psycopg import sql

from askue.contract.payloads import Kind
from askue.headend import metrics
from askue.headend.storage import hooks as hook_registry
from askue.headend.storage import meta, rollups

KINDS: tuple[Kind, ...] = ("register", "interval", "instant", "event")
TABLES: dict[str, str] = {
    "register": "register_readings",
    "interval": "intervals",
    "instant": "instant_values",
    "event": "meter_events",
}


class ValueRow(NamedTuple):
    """One value as storage keeps it. A NamedTuple so the ingest's hot loop can hand
    plain tuples of this layout (it builds hundreds of thousands per second)."""

    kind: str
    meter_id: int
    obis: str
    ts: datetime  # meter time (interval: end of the period); receive time when the meter keeps no clock
    ts_source: str  # meter | gateway
    received_at: datetime
    value: float
    quality: str = "A"  # A actual, E estimated, S substituted, M manual
    reasons: list[str] | None = None
    source: str = "gateway"  # gateway | manual | file | estimate
    gateway_id: str | None = None
    seq: int | None = None
    period_s: int | None = None  # intervals only
    archive: str | None = None  # registers only: day_start | month_start, read from the meter's memory
    # what the gateway sent when the ingest converted the value into its canonical unit (None: sent canonical)
    orig_value: float | None = None
    orig_unit: str | None = None


COLUMNS = ValueRow._fields
_TYPES = ("text", "int8", "text", "timestamptz", "text", "timestamptz", "float8", "text", "text[]",
          "text", "text", "int8", "int4", "text", "float8", "text")
# Columns only some kinds' tables have.
_ONLY: dict[str, frozenset[str]] = {
    "period_s": frozenset({"interval"}), "archive": frozenset({"register"}),
    "orig_value": frozenset({"register", "interval", "instant"}), "orig_unit": frozenset({"register", "interval", "instant"}),
}
_STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS _stage (
    kind text, meter_id bigint, obis text, ts timestamptz, ts_source text, received_at timestamptz,
    value double precision, quality text, reasons text[], source text, gateway_id text, seq bigint,
    period_s integer, archive text, orig_value double precision, orig_unit text) ON COMMIT DELETE ROWS;
"""
_VALUE_COLS = "meter_id, obis, ts, ts_source, received_at, value, quality, reasons, source, gateway_id, seq"
# What the merge path selects from `_stage`: a row's reasons may be None (no reasons), the
# tables keep an empty array.
_STAGE_COLS = _VALUE_COLS.replace("reasons", "coalesce(reasons, ARRAY[]::text[]) AS reasons")
_REASONS = COLUMNS.index("reasons")
_ARCHIVE = COLUMNS.index("archive")
_ORIG = COLUMNS.index("orig_value")


@dataclass(frozen=True, slots=True)
class RepeatedRow:
    """A gateway value delivered again with the same meter time but a later receive time
    (a new poll, not a QoS 1 duplicate): the natural key keeps the first, VEE judges the
    repeat (frozen_value: the meter's clock or register stopped)."""

    meter_id: int
    obis: str
    kind: str
    ts: datetime
    received_at: datetime
    value: float
    first_received_at: datetime
    first_value: float


@dataclass
class InsertedBatch:
    """What one insert stored: the rows that were new (repeats of stored rows are not
    listed), what the hooks get. `rows` is filled when hooks run or the writer asked."""

    rows: list[ValueRow] = field(default_factory=list)
    repeated: list[RepeatedRow] = field(default_factory=list)
    meter_ids: set[int] = field(default_factory=set)  # every meter the write touched
    gateway_ids: set[str] = field(default_factory=set)
    count: int = 0  # rows newly stored

    def of(self, table_or_kind: str) -> list[ValueRow]:
        kind = next((k for k, t in TABLES.items() if t == table_or_kind), table_or_kind)
        return [r for r in self.rows if r.kind == kind]


# After a COPY met stored values, this many of a writer's next inserts take the merge
# path directly: a replay usually spans several batches, and a failed COPY costs a second write.
MERGE_ONLY_AFTER_CONFLICT = 8


@dataclass
class InsertState:
    """A long-lived writer's memory between inserts (the ingest keeps one per process)."""

    merge_only: int = 0


# PostgreSQL names UTC in several ways (initdb takes the system's zone: Etc/UTC on most Linux
# and container images). psycopg gives stored times a ZoneInfo for any name but "UTC", and then
# every comparison of a stored time with a decoded one (datetime.UTC) works out both zones'
# offsets: a sixth of VEE's rule time in the live hook, which compares each new value with
# the stored one before it. The same zone under the name psycopg maps to datetime.UTC.
_UTC_NAMES = frozenset({"Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "UCT", "Universal", "Zulu",
                        "utc", "etc/utc"})


async def prepare_connection(conn: psycopg.AsyncConnection) -> None:
    """Create the staging table once per pooled connection (the merge path creates it too);
    a session in UTC under another name gets it as "UTC"."""
    await conn.execute(_STAGE_DDL)
    if conn.info.parameter_status("TimeZone") in _UTC_NAMES:
        await conn.execute("SET TIME ZONE 'UTC'")
    await conn.commit()


# ---- month partitions (plain PostgreSQL) ---------------------------------------------------
_PARTITIONS: set[tuple] = set()  # (database, table, month) known to exist


def months_of(rows: Iterable[Sequence]) -> set[tuple[str, date]]:
    """(table, first day of the UTC month) of every row."""
    out: set[tuple[str, int, int]] = set()
    for r in rows:
        t = r[3]
        if t.tzinfo is not UTC:
            t = t.astimezone(UTC)
        out.add((r[0], t.year, t.month))
    return {(TABLES[k], date(y, m, 1)) for k, y, m in out}


async def ensure_partitions(conn: psycopg.AsyncConnection, months: Iterable[tuple[str, date]]) -> None:
    """Create the monthly partitions the rows need (plain mode; TimescaleDB makes chunks itself).

    Call it before a long transaction when you can: creating a partition locks its table.
    """
    m = await meta.load(conn)
    if not m.plain:
        return
    db = meta.db_key(conn)
    for table, month in sorted(months):
        if (db, table, month) in _PARTITIONS:
            continue
        async with conn.transaction():
            await conn.execute("SELECT askue_ensure_month_partition(%s, %s)", (table, month))
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            _PARTITIONS.add((db, table, month))  # committed: not undone by a caller's rollback


# ---- insert ----------------------------------------------------------------------------------
async def insert(conn: psycopg.AsyncConnection, rows: Sequence[ValueRow | tuple], *,
                 hooks: hook_registry.Hooks | Sequence[hook_registry.HookFn] | None = None,
                 state: InsertState | None = None, keep_rows: bool = True, partitions_ready: bool = False,
                 gateway_ids: Iterable[str] = (),
                 before_hooks: Callable[[], Awaitable[None]] | None = None) -> InsertedBatch:
    """Store `rows` (ValueRow layout) once each and run the after-insert hooks on the new ones.

    `hooks`: None runs the head-end's registered hooks (every writer in production);
    an explicit list or `Hooks` replaces them (a benchmark or a test picks its own).
    `keep_rows=False` skips listing the new rows when no hook needs them (the ingest's
    fast path). `partitions_ready`: the caller ran `ensure_partitions` already.
    `before_hooks`: what the writer records between the values and the hooks, in the same
    transaction (the ingest: the meters' and gateways' state the hooks judge by).
    """
    registry = hook_registry.composed() if hooks is None else (
        hooks if isinstance(hooks, hook_registry.Hooks) else hook_registry.Hooks(hooks))
    state = state or InsertState()
    batch = InsertedBatch(gateway_ids=set(gateway_ids))
    if not rows:
        if before_hooks is not None:
            await before_hooks()
        return batch
    if not partitions_ready:
        await ensure_partitions(conn, months_of(rows))
    async with conn.transaction():
        await _write(conn, rows, state, batch, keep_rows or len(registry) > 0)
        if before_hooks is not None:
            await before_hooks()
        if len(registry):
            await registry.run(conn, batch)
    metrics.STORED.labels(rows[0][9]).inc(batch.count)  # one writer, one source
    return batch


async def _write(conn: psycopg.AsyncConnection, rows: Sequence[tuple], state: InsertState,
                 batch: InsertedBatch, want_rows: bool) -> None:
    staged = Counter(r[0] for r in rows)
    batch.meter_ids = {r[1] for r in rows}
    reasons = any(r[8] for r in rows)
    archives = "register" in staged and any(r[_ARCHIVE] for r in rows if r[0] == "register")
    origs = any(r[_ORIG] is not None for r in rows)
    if state.merge_only <= 0:
        try:
            async with conn.transaction():
                await _copy_direct(conn, rows, set(staged), reasons, archives, origs)
        except psycopg.errors.UniqueViolation:
            state.merge_only = MERGE_ONLY_AFTER_CONFLICT
        else:
            batch.count = len(rows)
            if want_rows:
                batch.rows = list(rows) if isinstance(rows[0], ValueRow) else [ValueRow._make(r) for r in rows]
            return
    state.merge_only -= 1
    await conn.execute(_STAGE_DDL)
    # normally empty (ON COMMIT DELETE ROWS); not when a caller wrapped us in its own transaction
    await conn.execute("TRUNCATE _stage")
    await _copy(conn, f"COPY _stage ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)", _TYPES, rows)
    await merge_stage(conn, staged, want_rows, batch)


async def _copy(conn: psycopg.AsyncConnection, statement: str, types: tuple[str, ...], rows) -> None:
    async with conn.cursor() as cur:
        async with cur.copy(statement) as copy:
            copy.set_types(types)
            # the formatter buffers rows and hands back a block once it is large: one await per
            # block, not one per row (a coroutine per row was a tenth of the COPY's Python time)
            fmt = copy.formatter
            for r in rows:
                if block := fmt.write_row(r):
                    await copy.write(block)


async def _copy_direct(conn: psycopg.AsyncConnection, rows: Sequence[tuple], kinds: set[str],
                       reasons: bool, archives: bool, origs: bool = False) -> None:
    """COPY each kind's rows into its value table; UniqueViolation if any is already stored.

    Without quality reasons (or archive marks, or original units) in the batch, the usual
    case, the column is left to its default: dumping an empty array per row costs more than
    the rest of the row.
    """
    for kind in sorted(kinds):
        keep = [i for i, c in enumerate(COLUMNS)
                if c != "kind" and kind in _ONLY.get(c, (kind,)) and (c != "reasons" or reasons)
                and (c != "archive" or archives) and (c not in ("orig_value", "orig_unit") or origs)]
        cols = ", ".join(COLUMNS[i] for i in keep)
        get = itemgetter(*keep)
        out = (get(r) for r in rows if r[0] == kind)
        if reasons:  # rows without reasons (None) beside rows with them: the column keeps an empty array
            at = keep.index(_REASONS)
            out = (t if t[at] is not None else (*t[:at], [], *t[at + 1:]) for t in out)
        await _copy(conn, f"COPY {TABLES[kind]} ({cols}) FROM STDIN (FORMAT BINARY)",
                    tuple(_TYPES[i] for i in keep), out)


# A new poll that returns a stored meter time again (received well after the stored copy;
# QoS 1 duplicates and replays carry the same received_at). The margin keeps meters whose
# clock has minute resolution (M-Bus) from looking frozen when polled twice in a minute.
# Only gateway values: a person entering a reading for a stored time is a conflict, not a repeat.
# Nor a register from the meter's archive: its time is a day/month boundary, which a live
# poll may have hit exactly, and it is read days later by nature.
_REPEATED_SQL = """
SELECT s.meter_id, s.obis, s.kind, s.ts, s.received_at, s.value, r.received_at, r.value
FROM _stage s JOIN {t} r ON r.meter_id = s.meter_id AND r.obis = s.obis AND r.ts = s.ts
WHERE s.kind = %(kind)s AND s.source = 'gateway' AND s.ts_source = 'meter'
  AND s.received_at > r.received_at + interval '90 seconds' {live}
"""


async def merge_stage(conn: psycopg.AsyncConnection, staged: Mapping[str, int], want_rows: bool,
                      batch: InsertedBatch) -> None:
    """The merge path on what is in `_stage` (`staged`: rows per kind): one
    INSERT … SELECT … ON CONFLICT DO NOTHING per kind, adding the new rows to `batch`."""
    for kind in sorted(staged):
        table = TABLES[kind]
        own = [c for c, k in _ONLY.items() if kind in k]
        extra = "".join(", " + c for c in own)
        tail = ", ".join(c if c in own else f"NULL::{_TYPES[COLUMNS.index(c)]} AS {c}" for c in _ONLY)
        cur = await conn.execute(sql.SQL(
            "INSERT INTO {t} (" + _VALUE_COLS + extra + ") "
            "SELECT " + _STAGE_COLS + extra + " FROM _stage WHERE kind = %(kind)s "
            "ON CONFLICT (meter_id, obis, ts) DO NOTHING "
            + ("RETURNING %(kind)s::text AS kind, " + _VALUE_COLS + ", " + tail if want_rows else "")
        ).format(t=sql.Identifier(table)), {"kind": kind})
        new = cur.rowcount
        batch.count += new
        if want_rows:
            batch.rows += [ValueRow._make(r) for r in await cur.fetchall()]
        # only when something was not inserted look for values repeated by a new poll
        if kind in ("register", "instant") and new < staged[kind]:
            live = sql.SQL("AND s.archive IS NULL AND r.archive IS NULL" if kind == "register" else "")
            cur = await conn.execute(sql.SQL(_REPEATED_SQL).format(t=sql.Identifier(table), live=live),
                                     {"kind": kind})
            batch.repeated += [RepeatedRow(*r) for r in await cur.fetchall()]


# ---- changes in place ------------------------------------------------------------------------
@dataclass(frozen=True)
class Stored:
    value: float
    quality: str
    reasons: list[str]
    source: str


async def get(conn: psycopg.AsyncConnection, kind: str, meter_id: int, obis: str, ts: datetime) -> Stored | None:
    cur = await conn.execute(sql.SQL(
        "SELECT value, quality, reasons, source FROM {t} WHERE meter_id = %s AND obis = %s AND ts = %s"
    ).format(t=sql.Identifier(TABLES[kind])), (meter_id, obis, ts))
    row = await cur.fetchone()
    return Stored(*row) if row else None


async def correct(conn: psycopg.AsyncConnection, kind: str, meter_id: int, obis: str, ts: datetime,
                  value: float) -> Stored | None:
    """Change one stored value by hand: quality M, source manual, reason `corrected`.
    Returns what it was (None when there is no such value); the rollups follow."""
    async with conn.transaction():
        # One statement reads the old state and changes it (the UPDATE locks the row):
        # TimescaleDB cannot SELECT … FOR UPDATE a row still in a compressed chunk, but it
        # can update one.
        cur = await conn.execute(sql.SQL(
            "UPDATE {t} n SET value = %s, quality = 'M', source = 'manual', "
            "reasons = ARRAY(SELECT DISTINCT x FROM unnest(n.reasons || ARRAY['corrected']) x ORDER BY x) "
            "FROM {t} o WHERE o.meter_id = n.meter_id AND o.obis = n.obis AND o.ts = n.ts "
            "AND n.meter_id = %s AND n.obis = %s AND n.ts = %s "
            "RETURNING o.value, o.quality, o.reasons, o.source").format(t=sql.Identifier(TABLES[kind])),
            (value, meter_id, obis, ts))
        row = await cur.fetchone()
        if row is None:
            return None
        await refresh_rollups(conn, [(meter_id, obis, ts)])
    return Stored(*row)


async def refresh_rollups(conn: psycopg.AsyncConnection, changed: Iterable[tuple[int, str, datetime]]) -> None:
    """Rebuild the rollups of values changed or removed in place (inserts need nothing:
    the tables' triggers add them). Both storage modes keep register rollups in trigger
    tables; TimescaleDB's interval aggregates follow by their refresh policy."""
    spans: dict[tuple[int, str], tuple[datetime, datetime]] = {}
    for mid, obis, ts in changed:
        lo, hi = spans.get((mid, obis), (ts, ts))
        spans[(mid, obis)] = (min(lo, ts), max(hi, ts))
    for (mid, obis), (lo, hi) in spans.items():
        await rollups.recompute(conn, mid, obis, lo, hi)

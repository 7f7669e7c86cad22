"""The batch hook: runs inside the ingest transaction on every merged batch.

Judges the newly inserted values with the per-value rules (reverse reading with
rollover/exchange, interval gaps/duplicates/size, clock drift, tamper and the other
journal entries — power and phase loss, clock set, meter faults —, voltage)
against the last stored value of each channel, adds reasons to the new values and
raises events once per condition. Day-level rules (spike, zero consumption, sum
mismatch), contact, verification, imbalance and gap estimation run in the periodic
scan (scan.py) so the ingest stays fast.

Registered as the after-insert hook "vee" (storage/hooks.py): it runs for every writer
of values. Gateway values are judged by every per-value rule; values a person typed or
a file brought by the rules that make sense for them (a manual reading's time is when
it was taken, not a meter clock); VEE's own estimates are not judged again.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from askue.headend.auth import audit
from askue.headend.storage import hooks, meta, pgarrays, values
from askue.headend.storage.values import InsertedBatch
from askue.headend.vee import engine, register_tails, store
from askue.headend.vee.model import MeterValue, Result
from askue.headend.vee.rules.common import Ctx

log = logging.getLogger(__name__)

HOOK_RULES = ("reverse_reading", "interval_gap", "clock_drift", "tamper", "journal", "voltage", "frozen_value")
# Values typed by a person or read from a file carry no meter clock or journal of a live read.
ENTERED_RULES = ("reverse_reading", "interval_gap")
# frozen_value compares a value delivered again with its stored first copy: a meter none of
# whose values came again has nothing for it (new values are unique per channel and time,
# the stored ones fetched for context are older).
UNREPEATED_RULES = tuple(r for r in HOOK_RULES if r != "frozen_value")

_PREV_SQL = """
SELECT k.meter_id, k.obis, p.ts, p.value, p.received_at, p.quality {extra}
FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]{more}) AS k(meter_id, obis, ts{more_cols})
LEFT JOIN LATERAL (
    SELECT ts, value, received_at, quality {extra_inner} FROM {table} t
    WHERE t.meter_id = k.meter_id AND t.obis = k.obis AND {before} {since}
    ORDER BY t.ts DESC LIMIT 1) p ON true
WHERE p.ts IS NULL{needed}
"""
# With the channels' last new times (`lasts`): the newest stored value outside the batch's own
# span of the channel. The same index descent then also tells whether anything is stored after
# the batch's values (returned), i.e. whether the last new value is the channel's latest.
_BEFORE = "t.ts < k.ts"
_OUTSIDE = "(t.ts < k.ts OR t.ts > k.last)"
_AFTER = " OR p.ts > k.last"
# The stored value only matters to reverse_reading when a new value of the channel is below it
# by more than the tolerance (the same float arithmetic as the rule's): otherwise the rule
# finds nothing against it and goes on from the first new value as it would without it.
_NEEDED = " OR p.value - k.tol > k.min_new"
# How far back the first lookup looks: a live channel's previous value is minutes or hours
# old. Channels with nothing that recent (a new meter, a long outage) are looked up again
# over their whole history.
RECENT = timedelta(days=2)
_FAR = datetime.max.replace(tzinfo=UTC) - RECENT
# This transaction's mark, and for each meter whose registers it wrote the mark of the
# transaction that changed them before it (migration 0610): a process's memory of a meter is
# current when that mark is its own.
_WRITES_SQL = ("SELECT w.mark, array_agg(meter_id) FILTER (WHERE meter_id IS NOT NULL), "
               "array_agg(prev_mark) FILTER (WHERE meter_id IS NOT NULL) "
               "FROM (SELECT askue_write_mark() AS mark) w LEFT JOIN meter_register_writes r "
               "ON r.meter_id = ANY(%b::bigint[]) AND r.mark = w.mark GROUP BY w.mark")


async def _previous(conn: psycopg.AsyncConnection, kind: str, firsts: dict[tuple[int, str], datetime],
                    codes: dict[int, str], lows: dict[tuple[int, str], tuple[float, float]] | None = None
                    ) -> list[MeterValue]:
    """The stored value just before each channel's first new one. `lows` (registers): the
    channel's lowest new value and the meter's reverse tolerance (-inf where every stored
    value is wanted); a stored value no new one is below (beyond the tolerance) is not fetched."""
    if not firsts:
        return []
    m = await meta.load(conn)
    found = await _lookup(conn, kind, firsts, lows, min(firsts.values()) - RECENT, m)
    return await _rows_before(conn, kind, firsts, lows, found, codes)


async def _rows_before(conn: psycopg.AsyncConnection, kind: str, firsts: dict[tuple[int, str], datetime],
                       lows: dict[tuple[int, str], tuple[float, float]] | None,
                       found: dict[tuple[int, str], tuple | None], codes: dict[int, str]) -> list[MeterValue]:
    """`found` as MeterValues, after looking up the whole history of channels with nothing recent."""
    missing = {k: firsts[k] for k, row in found.items() if row is None}
    if missing:
        found.update(await _lookup(conn, kind, missing, lows, None, None))
    out = []
    for (mid, obis), row in found.items():
        if row is not None:
            ts, value, rx, q, per = row
            out.append(MeterValue(codes[mid], obis, kind, ts, value, rx, per, q, False))
    return out


@dataclass
class _Registers:
    """A batch's new register values per channel k = (meter id, OBIS), as the hook's pass over
    them left them."""

    channels: dict[int, list[tuple[int, str]]]  # each meter's channels
    firsts: dict[tuple[int, str], datetime]  # the oldest new value's time
    lows: dict[tuple[int, str], float]  # the lowest new value (the only one, for most channels)
    lasts: dict[tuple[int, str], tuple[datetime, float]]  # the newest, where there are several
    tolerance: dict[int, float | None]  # the meter's reverse tolerance; None: every stored value wanted

    def last(self, k: tuple[int, str]) -> tuple[datetime, float]:
        return self.lasts.get(k) or (self.firsts[k], self.lows[k])

    def last_times(self, ks: dict[tuple[int, str], datetime]) -> dict[tuple[int, str], datetime]:
        """The newest new value's time of each of `ks` (a subset of `firsts`)."""
        out = dict(ks)
        for k, (ts, _) in self.lasts.items():
            if k in out:
                out[k] = ts
        return out

    def wanted(self, ks: Iterable[tuple[int, str]]) -> dict[tuple[int, str], tuple[float, float]]:
        """`_lookup`'s lows: (lowest new value, tolerance), -inf where every stored value is wanted."""
        out = {}
        lows, tolerance = self.lows, self.tolerance
        for k in ks:
            tol = tolerance[k[0]]
            out[k] = (-math.inf, 0.0) if tol is None else (lows[k], tol)
        return out


async def _registers_before(conn: psycopg.AsyncConnection, new: _Registers, codes: dict[int, str]
                            ) -> list[MeterValue]:
    """`_previous` for registers, answered from what this process remembers storing
    (register_tails) where that is provably current, and remembering what this batch leaves."""
    if not new.firsts:
        return []
    pgarrays.enable(conn)
    async with conn.cursor(binary=True) as cur:
        await cur.execute(_WRITES_SQL, (pgarrays.int8(sorted(new.channels)),))
        mark, mids, prevs = await cur.fetchone()  # type: ignore[misc]
    tails = register_tails.TAILS
    memory = {mid: tails.current(mid, prev) for mid, prev in zip(mids or (), prevs or (), strict=True)}
    try:
        fresh, ask, rebuild = _answer_from_memory(mark, memory, new, tails)
        found: dict[tuple[int, str], tuple | None] = {}
        later: set[tuple[int, str]] = set()
        lows = new.wanted(fresh)
        lows.update(new.wanted(ask))
        if lows:
            m = await meta.load(conn)
            since = min(min(fresh.values(), default=_FAR), min(ask.values(), default=_FAR)) - RECENT
        if fresh:
            found = await _lookup(conn, "register", fresh, lows, since, m)
        if ask:
            last_ts = new.last_times(ask)
            found.update(await _lookup(conn, "register", ask, lows, since, m, last_ts))
            # a stored reading after a channel's last new one (an archive delivered late): the
            # reading before its first new one is asked for alone
            later = {k for k, row in found.items() if row is not None and k in last_ts and row[0] > last_ts[k]}
            if later:
                for k in later:
                    del found[k]
                found.update(await _lookup(conn, "register", {k: ask[k] for k in later}, lows, since, m))
        out = await _rows_before(conn, "register", new.firsts, lows, found, codes)
        for mid in rebuild:
            _rebuild(mark, mid, memory.get(mid), new, later)
    except BaseException:
        # a memory half updated must not outlive a transaction that may now roll back
        for mid in memory:
            tails.drop(mid)
        raise
    return out


def _answer_from_memory(mark: int, memory: dict[int, register_tails.Tail | None], new: _Registers,
                        tails: register_tails.RegisterTails
                        ) -> tuple[dict[tuple[int, str], datetime], dict[tuple[int, str], datetime], list[int]]:
    """What memory cannot vouch for, to look up: the channels of meters this process meets for
    the first time (looked up as ever: most never come again soon, as in a midnight burst of
    first contacts) and the others' (looked up with what memory needs to be rebuilt); and the
    meters whose memory is rebuilt after the lookup. A meter memory answers for whole is
    updated in place and marked as this transaction's (the usual poll)."""
    firsts, lows, lasts = new.firsts, new.lows, new.lasts
    fresh: dict[tuple[int, str], datetime] = {}
    ask: dict[tuple[int, str], datetime] = {}
    rebuild: list[int] = []
    if not any(memory.values()):  # first contacts, or another writer's turn: all asked
        met = [tails.met(mid) for mid in new.channels]
        if not any(met):
            for mid in new.channels:
                tails.meet(mid)
            return firsts, ask, rebuild
        if all(met):
            return fresh, firsts, [mid for mid in new.channels if mid in memory]
    for mid, keys in new.channels.items():
        t = memory.get(mid)
        tol = new.tolerance[mid]
        if t is None or tol is None:
            if not tails.met(mid):
                tails.meet(mid)
                for k in keys:
                    fresh[k] = firsts[k]
                continue
            for k in keys:
                ask[k] = firsts[k]
            if mid in memory:  # (every meter with a new register value is: the insert marked it)
                rebuild.append(mid)
            continue
        index, stored, newest = t.layout[1], t.values, t.newest
        horizon, top, whole = newest + RECENT, newest, True
        for k in keys:
            first = firsts[k]
            i = index.get(k[1])
            if i is not None and newest < first <= horizon:
                v, low = stored[i], lows[k]
                # the remembered reading is the one before `first`: skipped exactly when the
                # lookup's filter (_NEEDED) would drop it; NaN (ordered above all numbers there) is asked
                if v == v and low == low and not v - tol > low:
                    last = lasts.get(k)
                    if last is None:
                        stored[i], ts = low, first
                    else:
                        ts, stored[i] = last
                    if ts > top:
                        top = ts
                    continue
            ask[k] = first
            whole = False
        if whole:
            t.mark, t.newest = mark, top
        else:
            rebuild.append(mid)
    return fresh, ask, rebuild


def _rebuild(mark: int, mid: int, t: register_tails.Tail | None, new: _Registers,
             later: set[tuple[int, str]]) -> None:
    """A meter's memory after this transaction: what is remembered (when still current) and
    each new channel's newest value, unless something is stored after it."""
    keys = new.channels[mid]
    if t is None and not later and not new.lasts:  # the first contact's shape, kept short
        firsts, lows = new.firsts, new.lows
        register_tails.TAILS.remember(mid, mark, max(map(firsts.__getitem__, keys)),
                                      [k[1] for k in keys], list(map(lows.__getitem__, keys)))
        return
    kept = dict(zip(t.layout[0], t.values, strict=True)) if t is not None else {}
    newest = t.newest if t is not None else None
    for k in keys:
        if k in later:
            kept.pop(k[1], None)
            continue
        ts, kept[k[1]] = new.last(k)
        if newest is None or ts > newest:
            newest = ts
    if newest is not None:
        register_tails.TAILS.remember(mid, mark, newest, list(kept), list(kept.values()))


async def _lookup(conn: psycopg.AsyncConnection, kind: str, firsts: dict[tuple[int, str], datetime],
                  lows: dict[tuple[int, str], tuple[float, float]] | None, since: datetime | None,
                  m: meta.Meta | None, lasts: dict[tuple[int, str], datetime] | None = None
                  ) -> dict[tuple[int, str], tuple | None]:
    """Each channel's stored value before its first new one, if wanted (see `_previous`);
    None for a channel with nothing stored before it (in the window `since` when given).
    With `lasts` (each channel's newest new time): also a channel's newest value stored after
    its last new one (see _OUTSIDE)."""
    keys = list(firsts)
    extra = ", p.period_s" if kind == "interval" else ", NULL::int"
    sql = _PREV_SQL.format(extra=extra, extra_inner=", period_s" if kind == "interval" else "",
                           table=values.TABLES[kind], since="AND t.ts >= %s" if since else "",
                           before=_OUTSIDE if lasts is not None else _BEFORE,
                           more=(", %s::timestamptz[]" if lasts is not None else "")
                           + (", %s::float8[], %s::float8[]" if lows is not None else ""),
                           more_cols=(", last" if lasts is not None else "")
                           + (", min_new, tol" if lows is not None else ""),
                           needed=(_AFTER if lasts is not None else "")
                           + (_NEEDED if lows is not None else " OR true"))
    pgarrays.enable(conn)
    mids, obises = zip(*keys, strict=True)  # tens of thousands of channels a batch: split in C, not item by item
    params: list = [pgarrays.int8(mids), pgarrays.text(obises), pgarrays.timestamptz(list(firsts.values()))]
    if lasts is not None:
        params.append(pgarrays.timestamptz([lasts[k] for k in keys]))
    if lows is not None:
        news, tols = zip(*map(lows.__getitem__, keys), strict=True)
        params += [pgarrays.float8(news), pgarrays.float8(tols)]
    if since:
        params.append(since)
    # A constant lower bound leaves the planner the one or two newest chunks (partitions). On
    # TimescaleDB its ChunkAppend node then still costs more per probe than the probe itself
    # (measured: 16 µs against 4 µs for 18,000 channels); a plain index scan per chunk is
    # what the bounded lookup wants.
    recent_ts = since is not None and m is not None and not m.plain
    if recent_ts:
        await conn.execute("SET LOCAL timescaledb.enable_chunk_append = off")
    # binary: a batch sends and gets back one row per channel (tens of thousands); text
    # arrays and rows cost the ingest more than the query itself
    async with conn.cursor(binary=True) as cur:
        await cur.execute(sql.replace("%s", "%b"), params)
        rows = await cur.fetchall()
    if recent_ts:  # (on an error the hook's savepoint takes the setting back with it)
        await conn.execute("SET LOCAL timescaledb.enable_chunk_append TO DEFAULT")
    return {(mid, obis): None if ts is None else (ts, value, rx, q, per)
            for mid, obis, ts, value, rx, q, per in rows}


@hooks.after_insert("vee")
async def batch_hook(conn: psycopg.AsyncConnection, batch: InsertedBatch) -> None:
    """Judge the new values of `batch`, then note the estimates real values replaced."""
    rows = [r for r in batch.rows if r.source != "estimate"]
    repeated = batch.repeated
    if not rows and not repeated:
        return
    tz = await meta.timezone(conn)
    meters = await store.load_meters(conn, tz, sorted({r.meter_id for r in rows} | {r.meter_id for r in repeated}))
    codes = {mid: m.facts.code for mid, m in meters.items()}
    new_by_meter: dict[int, list[MeterValue]] = {}
    firsts: dict[str, dict[tuple[int, str], object]] = {"register": {}, "interval": {}}
    entered: set[int] = set()  # meters with values from a person or a file
    lows: dict[tuple[int, str], float] = {}  # each register channel's lowest new value
    lasts: dict[tuple[int, str], tuple[datetime, float]] = {}  # its newest, if it has several
    reg_channels: dict[int, list[tuple[int, str]]] = {}  # each meter's register channels
    chans: list[tuple[int, str]] | None = None
    reg_firsts, int_firsts = firsts["register"], firsts["interval"]
    last_mid, code, lst = None, None, None  # a batch's rows come meter by meter: look each up once
    for r in rows:
        kind, mid, obis, ts, ts_source, rx, x, _, _, source, _, _, per, archive, _, _ = r
        if mid != last_mid:
            last_mid, code = mid, codes.get(mid)
            chans = None
            if code is not None:
                lst = new_by_meter.get(mid)
                if lst is None:
                    lst = new_by_meter[mid] = []
        if code is None:
            continue
        if source != "gateway":
            entered.add(mid)
        lst.append(MeterValue(code, obis, kind, ts, x, rx, per, "A", True, None,  # type: ignore[union-attr]
                              archive is None and ts_source == "meter"))
        if kind == "register":
            k = (mid, obis)
            t = reg_firsts.get(k)
            if t is None:
                reg_firsts[k] = ts
                lows[k] = x
                if chans is None:
                    chans = reg_channels.setdefault(mid, [])
                chans.append(k)
                continue
            # a channel with several new values (rare: most have one a batch) keeps its newest
            last = lasts.get(k)
            if last is None:
                last = lasts[k] = (t, lows[k])  # the first value, as yet untouched
            if ts > last[0]:
                lasts[k] = (ts, x)
            if ts < t:
                reg_firsts[k] = ts
            low = lows[k]
            if x < low or low != low:  # NaN is below nothing: never a low
                lows[k] = x
        elif kind == "interval":
            k = (mid, obis)
            t = int_firsts.get(k)
            if t is None or ts < t:
                int_firsts[k] = ts
    history: dict[int, list[MeterValue]] = {}
    repeated_meters = {r.meter_id for r in repeated}
    for r in repeated:  # the stored first copy as history, the repeat under check
        if r.meter_id not in codes:
            continue
        code = codes[r.meter_id]
        history.setdefault(r.meter_id, []).append(
            MeterValue(code, r.obis, r.kind, r.ts, r.first_value, received_at=r.first_received_at, new=False))
        new_by_meter.setdefault(r.meter_id, []).append(
            MeterValue(code, r.obis, r.kind, r.ts, r.value, received_at=r.received_at))
    cfg = await store.load_thresholds(conn)
    # Every stored value (each is above -inf) for a meter whose identity changed (a recorded
    # reset, a new serial: an exchange is marked against any stored value) and for one with
    # values delivered again (their stored first copies join the series: without the latest
    # stored value a new one would be judged against an older copy).
    tolerance: dict[int, float | None] = {}
    for mid in {k[0] for k in lows}:
        f = meters[mid].facts
        tolerance[mid] = (None if f.baseline_resets or f.identity_changed or mid in repeated_meters
                          else cfg.for_meter(f).reverse_tolerance)
    ids = {c: m for m, c in codes.items()}
    for v in (await _registers_before(conn, _Registers(reg_channels, reg_firsts, lows, lasts, tolerance), codes)
              + await _previous(conn, "interval", int_firsts, codes)):
        history.setdefault(ids[v.meter], []).append(v)
    res = Result()
    for mid, vals in new_by_meter.items():
        m = meters[mid]
        f = m.facts
        th = cfg.for_meter(f)
        ctx = Ctx(now=max(v.received_at or v.ts for v in vals), thresholds=th, tz=tz)  # type: ignore[arg-type]
        rules = ENTERED_RULES if mid in entered else HOOK_RULES if mid in repeated_meters else UNREPEATED_RULES
        res.extend(engine.check_series(f, history.get(mid, []) + vals, ctx, rules))
    await store.apply_result(conn, res, meters, _kinds_marked(res, new_by_meter, ids), cfg)
    await _note_replaced(conn, set(meters))


def _kinds_marked(res: Result, new_by_meter: dict[int, list[MeterValue]],
                  ids: dict[str, int]) -> dict[tuple[str, str], str]:
    """The kind of each channel a mark names (marks are rare: not worked out per value)."""
    kinds: dict[tuple[str, str], str] = {}
    for mid in {ids[mk.meter] for mk in res.marks if mk.meter in ids}:
        for v in new_by_meter.get(mid, ()):
            kinds[(v.meter, v.obis)] = v.kind
    return kinds


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
    for kind, mid, obis, ts, old, new in rows:
        await audit.record(conn, "vee", "estimate_replaced", kind, f"{mid}/{obis}/{ts.isoformat()}",
                           old={"value": old, "quality": "E"}, new={"value": new, "quality": "A"},
                           comment="real value arrived / получено фактическое значение")
    await values.refresh_rollups(conn, [(mid, obis, ts) for _, mid, obis, ts, _, _ in rows])

"""The registry's checks on a batch before its values are stored: which meter each value
belongs to, in which unit, and whether billing may use it.

- Identity: a gateway writes a meter only through a binding (gateway, the code it uses,
  a time window by the value's receive time). A code the registry has never seen becomes
  an unassigned meter bound to that gateway; a registry meter that was never bound is
  bound to the first gateway that reads it. A value for a meter bound to another gateway
  (or removed) is quarantined with the reason (`quarantined_values`), never stored on the
  meter, and raises «Показания от чужого шлюза» (or «Показания снятого прибора учёта»).
  Status lines of such meters are ignored.
- Units: each value is converted into its canonical unit (`askue.headend.units`); the
  row keeps what was sent. A unit unknown or wrong for the meter's resource sends the
  value to dead letters with the reason.
- Serial and ratios: a serial the meter reports that differs from the registry's holds
  the meter's values from billing (reason `serial_mismatch`) until an operator confirms,
  and raises an event; transformer ratios programmed in the meter (MeterStatus.ct_ratio,
  vt_ratio) that differ from the registry's raise one.

Cheap on purpose: per message, one set of (code, OBIS, kind, unit) and dict lookups in
the process's `RegistryView`; only a message that needs it (a unit to convert, a held
meter, a binding that changed inside it, a value to set aside) is planned value by value.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
import psycopg

from askue.contract import DataMessage, MeterStatus, Topics, Value
from askue.headend import units
from askue.headend.ingest.batch import Pending
from askue.headend.registry import cache
from askue.headend.registry.cache import Binding, MeterIdentity, RegistryView

SERIAL_MISMATCH = "serial_mismatch"  # the reason on held values (a blocking reason for billing)


@dataclass
class Finding:
    kind: str
    meter_id: int | None
    ts: datetime
    key: str
    evidence: dict
    gateway_id: str | None = None


@dataclass
class BatchPlan:
    """What to store for a batch: per data message either `ids` (every value goes to the
    meter its code maps to, as sent) or `rows` (value, meter, value to store, original
    value and unit, reasons)."""

    ids: list[dict[str, int] | None] = field(default_factory=list)
    rows: list[list[tuple[Value, int, float, float | None, str | None, list[str] | None]] | None] = field(
        default_factory=list)
    statuses: list[list[tuple[MeterStatus, int]]] = field(default_factory=list)
    quarantine: list[tuple] = field(default_factory=list)
    dead: list[tuple[str, str | None, bytes, str]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    holds: dict[int, tuple[datetime, str]] = field(default_factory=dict)
    # learned in this batch, applied to the view once it commits
    bindings: dict[tuple[str, str], tuple[Binding, ...]] = field(default_factory=dict)
    meters: dict[int, MeterIdentity] = field(default_factory=dict)


class _Planner:
    def __init__(self, view: RegistryView, plan: BatchPlan, topics: Topics) -> None:
        self.view, self.plan, self.topics = view, plan, topics
        self.foreign: dict[tuple[str, str], list] = {}  # (gateway, code) -> [reason, meter id, first ts, last ts, n]

    def bindings(self, gw: str, code: str) -> tuple[Binding, ...] | None:
        got = self.plan.bindings.get((gw, code))
        return got if got is not None else self.view.bindings.get(gw, {}).get(code)

    def meter(self, mid: int) -> MeterIdentity:
        return self.plan.meters.get(mid) or self.view.meters[mid]

    def held(self, mid: int) -> bool:
        return mid in self.plan.holds or self.meter(mid).held

    def meter_at(self, gw: str, code: str, t: datetime) -> int | None:
        bs = self.bindings(gw, code)
        if not bs:
            return None
        for b in reversed(bs):
            if b.covers(t):
                return b.meter_id
        return None

    # ---- one message ----------------------------------------------------------------------
    def message(self, msg: DataMessage, keys: set[tuple[str, str, str, str]]) -> None:
        gw, vals = msg.gateway_id, msg.values
        statuses: list[tuple[MeterStatus, int]] = []
        for st in msg.meters:
            mid = self.meter_at(gw, st.meter_id, st.last_contact or msg.sent_at)
            if mid is None:
                continue  # a meter this gateway does not write: its status is not this gateway's to say
            statuses.append((st, mid))
            self.check_status(gw, st, mid, st.last_contact or msg.sent_at)
        self.plan.statuses.append(statuses)
        ids = self.steady(gw, vals, keys)
        self.plan.ids.append(ids)
        self.plan.rows.append(None if ids is not None else self.value_by_value(msg))

    def steady(self, gw: str, vals: list[Value], keys: set[tuple[str, str, str, str]]) -> dict[str, int] | None:
        """code → meter for a message whose every value goes to its meter as sent."""
        ids: dict[str, int] = {}
        earliest: datetime | None = None
        for code in {k[0] for k in keys}:
            bs = self.bindings(gw, code)
            if not bs:
                return None
            last = bs[-1]
            if last.valid_to is not None:
                return None
            if last.valid_from is not None:
                if earliest is None:
                    earliest = min(v.received_at for v in vals)
                if earliest < last.valid_from:
                    return None
            if self.held(last.meter_id):
                return None
            ids[code] = last.meter_id
        for code, obis, kind, unit in keys:
            if not _sent_canonical(self.meter(ids[code]).resource, obis, kind, unit):
                return None
        return ids

    def value_by_value(self, msg: DataMessage) -> list:
        gw = msg.gateway_id
        out: list = []
        refused: list[tuple[int, Value, str]] = []
        for i, v in enumerate(msg.values):
            mid = self.meter_at(gw, v.meter_id, v.received_at)
            if mid is None:
                self.set_aside(msg, v)
                continue
            m = self.meter(mid)
            try:
                c = units.convert(m.resource, v.obis, v.kind, v.unit)
            except units.UnitError as e:
                refused.append((i, v, e.reason))
                continue
            reasons = [*v.reasons, SERIAL_MISMATCH] if self.held(mid) else list(v.reasons) if v.reasons else None
            if c.same:
                out.append((v, mid, v.value, None, None, reasons))
            else:
                out.append((v, mid, v.value * c.factor, v.value, v.unit, reasons))
        if refused:
            self.dead_letter(msg, refused)
        return out

    # ---- what is set aside ----------------------------------------------------------------
    def set_aside(self, msg: DataMessage, v: Value) -> None:
        gw, code = msg.gateway_id, v.meter_id
        mid = self.view.by_code.get(code)
        for (g, c), bs in self.plan.bindings.items():  # a meter created in this batch
            if c == code and g == gw and bs:
                mid = bs[-1].meter_id
        owner = self.meter(mid) if mid is not None and (mid in self.plan.meters or mid in self.view.meters) else None
        removed = owner is not None and (owner.status == "decommissioned" or owner.gateway_id is None)
        reason = "meter_removed" if removed else "foreign_gateway"
        ts = v.meter_time or v.received_at
        self.plan.quarantine.append((
            reason, gw, code, owner.id if owner else None, owner.gateway_id if owner else None, v.kind, v.obis, ts,
            "meter" if v.meter_time else "gateway", v.received_at, v.value, v.unit, v.quality, list(v.reasons) or None,
            msg.seq, v.period_s, v.archive))
        f = self.foreign.setdefault((gw, code), [reason, owner, ts, ts, 0])
        f[2], f[3], f[4] = min(f[2], ts), max(f[3], ts), f[4] + 1

    def dead_letter(self, msg: DataMessage, refused: list[tuple[int, Value, str]]) -> None:
        body = msgspec.json.encode(DataMessage(v=msg.v, gateway_id=msg.gateway_id, seq=msg.seq, sent_at=msg.sent_at,
                                               values=[v for _, v, _ in refused]))
        why = "; ".join(f"values[{i}] (meter {v.meter_id}, {v.obis}): {r}" for i, v, r in refused[:20])
        more = f"; and {len(refused) - 20} more" if len(refused) > 20 else ""
        self.plan.dead.append((self.topics.data(msg.gateway_id), msg.gateway_id, body,
                               f"unit refused, {len(refused)} value(s) not stored: {why}{more}"))

    # ---- what a status line says ----------------------------------------------------------
    def check_status(self, gw: str, st: MeterStatus, mid: int, at: datetime) -> None:
        m = self.meter(mid)
        if st.serial and m.serial and _serial(st.serial) != _serial(m.serial) and not self.held(mid):
            self.plan.holds[mid] = (at, st.serial)
            self.plan.findings.append(Finding(
                "serial_mismatch", mid, at, f"serial_mismatch:{m.code}",
                {"reported_serial": st.serial, "registry_serial": m.serial, "gateway": gw}, gw))
        if st.ct_ratio is None and st.vt_ratio is None:
            return
        ct, vt = st.ct_ratio or 1.0, st.vt_ratio or 1.0
        if m.ct_ratio is not None or m.vt_ratio is not None:
            same = _eq(ct, m.ct_ratio or 1.0) and _eq(vt, m.vt_ratio or 1.0)
            registry = {"registry_ct": m.ct_ratio or 1.0, "registry_vt": m.vt_ratio or 1.0}
        else:
            same = _eq(ct * vt, m.multiplier)
            registry = {"registry_multiplier": m.multiplier}
        if same:
            return
        key = f"ratio_mismatch:{m.code}:{_fmt(ct)}x{_fmt(vt)}:{'x'.join(_fmt(x) for x in registry.values())}"
        if key not in self.view.raised:
            self.plan.findings.append(Finding("ratio_mismatch", mid, at, key,
                                              {"meter_ct": ct, "meter_vt": vt, **registry, "gateway": gw}, gw))

    def foreign_findings(self) -> None:
        for (gw, code), (reason, owner, first, last, n) in self.foreign.items():
            kind = "removed_meter_values" if reason == "meter_removed" else "foreign_gateway"
            key = f"{kind}:{owner.code if owner else code}:{gw}"
            if key in self.view.raised:
                continue
            self.plan.findings.append(Finding(
                kind, owner.id if owner else None, last, key,
                {"gateway": gw, "gateway_code": code, "bound_gateway": owner.gateway_id if owner else None,
                 "values": n, "first_ts": first, "last_ts": last}, gw))


def _serial(s: str) -> str:
    """Serials as meters and registers write them: case, spaces and leading zeros aside."""
    return "".join(s.split()).upper().lstrip("0")


_CANONICAL: dict[tuple, bool] = {}


def _sent_canonical(resource: str | None, obis: str, kind: str, unit: str) -> bool:
    """A value sent in the canonical unit of its channel (kept as sent); memoised: every
    message repeats the same few dozen (resource, channel, kind, unit)."""
    key = (resource, obis, kind, unit)
    same = _CANONICAL.get(key)
    if same is None:
        try:
            same = units.convert(resource, obis, kind, unit).same
        except units.UnitError:
            same = False
        if len(_CANONICAL) > 100_000:
            _CANONICAL.clear()
        _CANONICAL[key] = same
    return same


def _eq(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


# ---- the batch -----------------------------------------------------------------------------
async def plan(conn: psycopg.AsyncConnection, view: RegistryView, pending: Pending, topics: Topics) -> BatchPlan:
    """Resolve every value of the batch (inside its transaction): codes the view does not
    know are looked up, new meters created unassigned and bound, never-bound ones bound."""
    p = BatchPlan()
    unknown: dict[tuple[str, str], None] = {}
    # the one pass over every value: the distinct (code, OBIS, kind, unit) of each message
    keys = [{(v.meter_id, v.obis, v.kind, v.unit) for v in msg.values} for msg in pending.data]
    for msg, ks in zip(pending.data, keys, strict=True):
        gw = msg.gateway_id
        known = view.bindings.get(gw, {})
        for code in {k[0] for k in ks} | {m.meter_id for m in msg.meters}:
            if code not in known:
                unknown[(gw, code)] = None
    if unknown:
        await _resolve(conn, view, p, list(unknown))
    planner = _Planner(view, p, topics)
    for msg, ks in zip(pending.data, keys, strict=True):
        planner.message(msg, ks)
    planner.foreign_findings()
    return p


async def _resolve(conn: psycopg.AsyncConnection, view: RegistryView, p: BatchPlan,
                   pairs: list[tuple[str, str]]) -> None:
    bindings, by_code, by_id = await cache.lookup(conn, pairs)
    # an unassigned meter may still have been bound once (and since unbound): one query for all
    # of them, not one per meter (a first midnight poll brings thousands)
    maybe_new = [m.id for gw, code in pairs if (gw, code) not in bindings and (m := by_code.get(code)) is not None
                 and m.gateway_id is None and m.status != "decommissioned"]
    bound = await _ever_bound(conn, maybe_new) if maybe_new else set()
    claim: list[tuple[str, str]] = []
    for gw, code in pairs:
        if (gw, code) in bindings:
            continue
        m = by_code.get(code)
        if m is None or (m.gateway_id is None and m.status != "decommissioned" and m.id not in bound):
            claim.append((gw, code))
    if claim:
        # unknown codes become unassigned meters; a meter nobody ever bound is bound to the first
        # gateway that reads it (sorted: concurrent batches take their locks in one order)
        claim.sort()
        await conn.execute(
            "INSERT INTO meters (code, status, resource, gateway_id) "
            "SELECT c, 'unassigned', 'unknown', g FROM unnest(%s::text[], %s::text[]) AS u(g, c) "
            "ORDER BY c ON CONFLICT (code) DO NOTHING", ([g for g, _ in claim], [c for _, c in claim]))
        await conn.execute(
            "INSERT INTO gateways (id) SELECT DISTINCT g FROM unnest(%s::text[]) AS u(g) ORDER BY 1 "
            "ON CONFLICT (id) DO NOTHING", (sorted({g for g, _ in claim}),))
        await conn.execute(
            "INSERT INTO meter_bindings (meter_id, gateway_id, gateway_code, source, created_by) "
            "SELECT m.id, u.g, u.c, 'first_contact', 'ingest' FROM unnest(%s::text[], %s::text[]) AS u(g, c) "
            "JOIN meters m ON m.code = u.c "
            "WHERE NOT EXISTS (SELECT 1 FROM meter_bindings b WHERE b.meter_id = m.id) "
            "ORDER BY m.id ON CONFLICT DO NOTHING", ([g for g, _ in claim], [c for _, c in claim]))
    if claim or any(pair not in bindings for pair in pairs):
        # Again, after the claims: a pair without a binding may have got one from a concurrent
        # batch that committed after the lookup above (its meter then counts as bound and is
        # not claimed here). Taken for "this gateway does not write that code", it would send
        # the meter's values to quarantine for as long as the process runs.
        bindings, by_code, by_id = await cache.lookup(conn, pairs)
    for (gw, code), bs in bindings.items():
        p.bindings[(gw, code)] = cache.sorted_bindings(bs)
    for gw, code in pairs:
        p.bindings.setdefault((gw, code), ())  # known now: this gateway does not write that code
    p.meters.update(by_id)
    for m in by_code.values():
        p.meters[m.id] = m


async def _ever_bound(conn: psycopg.AsyncConnection, meter_ids: list[int]) -> set[int]:
    """Those of `meter_ids` with any binding, open or closed."""
    cur = await conn.execute("SELECT DISTINCT meter_id FROM meter_bindings WHERE meter_id = ANY(%s)", (meter_ids,))
    return {r[0] for r in await cur.fetchall()}


_QUARANTINE_SQL = """
INSERT INTO quarantined_values (reason, gateway_id, gateway_code, meter_id, bound_gateway, kind, obis, ts, ts_source,
                                received_at, value, unit, quality, reasons, seq, period_s, archive)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


async def record(conn: psycopg.AsyncConnection, p: BatchPlan) -> None:
    """What the plan set aside, held or found, in the batch's transaction (before the hooks)."""
    if p.quarantine:
        async with conn.cursor() as cur:
            await cur.executemany(_QUARANTINE_SQL, p.quarantine)
    if p.holds:
        mids = sorted(p.holds)
        await conn.execute(
            "UPDATE meters m SET serial_hold_at = u.at, serial_hold_reported = u.serial "
            "FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[]) AS u(id, at, serial) "
            "WHERE m.id = u.id AND m.serial_hold_at IS NULL",
            (mids, [p.holds[i][0] for i in mids], [p.holds[i][1] for i in mids]))
    if p.findings:
        await raise_events(conn, p.findings)


async def raise_events(conn: psycopg.AsyncConnection, findings: Iterable[Finding]) -> None:
    """Abnormal events of the registry's kinds, once per open condition (VEE's writer)."""
    from askue.headend.storage import meta
    from askue.headend.vee import store
    from askue.headend.vee.model import MeterFacts
    from askue.headend.vee.rules.common import finding

    findings = list(findings)
    tz = await meta.timezone(conn)
    meters = await store.load_meters(conn, tz, sorted({f.meter_id for f in findings if f.meter_id is not None}))
    by_code = {m.facts.code: m for m in meters.values()}
    out = []
    for f in findings:
        m = meters.get(f.meter_id) if f.meter_id is not None else None
        facts = m.facts if m else MeterFacts(code=str(f.evidence.get("gateway_code") or "?"))
        out.append(finding(f.kind, facts, f.ts, f.key, **json.loads(json.dumps(f.evidence, default=str))))
    await store.write_findings(conn, out, by_code)
    if any(f.meter_id is None for f in findings):
        # no meter to file it under: the sending gateway names it
        await conn.execute(
            "UPDATE abnormal_events SET gateway_id = e.gw FROM unnest(%s::text[], %s::text[]) AS e(key, gw) "
            "WHERE dedup_key = e.key AND cleared_at IS NULL AND meter_id IS NULL",
            ([f.key for f in findings if f.meter_id is None], [f.gateway_id for f in findings if f.meter_id is None]))


def commit(view: RegistryView, p: BatchPlan) -> None:
    """After the batch committed: what it learned and set goes into the process's view."""
    for (gw, code), bs in p.bindings.items():
        view.bindings.setdefault(gw, {})[code] = bs
    for mid, m in p.meters.items():
        view.meters[mid] = m
        view.by_code[m.code] = mid
    for mid in p.holds:
        if mid in view.meters:
            view.meters[mid].held = True
    view.raised.update(f.key for f in p.findings)

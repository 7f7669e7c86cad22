"""What the ingest needs from the registry, in memory: which meter each gateway's meter
code means (bindings with their time windows), each meter's resource, registry serial,
serial hold and transformer ratios.

One `RegistryView` per ingest process. Each batch asks `fresh()` first: one read of
`registry_state.version`, which every registry change bumps (`bump()`); a moved version
reloads the view. Codes the view does not know (a meter first seen, or created by another
process) are looked up in the database by the ingest and added with `learn()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg


@dataclass(frozen=True, slots=True)
class Binding:
    meter_id: int
    valid_from: datetime | None  # None: since the meter was first seen
    valid_to: datetime | None  # None: in force

    def covers(self, t: datetime) -> bool:
        return (self.valid_from is None or t >= self.valid_from) and (self.valid_to is None or t < self.valid_to)


@dataclass(slots=True)
class MeterIdentity:
    id: int
    code: str
    resource: str
    serial: str | None
    status: str
    held: bool  # values held from billing: the reported serial differs from the registry's
    ct_ratio: float | None
    vt_ratio: float | None
    multiplier: float
    gateway_id: str | None  # the gateway of the binding in force


@dataclass
class RegistryView:
    version: int = -1
    # gateway -> the meter code it uses -> bindings by valid_from (None first)
    bindings: dict[str, dict[str, tuple[Binding, ...]]] = field(default_factory=dict)
    meters: dict[int, MeterIdentity] = field(default_factory=dict)
    by_code: dict[str, int] = field(default_factory=dict)  # registry code -> meter id
    # conditions already raised by this process (events are unique per open condition anyway)
    raised: set[str] = field(default_factory=set)

    def meter_at(self, gateway: str, code: str, received_at: datetime) -> int | None:
        """The meter `gateway` means by `code` for a value it read at `received_at`."""
        bs = self.bindings.get(gateway, {}).get(code)
        if not bs:
            return None
        last = bs[-1]
        if last.covers(received_at):
            return last.meter_id
        for b in bs[:-1]:
            if b.covers(received_at):
                return b.meter_id
        return None

    def steady(self, gateway: str, code: str, earliest: datetime) -> int | None:
        """The meter when every value read since `earliest` belongs to the binding in force."""
        bs = self.bindings.get(gateway, {}).get(code)
        if not bs:
            return None
        last = bs[-1]
        if last.valid_to is None and (last.valid_from is None or earliest >= last.valid_from):
            return last.meter_id
        return None

    def known(self, gateway: str, code: str) -> bool:
        return code in self.bindings.get(gateway, {})

    def learn(self, gateway: str, code: str, bindings: list[Binding], meters: list[MeterIdentity]) -> None:
        for m in meters:
            self.meters[m.id] = m
            self.by_code[m.code] = m.id
        if bindings:
            self.bindings.setdefault(gateway, {})[code] = sorted_bindings(bindings)


def sorted_bindings(bs: list[Binding]) -> tuple[Binding, ...]:
    return tuple(sorted(bs, key=lambda b: (b.valid_from is not None, b.valid_from or datetime.min)))


_METERS_SQL = """
SELECT m.id, m.code, m.resource, m.serial, m.status, m.serial_hold_at IS NOT NULL, m.ct_ratio, m.vt_ratio,
       m.multiplier, b.gateway_id
FROM meters m LEFT JOIN meter_bindings b ON b.meter_id = m.id AND b.valid_to IS NULL
"""
_BINDINGS_SQL = "SELECT gateway_id, gateway_code, meter_id, valid_from, valid_to FROM meter_bindings"


async def version(conn: psycopg.AsyncConnection) -> int:
    cur = await conn.execute("SELECT version FROM registry_state")
    row = await cur.fetchone()
    return row[0] if row else 0


async def load(conn: psycopg.AsyncConnection) -> RegistryView:
    view = RegistryView(version=await version(conn))
    cur = await conn.execute(_METERS_SQL)
    for r in await cur.fetchall():
        m = MeterIdentity(*r)
        view.meters[m.id] = m
        view.by_code[m.code] = m.id
    cur = await conn.execute(_BINDINGS_SQL)
    grouped: dict[tuple[str, str], list[Binding]] = {}
    for gw, code, mid, vf, vt in await cur.fetchall():
        grouped.setdefault((gw, code), []).append(Binding(mid, vf, vt))
    for (gw, code), bs in grouped.items():
        view.bindings.setdefault(gw, {})[code] = sorted_bindings(bs)
    return view


async def fresh(conn: psycopg.AsyncConnection, view: RegistryView | None) -> RegistryView:
    """`view` if the registry has not changed since it was loaded, else a new one."""
    v = await version(conn)
    if view is not None and view.version == v:
        return view
    new = await load(conn)
    if view is not None:
        new.raised = view.raised
    return new


async def lookup(conn: psycopg.AsyncConnection, pairs: list[tuple[str, str]]
                 ) -> tuple[dict[tuple[str, str], list[Binding]], dict[str, MeterIdentity], dict[int, MeterIdentity]]:
    """From the database: bindings of (gateway, code) pairs, and the meters those codes name
    as registry codes or through the bindings (for pairs the view does not know)."""
    if not pairs:
        return {}, {}, {}
    gws, codes = [p[0] for p in pairs], [p[1] for p in pairs]
    by_code: dict[str, MeterIdentity] = {}
    by_id: dict[int, MeterIdentity] = {}

    async def meters(where: str, arg: list) -> None:
        cur = await conn.execute(_METERS_SQL + where, (arg,))
        for r in await cur.fetchall():
            m = MeterIdentity(*r)
            by_code[m.code] = m
            by_id[m.id] = m

    # The meters first, their bindings in a later statement: each statement sees what was
    # committed when it started, so a meter seen here bound (another ingest worker's new meter
    # and its binding, committed together) has its binding seen below too. The other order
    # once showed a worker the meter but not its binding: its values were quarantined as
    # coming from a foreign gateway.
    await meters(" WHERE m.code = ANY(%s)", sorted(set(codes)))
    cur = await conn.execute(
        "SELECT b.gateway_id, b.gateway_code, b.meter_id, b.valid_from, b.valid_to FROM meter_bindings b "
        "JOIN unnest(%s::text[], %s::text[]) AS k(g, c) ON b.gateway_id = k.g AND b.gateway_code = k.c",
        (gws, codes))
    bindings: dict[tuple[str, str], list[Binding]] = {}
    for gw, code, mid, vf, vt in await cur.fetchall():
        bindings.setdefault((gw, code), []).append(Binding(mid, vf, vt))
    other = sorted({b.meter_id for bs in bindings.values() for b in bs} - set(by_id))
    if other:  # bound under a code that is not their registry code
        await meters(" WHERE m.id = ANY(%s)", other)
    return bindings, by_code, by_id


async def bump(conn: psycopg.AsyncConnection) -> None:
    """Tell every ingest process the registry changed (in the changing transaction)."""
    await conn.execute("UPDATE registry_state SET version = version + 1")

"""«Абоненты и приборы учета»: every meter of the principal's organisations with its
account, subscriber, house, verification dates, the latest reading of each register an
operator reads off the display (A+ per tariff zone, the volume or energy register),
contact and open events — searched, filtered, sorted by any column and paged.

Reading columns are filled for the rows of one page only (a primary-key probe per meter
and channel); sorting by the latest reading probes every selected meter's main register,
which is what that order needs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Scope
from askue.headend.contact import SILENT_AFTER
from askue.headend.errors import Invalid
from askue.headend.readings.channels import display_channels, main_channel
from askue.headend.vee.rules.common import MAIN_REGISTER

PAGE_SIZES = (25, 50, 100)  # and None: all
STATUSES = ("active", "unassigned", "decommissioned")
CONTACTS = ("online", "silent", "never")
RESOURCES = ("electricity", "cold_water", "hot_water", "heat", "gas", "unknown")
_MAIN = "CASE m.resource " + " ".join(f"WHEN '{r}' THEN '{o}'" for r, o in MAIN_REGISTER.items()) + \
        f" ELSE '{MAIN_REGISTER['electricity']}' END"
# column key -> ORDER BY expression (NULLs last either way)
SORTS: dict[str, str] = {
    "serial": "m.serial", "model": "m.model", "resource": "m.resource", "account": "a.code",
    "subscriber": "a.subscriber", "address": "s.address", "flat": "a.flat", "installed": "m.installed_at",
    "verified": "m.verified_at", "due": "m.verification_due", "reading": "lr.value", "reading_time": "lr.ts",
    "quality": "lr.quality", "contact": "m.last_contact", "events": "ev.n", "status": "m.status", "code": "m.code",
}
_NEEDS_LATEST = {"reading", "reading_time", "quality"}


@dataclass(frozen=True)
class MeterTableQuery:
    q: str | None = None  # serial, meter code, account, subscriber or address contains
    house: str | None = None  # site code
    resource: str | None = None
    status: str | None = None
    contact: str | None = None  # online | silent | never
    event: str | None = None  # "any" or an event kind: meters with such an open event
    sort: str = "address"
    desc: bool = False
    limit: int | None = 25  # None: all
    offset: int = 0

    def __post_init__(self) -> None:
        from askue.headend.events.catalogue import KINDS

        checks = (("resource", self.resource, RESOURCES), ("status", self.status, STATUSES),
                  ("contact", self.contact, CONTACTS), ("event", self.event, ("any", *KINDS)),
                  ("sort", self.sort, tuple(SORTS)))
        for name, val, allowed in checks:
            if val is not None and val not in allowed:
                raise Invalid(name, f"{name}: {val!r} is not one of {', '.join(allowed)}",
                              f"Недопустимое значение «{str(val)[:40]}»: выберите из списка")
        if self.limit is not None and self.limit not in PAGE_SIZES:
            raise Invalid("size", f"page size must be one of {', '.join(map(str, PAGE_SIZES))} or all",
                          "По сколько строк показывать: 25, 50, 100 или все")
        if self.offset < 0:
            raise Invalid("page", "page must be 1 or more", "Номер страницы — от 1")


@dataclass
class MeterTable:
    rows: list[dict]
    total: int
    query: MeterTableQuery
    houses: list[dict] = field(default_factory=list)


def _where(f: MeterTableQuery, scope: Scope, now: datetime) -> tuple[list[str], list[Any]]:
    scope_sql, params = scope.sql("m.org_id")
    conds = [scope_sql]
    if f.q and f.q.strip():
        like = "%" + f.q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conds.append("(m.code ILIKE %s OR m.serial ILIKE %s OR a.code ILIKE %s OR a.subscriber ILIKE %s "
                     "OR s.address ILIKE %s OR m.model ILIKE %s)")
        params += [like] * 6
    for col, val in (("s.code", f.house), ("m.resource", f.resource), ("m.status", f.status)):
        if val:
            conds.append(f"{col} = %s")
            params.append(val)
    if f.contact == "never":
        conds.append("m.last_contact IS NULL")
    elif f.contact == "silent":
        conds.append("(m.last_contact IS NULL OR m.last_contact < %s)")
        params.append(now - SILENT_AFTER)
    elif f.contact == "online":
        conds.append("m.last_contact >= %s")
        params.append(now - SILENT_AFTER)
    if f.event:
        kind = "" if f.event == "any" else " AND e.kind = %s"
        conds.append(f"EXISTS (SELECT 1 FROM abnormal_events e WHERE e.meter_id = m.id AND e.state <> 'resolved'{kind})")
        if f.event != "any":
            params.append(f.event)
    return conds, params


async def meter_table(conn: psycopg.AsyncConnection, scope: Scope, f: MeterTableQuery, now: datetime) -> MeterTable:
    conds, params = _where(f, scope, now)
    latest = ("LEFT JOIN LATERAL (SELECT r.ts, r.value, r.quality FROM register_readings r WHERE r.meter_id = m.id "
              f"AND r.obis = {_MAIN} ORDER BY r.ts DESC LIMIT 1) lr ON true") if f.sort in _NEEDS_LATEST else \
        "LEFT JOIN (SELECT NULL::timestamptz AS ts, NULL::float8 AS value, NULL::text AS quality) lr ON true"
    order = f"{SORTS[f.sort]} {'DESC' if f.desc else 'ASC'} NULLS LAST, m.code"
    page = "" if f.limit is None else " LIMIT %s OFFSET %s"
    sql = f"""
SELECT m.id, m.code, m.serial, m.model, m.resource, m.tariff_zones, m.multiplier, m.is_balance, m.status,
       m.installed_at, m.verified_at, m.verification_due, m.decommissioned_at, m.last_contact, m.gateway_id,
       a.code AS account, a.subscriber, a.flat, s.code AS house, s.address, o.code AS org_code, o.name AS org_name,
       coalesce(ev.n, 0) AS open_events, ev.kinds AS event_kinds, count(*) OVER () AS total
FROM meters m LEFT JOIN accounts a ON a.id = m.account_id LEFT JOIN sites s ON s.id = m.site_id
LEFT JOIN organisations o ON o.id = m.org_id
LEFT JOIN LATERAL (SELECT count(*) AS n, array_agg(DISTINCT e.kind) AS kinds FROM abnormal_events e
                   WHERE e.meter_id = m.id AND e.state <> 'resolved') ev ON true
{latest}
WHERE {' AND '.join(conds)}
ORDER BY {order}{page}"""
    args = [*params, *([] if f.limit is None else [f.limit, f.offset])]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, args)
        rows = await cur.fetchall()
    total = rows[0]["total"] if rows else 0
    if not rows and f.offset:
        # a page past the end (the filter shrank): count what there is
        async with conn.cursor() as cur:
            await cur.execute(f"SELECT count(*) FROM meters m LEFT JOIN accounts a ON a.id = m.account_id "
                              f"LEFT JOIN sites s ON s.id = m.site_id WHERE {' AND '.join(conds)}", params)
            total = (await cur.fetchone())[0]
    await attach_latest(conn, rows)
    return MeterTable(rows, total, f)


async def attach_latest(conn: psycopg.AsyncConnection, meters: list[dict]) -> None:
    """Set `latest` on each meter: the newest reading of each display channel (None where none),
    in display order, and `reading_ts`/`reading_quality` of the main register."""
    ids, chans = [], []
    for m in meters:
        for obis in display_channels(m["resource"], m.get("tariff_zones") or 1):
            ids.append(m["id"])
            chans.append(obis)
    found: dict[tuple[int, str], dict] = {}
    if ids:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT ch.meter_id, ch.obis, r.ts, r.value, r.quality, r.reasons, r.source, r.ts_source, "
                "r.received_at FROM unnest(%s::bigint[], %s::text[]) AS ch(meter_id, obis) "
                "CROSS JOIN LATERAL (SELECT ts, value, quality, reasons, source, ts_source, received_at "
                "FROM register_readings r WHERE r.meter_id = ch.meter_id AND r.obis = ch.obis "
                "ORDER BY r.ts DESC LIMIT 1) r", (ids, chans))
            for r in await cur.fetchall():
                found[(r["meter_id"], r["obis"])] = r
    for m in meters:
        m["latest"] = [found.get((m["id"], o)) or {"obis": o, "value": None, "ts": None, "quality": None}
                       for o in display_channels(m["resource"], m.get("tariff_zones") or 1)]
        main = found.get((m["id"], main_channel(m["resource"])))
        m["reading_ts"] = main["ts"] if main else None
        m["reading_quality"] = main["quality"] if main else None

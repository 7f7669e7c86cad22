"""What a customer sees of its metering points: each point with its scales (tariff
zones) and, per scale, the previous and the current reading, its time, who took it
(АСКУЭ, the customer, an inspector) and what became of it («Принято», «Ожидание»,
«Отклонено» with the reason); and the history of readings over a period.

Every query is limited by the principal's scope (`Scope.meters`): a customer sees the
meters of its own accounts, staff the meters of their organisations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import psycopg
from psycopg.rows import dict_row

from askue.headend import names
from askue.headend.auth.permissions import Principal
from askue.headend.errors import NotFound
from askue.headend.readings.channels import main_channel
from askue.headend.readings.window import load_window
from askue.headend.storage import meta
from askue.headend.vee.store import BLOCKING_REASONS

STATUSES = ("accepted", "pending", "rejected")
_BLOCKING = sorted(BLOCKING_REASONS)


@dataclass
class PointFilter:
    account: str | None = None  # account (contract) code
    status: str | None = None  # accepted | pending | rejected
    site: str | None = None  # energy object (site) code
    meter: str | None = None


@dataclass
class Reading:
    value: float
    ts: datetime
    origin: str  # as the customer reads it: «АСКУЭ», «потребитель», «контролёр»
    status: str  # accepted | pending | rejected
    reason: str = ""  # why it was rejected


@dataclass
class Scale:
    obis: str
    name: str
    previous: Reading | None = None
    current: Reading | None = None


@dataclass
class Point:
    id: int
    code: str
    serial: str | None
    model: str | None
    resource: str
    tariff_zones: int
    multiplier: float
    losses_pct: float
    digits: int | None
    account_id: int | None
    account: str | None
    subscriber: str | None
    org_id: int | None
    site: str | None
    site_name: str | None
    address: str | None
    may_readings: bool
    may_documents: bool
    scales: list[Scale] = field(default_factory=list)
    window_month: date | None = None  # the billing month whose reading window is open now, else None
    window: tuple[date, date] | None = None  # that window (or the next one)

    @property
    def status(self) -> str:
        got = {s.current.status for s in self.scales if s.current}
        return next((st for st in ("rejected", "pending") if st in got), "accepted")


def scale_channels(resource: str, tariff_zones: int, lang: str = "ru") -> list[tuple[str, str]]:
    """(OBIS, scale name) a customer reads and enters, in the cabinet's order."""
    if resource in ("electricity", "unknown"):
        return [(f"1.0.1.8.{t}.255", name) for t, name in names.scales(tariff_zones, lang)]
    return [(main_channel(resource), names.resource(resource, lang))]


async def _meters(conn: psycopg.AsyncConnection, principal: Principal, f: PointFilter) -> list[dict]:
    cond, params = principal.scope.meters("m")
    conds = [cond, "m.status = 'active'"]
    for col, v in (("a.code", f.account), ("s.code", f.site), ("m.code", f.meter)):
        if v:
            conds.append(f"{col} = %s")
            params.append(v)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT m.id, m.code, m.serial, m.model, m.resource, m.tariff_zones, m.multiplier, m.losses_pct,
                       m.digits, m.account_id, a.code AS account, a.subscriber, m.org_id, s.code AS site,
                       s.name AS site_name, s.address
                FROM meters m LEFT JOIN accounts a ON a.id = m.account_id LEFT JOIN sites s ON s.id = m.site_id
                WHERE {' AND '.join(conds)} ORDER BY a.code, s.code NULLS LAST, m.code""", params)
        return await cur.fetchall()


# Each scale's last two stored readings a customer may see, and its newest submission not
# (yet) accepted: one statement each for every scale of the page (an index descent per scale),
# not two per scale (a legal entity has hundreds of points).
_READINGS_SQL = """
SELECT k.i, r.value, r.ts, r.quality, r.reasons
FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS k(meter_id, obis, i)
CROSS JOIN LATERAL (
    SELECT value, ts, quality, reasons FROM register_readings
    WHERE meter_id = k.meter_id AND obis = k.obis AND quality IN ('A', 'M') AND NOT (reasons && %s::text[])
    ORDER BY ts DESC LIMIT 2) r
ORDER BY k.i, r.ts DESC"""
_SUBMISSIONS_SQL = """
SELECT k.i, c.value, c.ts, c.status, coalesce(c.reason, '')
FROM unnest(%s::bigint[], %s::text[]) WITH ORDINALITY AS k(meter_id, obis, i)
CROSS JOIN LATERAL (
    SELECT value, ts, status, reason FROM customer_submissions
    WHERE meter_id = k.meter_id AND obis = k.obis AND status <> 'accepted'
    ORDER BY submitted_at DESC, id DESC LIMIT 1) c"""


async def _scales(conn: psycopg.AsyncConnection, keys: list[tuple[int, str, str]], lang: str) -> list[Scale]:
    """The scales (meter id, OBIS, name) with their previous and current readings, in order."""
    if not keys:
        return []
    mids, obises = [k[0] for k in keys], [k[1] for k in keys]
    stored: dict[int, list[Reading]] = {}
    for i, v, ts, q, rs in await (await conn.execute(_READINGS_SQL, (mids, obises, _BLOCKING))).fetchall():
        stored.setdefault(i, []).append(Reading(v, ts, names.reading_origin(q, rs, lang), "accepted"))
    submitted = {i: (v, ts, st, why) for i, v, ts, st, why
                 in await (await conn.execute(_SUBMISSIONS_SQL, (mids, obises))).fetchall()}
    customer = names.pick(names.READING_ORIGINS["customer"], lang)
    out = []
    for i, (_, obis, name) in enumerate(keys, start=1):
        sc = Scale(obis, name)
        got = stored.get(i, [])
        sub = submitted.get(i)
        if sub is not None and (not got or sub[1] >= got[0].ts):
            sc.current = Reading(sub[0], sub[1], customer, sub[2], sub[3])
            sc.previous = got[0] if got else None
        else:
            sc.current = got[0] if got else None
            sc.previous = got[1] if len(got) > 1 else None
        out.append(sc)
    return out


async def points(conn: psycopg.AsyncConnection, principal: Principal, f: PointFilter | None = None,
                 lang: str = "ru", now: datetime | None = None) -> list[Point]:
    f = f or PointFilter()
    tz = await meta.timezone(conn)
    today = (now or datetime.now(UTC)).astimezone(tz).date()
    out: list[Point] = []
    windows: dict[int | None, object] = {}
    meters = await _meters(conn, principal, f)
    channels = [scale_channels(m["resource"], m["tariff_zones"], lang) for m in meters]
    scales = iter(await _scales(conn, [(m["id"], obis, name) for m, chs in zip(meters, channels, strict=True)
                                       for obis, name in chs], lang))
    for m, chs in zip(meters, channels, strict=True):
        p = Point(**m, may_readings=principal.may_on(m["account_id"], "readings"),
                  may_documents=principal.may_on(m["account_id"], "documents"))
        p.scales = [next(scales) for _ in chs]
        if m["org_id"] not in windows:
            windows[m["org_id"]] = await load_window(conn, m["org_id"])
        w = windows[m["org_id"]]
        p.window_month = w.month_for(today)
        p.window = w.bounds(p.window_month or today.replace(day=1))
        if f.status and p.status != f.status:
            continue
        out.append(p)
    return out


async def point(conn: psycopg.AsyncConnection, principal: Principal, code: str, lang: str = "ru") -> Point:
    got = await points(conn, principal, PointFilter(meter=code), lang)
    if not got:
        raise NotFound(f"metering point {code} not found", f"точка учёта {code} не найдена", field="meter")
    return got[0]


async def sites(conn: psycopg.AsyncConnection, principal: Principal) -> list[dict]:
    """The energy objects (sites) of the principal's metering points, for the filter."""
    cond, params = principal.scope.meters("m")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT DISTINCT s.code, coalesce(s.name, s.address, s.code) AS name FROM meters m
                JOIN sites s ON s.id = m.site_id WHERE {cond} AND m.status = 'active' ORDER BY 2""", params)
        return await cur.fetchall()


@dataclass
class HistoryRow:
    meter: str
    serial: str | None
    account: str | None
    scale: str
    ts: datetime
    value: float
    origin: str
    status: str
    reason: str


async def history(conn: psycopg.AsyncConnection, principal: Principal, start: datetime, end: datetime,
                  meter: str | None = None, lang: str = "ru", limit: int = 5000) -> list[HistoryRow]:
    """Readings of the principal's points in [start, end), newest first: the stored ones
    (a value VEE holds back shows as rejected, with VEE's reason) and the customer's
    submissions still waiting or rejected by the organisation."""
    cond, params = principal.scope.meters("m")
    extra = ""
    if meter:
        extra, params = " AND m.code = %s", [*params, meter]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""SELECT * FROM (
                  SELECT m.code AS meter, m.serial, m.resource, m.tariff_zones, a.code AS account, r.obis, r.ts,
                         r.value, r.quality, r.reasons, NULL::text AS status, NULL::text AS reason
                  FROM meters m LEFT JOIN accounts a ON a.id = m.account_id
                  JOIN register_readings r ON r.meter_id = m.id
                  WHERE {cond}{extra} AND r.ts >= %s AND r.ts < %s AND askue_is_consumption_channel(r.obis)
                  UNION ALL
                  SELECT m.code, m.serial, m.resource, m.tariff_zones, a.code, c.obis, c.ts, c.value, 'M',
                         ARRAY['consumer_reported'], c.status, c.reason
                  FROM meters m LEFT JOIN accounts a ON a.id = m.account_id
                  JOIN customer_submissions c ON c.meter_id = m.id
                  WHERE {cond}{extra} AND c.ts >= %s AND c.ts < %s AND c.status <> 'accepted'
                ) h ORDER BY ts DESC, meter, obis LIMIT %s""",
            [*params, start, end, *params, start, end, limit])
        rows = await cur.fetchall()
    out = []
    for r in rows:
        scale = dict(scale_channels(r["resource"], r["tariff_zones"], lang)).get(r["obis"]) or \
            names.channel(r["obis"], lang, zones=r["tariff_zones"])
        blocked = sorted(set(r["reasons"] or ()) & BLOCKING_REASONS)
        status = r["status"] or ("rejected" if blocked else "accepted")
        reason = r["reason"] or (names.reasons(blocked, lang) if blocked else "")
        out.append(HistoryRow(r["meter"], r["serial"], r["account"], scale, r["ts"], r["value"],
                              names.reading_origin(r["quality"], r["reasons"], lang), status, reason or ""))
    return out

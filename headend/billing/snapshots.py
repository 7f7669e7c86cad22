"""Billing-period snapshots: per meter and register channel (tariff zone) the start and
end readings of a month, and consumption = Σ(rollover-aware deltas) × multiplier.

`compute_snapshot` is pure (tested without a database) and takes each boundary value
from `boundary.value_at` (the meter's own archive first, then a reading at the boundary,
an interpolation, the nearest reading), saying which it used; `period_snapshots` loads
what it needs; `close_period` freezes a month; `recalculate` compares a closed month
with the data as it is now and records every difference as a recalculation, never
changing what billing was already given.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row

from askue.headend import units
from askue.headend.auth import audit
from askue.headend.storage import meta

from . import boundary
from .boundary import QUALITY_RANK, Reading

__all__ = ["LOOKBACK", "QUALITY_RANK", "MeterInfo", "PeriodError", "Reading", "Snapshot", "close_period",
           "compute_snapshot", "period_snapshots", "recalculate"]

LOOKBACK = timedelta(days=3)  # how far from the boundary a reading may be to count as "at" it
_REGISTER_ZONE = re.compile(r"^1\.0\.[1-4]\.8\.(\d)\.255$")
ZONE_NAMES = {0: "Сутки", 1: "Т1 (день/пик)", 2: "Т2 (ночь)", 3: "Т3 (полупик)", 4: "Т4"}


class PeriodError(ValueError):
    """A period action that cannot be done (already closed, not closed, unknown)."""


@dataclass(frozen=True)
class MeterInfo:
    id: int
    code: str
    multiplier: float = 1.0
    digits: int | None = None
    serial: str | None = None
    org_id: int | None = None
    installed_at: date | None = None
    decommissioned_at: date | None = None
    replaces_id: int | None = None
    replaced_by_id: int | None = None
    replaces_code: str | None = None
    replaced_by_code: str | None = None
    # dated parameter versions (valid_from local day, multiplier, digits), oldest first, when the
    # meter has more than one; the fields above are the latest
    versions: tuple[tuple[date, float, int | None], ...] = ()

    @property
    def capacity(self) -> float | None:
        return float(10 ** self.digits) if self.digits else None

    def on(self, day: date) -> tuple[float, float | None]:
        """(multiplier, register capacity) in force on a local day."""
        mult, digits = self.multiplier, self.digits
        for vf, m, d in self.versions:
            if vf <= day:
                mult, digits = m, d
        return mult, (float(10 ** digits) if digits else None)


@dataclass
class Snapshot:
    meter_id: int
    meter: str
    obis: str
    zone: str
    start: Reading | None
    end: Reading | None
    multiplier: float
    consumption: float | None
    quality: str | None
    source: str | None
    estimated: bool
    flags: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("start", "end")}
        for end in ("start", "end"):
            r: Reading | None = getattr(self, end)
            d[end] = None if r is None else _reading_dict(r)
        return d

    def key(self) -> tuple[int, str]:
        return self.meter_id, self.obis


def _reading_dict(r: Reading) -> dict:
    d = {"ts": r.ts.isoformat(), "value": r.value, "quality": r.quality, "source": r.source,
         "reasons": list(r.reasons), "boundary_source": r.boundary_source}
    if r.between:
        d["interpolated_from"] = [{"ts": b.ts.isoformat(), "value": b.value, "quality": b.quality,
                                   "source": b.source} for b in r.between]
    return d


def zone_name(obis: str) -> str:
    m = _REGISTER_ZONE.match(obis)
    return ZONE_NAMES.get(int(m.group(1)), f"Т{m.group(1)}") if m else obis


def month_bounds(month: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC instants of local midnight on the 1st of `month` and of the next month."""
    first = month.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return (datetime.combine(first, time(0), tz).astimezone(UTC),
            datetime.combine(nxt, time(0), tz).astimezone(UTC))


def compute_snapshot(meter: MeterInfo, obis: str, readings: Sequence[Reading], start_at: datetime,
                     end_at: datetime, *, lookback: timedelta = LOOKBACK, tz: tzinfo | None = None) -> Snapshot:
    """Snapshot of one meter channel for [start_at, end_at).

    The boundary value is `boundary.value_at` (±lookback): the meter's archive, a reading
    at the boundary, an interpolation or the nearest reading, each marked with its
    `boundary_source`. It depends only on the readings near the boundary, so the end of
    one month and the start of the next are the same value and months add up.
    A meter installed in the month starts at its first reading, one removed (replaced
    or decommissioned) ends at its last: across an exchange the old and the new meter
    each carry their part. Consumption chains every reading between start and end:
    a drop that is a rollover at the register capacity (10^digits) counts as the
    wrap-around; any other drop is not counted and flagged `reverse_reading`. Each step
    between two readings is rated by the parameters (multiplier, capacity) in force on the
    local day of the later one (`tz`), as the daily consumption figures are.
    """
    rs = sorted(readings, key=lambda r: r.ts)
    flags: list[str] = []
    installed_in = meter.installed_at is not None and start_at.date() <= meter.installed_at < end_at.date()
    # removal known by date: the last reading up to then is final. Without a date (only
    # replaced_by known) the boundary rules apply and a missing end reading falls back
    # to the last one before the boundary.
    removed_in = meter.decommissioned_at is not None and start_at.date() <= meter.decommissioned_at <= end_at.date()

    start = boundary.value_at(rs, start_at, lookback)
    if start is None:
        inside = [r for r in rs if start_at <= r.ts < end_at]
        if inside:
            start = replace(inside[0], boundary_source=boundary.FIRST_IN_PERIOD)
            flags.append("installed_in_period" if installed_in or meter.replaces_id else "start_after_boundary")
    end = boundary.value_at(rs, end_at, lookback)
    if removed_in:
        last_inside = [r for r in rs if start_at <= r.ts <= end_at + lookback]
        if last_inside and (end is None or end.ts < last_inside[-1].ts or end.ts > end_at):
            end = replace(last_inside[-1], boundary_source=boundary.LAST_IN_PERIOD)
        if end is not None:
            flags.append("removed_in_period")
    if end is None:
        inside = [r for r in rs if start_at < r.ts <= end_at]
        if inside:
            end = replace(inside[-1], boundary_source=boundary.LAST_IN_PERIOD)
            flags.append("removed_in_period" if meter.replaced_by_id is not None else "end_before_boundary")
    if start is not None and end is not None and end.ts <= start.ts:
        end = None if end.ts < start.ts else end
    consumption: float | None = None
    details: dict = {}
    if start is None:
        flags.append("start_missing")
    if end is None:
        flags.append("end_missing")
    multiplier = meter.multiplier
    if start is not None and end is not None:
        # an interpolated end is not one of the readings: chain the readings strictly
        # between the two ends, and the ends themselves
        chain = [start, *(r for r in rs if start.ts < r.ts < end.ts), end] if end.ts > start.ts else [start]
        total, rollovers, reverses = 0.0, 0, []
        parts: dict[float, float] = {}
        for a, b in zip(chain, chain[1:], strict=False):
            mult, cap = meter.on(b.ts.astimezone(tz).date()) if meter.versions and tz else (meter.multiplier,
                                                                                          meter.capacity)
            d = b.value - a.value
            if d < 0:
                if cap is not None and 0 <= d + cap < cap / 2:
                    d += cap
                    rollovers += 1
                else:
                    reverses.append({"ts": b.ts.isoformat(), "from": a.value, "to": b.value})
                    d = 0.0
            total += d * mult
            parts[mult] = parts.get(mult, 0.0) + d
        consumption = round(total, 9)
        if meter.versions and tz:
            multiplier = meter.on(end.ts.astimezone(tz).date())[0]
        if len(parts) > 1:
            details["multipliers"] = [{"multiplier": k, "register_delta": round(x, 9)} for k, x in parts.items()]
        if rollovers:
            flags.append("rollover")
            details["rollovers"] = rollovers
        if reverses:
            flags.append("reverse_reading")
            details["reverse_steps"] = reverses[:10]
        details["readings_used"] = len(chain)
    if meter.replaces_code:
        details["replaces"] = meter.replaces_code
    if meter.replaced_by_code:
        details["replaced_by"] = meter.replaced_by_code
    quality = boundary.worst_quality(start.quality if start else None, end.quality if end else None)
    estimated = any(r is not None and r.quality in ("E", "S") for r in (start, end))
    return Snapshot(meter_id=meter.id, meter=meter.code, obis=obis, zone=zone_name(obis), start=start, end=end,
                    multiplier=multiplier, consumption=consumption, quality=quality,
                    source=end.source if end else (start.source if start else None), estimated=estimated,
                    flags=flags, details=details)


# ---------------------------------------------------------------------------- database


_METER_SQL = """
SELECT m.id, m.code, m.multiplier, m.digits, m.serial, m.org_id, m.installed_at, m.decommissioned_at,
       m.replaces_id, m.replaced_by_id, o.code AS replaces_code, n.code AS replaced_by_code
FROM meters m
LEFT JOIN meters o ON o.id = m.replaces_id
LEFT JOIN meters n ON n.id = m.replaced_by_id
WHERE m.org_id = %s AND m.status <> 'unassigned'
  AND (m.decommissioned_at IS NULL OR m.decommissioned_at >= %s)
  AND (%s::text[] IS NULL OR m.code = ANY(%s::text[]))
ORDER BY m.code
"""


async def load_meters(conn: psycopg.AsyncConnection, org_id: int, since: date,
                      codes: list[str] | None = None) -> list[MeterInfo]:
    from askue.headend.registry.meters import params_on

    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_METER_SQL, (org_id, since, codes, codes))
    rows = await cur.fetchall()
    dated = await params_on(conn, [r["id"] for r in rows])
    return [MeterInfo(**r, versions=tuple(dated.get(r["id"], ()))) for r in rows]


async def period_snapshots(conn: psycopg.AsyncConnection, org_id: int, month: date, *,
                           tz: ZoneInfo | None = None, meters: list[str] | None = None,
                           lookback: timedelta = LOOKBACK) -> list[Snapshot]:
    """Snapshots of every meter of the organisation for the month, computed from the
    register readings as they are now."""
    tz = tz or await meta.timezone(conn)
    start_at, end_at = month_bounds(month, tz)
    infos = await load_meters(conn, org_id, start_at.date() - timedelta(days=1), meters)
    if not infos:
        return []
    by_id = {m.id: m for m in infos}
    cur = await conn.execute(
        """SELECT meter_id, obis, ts, value, quality, source, reasons, archive FROM register_readings
           WHERE meter_id = ANY(%s) AND ts >= %s AND ts <= %s
             AND NOT ('serial_mismatch' = ANY(coalesce(reasons, '{}')))  -- held until an operator confirms
           ORDER BY meter_id, obis, ts""",
        (list(by_id), start_at - lookback, end_at + lookback))
    series: dict[tuple[int, str], list[Reading]] = {}
    async for mid, obis, ts, value, q, src, reasons, archive in cur:
        series.setdefault((mid, obis), []).append(Reading(ts, value, q, src, tuple(reasons or ()), archive))
    out = [compute_snapshot(by_id[mid], obis, rs, start_at, end_at, lookback=lookback, tz=tz)
           for (mid, obis), rs in series.items()]
    # a meter that has register channels but no reading near this month still gets its
    # rows, flagged start_missing/end_missing, so billing sees the hole instead of nothing
    silent = [mid for mid in by_id if not any(k[0] == mid for k in series)]
    if silent:
        cur = await conn.execute(
            """SELECT DISTINCT meter_id, obis FROM register_readings
               WHERE meter_id = ANY(%s) AND ts < %s""", (silent, end_at))
        for mid, obis in await cur.fetchall():
            out.append(compute_snapshot(by_id[mid], obis, [], start_at, end_at, lookback=lookback))
    out.sort(key=lambda s: (s.meter, s.obis))
    return out


async def get_period(conn: psycopg.AsyncConnection, org_id: int, month: date, *, lock: bool = False) -> dict | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM billing_periods WHERE org_id = %s AND month = %s"
                      + (" FOR UPDATE" if lock else ""), (org_id, month.replace(day=1)))
    return await cur.fetchone()


def _between(r: Reading | None) -> list | None:
    return None if r is None or not r.between else [[b.ts.isoformat(), b.value, b.quality, b.source]
                                                    for b in r.between]


def _row_values(period_id: int, s: Snapshot) -> tuple:
    interpolated = {f"{name}_interpolated_from": _between(r) for name, r in (("start", s.start), ("end", s.end))
                    if _between(r)}
    return (period_id, s.meter_id, s.obis,
            s.start.ts if s.start else None, s.start.value if s.start else None,
            s.start.quality if s.start else None, s.start.source if s.start else None,
            s.start.boundary_source if s.start else None,
            s.end.ts if s.end else None, s.end.value if s.end else None,
            s.end.quality if s.end else None, s.end.source if s.end else None,
            s.end.boundary_source if s.end else None,
            s.multiplier, s.consumption, s.quality, s.estimated,
            json.dumps({"flags": s.flags, **s.details, **interpolated}, default=str))


async def close_period(conn: psycopg.AsyncConnection, org_id: int, month: date, actor: str) -> list[Snapshot]:
    """Freeze the month's snapshot. Runs in one transaction; closing twice is refused."""
    month = month.replace(day=1)
    async with conn.transaction():
        await conn.execute("INSERT INTO billing_periods (org_id, month) VALUES (%s, %s) "
                           "ON CONFLICT (org_id, month) DO NOTHING", (org_id, month))
        period = await get_period(conn, org_id, month, lock=True)
        assert period is not None
        if period["state"] == "closed":
            raise PeriodError(f"period {month:%Y-%m} is already closed (by {period['closed_by']} "
                              f"at {period['closed_at']:%Y-%m-%d %H:%M}); use recalculation for changes")
        snaps = await period_snapshots(conn, org_id, month)
        async with conn.cursor() as cur:
            await cur.executemany(
                """INSERT INTO billing_snapshots (period_id, meter_id, obis, start_ts, start_value, start_quality,
                       start_source, start_boundary_source, end_ts, end_value, end_quality, end_source,
                       end_boundary_source, multiplier, consumption, quality, estimated, details)
                   VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)""",
                [_row_values(period["id"], s) for s in snaps])
        await conn.execute("UPDATE billing_periods SET state = 'closed', closed_at = now(), closed_by = %s "
                           "WHERE id = %s", (actor, period["id"]))
        await audit.record(conn, actor, "billing.close_period", "billing_period", str(period["id"]),
                           new={"org_id": org_id, "month": str(month), "rows": len(snaps)})
    return snaps


def _stored_reading(r: dict, det: dict, name: str) -> Reading | None:
    if r[f"{name}_ts"] is None:
        return None
    pair = det.pop(f"{name}_interpolated_from", None)
    between = tuple(Reading(datetime.fromisoformat(ts), v, q, src) for ts, v, q, src in pair) if pair else None
    return Reading(r[f"{name}_ts"], r[f"{name}_value"], r[f"{name}_quality"], r[f"{name}_source"],
                   boundary_source=r[f"{name}_boundary_source"], between=between)  # type: ignore[arg-type]


def _stored_to_snapshot(r: dict, code: str) -> Snapshot:
    det = dict(r["details"] or {})
    flags = det.pop("flags", [])
    start, end = _stored_reading(r, det, "start"), _stored_reading(r, det, "end")
    return Snapshot(meter_id=r["meter_id"], meter=code, obis=r["obis"], zone=zone_name(r["obis"]), start=start,
                    end=end, multiplier=r["multiplier"], consumption=r["consumption"], quality=r["quality"],
                    source=r["end_source"] or r["start_source"], estimated=r["estimated"], flags=flags, details=det)


async def closed_snapshot(conn: psycopg.AsyncConnection, period_id: int) -> list[tuple[int, Snapshot]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("""SELECT s.*, m.code FROM billing_snapshots s JOIN meters m ON m.id = s.meter_id
                         WHERE s.period_id = %s ORDER BY m.code, s.obis""", (period_id,))
    return [(r["id"], _stored_to_snapshot(r, r["code"])) for r in await cur.fetchall()]


async def recalculations(conn: psycopg.AsyncConnection, period_id: int) -> list[dict]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("""SELECT r.id, r.meter_id, m.code AS meter, r.obis, r.old_consumption, r.new_consumption, r.delta,
                                r.old, r.new, r.reason, r.created_by, r.created_at
                         FROM billing_recalculations r JOIN meters m ON m.id = r.meter_id
                         WHERE r.period_id = %s ORDER BY r.id""", (period_id,))
    return list(await cur.fetchall())


def _comparable(s: Snapshot | None) -> dict | None:
    """What billing was told about a row, in a form that survives a JSON round trip."""
    if s is None:
        return None
    out: dict = {"consumption": s.consumption, "quality": s.quality, "estimated": s.estimated}
    for name in ("start", "end"):
        r: Reading | None = getattr(s, name)
        out[name] = None if r is None else {"ts": r.ts.astimezone(UTC).isoformat(), "value": r.value,
                                            "quality": r.quality, "source": r.source}
        if r is not None and r.boundary_source:
            out[name]["boundary_source"] = r.boundary_source
    return out


async def recalculate(conn: psycopg.AsyncConnection, org_id: int, month: date, actor: str,
                      reason: str = "data changed after closing") -> list[dict]:
    """Compare a closed month with its data now; record each difference against the
    latest figures billing has (the frozen row or the last recalculation)."""
    month = month.replace(day=1)
    async with conn.transaction():
        period = await get_period(conn, org_id, month, lock=True)
        if period is None or period["state"] != "closed":
            raise PeriodError(f"period {month:%Y-%m} is not closed: its snapshot is computed live, "
                              "no recalculation needed")
        frozen = {s.key(): (sid, s) for sid, s in await closed_snapshot(conn, period["id"])}
        latest: dict[tuple[int, str], dict] = {k: _comparable(s) for k, (_, s) in frozen.items()}
        for r in await recalculations(conn, period["id"]):
            latest[(r["meter_id"], r["obis"])] = r["new"] or None
        now = {s.key(): s for s in await period_snapshots(conn, org_id, month)}
        made: list[dict] = []
        for key in sorted(set(latest) | set(now), key=lambda k: (k[0], k[1])):
            new = _comparable(now.get(key))
            old = latest.get(key)
            if _same(old, new):
                continue
            old_c = old.get("consumption") if old else None
            new_c = new.get("consumption") if new else None
            delta = (new_c or 0.0) - (old_c or 0.0) if (new_c is not None or old_c is not None) else None
            snap_id = frozen[key][0] if key in frozen else None
            cur = await conn.execute(
                """INSERT INTO billing_recalculations (period_id, snapshot_id, meter_id, obis, old_consumption,
                       new_consumption, delta, old, new, reason, created_by)
                   VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING id""",
                (period["id"], snap_id, key[0], key[1], old_c, new_c, delta,
                 json.dumps(old or {}, default=str), json.dumps(new or {}, default=str), reason, actor))
            rid = (await cur.fetchone())[0]
            made.append({"id": rid, "meter_id": key[0], "obis": key[1], "old_consumption": old_c,
                         "new_consumption": new_c, "delta": delta})
        if made:
            await audit.record(conn, actor, "billing.recalculate", "billing_period", str(period["id"]),
                               new={"records": len(made)}, comment=reason)
    return made


def _same(a: dict | None, b: dict | None) -> bool:
    if a is None or b is None:
        return a is b
    na, nb = json.loads(json.dumps(a, default=str)), json.loads(json.dumps(b, default=str))
    ca, cb = na.get("consumption"), nb.get("consumption")
    if (ca is None) != (cb is None) or (ca is not None and abs(ca - cb) > 1e-9):
        return False
    na.pop("consumption", None)
    nb.pop("consumption", None)
    for end in ("start", "end"):
        # rows frozen before boundary sources were kept have none: not a difference
        ea, eb = na.get(end), nb.get(end)
        if isinstance(ea, dict) and isinstance(eb, dict) and ("boundary_source" in ea) != ("boundary_source" in eb):
            ea.pop("boundary_source", None)
            eb.pop("boundary_source", None)
    return na == nb


def consumption_rows(snaps: Iterable[Snapshot], month: date, tz: ZoneInfo) -> Iterable[list[str]]:
    """Rows for csv_out.CONSUMPTION_COLUMNS."""
    from .formats.numbers import format_decimal

    ps, pe = month_bounds(month, tz)

    def num(v: float | None) -> str:
        return "" if v is None else format_decimal(v)

    for s in snaps:
        yield [s.meter, s.obis, s.zone, ps.astimezone(tz).isoformat(), pe.astimezone(tz).isoformat(),
               num(s.start.value if s.start else None), s.start.ts.isoformat() if s.start else "",
               num(s.end.value if s.end else None), s.end.ts.isoformat() if s.end else "",
               num(s.multiplier), num(s.consumption), s.quality or "", s.source or "",
               "1" if s.estimated else "0", s.details.get("replaces", ""), s.details.get("replaced_by", ""),
               _unit(s.obis), (s.start.boundary_source or "") if s.start else "",
               (s.end.boundary_source or "") if s.end else ""]


def _unit(obis: str) -> str:
    q = units.canonical(None, obis)
    return q.canonical if q else ""

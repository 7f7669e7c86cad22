"""Database → files: 80020 per day and sender, hourly profile xlsx per meter and month,
integral readings template per organisation and month, CSV of readings.

Only values billing may use leave here: VEE's blocking reasons keep a value out
(`askue.headend.vee.store.BLOCKING_REASONS`), estimates go out flagged.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg

from askue.headend import units
from askue.headend.registry.meters import params_on
from askue.headend.storage import meta
from askue.headend.vee.store import BLOCKING_REASONS

from .formats import hourly_xlsx, integral_xlsx, xml80020
from .formats.csv_out import READING_COLUMNS, CsvWriter, ReadingRow, reading_values
from .snapshots import MeterInfo, month_bounds

Progress = Callable[[int, int], None]  # (done, total)


class ExportError(ValueError):
    """The export cannot be made as asked (unknown organisation, meter, missing INN…)."""


def blocking_reasons() -> list[str]:
    """VEE's reasons that keep a value out of billing until someone resolves it."""
    return sorted(BLOCKING_REASONS)


def status_80020(quality: str) -> int:
    """Actual and accepted manual values are commercial data; estimates are not."""
    return xml80020.STATUS_OK if quality in ("A", "M") else xml80020.STATUS_NOT_COMMERCIAL


@dataclass(frozen=True)
class Org:
    id: int
    code: str
    name: str
    inn: str | None


async def get_org(conn: psycopg.AsyncConnection, code: str, org_ids: frozenset[int] | None = None) -> Org:
    cur = await conn.execute("SELECT id, code, name, inn FROM organisations WHERE code = %s", (code,))
    row = await cur.fetchone()
    if row is None or (org_ids is not None and row[0] not in org_ids):
        raise ExportError(f"organisation {code!r} not found")
    return Org(*row)


async def next_80020_number(conn: psycopg.AsyncConnection, inn: str) -> int:
    cur = await conn.execute(
        """INSERT INTO billing_80020_numbers (sender_inn, last_number) VALUES (%s, 1)
           ON CONFLICT (sender_inn) DO UPDATE SET last_number = billing_80020_numbers.last_number + 1
           RETURNING last_number""", (inn,))
    return (await cur.fetchone())[0]


async def export_80020(conn: psycopg.AsyncConnection, org: Org, day: date, *, tz: ZoneInfo | None = None,
                       sender_inn: str | None = None, sender_name: str | None = None, number: int | None = None,
                       allow_incomplete: bool = False, now: datetime | None = None) -> tuple[str, bytes]:
    """(file name, bytes) of one day's 80020 for the organisation's metering points.

    Points and their codes come from `billing_80020_points` (else every active
    meter of the organisation under its own code). Values are the meter's
    half-hour intervals (period 1800 s) × the meter's multiplier in force that day.
    """
    tz = tz or await meta.timezone(conn)
    inn = sender_inn or org.inn
    if not inn:
        raise ExportError(f"organisation {org.code} has no INN: set organisations.inn or pass --sender-inn")
    cur = await conn.execute(
        """SELECT m.id, coalesce(p.code, m.code), coalesce(p.name, m.code), coalesce(p.area_inn, %s),
                  coalesce(p.area_name, %s), m.multiplier
           FROM meters m LEFT JOIN billing_80020_points p ON p.meter_id = m.id
           WHERE m.org_id = %s AND m.status = 'active' AND m.resource IN ('electricity', 'unknown')
           ORDER BY 2""", (inn, org.name, org.id))
    meters = await cur.fetchall()
    slots = xml80020.day_slots(day, tz)
    lo, hi = slots[0][0] + xml80020.HALF_HOUR, slots[-1][0] + xml80020.HALF_HOUR
    obis_list = [o for o, _ in xml80020.CHANNELS.values()]
    cur = await conn.execute(
        """SELECT meter_id, obis, ts, value, quality FROM intervals
           WHERE meter_id = ANY(%s) AND obis = ANY(%s) AND ts >= %s AND ts <= %s AND period_s = 1800
             AND NOT (reasons && %s::text[])""",
        ([m[0] for m in meters], obis_list, lo, hi, blocking_reasons()))
    data: dict[int, dict[str, dict[datetime, tuple[Decimal, int]]]] = {}
    dated = await params_on(conn, [m[0] for m in meters])
    mult = {m[0]: MeterInfo(m[0], m[1], m[5], versions=tuple(dated.get(m[0], ()))).on(day)[0] for m in meters}
    async for mid, obis, ts, value, quality in cur:
        ch = xml80020.OBIS_TO_CHANNEL[obis]
        v = Decimal(repr(value)) * Decimal(repr(mult[mid]))
        data.setdefault(mid, {}).setdefault(ch, {})[ts - xml80020.HALF_HOUR] = (v, status_80020(quality))
    areas: dict[tuple[str, str], list[xml80020.PointSpec]] = {}
    for mid, code, name, a_inn, a_name, _ in meters:
        if mid in data:
            areas.setdefault((a_inn, a_name), []).append(xml80020.PointSpec(code, name, data[mid]))
    if not areas:
        raise ExportError(f"no half-hour data of {org.code} for {day}")
    try:
        msg = xml80020.build_message(day=day, tz=tz, number=0, sender_inn=inn, sender_name=sender_name or org.name,
                                     areas=[xml80020.AreaSpec(i, n, ps) for (i, n), ps in areas.items()],
                                     now=now, allow_incomplete=allow_incomplete)
    except ValueError as e:
        if isinstance(e, xml80020.IncompleteDataError):
            raise
        raise ExportError(str(e)) from e
    # the number is drawn only for a file that is really made: numbers stay without gaps
    msg.number = number if number is not None else await next_80020_number(conn, inn)
    return xml80020.file_name(inn, day, msg.number), xml80020.render(msg)


async def hourly_profile(conn: psycopg.AsyncConnection, meter_code: str, month: date, *,
                         org_ids: frozenset[int] | None = None, tz: ZoneInfo | None = None,
                         obis: str = "1.0.1.29.0.255", multiplied: bool = True) -> hourly_xlsx.HourlyProfile:
    """Hourly consumption (× the multiplier in force each day; the meter's own with
    `multiplied=False`, «без КТ» as the customer cabinet's act) of one meter for a month
    from its load profile.

    An hour is filled only when its intervals cover it completely; otherwise its
    cell stays empty rather than showing a partial sum.
    """
    tz = tz or await meta.timezone(conn)
    cur = await conn.execute("SELECT id, multiplier, serial, org_id FROM meters WHERE code = %s", (meter_code,))
    row = await cur.fetchone()
    if row is None or (org_ids is not None and row[3] not in org_ids):
        raise ExportError(f"meter {meter_code!r} not found")
    mid, mult, serial, _ = row
    start, end = month_bounds(month, tz)
    cur = await conn.execute(
        """SELECT ts, value, period_s FROM intervals WHERE meter_id = %s AND obis = %s AND ts > %s AND ts <= %s
             AND NOT (reasons && %s::text[]) ORDER BY ts""", (mid, obis, start, end, blocking_reasons()))
    sums: dict[datetime, tuple[Decimal, int]] = {}
    async for ts, value, period_s in cur:
        if period_s > 3600 or 3600 % period_s:
            continue
        begin = ts - timedelta(seconds=period_s)
        hour = begin.replace(minute=0, second=0, microsecond=0)
        acc, secs = sums.get(hour, (Decimal(0), 0))
        sums[hour] = (acc + Decimal(repr(value)), secs + period_s)
    prof = hourly_xlsx.HourlyProfile(month.replace(day=1), {}, serial or meter_code)
    meter = MeterInfo(mid, meter_code, mult, versions=tuple((await params_on(conn, [mid])).get(mid, ())))
    for hour_utc, (total, secs) in sums.items():
        if secs != 3600:
            continue
        local = hour_utc.astimezone(tz)
        factor = Decimal(repr(meter.on(local.date())[0])) if multiplied else Decimal(1)
        prof.values[(local.date(), local.hour)] = total * factor
    return prof



_ZONE_LAYOUT = {1: [(0, "Сутки")], 2: [(1, "День"), (2, "Ночь")], 3: [(1, "Пик"), (2, "Ночь"), (3, "Полупик")]}


async def integral_template(conn: psycopg.AsyncConnection, org: Org, month: date, *,
                            tz: ZoneInfo | None = None, quantities: tuple[str, ...] = ("A+",)) -> bytes:
    """The template for a month: one row per meter, quantity and zone, with the
    previous reading (end of the last closed period, else the last billable reading
    before the month) and an empty current reading."""
    tz = tz or await meta.timezone(conn)
    start, _ = month_bounds(month, tz)
    cur = await conn.execute(
        """SELECT m.id, m.code, coalesce(m.serial, m.code), m.tariff_zones, coalesce(s.code, ''),
                  coalesce(s.name, s.address, ''), coalesce(a.code, '')
           FROM meters m LEFT JOIN sites s ON s.id = m.site_id LEFT JOIN accounts a ON a.id = m.account_id
           WHERE m.org_id = %s AND m.status = 'active' AND m.resource IN ('electricity', 'unknown')
           ORDER BY s.code NULLS LAST, m.code""", (org.id,))
    meters = await cur.fetchall()
    rows: list[integral_xlsx.IntegralRow] = []
    for mid, _code, number, zones, site_code, site_name, account in meters:
        for q in quantities:
            for tariff, zname in _ZONE_LAYOUT.get(zones, [(t, f"Т{t}") for t in range(1, zones + 1)]):
                obis = integral_xlsx.register_obis(q, tariff)
                prev = await _previous_reading(conn, org.id, mid, obis, start)
                rows.append(integral_xlsx.IntegralRow(
                    meter_number=number, quantity=q, zone=zname, previous=prev, current=None,
                    object_code=site_code, object_name=site_name, object_status="Ожидание", complex_name=account))
    return integral_xlsx.write_integral_xlsx(rows)


async def _previous_reading(conn: psycopg.AsyncConnection, org_id: int, meter_id: int, obis: str,
                            before: datetime) -> Decimal | None:
    cur = await conn.execute(
        """SELECT s.end_value FROM billing_snapshots s JOIN billing_periods p ON p.id = s.period_id
           WHERE p.org_id = %s AND p.state = 'closed' AND s.meter_id = %s AND s.obis = %s AND s.end_value IS NOT NULL
           ORDER BY p.month DESC LIMIT 1""", (org_id, meter_id, obis))
    row = await cur.fetchone()
    if row is None:
        cur = await conn.execute(
            """SELECT value FROM register_readings WHERE meter_id = %s AND obis = %s AND ts <= %s
                 AND NOT (reasons && %s::text[]) ORDER BY ts DESC LIMIT 1""",
            (meter_id, obis, before, blocking_reasons()))
        row = await cur.fetchone()
    return Decimal(repr(row[0])) if row else None


async def readings_csv_chunks(conn: psycopg.AsyncConnection, org: Org, start: datetime, end: datetime, *,
                              kind: str = "register", progress: Progress | None = None,
                              chunk: int = 5000) -> AsyncIterator[str]:
    """CSV text in chunks for register readings or intervals of the organisation in [start, end)."""
    table = {"register": "register_readings", "interval": "intervals"}[kind]
    archive = "r.archive" if kind == "register" else "NULL::text"
    cur = await conn.execute(f"SELECT count(*) FROM {table} r JOIN meters m ON m.id = r.meter_id "  # noqa: S608
                             "WHERE m.org_id = %s AND r.ts >= %s AND r.ts < %s", (org.id, start, end))
    total = (await cur.fetchone())[0]
    w = CsvWriter(READING_COLUMNS)
    done = 0
    async with conn.transaction(), conn.cursor(name="askue_csv_export") as scur:
        await scur.execute(
            f"""SELECT m.code, r.obis, r.ts, r.value, r.quality, r.reasons, r.source, r.received_at, {archive},
                       m.resource
                FROM {table} r JOIN meters m ON m.id = r.meter_id
                WHERE m.org_id = %s AND r.ts >= %s AND r.ts < %s ORDER BY m.code, r.obis, r.ts""",  # noqa: S608
            (org.id, start, end))
        while rows := await scur.fetchmany(chunk):
            for code, obis, ts, value, q, reasons, src, rec, arch, resource in rows:
                qty = units.canonical(resource, obis, kind)
                w.row(reading_values(ReadingRow(code, obis, kind, ts, value, q, list(reasons or ()), src, rec, arch,
                                                qty.canonical if qty else "")))
            done += len(rows)
            if progress:
                progress(done, total)
            yield w.drain()
    tail = w.drain()
    if tail:
        yield tail

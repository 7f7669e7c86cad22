"""Files → database: 80020 from another АСКУЭ (e.g. Пирамида) into half-hour intervals,
and filled-in integral readings templates into register readings. Both validate the
whole file first and store nothing when something is wrong; stored values go through
VEE's batch hook like values from gateways.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg

from askue.headend.auth import audit
from askue.headend.auth.permissions import Principal
from askue.headend.readings import rejections
from askue.headend.readings import service as readings
from askue.headend.storage import meta, values

from .formats import integral_xlsx, xml80020
from .formats.errors import ExportFormatError, Issue

log = logging.getLogger(__name__)


@dataclass
class Import80020Report:
    file_day: str
    sender_inn: str
    points: int = 0
    inserted: int = 0
    kept_existing: int = 0  # a value for the slot was already stored (from a gateway): not overwritten
    issues: list[Issue] = field(default_factory=list)


async def _refused(conn: psycopg.AsyncConnection, author: str, org_ids: frozenset[int] | None, source: str,
                   file_name: str | None, e: ExportFormatError, meter: str | None = None) -> None:
    """A refused file for the rejected-readings report (written on `conn`: the caller commits)."""
    first = e.issues[0].where if e.issues else ""
    await rejections.record(conn, Principal(author, "billing", org_ids), [rejections.Rejection(
        source, str(e), f"файл не принят, ничего не сохранено: проблем в файле — {len(e.issues)}"
                        + (f"; первая: {first}" if first else ""), meter_ref=meter, field="file",
        file_name=file_name)])


async def import_80020(conn: psycopg.AsyncConnection, data: bytes, *, org_ids: frozenset[int] | None,
                       author: str, tz: ZoneInfo | None = None, file_name: str | None = None,
                       now: datetime | None = None) -> Import80020Report:
    """Validate and store. Raises ExportFormatError (nothing stored; the refusal is recorded
    for the rejected-readings report) when the file or any of its measuring points cannot
    be taken."""
    try:
        return await _import_80020(conn, data, org_ids=org_ids, author=author, tz=tz, file_name=file_name, now=now)
    except ExportFormatError as e:
        await _refused(conn, author, org_ids, "file_80020", file_name, e)
        raise


async def _import_80020(conn: psycopg.AsyncConnection, data: bytes, *, org_ids: frozenset[int] | None,
                        author: str, tz: ZoneInfo | None, file_name: str | None,
                        now: datetime | None) -> Import80020Report:
    tz = tz or await meta.timezone(conn)
    msg = xml80020.parse(data, tz=tz)
    if file_name:
        inn, day, number = xml80020.parse_file_name(file_name)
        problems = []
        if inn != msg.sender_inn:
            problems.append(Issue("file name", f"INN {inn} in the name, {msg.sender_inn} in <sender>",
                                  "rename the file or fix <sender><inn>"))
        if day != msg.day:
            problems.append(Issue("file name", f"day {day:%Y%m%d} in the name, {msg.day:%Y%m%d} in <day>",
                                  "rename the file or fix <datetime><day>"))
        if number != msg.number:
            problems.append(Issue("file name", f"number {number} in the name, {msg.number} in @number",
                                  "rename the file or fix message/@number"))
        if problems:
            raise ExportFormatError(xml80020.FORMAT, problems)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    report = Import80020Report(f"{msg.day:%Y-%m-%d}", msg.sender_inn)
    issues: list[Issue] = []
    rows: list[tuple[int, str, datetime, float, str, float]] = []
    orgs = sorted(org_ids) if org_ids is not None else None
    for ai, area in enumerate(msg.areas, 1):
        for point in area.points:
            cur = await conn.execute(
                """SELECT m.id, m.multiplier FROM meters m LEFT JOIN billing_80020_points p ON p.meter_id = m.id
                   WHERE (p.code = %s OR (p.code IS NULL AND m.code = %s))
                     AND (%s::bigint[] IS NULL OR m.org_id = ANY(%s::bigint[]))
                   ORDER BY (p.code = %s) DESC NULLS LAST LIMIT 1""",
                (point.code, point.code, orgs, orgs, point.code))
            row = await cur.fetchone()
            if row is None:
                issues.append(Issue(f"message/area[{ai}]/measuringpoint[@code={point.code!r}]",
                                    "no metering point with this code",
                                    "register the code for a meter (billing_80020_points) or fix the code"))
                continue
            mid, mult = row
            report.points += 1
            for ch in point.channels:
                obis = xml80020.CHANNELS[ch.code][0]
                for p in ch.periods:
                    start = xml80020.slot_start_utc(msg.day, p.start, tz, p.summer)
                    quality = "A" if p.status in (None, xml80020.STATUS_OK) else "S"
                    # 80020 carries point-level energy; the DB keeps the meter's own (÷ multiplier)
                    rows.append((mid, obis, start + xml80020.HALF_HOUR, float(p.value) / mult, quality,
                                 float(p.value)))
    if issues:
        raise ExportFormatError(xml80020.FORMAT, issues)
    async with conn.transaction():
        # values already stored for a slot (e.g. from a gateway) are kept, not overwritten
        stored = await values.insert(conn, [
            values.ValueRow("interval", mid, obis, ts, "meter", now, value, quality, ["imported_80020"], "file",
                            period_s=1800) for mid, obis, ts, value, quality, _ in rows])
        await audit.record(conn, author, "billing.import_80020", "file",
                           file_name or f"80020_{msg.sender_inn}_{msg.day:%Y%m%d}_{msg.number}",
                           new={"inserted": stored.count, "rows": len(rows)})
        # a file states a whole day: its buckets are rebuilt from what is stored now
        await values.refresh_rollups(conn, [(mid, obis, ts) for mid, obis, ts, *_ in rows])
    report.inserted = stored.count
    report.kept_existing = len(rows) - stored.count
    return report


async def import_integral(conn: psycopg.AsyncConnection, data: bytes, *, org_ids: frozenset[int] | None,
                          author: str, now: datetime | None = None, confirm: bool = False,
                          partial: bool = False, dry_run: bool = False,
                          principal: Principal | None = None) -> list[integral_xlsx.RowResult]:
    """Per-row results of a filled-in template. By default a file is one act: if any
    row is wrong, nothing is stored (`partial=True` stores the good rows, as the
    customer cabinet does). The readings go in on behalf of `principal` (a customer:
    only its own points) or, without one, of `author` within `org_ids`."""
    who = principal or Principal(author, "billing", org_ids)
    try:
        results = integral_xlsx.read_integral_xlsx(data)
    except ExportFormatError as e:
        if not dry_run:
            await _refused(conn, author, org_ids, "file", None, e)
        raise
    ok = [r for r in results if r.status == "ok"]
    bad = [r for r in results if r.status == "error"]
    if bad and not dry_run:  # rows the template itself refuses (the service judges the others)
        await rejections.record(conn, who, [rejections.Rejection(
            "file", "; ".join(str(i) for i in r.issues)[:2000],
            f"строка {r.row} шаблона не принята: " + "; ".join(i.what for i in r.issues)[:1500],
            meter_ref=r.reading.meter_number if r.reading else None, field="row") for r in bad])
    if bad and not partial:
        for r in ok:
            r.message = "не сохранено: исправьте ошибки в других строках / not stored: fix the other rows"
        for r in bad:
            r.message = "ошибка / error: " + "; ".join(str(i) for i in r.issues)
        return results
    inputs = [readings.ReadingInput(r.reading.meter_number, r.reading.obis, float(r.reading.current), now,
                                    consumer=True, comment=f"integral xlsx row {r.row}")
              for r in ok if r.reading is not None and r.reading.current is not None]
    # the caller checked the role; the file's readings go in on behalf of `author` within `org_ids`
    outcome = await readings.submit(conn, who, inputs, now=now, confirm=confirm,
                                    source="file", dry_run=dry_run, all_or_nothing=not partial)
    for r, o in zip(ok, outcome, strict=True):
        r.message = f"{o.message_ru} / {o.message_en}"
        if o.status != "accepted" and o.status != "not_stored":
            r.status = "error" if o.status == "rejected" else o.status
            r.issues.append(Issue(f"row {r.row}", o.message_en, "check the reading" if o.status != "rejected"
                                  else "correct the row and load the file again", o.message_ru,
                                  "проверьте показание" if o.status != "rejected"
                                  else "исправьте строку и загрузите файл снова"))
        elif o.status == "not_stored":
            r.status = "not_stored"
    for r in bad:
        r.message = "ошибка / error: " + "; ".join(str(i) for i in r.issues)
    return results




@dataclass
class ImportHourlyReport:
    meter: str
    month: str
    hours: int = 0
    inserted: int = 0
    kept_existing: int = 0


async def import_hourly(conn: psycopg.AsyncConnection, data: bytes, meter_code: str, *,
                        org_ids: frozenset[int] | None, author: str, tz: ZoneInfo | None = None,
                        now: datetime | None = None, obis: str = "1.0.1.29.0.255", multiplied: bool = True,
                        consumer: bool = False) -> ImportHourlyReport:
    """An hourly profile xlsx for one meter into hourly intervals (period 3600 s, ts =
    end of the hour). Values are point-level (× multiplier) as in the export, so the
    meter's own value is stored ÷ multiplier; a customer's act is «без КТ и без потерь»
    (`multiplied=False`: the meter's own values) and is stored as the customer's (quality
    M, reason consumer_reported). Hours already stored are kept."""
    from datetime import time as dtime
    from datetime import timedelta

    from .formats import hourly_xlsx

    tz = tz or await meta.timezone(conn)
    try:
        prof = hourly_xlsx.read_hourly_xlsx(data)
        cur = await conn.execute("SELECT id, multiplier, org_id FROM meters WHERE code = %s OR serial = %s "
                                 "ORDER BY (code = %s) DESC LIMIT 1", (meter_code, meter_code, meter_code))
        row = await cur.fetchone()
        if row is None or (org_ids is not None and row[2] not in org_ids):
            raise ExportFormatError(hourly_xlsx.FORMAT, [Issue("meter", f"meter {meter_code!r} not found",
                                                               "give the meter code or serial number")])
    except ExportFormatError as e:
        await _refused(conn, author, org_ids, "file_hourly", None, e, meter=meter_code)
        raise
    mid, mult, _ = row
    now = (now or datetime.now(UTC)).astimezone(UTC)
    rows = []
    for (day, hour), value in sorted(prof.values.items()):
        start = datetime.combine(day, dtime(hour), tz).astimezone(UTC)
        rows.append((start + timedelta(hours=1), float(value) / (mult if multiplied else 1)))
    report = ImportHourlyReport(meter_code, f"{prof.month:%Y-%m}", hours=len(rows))
    async with conn.transaction():
        # hours already stored are kept, not overwritten
        stored = await values.insert(conn, [
            values.ValueRow("interval", mid, obis, ts, "meter", now, value, "M" if consumer else "A",
                            ["consumer_reported", "imported_hourly_xlsx"] if consumer else ["imported_hourly_xlsx"],
                            "file", period_s=3600) for ts, value in rows])
        await audit.record(conn, author, "billing.import_hourly", "meter", meter_code,
                           new={"month": report.month, "inserted": stored.count})
        await values.refresh_rollups(conn, [(mid, obis, ts) for ts, _ in rows])
    report.inserted = stored.count
    report.kept_existing = len(rows) - stored.count
    return report

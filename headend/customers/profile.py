"""A metering point's hourly profile for a customer: a month (days × hours, the seed's
layout «Время», «00-01» … «23-24») or one day, the hourly xlsx to download, and the
upload of an hourly act «без КТ и без потерь» (the meter's own kWh, without the CT·VT
multiplier and without losses), stored as the customer's values.

Both files use billing/formats/hourly_xlsx.py, so what a customer downloads loads back
unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import psycopg

from askue.headend.auth.permissions import Action, Principal
from askue.headend.billing import exporters, importers
from askue.headend.billing.formats import hourly_xlsx
from askue.headend.billing.formats.errors import ExportFormatError, Issue
from askue.headend.customers import points


@dataclass
class MonthProfile:
    point: points.Point
    month: date
    profile: hourly_xlsx.HourlyProfile

    def value(self, day: date, hour: int) -> Decimal | None:
        return self.profile.values.get((day, hour))

    def day_total(self, day: date) -> Decimal | None:
        got = [self.profile.values[(day, h)] for h in range(24) if (day, h) in self.profile.values]
        return sum(got, Decimal(0)) if got else None

    @property
    def total(self) -> Decimal:
        return sum(self.profile.values.values(), Decimal(0))


async def month(conn: psycopg.AsyncConnection, principal: Principal, code: str, first: date,
                lang: str = "ru") -> MonthProfile:
    """The point's hourly values of a month «без КТ и без потерь»."""
    p = await points.point(conn, principal, code, lang)
    prof = await exporters.hourly_profile(conn, p.code, first.replace(day=1), org_ids=principal.org_ids,
                                          multiplied=False)
    prof.title = p.serial or p.code
    return MonthProfile(p, first.replace(day=1), prof)


async def download(conn: psycopg.AsyncConnection, principal: Principal, code: str, first: date) -> tuple[str, bytes]:
    """(file name, xlsx) of the month's hourly act; needs the documents role on the account."""
    mp = await month(conn, principal, code, first)
    principal.require_on(mp.point.account_id, "documents")
    return f"hourly_{mp.point.serial or mp.point.code}_{mp.month:%Y-%m}.xlsx", \
        hourly_xlsx.write_hourly_xlsx([mp.profile])


@dataclass
class UploadResult:
    report: importers.ImportHourlyReport | None
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.report is not None


async def upload(conn: psycopg.AsyncConnection, principal: Principal, code: str, data: bytes) -> UploadResult:
    """Store an hourly act for one of the principal's points; a bad file gives its issues
    (where, what, how to fix) and stores nothing."""
    principal.require(Action.READINGS_ENTER)
    p = await points.point(conn, principal, code)
    principal.require_on(p.account_id, "readings")
    try:
        report = await importers.import_hourly(conn, data, p.code, org_ids=principal.org_ids, author=principal.name,
                                               multiplied=False, consumer=principal.is_customer)
    except ExportFormatError as e:
        return UploadResult(None, list(e.issues))
    return UploadResult(report)

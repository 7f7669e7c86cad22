"""A customer hands readings over: on the form (one field per scale, every scale
required, a decimal comma or point) or with the integral template (.xlsx or .xls),
whose rows come back with their errors beside them. Both go through
readings/service.py: the reading window, the digit capacity, reverse vs rollover, the
expected value (far above asks for confirmation), not older than 10 days, and the
organisation's confirmation when it requires one."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import psycopg

from askue.headend.auth.permissions import Action, Principal
from askue.headend.billing import importers
from askue.headend.billing.formats import integral_xlsx
from askue.headend.billing.formats.errors import ExportFormatError, Issue
from askue.headend.billing.formats.numbers import parse_decimal
from askue.headend.customers import points
from askue.headend.errors import Invalid, ServiceError
from askue.headend.readings import service


@dataclass
class FieldError:
    obis: str
    message_ru: str
    message_en: str


@dataclass
class FormResult:
    outcomes: list[service.Outcome]
    errors: list[FieldError]  # empty or malformed fields: nothing was checked or stored

    @property
    def status(self) -> str:
        """stored | pending | needs_confirmation | rejected | invalid"""
        if self.errors:
            return "invalid"
        got = {o.status for o in self.outcomes}
        for st in ("rejected", "needs_confirmation", "not_stored"):
            if st in got:
                return "rejected" if st == "not_stored" else st
        return "pending" if "pending" in got else "stored"

    @property
    def problem(self) -> ServiceError | None:
        return next((o.error for o in self.outcomes if o.error and o.status != "not_stored"), None)


async def form(conn: psycopg.AsyncConnection, principal: Principal, code: str, fields: dict[str, str], *,
               ts: datetime | None = None, confirm: bool = False, now: datetime | None = None) -> FormResult:
    """The readings of every scale of one point, taken at `ts` (default now): all or none."""
    principal.require(Action.READINGS_ENTER)
    p = await points.point(conn, principal, code)
    principal.require_on(p.account_id, "readings")
    errors, inputs = [], []
    for sc in p.scales:
        raw = (fields.get(sc.obis) or "").strip()
        if not raw:
            errors.append(FieldError(sc.obis, f"«{sc.name}»: заполните поле", f"{sc.name}: fill in the field"))
            continue
        try:
            v = parse_decimal(raw)
        except ValueError:
            errors.append(FieldError(sc.obis, f"«{sc.name}»: «{raw[:20]}» — не число; пример: 12345,67",
                                     f"{sc.name}: «{raw[:20]}» is not a number; e.g. 12345.67"))
            continue
        inputs.append(service.ReadingInput(p.code, sc.obis, float(v), ts, consumer=True,
                                           comment="customer cabinet"))
    if errors:
        return FormResult([], errors)
    return FormResult(await service.submit(conn, principal, inputs, confirm=confirm, all_or_nothing=True, now=now),
                      [])


async def template(conn: psycopg.AsyncConnection, principal: Principal, account: str | None,
                   lang: str = "ru") -> tuple[str, bytes]:
    """The integral template of the principal's points (of one account): a row per scale
    with the last accepted reading as «Предыдущие показания», «Текущие показания» empty."""
    rows = []
    for p in await points.points(conn, principal, points.PointFilter(account=account), lang):
        if p.resource not in ("electricity", "unknown") or not p.may_readings:
            continue
        for sc in p.scales:
            prev = sc.current if sc.current and sc.current.status == "accepted" else sc.previous
            rows.append(integral_xlsx.IntegralRow(
                meter_number=p.serial or p.code, quantity="A+", zone=sc.name,
                previous=None if prev is None else Decimal(repr(prev.value)), current=None,
                object_code=p.site or "", object_name=p.site_name or p.address or "",
                object_status="Ожидание", complex_name=p.account or ""))
    return f"integral_{account or 'all'}.xlsx", integral_xlsx.write_integral_xlsx(rows)


@dataclass
class UploadResult:
    rows: list[integral_xlsx.RowResult]
    issues: list[Issue]  # the file as a whole could not be read

    @property
    def stored(self) -> int:
        return sum(1 for r in self.rows if r.status == "ok")


async def upload(conn: psycopg.AsyncConnection, principal: Principal, data: bytes, *, confirm: bool = False,
                 now: datetime | None = None) -> UploadResult:
    """The filled-in template: good rows are stored (or wait for confirmation), each bad row
    says what is wrong; a point not the customer's is «not found» like any other."""
    principal.require(Action.READINGS_ENTER)
    if not data:
        raise Invalid("file", "choose a file", "выберите файл")
    try:
        rows = await importers.import_integral(conn, data, org_ids=principal.org_ids, author=principal.name,
                                               principal=principal, now=now, confirm=confirm, partial=True)
    except ExportFormatError as e:
        return UploadResult([], list(e.issues))
    return UploadResult(rows, [])

"""Operators' reports (issue 18): each a service `build(conn, principal, params, lang, tz) ->
Report` called by the pages (`web/pages_reports.py`), the API (`reports/api.py`) and
documents (`reports/documents.py`: CSV, XLSX, PDF). REPORTS lists them with what their form
asks and the period they default to."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

import psycopg

from askue.headend.auth.permissions import Principal
from askue.headend.errors import NotFound
from askue.headend.reports import balance, completeness, coverage, rejected, verification
from askue.headend.reports.model import Report
from askue.headend.reports.params import Params, last_days, parse, previous_month


@dataclass(frozen=True)
class Spec:
    name: str
    title: tuple[str, str]
    description: tuple[str, str]
    fields: tuple[str, ...]  # what the form asks: period, org, group, source, resource, horizon, unknown
    defaults: Callable[[date], tuple[date, date]]
    build: Callable[[psycopg.AsyncConnection, Principal, Params, str, tzinfo], Awaitable[Report]]

    def title_in(self, lang: str) -> str:
        return self.title[lang == "en"]


REPORTS: dict[str, Spec] = {s.name: s for s in (
    Spec("rejected", rejected.TITLE,
         ("Что пришло и не было принято: данные шлюзов, не прошедшие проверку формата, показания, отклонённые при "
          "вводе или загрузке файла, и значения, которые проверка достоверности не допускает в расчёт.",
          "What arrived and was not taken: gateway payloads refused by the format check, readings refused at entry "
          "or in files, values validation keeps out of billing."),
         ("period", "org", "source"), lambda today: last_days(today, 7), rejected.build),
    Spec("completeness", completeness.TITLE,
         ("Доля приборов, приславших данные, и доля полученных часовых интервалов профиля по суткам, домам или "
          "шлюзам.", "Share of meters with data and of hourly profile intervals received, per day and house or "
                     "gateway."),
         ("period", "org", "group", "resource"), lambda today: last_days(today, 7, include_today=False),
         completeness.build),
    Spec("balance", balance.TITLE,
         ("Расход по общедомовому прибору учёта против суммы индивидуальных, небаланс в единицах и процентах.",
          "Balance meter consumption against the sum of individual meters, the imbalance absolute and in %."),
         ("period", "org", "resource"), previous_month, balance.build),
    Spec("coverage", coverage.TITLE,
         ("Сколько приборов учёта каждого ресурса в каждом доме и какие лицевые счета без прибора учёта.",
          "Meters of each resource in each house, and the accounts without a meter."),
         ("org", "resource"), lambda today: (today, today), coverage.build),
    Spec("verification", verification.TITLE,
         ("Приборы учёта, у которых срок поверки истёк или истекает в ближайшие дни.",
          "Meters whose verification is overdue or falls due soon."),
         ("org", "resource", "horizon", "unknown"), lambda today: (today, today), verification.build),
)}


def spec(name: str) -> Spec:
    s = REPORTS.get(name)
    if s is None:
        raise NotFound(f"no report {name!r}; reports: {', '.join(REPORTS)}", f"нет отчёта «{name}»")
    return s


# query keys and the form field each belongs to: keys of fields a report does not ask are ignored
_KEYS = {"from": "period", "to": "period", "org": "org", "group": "group", "source": "source",
         "resource": "resource", "horizon": "horizon", "unknown": "unknown"}


def params_of(s: Spec, raw: Mapping[str, str], tz: tzinfo) -> Params:
    today = datetime.now(tz).date()
    start, end = s.defaults(today)
    return parse({k: v for k, v in raw.items() if _KEYS.get(k) in s.fields}, today, default_start=start,
                 default_end=end)


async def run(conn: psycopg.AsyncConnection, principal: Principal, name: str, raw: Mapping[str, str], lang: str,
              tz: tzinfo) -> Report:
    """The report `name` for a raw selection (query string or form): Invalid names a bad field."""
    s = spec(name)
    p = params_of(s, raw, tz)
    report = await s.build(conn, principal, p, lang, tz)
    report.generated, report.params = datetime.now(tz), p
    return report

"""Verification (поверка) due or overdue: meters in service whose next verification date has
passed or falls within the horizon (90 days unless asked otherwise), soonest first; meters
without a date on request."""
from __future__ import annotations

from datetime import timedelta, tzinfo

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Principal
from askue.headend.reports import common
from askue.headend.reports.balance import RESOURCE_TITLES
from askue.headend.reports.model import Column, Report, Section
from askue.headend.reports.params import Params

TITLE = ("Поверка: сроки истекают или истекли", "Verification due or overdue")
COLUMNS = [
    Column("meter", "Прибор учёта", "Meter", width=16, link="meter"),
    Column("serial", "Заводской №", "Serial", width=16),
    Column("model", "Модель", "Model", width=20),
    Column("resource", "Ресурс", "Resource", width=18),
    Column("account", "ЛС", "Account", width=14, link="account"),
    Column("subscriber", "Абонент", "Subscriber", width=26),
    Column("address", "Адрес", "Address", width=36),
    Column("verified_at", "Последняя поверка", "Last verified", "date", width=16),
    Column("due", "Следующая поверка", "Due", "date", width=16),
    Column("status", "Состояние", "Status", width=26),
]


def _status(days: int | None, lang: str) -> str:
    en = lang == "en"
    if days is None:
        return "дата поверки не указана" if not en else "no date in the registry"
    if days < 0:
        return f"просрочена на {-days} дн." if not en else f"overdue by {-days} days"
    if days == 0:
        return "истекает сегодня" if not en else "due today"
    return f"истекает через {days} дн." if not en else f"due in {days} days"


async def build(conn: psycopg.AsyncConnection, principal: Principal, p: Params, lang: str, tz: tzinfo) -> Report:
    scope = await common.scope_of(conn, principal, p.org)
    today = common.today_in(tz)
    en = lang == "en"
    cond, params = scope.sql("m.org_id")
    res = [p.resource] if p.resource else []
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT m.code AS meter, m.serial, m.model, m.resource, a.code AS account, a.subscriber, "
            "concat_ws(', ', s.address, CASE WHEN a.flat IS NOT NULL THEN 'кв. ' || a.flat END) AS address, "
            "m.verified_at, m.verification_due AS due, m.verification_due - %s AS days "
            "FROM meters m LEFT JOIN accounts a ON a.id = m.account_id LEFT JOIN sites s ON s.id = m.site_id "
            f"WHERE m.status = 'active' AND {cond} AND (m.verification_due <= %s"
            + (" OR m.verification_due IS NULL" if p.unknown else "") + ")"
            + (" AND m.resource = %s" if res else "") + " ORDER BY m.verification_due NULLS LAST, m.code",
            [today, *params, today + timedelta(days=p.horizon_days), *res])
        rows = await cur.fetchall()
    for r in rows:
        r["status"] = _status(r["days"], lang)
        r["resource"] = RESOURCE_TITLES.get(r["resource"], (r["resource"],) * 2)[en]
        if en:
            r["address"] = r["address"].replace("кв. ", "flat ")
    overdue = sum(1 for r in rows if r["days"] is not None and r["days"] < 0)
    soon = sum(1 for r in rows if r["days"] is not None and r["days"] >= 0)
    horizon = (("Горизонт", "Horizon")[en], f"{p.horizon_days} {'дн.' if not en else 'days'} "
               f"({'до' if not en else 'until'} {today + timedelta(days=p.horizon_days):%d.%m.%Y})")
    return Report("verification", TITLE[en], [horizon, await common.org_text(conn, p, lang)],
                  [Section(None, COLUMNS, rows, empty="Сроки поверки в пределах горизонта не истекают" if not en
                           else "No verification falls due within the horizon")],
                  [f"Просрочено: {overdue}; истекает в пределах горизонта: {soon}" if not en
                   else f"Overdue: {overdue}; due within the horizon: {soon}"])

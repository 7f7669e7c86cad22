"""Coverage: which houses have which meters — per house and resource the individual (ИПУ) and
balance (ОДПУ) meters in service and the share of the house's accounts (ЛС) with an individual
meter of that resource — and the accounts that have no meter in service at all (or none of
the chosen resource)."""
from __future__ import annotations

from datetime import tzinfo

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Principal
from askue.headend.reports import common
from askue.headend.reports.balance import RESOURCE_TITLES
from askue.headend.reports.model import Column, Report, Section
from askue.headend.reports.params import Params

TITLE = ("Оснащённость приборами учёта", "Metering coverage")
HOUSES = [
    Column("house", "Дом", "House", width=44),
    Column("org", "Организация", "Organisation", width=26),
    Column("resource", "Ресурс", "Resource", width=22),
    Column("ipu", "ИПУ", "Individual", "int", width=12),
    Column("odpu", "ОДПУ", "Balance", "int", width=12),
    Column("accounts", "ЛС в доме", "Accounts", "int", width=14),
    Column("covered", "ЛС с ИПУ", "Accounts metered", "int", width=14),
    Column("pct", "Охват ЛС, %", "Coverage, %", "pct", width=14),
]
ACCOUNTS = [
    Column("account", "Лицевой счёт", "Account", width=18, link="account"),
    Column("subscriber", "Абонент", "Subscriber", width=34),
    Column("house", "Адрес", "Address", width=44),
    Column("flat", "Кв.", "Flat", width=10),
    Column("org", "Организация", "Organisation", width=26),
]


async def build(conn: psycopg.AsyncConnection, principal: Principal, p: Params, lang: str, tz: tzinfo) -> Report:
    scope = await common.scope_of(conn, principal, p.org)
    en = lang == "en"
    mcond, mparams = scope.sql("m.org_id")
    acond, aparams = scope.sql("a.org_id")
    res = [p.resource] if p.resource else []
    no_house = "дом не указан" if not en else "no house"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT s.id AS site, coalesce(s.address, s.name, s.code) AS house, o.name AS org, m.resource, "
            "count(*) FILTER (WHERE NOT m.is_balance) AS ipu, count(*) FILTER (WHERE m.is_balance) AS odpu, "
            "count(DISTINCT m.account_id) FILTER (WHERE NOT m.is_balance) AS covered, "
            "(SELECT count(*) FROM accounts a WHERE a.site_id = s.id) AS accounts "
            "FROM meters m LEFT JOIN sites s ON s.id = m.site_id LEFT JOIN organisations o ON o.id = m.org_id "
            f"WHERE m.status = 'active' AND {mcond}" + (" AND m.resource = %s" if res else "")
            + " GROUP BY s.id, 2, 3, 4 ORDER BY 2 NULLS LAST, 4", [*mparams, *res])
        houses = await cur.fetchall()
        await cur.execute(
            "SELECT a.code AS account, a.subscriber, coalesce(s.address, s.name, s.code) AS house, a.flat, "
            "o.name AS org FROM accounts a LEFT JOIN sites s ON s.id = a.site_id "
            f"LEFT JOIN organisations o ON o.id = a.org_id WHERE {acond} AND NOT EXISTS (SELECT 1 FROM meters m "
            "WHERE m.account_id = a.id AND m.status = 'active'" + (" AND m.resource = %s" if res else "") + ") "
            "ORDER BY 3 NULLS LAST, a.flat, a.code", [*aparams, *res])
        bare = await cur.fetchall()
    rows = [{"house": h["house"] or no_house, "org": h["org"] or "", "ipu": h["ipu"], "odpu": h["odpu"],
             "resource": RESOURCE_TITLES.get(h["resource"], (h["resource"],) * 2)[en],
             "accounts": h["accounts"] if h["site"] else None, "covered": h["covered"],
             "pct": round(100 * h["covered"] / h["accounts"], 1) if h["site"] and h["accounts"] else None}
            for h in houses]
    total = {"house": "Итого" if not en else "Total", "ipu": sum(r["ipu"] for r in rows),
             "odpu": sum(r["odpu"] for r in rows)}
    for a in bare:
        a["house"] = a["house"] or no_house
    resource = (("Ресурс", "Resource")[en], RESOURCE_TITLES[p.resource][en] if p.resource else ("все", "all")[en])
    return Report("coverage", TITLE[en], [await common.org_text(conn, p, lang), resource], [
        Section("Приборы учёта по домам и ресурсам" if not en else "Meters per house and resource", HOUSES, rows,
                total if rows else None, empty="Приборов учёта нет" if not en else "No meters"),
        Section(("Лицевые счета без прибора учёта" if not en else "Accounts without a meter")
                + (f" ({resource[1].lower()})" if p.resource else ""), ACCOUNTS, bare,
                empty="У всех лицевых счетов есть прибор учёта" if not en else "Every account has a meter"),
    ], [f"Лицевых счетов без прибора учёта: {len(bare)}" if not en else f"Accounts without a meter: {len(bare)}",
        "Учитываются приборы в работе (не снятые с учёта)." if not en else "Meters in service are counted."])

"""House balance: per house and resource, the balance (ОДПУ) meters' consumption over the
period against the sum of the individual (ИПУ) meters', the difference absolute and as a
share of the ОДПУ, and whether it is within the tolerance VEE uses for its house-imbalance
event (`imbalance_tolerance`, with the organisation's and resource's overrides).

Consumption is the storage consumption query's (daily rollups, × the meters' multipliers;
electricity on the total register, A+ «Общий»)."""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta, tzinfo

import psycopg
from psycopg.rows import dict_row

from askue.headend import units
from askue.headend.auth.permissions import Principal
from askue.headend.reports import common
from askue.headend.reports.model import Column, Report, Section, tz_note
from askue.headend.reports.params import Params
from askue.headend.storage import meta
from askue.headend.storage.queries import consumption as cq
from askue.headend.vee import store

TITLE = ("Баланс по домам (ОДПУ и Σ ИПУ)", "House balance (balance meter vs Σ individual meters)")
RESOURCE_TITLES = {"electricity": ("Электроэнергия", "Electricity"), "cold_water": ("Холодная вода", "Cold water"),
                   "hot_water": ("Горячая вода", "Hot water"), "heat": ("Тепло", "Heat"), "gas": ("Газ", "Gas")}
COLUMNS = [
    Column("house", "Дом", "House", width=40),
    Column("resource", "Ресурс", "Resource", width=22),
    Column("unit", "Ед.", "Unit", width=10),
    Column("odpu", "ОДПУ", "Balance meter", "num", 3, width=20),
    Column("ipu", "Σ ИПУ", "Σ individual", "num", 3, width=20),
    Column("diff", "Небаланс (ОДПУ − Σ ИПУ)", "Imbalance", "num", 3, width=24),
    Column("pct", "Небаланс, %", "Imbalance, %", "pct", width=16),
    Column("flats", "ИПУ с данными", "Individual with data", width=18),
    Column("tolerance", "Допуск, %", "Tolerance, %", "pct", width=14),
    Column("verdict", "Оценка", "Verdict", width=32),
]


def _verdict(odpu_meters: int, odpu: float | None, pct: float | None, tol: float | None, lang: str) -> str:
    en = lang == "en"
    if not odpu_meters:
        return "нет ОДПУ" if not en else "no balance meter"
    if odpu is None or pct is None:
        return "нет данных ОДПУ за период" if not en else "no balance data in the period"
    if tol is None or abs(pct) <= tol:
        return "в пределах допуска" if not en else "within tolerance"
    if pct > 0:
        return "потери выше допуска" if not en else "losses above tolerance"
    return "Σ ИПУ больше ОДПУ" if not en else "Σ individual above the balance meter"


async def build(conn: psycopg.AsyncConnection, principal: Principal, p: Params, lang: str, tz: tzinfo) -> Report:
    scope = await common.scope_of(conn, principal, p.org)
    cond, params = scope.sql("o.id")
    en = lang == "en"
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT o.code FROM organisations o WHERE {cond} ORDER BY o.code", params)
        orgs = [r["code"] for r in await cur.fetchall()]
        mcond, mparams = scope.sql("m.org_id")
        await cur.execute(
            "SELECT s.code AS house, coalesce(s.address, s.name, s.code) AS address, m.resource, "
            "count(*) FILTER (WHERE m.is_balance) AS odpu_n, count(*) FILTER (WHERE NOT m.is_balance) AS ipu_n, "
            "array_agg(m.id) FILTER (WHERE m.is_balance) AS odpu_ids FROM meters m JOIN sites s ON s.id = m.site_id "
            # meters in service during the period: those taken out in it still count for their days
            "WHERE (m.status = 'active' OR (m.status = 'decommissioned' AND m.decommissioned_at >= %s)) "
            f"AND {mcond}" + (" AND m.resource = %s" if p.resource else "")
            + " GROUP BY 1, 2, 3", [p.start, *mparams, *([p.resource] if p.resource else [])])
        houses = {(r["house"], r["resource"]): r for r in await cur.fetchall()}
    used: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    with_data: dict[tuple[str, str], int] = defaultdict(int)
    for code in orgs:
        q = cq.ConsumptionQuery(level="organisation", key=code, granularity="day", start=p.start,
                                end=p.end + timedelta(days=1), resource=p.resource, group="house")
        for r in await cq.consumption(conn, q, scope):
            if r["zone"] != 0 or not r["group_key"]:
                continue
            key = (r["group_key"], r["resource"])
            used[key][r["meter_class"]] += r["value"] or 0.0
            if r["meter_class"] == "individual":
                with_data[key] = max(with_data[key], r["meters"])
    # the tolerance of each house's balance meter, as VEE judges it
    ids = [i for h in houses.values() for i in (h["odpu_ids"] or [])]
    tolerance: dict[tuple[str, str], float] = {}
    if ids:
        cfg = await store.load_thresholds(conn)
        for m in (await store.load_meters(conn, await meta.timezone(conn), ids=ids)).values():
            tolerance[(m.facts.house, m.facts.resource)] = 100 * cfg.for_meter(m.facts).imbalance_tolerance
    rows = []
    for key, h in sorted(houses.items(), key=lambda kv: (kv[1]["address"], kv[0][1])):
        u = used.get(key, {})
        odpu = u.get("balance") if "balance" in u else None
        ipu = u.get("individual", 0.0)
        diff = None if odpu is None else odpu - ipu
        pct = None if not odpu else round(100 * diff / odpu, 1)
        tol = tolerance.get(key)
        rows.append({"house": h["address"], "resource": RESOURCE_TITLES.get(key[1], (key[1],) * 2)[en],
                     "unit": units.unit(key[1], None, lang), "odpu": odpu, "ipu": ipu, "diff": diff, "pct": pct,
                     "flats": f"{with_data.get(key, 0)} {'из' if not en else 'of'} {h['ipu_n']}",
                     "tolerance": tol, "verdict": _verdict(h["odpu_n"], odpu, pct, tol, lang)})
    resource = (("Ресурс", "Resource")[en], RESOURCE_TITLES[p.resource][en] if p.resource else
                ("все", "all")[en])
    return Report("balance", TITLE[en], [common.period_text(p, lang), await common.org_text(conn, p, lang), resource],
                  [Section(None, COLUMNS, rows, empty="В доступных домах нет приборов учёта" if not en
                           else "No meters in the visible houses")],
                  ["Расход — разность показаний на конец и начало периода с учётом коэффициента трансформации; "
                   "электроэнергия — по сумме тарифов (A+ Общий). Небаланс, % — доля от расхода по ОДПУ." if not en
                   else "Consumption: the register's advance over the period × the multiplier; electricity on the "
                        "total register (A+ total). Imbalance % is a share of the balance meter's consumption.",
                   tz_note(tz, lang)])

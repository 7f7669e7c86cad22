"""Completeness of data: per day and house (or gateway, or organisation), the share of meters
that sent anything that day and the share of hourly load-profile intervals received.

- A meter is expected on a day when it is in the registry (active, or decommissioned later)
  and installed by then; it counts as received when the day has a register reading or a
  profile interval of it (the daily rollups).
- Profile meters are those that stored an interval in the period or the 35 days before; each
  is expected to cover every hour of the local day (23 or 25 on clock-change days). An hour
  counts as received when its intervals add up to the hour: n × the meter's interval length
  ≥ 3600 s (two half-hours, four quarter-hours…), from the hourly rollup (the most intervals
  of any of the meter's profile channels in that hour).
"""
from __future__ import annotations

from datetime import tzinfo

import psycopg
from psycopg.rows import dict_row

from askue.headend.auth.permissions import Principal
from askue.headend.reports import common
from askue.headend.reports.model import Column, Report, Section, tz_note
from askue.headend.reports.params import Params

TITLE = ("Полнота данных", "Data completeness")
GROUPS = {"house": ("s.code", "coalesce(s.address, s.name, s.code)", ("Дом", "House")),
          "gateway": ("m.gateway_id", "m.gateway_id", ("Шлюз", "Gateway")),
          "organisation": ("o.code", "coalesce(o.name, o.code)", ("Организация", "Organisation"))}


def columns(group: str) -> list[Column]:
    g = GROUPS[group][2]
    return [
        Column("day", "Сутки", "Day", "date", width=18),
        Column("group", g[0], g[1], width=46, link="gateway" if group == "gateway" else None),
        Column("meters", "Приборов", "Meters", "int", width=14),
        Column("received", "Получены данные", "With data", "int", width=18),
        Column("meters_pct", "Приборов с данными, %", "Meters with data, %", "pct", width=18),
        Column("profile_meters", "С профилем", "With a profile", "int", width=16),
        Column("hours_expected", "Часов ожидалось", "Hours expected", "int", width=16),
        Column("hours_received", "Часов получено", "Hours received", "int", width=16),
        Column("hours_pct", "Часовых интервалов, %", "Hourly intervals, %", "pct", width=18),
    ]


def _sql(group: str, scope_sql: str, resource: bool) -> str:
    key, name, _ = GROUPS[group]
    return f"""
WITH days AS (SELECT d::date AS day FROM generate_series(%(start)s::date, %(end)s::date, interval '1 day') d),
mm AS (
    SELECT m.id, m.installed_at, m.status, m.decommissioned_at, {key} AS grp_key, {name} AS grp_name
    FROM meters m LEFT JOIN sites s ON s.id = m.site_id LEFT JOIN organisations o ON o.id = m.org_id
    WHERE m.status IN ('active', 'decommissioned') AND {scope_sql}
      {"AND m.resource = %(resource)s" if resource else ""}
),
expected AS (
    SELECT days.day, mm.id, mm.grp_key, mm.grp_name,
           extract(epoch FROM ((days.day + 1)::timestamp AT TIME ZONE %(tz)s)
                              - (days.day::timestamp AT TIME ZONE %(tz)s)) / 3600 AS day_hours
    FROM days JOIN mm ON (mm.installed_at IS NULL OR mm.installed_at <= days.day)
                     AND (mm.status <> 'decommissioned' OR mm.decommissioned_at IS NULL
                          OR mm.decommissioned_at > days.day)
),
got AS (
    SELECT meter_id, day FROM rollup_register_daily
    WHERE day BETWEEN %(start)s AND %(end)s AND meter_id IN (SELECT id FROM mm)
    UNION
    SELECT meter_id, day FROM rollup_interval_daily
    WHERE day BETWEEN %(start)s AND %(end)s AND meter_id IN (SELECT id FROM mm)
),
prof AS (
    -- a meter keeps one interval length: any of its intervals tells it (the first found ends the probe)
    SELECT mm.id, (SELECT i.period_s FROM intervals i WHERE i.meter_id = mm.id
                   AND i.ts >= %(t0)s - interval '35 days' AND i.ts < %(t1)s LIMIT 1) AS period_s
    FROM mm
),
hours AS (
    SELECT h.meter_id, (h.hour AT TIME ZONE %(tz)s)::date AS day, count(*) AS complete
    FROM (SELECT meter_id, hour, max(n) AS n FROM rollup_interval_hourly
          WHERE hour >= %(t0)s AND hour < %(t1)s AND meter_id IN (SELECT id FROM prof WHERE period_s IS NOT NULL)
          GROUP BY 1, 2) h
    JOIN prof p ON p.id = h.meter_id WHERE h.n * p.period_s >= 3600
    GROUP BY 1, 2
)
SELECT e.day, e.grp_key, e.grp_name, count(*) AS meters, count(g.meter_id) AS received,
       count(p.id) AS profile_meters, coalesce(sum(e.day_hours) FILTER (WHERE p.id IS NOT NULL), 0)::int
       AS hours_expected, coalesce(sum(hr.complete), 0)::int AS hours_received
FROM expected e
LEFT JOIN got g ON g.meter_id = e.id AND g.day = e.day
LEFT JOIN prof p ON p.id = e.id AND p.period_s IS NOT NULL
LEFT JOIN hours hr ON hr.meter_id = e.id AND hr.day = e.day
GROUP BY 1, 2, 3 ORDER BY 1, 3 NULLS LAST
"""


def _pct(a: int, b: int) -> float | None:
    return None if not b else round(100.0 * a / b, 1)


async def build(conn: psycopg.AsyncConnection, principal: Principal, p: Params, lang: str, tz: tzinfo) -> Report:
    scope = await common.scope_of(conn, principal, p.org)
    t0, t1 = common.bounds(p, tz)
    cond, params = scope.named("m.org_id")
    none = "не указан" if lang != "en" else "not set"
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        # the planner's row estimates through the rollup views are far off, and JIT compiling the
        # plan they make costs seconds (measured: bench/headend_reports.py) for milliseconds of work
        await cur.execute("SELECT set_config('jit', 'off', true)")
        await cur.execute(_sql(p.group, cond, p.resource is not None),
                          {"start": p.start, "end": p.end, "t0": t0, "t1": t1, "tz": getattr(tz, "key", str(tz)),
                           "resource": p.resource, **params})
        rows = await cur.fetchall()
    out = []
    tot = {"meters": 0, "received": 0, "profile_meters": 0, "hours_expected": 0, "hours_received": 0}
    for r in rows:
        row = {"day": r["day"], "group": r["grp_name"] or none, "meters": r["meters"], "received": r["received"],
               "meters_pct": _pct(r["received"], r["meters"]), "profile_meters": r["profile_meters"],
               "hours_expected": r["hours_expected"], "hours_received": r["hours_received"],
               "hours_pct": _pct(r["hours_received"], r["hours_expected"])}
        out.append(row)
        for k in tot:
            tot[k] += row[k]
    total = {"day": None, "group": "Итого за период" if lang != "en" else "Total for the period", **tot,
             "meters_pct": _pct(tot["received"], tot["meters"]),
             "hours_pct": _pct(tot["hours_received"], tot["hours_expected"])}
    group_label = ("Группировка", "Grouped by")[lang == "en"]
    return Report("completeness", TITLE[lang == "en"],
                  [common.period_text(p, lang), await common.org_text(conn, p, lang),
                   (group_label, GROUPS[p.group][2][lang == "en"].lower())],
                  [Section(None, columns(p.group), out, total if out else None,
                           empty="Нет приборов учёта для отчёта" if lang != "en" else "No meters to report on")],
                  ["Приборов с данными — доля приборов, от которых за сутки пришло хоть одно показание или интервал; "
                   "часовых интервалов — доля полных часов профиля нагрузки у приборов с профилем." if lang != "en"
                   else "Meters with data: the share of meters that sent any reading or interval that day; hourly "
                        "intervals: the share of complete profile hours of the meters that keep a profile.",
                   tz_note(tz, lang)])

"""The reports' Grafana dashboard «АСКУЭ: отчёты» (the same figures as the operators' report
pages, `askue.headend.reports`, for the dispatchers' wall): rejected readings per day and the
latest ones, completeness of meters and of hourly profile intervals per day, house balance,
coverage, accounts without a meter, verification due or overdue. Built with the helpers and
conventions of `dashboards.py` ($org variable, macros the check can expand); provisioned
next to the other dashboards (provisioning.folder_dashboards)."""
from __future__ import annotations

from askue.headend.grafana.dashboards import ORG_COND, ORG_JOIN, TZ, dashboard, panel
from askue.headend.reports.balance import RESOURCE_TITLES
from askue.headend.reports.rejected import REASONS
from askue.headend.vee.store import BLOCKING_REASONS

UID = "askue-reports"
_BLOCKING = "ARRAY[" + ", ".join(f"'{r}'" for r in sorted(BLOCKING_REASONS)) + "]"
_REASON_RU = "(VALUES " + ", ".join(f"('{k}', '{v[0]}')" for k, v in sorted(REASONS.items())) + ") AS rr(code, ru)"
_RESOURCE_RU = "CASE {col} " + " ".join(f"WHEN '{k}' THEN '{v[0]}'" for k, v in RESOURCE_TITLES.items()) + \
    " ELSE {col} END"
_DAYS = (f"d.day >= ($__timeFrom() AT TIME ZONE {TZ})::date AND d.day <= ($__timeTo() AT TIME ZONE {TZ})::date")


def _rejected_union() -> str:
    """Every refusal in the time range: at, src, meter, reason, org (organisation code)."""
    return (
        "SELECT d.received_at AS at, 'шлюзы' AS src, NULL::text AS meter, 'не по формату: ' || d.topic AS reason, "
        "coalesce(o.code, '-') AS org FROM dead_letters d LEFT JOIN gateways g ON g.id = d.gateway_id "
        "LEFT JOIN organisations o ON o.id = g.org_id WHERE $__timeFilter(d.received_at) "
        "UNION ALL SELECT r.at, CASE WHEN r.source LIKE 'file%' THEN 'файлы' ELSE 'вручную' END, "
        "coalesce(m.code, r.meter_ref), r.message_ru, coalesce(o.code, '-') FROM rejected_readings r "
        "LEFT JOIN meters m ON m.id = r.meter_id LEFT JOIN organisations o ON o.id = r.org_id "
        "WHERE $__timeFilter(r.at) "
        "UNION ALL SELECT v.received_at, 'VEE', m.code, (SELECT string_agg(rr.ru, '; ') FROM unnest(v.reasons) x "
        f"JOIN {_REASON_RU} ON rr.code = x), coalesce(o.code, '-') FROM register_readings v "
        f"JOIN meters m ON m.id = v.meter_id {ORG_JOIN} WHERE $__timeFilter(v.ts) AND v.reasons && {_BLOCKING}")


def _profile_hours() -> str:
    return (
        f"WITH p AS (SELECT i.meter_id, max(i.period_s) AS period_s FROM intervals i JOIN meters m ON m.id = i.meter_id "
        f"{ORG_JOIN} WHERE $__timeFilter(i.ts) AND {ORG_COND} GROUP BY 1), "
        "h AS (SELECT r.meter_id, r.hour, max(r.n) AS n FROM rollup_interval_hourly r JOIN p ON p.meter_id = r.meter_id "
        "WHERE $__timeFilter(r.hour) GROUP BY 1, 2) "
        f"SELECT ((h.hour AT TIME ZONE {TZ})::date::timestamp AT TIME ZONE {TZ}) AS \"time\", "
        # of every hour of every meter that keeps a profile (a silent one counts as missing)
        "round(100.0 * count(*) FILTER (WHERE h.n * p.period_s >= 3600) / (24 * (SELECT count(*) FROM p)), 1) "
        "AS \"Часовых интервалов профиля, %\" FROM h JOIN p ON p.meter_id = h.meter_id GROUP BY 1 ORDER BY 1")


def reports() -> dict:
    verification = (
        "SELECT m.code AS \"Прибор учёта\", m.serial AS \"Заводской №\", a.code AS \"ЛС\", s.address AS \"Адрес\", "
        "m.verification_due AS \"Следующая поверка\", CASE WHEN m.verification_due < current_date "
        "THEN 'просрочена на ' || (current_date - m.verification_due) || ' дн.' ELSE 'истекает через ' || "
        "(m.verification_due - current_date) || ' дн.' END AS \"Состояние\" FROM meters m "
        f"LEFT JOIN accounts a ON a.id = m.account_id LEFT JOIN sites s ON s.id = m.site_id {ORG_JOIN} "
        f"WHERE m.status = 'active' AND m.verification_due <= current_date + 90 AND {ORG_COND} "
        "ORDER BY m.verification_due, m.code LIMIT 500")
    return dashboard(UID, "АСКУЭ: отчёты", [
        panel(1, "Отклонённые показания по дням", "timeseries",
              f"SELECT $__timeGroupAlias(x.at, '1d'), x.src AS metric, count(*) AS \"Отклонено\" FROM "
              f"({_rejected_union()}) x WHERE x.org IN ($org) GROUP BY 1, 2 ORDER BY 1",
              (0, 0, 12, 8), fmt="time_series",
              field_config={"custom": {"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}}}),
        panel(2, "Последние отклонённые показания", "table",
              f"SELECT x.at AS \"Поступило\", x.src AS \"Источник\", x.meter AS \"Прибор учёта\", "
              f"x.reason AS \"Причина\" FROM ({_rejected_union()}) x WHERE x.org IN ($org) "
              "ORDER BY x.at DESC LIMIT 200", (12, 0, 12, 8)),
        panel(3, "Приборы учёта с данными, % по суткам", "timeseries",
              f"SELECT (d.day::timestamp AT TIME ZONE {TZ}) AS \"time\", round(100.0 * count(DISTINCT d.meter_id) / "
              "nullif((SELECT count(*) FROM meters m2 LEFT JOIN organisations o ON o.id = m2.org_id "
              f"WHERE m2.status = 'active' AND {ORG_COND}), 0), 1) AS \"Приборов с данными, %\" "
              f"FROM rollup_register_daily d JOIN meters m ON m.id = d.meter_id {ORG_JOIN} "
              f"WHERE {_DAYS} AND m.status = 'active' AND {ORG_COND} GROUP BY d.day ORDER BY 1",
              (0, 8, 12, 8), fmt="time_series", unit="percent", field_config={"min": 0, "max": 100}),
        panel(4, "Часовые интервалы профиля, % по суткам", "timeseries", _profile_hours(), (12, 8, 12, 8),
              fmt="time_series", unit="percent", field_config={"min": 0, "max": 100}),
        panel(5, "Баланс по домам за период (ОДПУ и Σ ИПУ)", "table",
              "SELECT s.address AS \"Дом\", " + _RESOURCE_RU.format(col="g.resource") + " AS \"Ресурс\", "
              "round(sum(g.value) FILTER (WHERE g.is_balance)::numeric, 3) AS \"ОДПУ\", "
              "round(coalesce(sum(g.value) FILTER (WHERE NOT g.is_balance), 0)::numeric, 3) AS \"Σ ИПУ\", "
              "round((sum(g.value) FILTER (WHERE g.is_balance) - coalesce(sum(g.value) FILTER (WHERE NOT g.is_balance), "
              "0))::numeric, 3) AS \"Небаланс\", round((100 * (sum(g.value) FILTER (WHERE g.is_balance) - "
              "coalesce(sum(g.value) FILTER (WHERE NOT g.is_balance), 0)) / nullif(sum(g.value) FILTER "
              "(WHERE g.is_balance), 0))::numeric, 1) AS \"Небаланс, %\" FROM consumption_daily g "
              "JOIN sites s ON s.id = g.site_id LEFT JOIN organisations o ON o.id = g.org_id "
              f"WHERE g.zone = 0 AND g.day >= ($__timeFrom() AT TIME ZONE {TZ})::date "
              f"AND g.day <= ($__timeTo() AT TIME ZONE {TZ})::date AND {ORG_COND} "
              "GROUP BY s.address, g.resource HAVING bool_or(g.is_balance) ORDER BY 6 DESC NULLS LAST",
              (0, 16, 24, 8), field_config={"unit": "none"}),
        panel(6, "Приборы учёта по домам и ресурсам", "table",
              "SELECT coalesce(s.address, 'дом не указан') AS \"Дом\", " + _RESOURCE_RU.format(col="m.resource")
              + " AS \"Ресурс\", count(*) FILTER (WHERE NOT m.is_balance) AS \"ИПУ\", "
              "count(*) FILTER (WHERE m.is_balance) AS \"ОДПУ\", "
              "(SELECT count(*) FROM accounts a WHERE a.site_id = s.id) AS \"ЛС в доме\" "
              f"FROM meters m LEFT JOIN sites s ON s.id = m.site_id {ORG_JOIN} "
              f"WHERE m.status = 'active' AND {ORG_COND} GROUP BY s.id, s.address, m.resource ORDER BY 1, 2",
              (0, 24, 12, 9)),
        panel(7, "Лицевые счета без прибора учёта", "table",
              "SELECT a.code AS \"ЛС\", a.subscriber AS \"Абонент\", s.address AS \"Адрес\", a.flat AS \"Кв.\" "
              "FROM accounts a LEFT JOIN sites s ON s.id = a.site_id LEFT JOIN organisations o ON o.id = a.org_id "
              f"WHERE NOT EXISTS (SELECT 1 FROM meters m WHERE m.account_id = a.id AND m.status = 'active') "
              f"AND {ORG_COND} ORDER BY 3, 4 LIMIT 500", (12, 24, 12, 9)),
        panel(8, "Поверка просрочена", "stat",
              f"SELECT count(*) AS \"Просрочено\" FROM meters m {ORG_JOIN} WHERE m.status = 'active' "
              f"AND m.verification_due < current_date AND {ORG_COND}", (0, 33, 6, 4),
              field_config={"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                         {"color": "red", "value": 1}]}}),
        panel(9, "Поверка: истекла или истекает в 90 дней", "table", verification, (6, 33, 18, 9)),
    ], time_from="now-30d", tags=("reports",))


def build_reports() -> list[dict]:
    return [reports()]

"""Grafana dashboards as JSON, built from plain dicts.

The dispatchers' dashboards (`build_all`): fleet overview, consumption, gateway
health, abnormal events, and a Geomap of meters coloured by contact status (the same
buckets and colours as the web map). All SQL reads the head-end schema directly
(works on plain PostgreSQL and on TimescaleDB, whose rollups are views with the same
names), uses only the macros `askue.headend.grafana.macros` can expand, and filters by
the `$org` variable.

The system's own dashboard (`build_system`): "head-end health", from the head-end's
Prometheus metrics (`askue.headend.metrics`, scraped at `/metrics`) — ingest rate,
commit latency, dead letters, hook time, queue depth, database pools, API latency."""
from __future__ import annotations

from typing import Any

from askue.headend.vee.rules.no_contact import BUCKETS
from askue.headend.web.queries import MAP_BUCKETS

DS_TYPE = "grafana-postgresql-datasource"
DS_UID = "askue-pg"
DS = {"type": DS_TYPE, "uid": DS_UID}
FOLDER_UID = "askue"
FOLDER_TITLE = "АСКУЭ"
PROM_UID = "askue-prometheus"
PROM = {"type": "prometheus", "uid": PROM_UID}
SYSTEM_FOLDER_UID = "askue-system"
SYSTEM_FOLDER_TITLE = "АСКУЭ: система"
TZ = "(SELECT value FROM askue_meta WHERE key = 'timezone')"
ORG_JOIN = "LEFT JOIN organisations o ON o.id = m.org_id"
ORG_COND = "coalesce(o.code, '-') IN ($org)"

ORG_VARIABLE = {
    "name": "org", "label": "Организация", "type": "query", "datasource": DS, "multi": True, "includeAll": True,
    "current": {"text": ["All"], "value": ["$__all"]}, "refresh": 1, "sort": 1,
    "query": "SELECT code AS __value, name AS __text FROM organisations UNION ALL "
             "SELECT '-' AS __value, 'Без организации' AS __text",
    "definition": "organisations",
}

_LABELS = {"disconnected": "Отключен", "30min": "До 30 минут", "2h": "До 2 часов", "1d": "До 1 суток",
           "2d": "До 2 суток", "1w": "До 1 недели", "2w": "До 2 недель"}
# rank 1..6 by silence, 7 = disconnected (never heard or silent over 2 weeks)
RANKS = {code: i + 1 for i, (_, code, _) in enumerate(b for b in BUCKETS if b[0] is not None)}
RANKS["disconnected"] = len(RANKS) + 1


def contact_rank_sql(col: str = "m.last_contact") -> str:
    whens = [f"WHEN now() - {col} <= interval '{int(upper.total_seconds())} seconds' THEN {RANKS[code]}"
             for upper, code, _ in BUCKETS if upper is not None]
    return f"CASE WHEN {col} IS NULL THEN {RANKS['disconnected']} {' '.join(whens)} ELSE {RANKS['disconnected']} END"


def contact_label_sql(col: str = "m.last_contact") -> str:
    by_rank = {r: _LABELS[c] for c, r in RANKS.items()}
    whens = " ".join(f"WHEN {r} THEN '{label}'" for r, label in sorted(by_rank.items()))
    return f"CASE ({contact_rank_sql(col)}) {whens} END"


def _thresholds() -> dict:
    colors = dict(MAP_BUCKETS)
    steps = [{"color": colors["30min"], "value": None}]
    for code, rank in sorted(RANKS.items(), key=lambda kv: kv[1]):
        if rank > 1:
            steps.append({"color": colors[code], "value": rank})
    return {"mode": "absolute", "steps": steps}


def target(sql: str, fmt: str = "table", ref: str = "A") -> dict:
    return {"refId": ref, "datasource": DS, "format": fmt, "rawQuery": True, "editorMode": "code", "rawSql": sql}


def panel(pid: int, title: str, kind: str, sql: str, grid: tuple[int, int, int, int], *, fmt: str = "table",
          unit: str | None = None, options: dict | None = None, field_config: dict | None = None) -> dict:
    x, y, w, h = grid
    defaults: dict[str, Any] = dict(field_config or {})
    if unit:
        defaults["unit"] = unit
    return {"id": pid, "type": kind, "title": title, "datasource": DS, "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "targets": [target(sql, fmt)], "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options or {}}


def dashboard(uid: str, title: str, panels: list[dict], time_from: str = "now-7d", tags: tuple[str, ...] = ()) -> dict:
    return {"uid": uid, "title": title, "tags": ["askue", *tags], "timezone": "browser", "schemaVersion": 39,
            "version": 1, "editable": True, "refresh": "1m", "time": {"from": time_from, "to": "now"},
            "templating": {"list": [ORG_VARIABLE]}, "panels": panels, "annotations": {"list": []}}


def fleet_overview() -> dict:
    rank = contact_rank_sql()
    return dashboard("askue-fleet", "АСКУЭ: обзор парка приборов", [
        panel(1, "Приборов учёта в работе", "stat",
              f"SELECT count(*) AS \"Приборов\" FROM meters m {ORG_JOIN} WHERE m.status = 'active' AND {ORG_COND}",
              (0, 0, 6, 4)),
        panel(2, "На связи за сутки", "stat",
              f"SELECT count(*) FILTER (WHERE m.last_contact > now() - interval '1 day') AS \"На связи\" "
              f"FROM meters m {ORG_JOIN} WHERE m.status = 'active' AND {ORG_COND}", (6, 0, 6, 4)),
        panel(3, "Открытые нештатные ситуации", "stat",
              f"SELECT count(*) AS \"Открыто\" FROM abnormal_events e LEFT JOIN organisations o ON o.id = e.org_id "
              f"WHERE e.state <> 'resolved' AND {ORG_COND}", (12, 0, 6, 4)),
        panel(4, "Шлюзы на связи", "stat",
              "SELECT count(*) FILTER (WHERE g.online) AS \"На связи\", count(*) AS \"Всего\" FROM gateways g "
              "LEFT JOIN organisations o ON o.id = g.org_id WHERE " + ORG_COND, (18, 0, 6, 4)),
        panel(5, "Приборы по времени последней связи", "barchart",
              f"SELECT {contact_label_sql()} AS \"Связь\", count(*) AS \"Приборов\" FROM meters m {ORG_JOIN} "
              f"WHERE m.status <> 'decommissioned' AND {ORG_COND} GROUP BY {rank}, 1 ORDER BY {rank}",
              (0, 4, 12, 9), options={"xField": "Связь", "orientation": "horizontal"}),
        panel(6, "Получено показаний в час", "timeseries",
              f"SELECT $__timeGroupAlias(r.received_at, '1h'), count(*) AS \"Показаний\" FROM register_readings r "
              f"JOIN meters m ON m.id = r.meter_id {ORG_JOIN} WHERE $__timeFilter(r.received_at) AND {ORG_COND} "
              "GROUP BY 1 ORDER BY 1", (12, 4, 12, 9), fmt="time_series"),
        panel(7, "Нет связи более суток", "table",
              f"SELECT m.code AS \"Счётчик\", m.serial AS \"Заводской №\", s.address AS \"Адрес\", "
              f"m.gateway_id AS \"Шлюз\", m.last_contact AS \"Последняя связь\", {contact_label_sql()} AS \"Связь\" "
              f"FROM meters m LEFT JOIN sites s ON s.id = m.site_id {ORG_JOIN} WHERE m.status = 'active' "
              f"AND (m.last_contact IS NULL OR m.last_contact < now() - interval '1 day') AND {ORG_COND} "
              "ORDER BY m.last_contact NULLS FIRST LIMIT 500", (0, 13, 24, 10)),
    ], tags=("fleet",))


def _daily_consumption(resource_cond: str, extra_cols: str = "", group: str = "") -> str:
    # consumption of a day = its last reading − the previous day's last reading, × CT·VT ratio
    return (f"SELECT (d.day::timestamp AT TIME ZONE {TZ}) AS \"time\"{extra_cols}, "
            "sum((d.last_value - d.prev) * m.multiplier) AS \"Расход\" FROM ("
            " SELECT meter_id, obis, day, last_value, lag(last_value) OVER (PARTITION BY meter_id, obis ORDER BY day)"
            " AS prev FROM rollup_register_daily"
            f" WHERE day >= ($__timeFrom() AT TIME ZONE {TZ})::date - 1 AND day <= ($__timeTo() AT TIME ZONE {TZ})::date"
            f") d JOIN meters m ON m.id = d.meter_id {ORG_JOIN} "
            f"WHERE d.prev IS NOT NULL AND d.last_value >= d.prev AND {resource_cond} AND {ORG_COND} "
            f"AND (d.day::timestamp AT TIME ZONE {TZ}) >= $__timeFrom() "
            f"GROUP BY 1{group} ORDER BY 1")


def consumption() -> dict:
    return dashboard("askue-consumption", "АСКУЭ: расход ресурсов", [
        panel(1, "Электроэнергия по дням (ИПУ, общий тариф), кВт·ч", "timeseries",
              _daily_consumption("m.resource = 'electricity' AND NOT m.is_balance AND d.obis = '1.0.1.8.0.255'"),
              (0, 0, 12, 9), fmt="time_series", unit="kwatth",
              field_config={"custom": {"drawStyle": "bars", "fillOpacity": 80}}),
        panel(2, "Электроэнергия ОДПУ по дням, кВт·ч", "timeseries",
              _daily_consumption("m.resource = 'electricity' AND m.is_balance AND d.obis = '1.0.1.8.0.255'"),
              (12, 0, 12, 9), fmt="time_series", unit="kwatth",
              field_config={"custom": {"drawStyle": "bars", "fillOpacity": 80}}),
        panel(3, "Вода по дням, м³", "timeseries",
              _daily_consumption("m.resource IN ('cold_water', 'hot_water') AND d.obis IN ('8.0.1.0.0.255', "
                                 "'9.0.1.0.0.255')", ", CASE m.resource WHEN 'cold_water' THEN 'ХВС' ELSE 'ГВС' END "
                                 "AS metric", ", 2"),
              (0, 9, 12, 9), fmt="time_series", unit="m3"),
        panel(4, "Итоги за период по ресурсам и тарифам", "table",
              "SELECT x.resource AS \"Ресурс\", CASE WHEN x.is_balance THEN 'ОДПУ' ELSE 'ИПУ' END AS \"Учёт\", "
              "CASE WHEN x.zone = 0 THEN 'Общий' ELSE 'T' || x.zone END AS \"Тариф\", "
              "round(sum(x.cons)::numeric, 3) AS \"Расход\", count(DISTINCT x.meter_id) AS \"Приборов\" FROM ("
              " SELECT m.resource, m.is_balance, d.meter_id, "
              " CASE WHEN m.resource = 'electricity' THEN split_part(d.obis, '.', 5)::int ELSE 0 END AS zone, "
              " (d.last_value - d.prev) * m.multiplier AS cons FROM ("
              "  SELECT meter_id, obis, day, last_value, lag(last_value) OVER (PARTITION BY meter_id, obis ORDER BY day)"
              "  AS prev FROM rollup_register_daily"
              f"  WHERE day >= ($__timeFrom() AT TIME ZONE {TZ})::date - 1 AND day <= ($__timeTo() AT TIME ZONE {TZ})::date"
              "  AND (obis LIKE '1.0.1.8.%' OR obis IN ('8.0.1.0.0.255', '9.0.1.0.0.255', '6.0.1.0.0.255', "
              "'7.0.3.0.0.255'))"
              f" ) d JOIN meters m ON m.id = d.meter_id {ORG_JOIN}"
              f" WHERE d.prev IS NOT NULL AND d.last_value >= d.prev AND {ORG_COND}"
              f" AND d.day >= ($__timeFrom() AT TIME ZONE {TZ})::date"
              ") x GROUP BY 1, 2, 3, x.zone ORDER BY 1, 2, x.zone", (12, 9, 12, 9)),
        panel(5, "Лицевые счета с наибольшим расходом электроэнергии", "table",
              "SELECT a.code AS \"ЛС\", a.subscriber AS \"Абонент\", s.address AS \"Адрес\", "
              "round(sum((d.last_value - d.prev) * m.multiplier)::numeric, 3) AS \"кВт·ч\" FROM ("
              " SELECT meter_id, obis, day, last_value, lag(last_value) OVER (PARTITION BY meter_id, obis ORDER BY day)"
              " AS prev FROM rollup_register_daily WHERE obis = '1.0.1.8.0.255'"
              f" AND day >= ($__timeFrom() AT TIME ZONE {TZ})::date - 1 AND day <= ($__timeTo() AT TIME ZONE {TZ})::date"
              f") d JOIN meters m ON m.id = d.meter_id JOIN accounts a ON a.id = m.account_id "
              f"LEFT JOIN sites s ON s.id = a.site_id {ORG_JOIN} "
              f"WHERE d.prev IS NOT NULL AND d.last_value >= d.prev AND {ORG_COND} "
              f"AND d.day >= ($__timeFrom() AT TIME ZONE {TZ})::date "
              "GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 20", (0, 18, 24, 9)),
    ], time_from="now-30d", tags=("consumption",))


def gateway_health() -> dict:
    gw_org = "LEFT JOIN organisations o ON o.id = g.org_id"
    return dashboard("askue-gateways", "АСКУЭ: состояние шлюзов", [
        panel(1, "Шлюзы без связи", "stat",
              f"SELECT count(*) FILTER (WHERE NOT g.online) AS \"Нет связи\" FROM gateways g {gw_org} "
              f"WHERE {ORG_COND}", (0, 0, 6, 4), field_config={"thresholds": {"mode": "absolute", "steps": [
                  {"color": "green", "value": None}, {"color": "red", "value": 1}]}}),
        panel(2, "Неотправленные данные в очередях", "stat",
              f"SELECT coalesce(sum(g.queue_depth), 0) AS \"В очередях\" FROM gateways g {gw_org} WHERE {ORG_COND}",
              (6, 0, 6, 4)),
        panel(3, "Очередь по шлюзам", "bargauge",
              f"SELECT g.id AS \"Шлюз\", coalesce(g.queue_depth, 0) AS \"Очередь\" FROM gateways g {gw_org} "
              f"WHERE {ORG_COND} ORDER BY 2 DESC", (12, 0, 12, 8), options={"orientation": "horizontal"}),
        panel(4, "Шлюзы", "table",
              "SELECT g.id AS \"Шлюз\", g.name AS \"Название\", CASE WHEN g.online THEN 'на связи' ELSE 'нет связи' "
              "END AS \"Состояние\", g.version AS \"Версия\", g.meters AS \"Приборов\", g.queue_depth AS \"Очередь\", "
              "g.oldest_unsent_s AS \"Старейшее неотправленное, с\", g.last_seen AS \"Последняя связь\" "
              f"FROM gateways g {gw_org} WHERE {ORG_COND} ORDER BY g.online, g.id", (0, 8, 24, 8)),
        panel(5, "Получено показаний по шлюзам", "timeseries",
              "SELECT $__timeGroupAlias(r.received_at, '1h'), r.gateway_id AS metric, count(*) AS \"Показаний\" "
              f"FROM register_readings r JOIN meters m ON m.id = r.meter_id {ORG_JOIN} "
              f"WHERE $__timeFilter(r.received_at) AND r.gateway_id IS NOT NULL AND {ORG_COND} "
              "GROUP BY 1, 2 ORDER BY 1", (0, 16, 24, 9), fmt="time_series"),
    ], tags=("gateways",))


def abnormal_events() -> dict:
    ev_org = "LEFT JOIN organisations o ON o.id = e.org_id"
    return dashboard("askue-events", "АСКУЭ: нештатные ситуации", [
        panel(1, "Открыто", "stat",
              f"SELECT count(*) AS \"Открыто\" FROM abnormal_events e {ev_org} WHERE e.state <> 'resolved' "
              f"AND {ORG_COND}", (0, 0, 6, 4)),
        panel(2, "Критичных открыто", "stat",
              f"SELECT count(*) AS \"Критично\" FROM abnormal_events e {ev_org} WHERE e.state <> 'resolved' "
              f"AND e.severity = 'critical' AND {ORG_COND}", (6, 0, 6, 4),
              field_config={"color": {"mode": "fixed", "fixedColor": "red"}}),
        panel(3, "Открытые по видам", "barchart",
              f"SELECT coalesce(e.title, e.kind) AS \"Вид\", count(*) AS \"Открыто\" FROM abnormal_events e {ev_org} "
              f"WHERE e.state <> 'resolved' AND {ORG_COND} GROUP BY 1 ORDER BY 2 DESC",
              (12, 0, 12, 8), options={"xField": "Вид", "orientation": "horizontal"}),
        panel(4, "Зафиксировано по дням", "timeseries",
              "SELECT $__timeGroupAlias(e.raised_at, '1d'), e.severity AS metric, count(*) AS \"Событий\" "
              f"FROM abnormal_events e {ev_org} WHERE $__timeFilter(e.raised_at) AND {ORG_COND} "
              "GROUP BY 1, 2 ORDER BY 1", (0, 4, 12, 8), fmt="time_series",
              field_config={"custom": {"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal"}}}),
        panel(5, "Открытые нештатные ситуации", "table",
              "SELECT e.id AS \"№\", coalesce(e.ts, e.raised_at) AS \"Время\", coalesce(e.title, e.kind) AS \"Вид\", "
              "e.severity AS \"Важность\", m.code AS \"Счётчик\", a.code AS \"ЛС\", s.address AS \"Адрес\", "
              "e.state AS \"Состояние\" FROM abnormal_events e LEFT JOIN meters m ON m.id = e.meter_id "
              "LEFT JOIN accounts a ON a.id = coalesce(e.account_id, m.account_id) "
              f"LEFT JOIN sites s ON s.id = coalesce(e.site_id, m.site_id) {ev_org} "
              f"WHERE e.state <> 'resolved' AND {ORG_COND} ORDER BY e.id DESC LIMIT 500", (0, 12, 24, 10)),
    ], time_from="now-30d", tags=("events",))


def meters_map() -> dict:
    geomap_options = {
        "view": {"id": "fit", "allLayers": True},
        "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": False},
        "basemap": {"type": "default", "name": "Basemap"},
        "layers": [{
            "type": "markers", "name": "Приборы учёта", "tooltip": True,
            "location": {"mode": "coords", "latitude": "latitude", "longitude": "longitude"},
            "config": {"showLegend": True, "style": {
                "size": {"fixed": 7}, "opacity": 0.9, "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                "color": {"field": "contact_rank"}}},
        }],
        "tooltip": {"mode": "details"},
    }
    return dashboard("askue-map", "АСКУЭ: карта приборов учёта по связи", [
        panel(1, "Приборы учёта по времени последней связи", "geomap",
              f"SELECT m.code AS \"Счётчик\", coalesce(m.lat, s.lat) AS latitude, coalesce(m.lon, s.lon) AS longitude, "
              f"{contact_rank_sql()} AS contact_rank, {contact_label_sql()} AS \"Связь\", "
              f"m.last_contact AS \"Последняя связь\", s.address AS \"Адрес\" "
              f"FROM meters m LEFT JOIN sites s ON s.id = m.site_id {ORG_JOIN} "
              f"WHERE m.status <> 'decommissioned' AND coalesce(m.lat, s.lat) IS NOT NULL "
              f"AND coalesce(m.lon, s.lon) IS NOT NULL AND {ORG_COND}", (0, 0, 18, 18),
              options=geomap_options,
              field_config={"color": {"mode": "thresholds"}, "thresholds": _thresholds()}),
        panel(2, "Без координат", "stat",
              f"SELECT count(*) AS \"Без координат\" FROM meters m LEFT JOIN sites s ON s.id = m.site_id {ORG_JOIN} "
              f"WHERE m.status <> 'decommissioned' AND (coalesce(m.lat, s.lat) IS NULL OR coalesce(m.lon, s.lon) IS NULL) "
              f"AND {ORG_COND}", (18, 0, 6, 4)),
        panel(3, "Легенда", "table",
              f"SELECT {contact_rank_sql()} AS contact_rank, {contact_label_sql()} AS \"Связь\", count(*) AS \"Приборов\" "
              f"FROM meters m {ORG_JOIN} WHERE m.status <> 'decommissioned' AND {ORG_COND} GROUP BY 1, 2 ORDER BY 1",
              (18, 4, 6, 14), field_config={"color": {"mode": "thresholds"}, "thresholds": _thresholds()}),
    ], tags=("map",))


ALL = (fleet_overview, consumption, gateway_health, abnormal_events, meters_map)


def build_all() -> list[dict]:
    return [f() for f in ALL]


# ---- the head-end's own health, from Prometheus ----------------------------------------------
INSTANCE_VARIABLE = {
    "name": "instance", "label": "Процесс", "type": "query", "datasource": PROM, "multi": True,
    "includeAll": True, "current": {"text": ["All"], "value": ["$__all"]}, "refresh": 2, "sort": 1,
    "query": {"query": "label_values(askue_headend_ingest_batches_total, instance)", "refId": "instance"},
    "definition": "label_values(askue_headend_ingest_batches_total, instance)",
}
SEL = '{instance=~"$instance"}'


def prom_panel(pid: int, title: str, kind: str, exprs: list[tuple[str, str]], grid: tuple[int, int, int, int], *,
               unit: str | None = None, field_config: dict | None = None) -> dict:
    """A panel of PromQL targets: (expression, legend) each."""
    x, y, w, h = grid
    defaults: dict[str, Any] = dict(field_config or {})
    if unit:
        defaults["unit"] = unit
    targets = [{"refId": chr(ord("A") + i), "datasource": PROM, "expr": expr, "legendFormat": legend,
                "editorMode": "code", "range": True} for i, (expr, legend) in enumerate(exprs)]
    return {"id": pid, "type": kind, "title": title, "datasource": PROM, "gridPos": {"x": x, "y": y, "w": w, "h": h},
            "targets": targets, "fieldConfig": {"defaults": defaults, "overrides": []}, "options": {}}


def _quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    return [(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{SEL}[5m])))",
             (f"p{int(q * 100)}" + (f" {{{{{by}}}}}" if by else ""))) for q in (0.5, 0.95, 0.99)]


def headend_health() -> dict:
    red_from_one = {"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                 {"color": "red", "value": 1}]}}
    panels = [
        prom_panel(1, "Принято значений, в секунду", "stat",
                   [(f"sum(rate(askue_headend_ingest_values_total{SEL}[5m]))", "значений/с")], (0, 0, 6, 4),
                   unit="short"),
        prom_panel(2, "Неразобранные сообщения (dead letters) за час", "stat",
                   [(f"sum(increase(askue_headend_dead_letters_total{SEL}[1h]))", "за час")], (6, 0, 6, 4),
                   field_config=red_from_one),
        prom_panel(3, "Сбои обработчиков после записи за час", "stat",
                   [(f"sum(increase(askue_headend_hook_failures_total{SEL}[1h]))", "за час")], (12, 0, 6, 4),
                   field_config=red_from_one),
        prom_panel(4, "Ждут записи в БД", "stat",
                   [(f"sum(askue_headend_ingest_queue_depth{SEL})", "сообщений"),
                    (f"sum(askue_headend_ingest_batches_in_flight{SEL})", "пакетов пишется")], (18, 0, 6, 4)),
        prom_panel(5, "Приём: сообщения и значения, в секунду", "timeseries",
                   [(f"sum by (kind) (rate(askue_headend_ingest_messages_total{SEL}[5m]))", "сообщения {{kind}}"),
                    (f"sum(rate(askue_headend_ingest_values_total{SEL}[5m]))", "значения"),
                    (f"sum(rate(askue_headend_ingest_batches_total{SEL}[5m]))", "пакеты")], (0, 4, 12, 8),
                   unit="short"),
        prom_panel(6, "Записано новых значений по источникам, в секунду", "timeseries",
                   [(f"sum by (source) (rate(askue_headend_values_stored_total{SEL}[5m]))", "{{source}}")],
                   (12, 4, 12, 8), unit="short"),
        prom_panel(7, "Запись пакета до COMMIT", "timeseries", _quantiles("askue_headend_ingest_commit_seconds"),
                   (0, 12, 12, 8), unit="s"),
        prom_panel(8, "Время обработчиков после записи (VEE…), среднее", "timeseries",
                   [(f"sum by (hook) (rate(askue_headend_hook_seconds_sum{SEL}[5m])) / "
                     f"sum by (hook) (rate(askue_headend_hook_seconds_count{SEL}[5m]))", "{{hook}}")],
                   (12, 12, 12, 8), unit="s"),
        prom_panel(9, "Соединения с БД", "timeseries",
                   [(f"sum by (pool) (askue_headend_db_pool_connections{SEL})", "открыто {{pool}}"),
                    (f"sum by (pool) (askue_headend_db_pool_idle{SEL})", "свободно {{pool}}"),
                    (f"sum by (pool) (askue_headend_db_pool_waiting{SEL})", "ждут {{pool}}"),
                    (f"max by (pool) (askue_headend_db_pool_max{SEL})", "предел {{pool}}")], (0, 20, 12, 8)),
        prom_panel(10, "API и страницы: 95-й процентиль по маршрутам", "timeseries",
                   [(f"histogram_quantile(0.95, sum by (le, route) "
                     f"(rate(askue_headend_http_request_seconds_bucket{SEL}[5m])))", "{{route}}")],
                   (12, 20, 12, 8), unit="s"),
        prom_panel(11, "Ответы с ошибкой сервера (5xx), в секунду", "timeseries",
                   [('sum by (route) (rate(askue_headend_http_request_seconds_count{instance=~"$instance",'
                     'status=~"5.."}[5m]))', "{{route}}")], (0, 28, 24, 7), unit="short"),
    ]
    d = dashboard("askue-headend-health", "АСКУЭ: состояние головной системы", panels, time_from="now-6h",
                  tags=("health",))
    d["templating"] = {"list": [INSTANCE_VARIABLE]}
    d["refresh"] = "30s"
    return d


def build_system() -> list[dict]:
    return [headend_health()]

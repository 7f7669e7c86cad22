"""Grafana dashboards, built with Grafana's own typed builders (`grafana-foundation-sdk`).

The dispatchers' dashboards (`build_all`): fleet overview, consumption, gateway
health, abnormal events, and a Geomap of meters coloured by contact status (the same
buckets and colours as the web map). All SQL reads the head-end schema directly
(works on plain PostgreSQL and on TimescaleDB, whose rollups are views with the same
names), uses only the macros `askue.headend.grafana.macros` can expand, and filters by
the `$org` variable.

The system's own dashboard (`build_system`): "head-end health", from the head-end's
Prometheus metrics (`askue.headend.metrics`, scraped at `/metrics`) — ingest rate,
commit latency, dead letters, hook time, queue depth, database pools, API latency.

The SDK has typed queries for Prometheus but none for PostgreSQL, so `SqlQuery` is the
one target written here; everything else (panels, options, thresholds, variables,
layout) comes from the SDK's builders. `to_json` turns a builder into the dict Grafana
reads (and the files in grafana/ hold)."""
from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import (
    barchart,
    bargauge,
    common,
    geomap,
    prometheus,
    stat,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import geomap as gm
from grafana_foundation_sdk.models import prometheus as pm

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

DS_REF = dm.DataSourceRef(type_val=DS_TYPE, uid=DS_UID)
PROM_REF = dm.DataSourceRef(type_val="prometheus", uid=PROM_UID)


def to_json(b: cogbuilder.Builder) -> dict:
    """What Grafana reads: the built object as plain JSON types."""
    return json.loads(json.dumps(b.build(), cls=JSONEncoder, ensure_ascii=False))


class SqlQuery(cogvariants.Dataquery):
    """A raw-SQL query of the PostgreSQL data source (the SDK has no typed one)."""

    def __init__(self, sql: str, fmt: str, ref: str) -> None:
        self.sql, self.fmt, self.ref = sql, fmt, ref

    def to_json(self) -> dict[str, Any]:
        return {"refId": self.ref, "datasource": DS, "format": self.fmt, "rawQuery": True, "editorMode": "code",
                "rawSql": self.sql}


class Sql(cogbuilder.Builder[cogvariants.Dataquery]):
    def __init__(self, sql: str, fmt: str = "table", ref: str = "A") -> None:
        self._q = SqlQuery(sql, fmt, ref)

    def build(self) -> SqlQuery:
        return self._q


def org_variable() -> board.QueryVariable:
    return (board.QueryVariable("org").label("Организация").datasource(DS_REF).multi(True).include_all(True)
            .current(dm.VariableOption(text=["All"], value=["$__all"], selected=True))
            .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .query("SELECT code AS __value, name AS __text FROM organisations UNION ALL "
                   "SELECT '-' AS __value, 'Без организации' AS __text"))


ORG_VARIABLE = to_json(org_variable())


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


def _thresholds() -> board.ThresholdsConfig:
    colors = dict(MAP_BUCKETS)
    steps = [dm.Threshold(value=None, color=colors["30min"])]
    for code, rank in sorted(RANKS.items(), key=lambda kv: kv[1]):
        if rank > 1:
            steps.append(dm.Threshold(value=rank, color=colors[code]))
    return board.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(steps)


def _red_from(value: int) -> board.ThresholdsConfig:
    return board.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
        [dm.Threshold(value=None, color="green"), dm.Threshold(value=value, color="red")])


_PANELS = {"stat": stat.Panel, "timeseries": timeseries.Panel, "barchart": barchart.Panel,
           "bargauge": bargauge.Panel, "table": table.Panel, "geomap": geomap.Panel}


def sql_panel(builder: Any, pid: int, title: str, sql: str, grid: tuple[int, int, int, int],
              fmt: str = "table") -> Any:
    """A panel builder of any kind with its id, title, place and one SQL query."""
    x, y, w, h = grid
    return (builder.id(pid).title(title).datasource(DS_REF).grid_pos(dm.GridPos(x=x, y=y, w=w, h=h))
            .with_target(Sql(sql, fmt)))


def target(sql: str, fmt: str = "table", ref: str = "A") -> dict:
    return SqlQuery(sql, fmt, ref).to_json()


def panel(pid: int, title: str, kind: str, sql: str, grid: tuple[int, int, int, int], *, fmt: str = "table",
          unit: str | None = None, options: dict | None = None, field_config: dict | None = None) -> dict:
    """A panel as a dict, for callers that still describe options as dicts."""
    p = sql_panel(_PANELS[kind](), pid, title, sql, grid, fmt)
    if unit:
        p.unit(unit)
    out = to_json(p)
    if options:
        out["options"] = {**out.get("options", {}), **options}
    if field_config:
        fc = out.setdefault("fieldConfig", {"defaults": {}, "overrides": []})
        fc["defaults"] = {**fc.get("defaults", {}), **field_config}
    return out


class _Panel(cogbuilder.Builder[dm.Panel]):
    def __init__(self, d: dict) -> None:
        self._p = dm.Panel.from_json(d)

    def build(self) -> dm.Panel:
        return self._p


def board_builder(uid: str, title: str, time_from: str = "now-7d", tags: tuple[str, ...] = ()) -> board.Dashboard:
    """A dashboard builder with the `$org` variable; add panels with `.with_panel`."""
    return (board.Dashboard(title).uid(uid).tags(["askue", *tags]).timezone("browser").editable()
            .refresh("1m").time(time_from, "now").with_variable(org_variable()))


def dashboard(uid: str, title: str, panels: list, time_from: str = "now-7d", tags: tuple[str, ...] = ()) -> dict:
    """A dashboard from panel builders or panel dicts."""
    b = board_builder(uid, title, time_from, tags)
    for p in panels:
        b.with_panel(_Panel(p) if isinstance(p, dict) else p)
    return to_json(b)


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


def _bars(p: timeseries.Panel, stacked: bool = False) -> timeseries.Panel:
    p = p.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80)
    return p.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL)) if stacked else p


def _horizontal(p: Any) -> Any:
    return p.orientation(cm.VizOrientation.HORIZONTAL)


def fleet_overview() -> dict:
    rank = contact_rank_sql()
    b = board_builder("askue-fleet", "АСКУЭ: обзор парка приборов", tags=("fleet",))
    b.with_panel(sql_panel(stat.Panel(), 1, "Приборов учёта в работе",
                           f"SELECT count(*) AS \"Приборов\" FROM meters m {ORG_JOIN} WHERE m.status = 'active' "
                           f"AND {ORG_COND}", (0, 0, 6, 4)))
    b.with_panel(sql_panel(stat.Panel(), 2, "На связи за сутки",
                           f"SELECT count(*) FILTER (WHERE m.last_contact > now() - interval '1 day') AS \"На связи\" "
                           f"FROM meters m {ORG_JOIN} WHERE m.status = 'active' AND {ORG_COND}", (6, 0, 6, 4)))
    b.with_panel(sql_panel(stat.Panel(), 3, "Открытые нештатные ситуации",
                           f"SELECT count(*) AS \"Открыто\" FROM abnormal_events e LEFT JOIN organisations o "
                           f"ON o.id = e.org_id WHERE e.state <> 'resolved' AND {ORG_COND}", (12, 0, 6, 4)))
    b.with_panel(sql_panel(stat.Panel(), 4, "Шлюзы на связи",
                           "SELECT count(*) FILTER (WHERE g.online) AS \"На связи\", count(*) AS \"Всего\" "
                           "FROM gateways g LEFT JOIN organisations o ON o.id = g.org_id WHERE " + ORG_COND,
                           (18, 0, 6, 4)))
    b.with_panel(_horizontal(sql_panel(
        barchart.Panel(), 5, "Приборы по времени последней связи",
        f"SELECT {contact_label_sql()} AS \"Связь\", count(*) AS \"Приборов\" FROM meters m {ORG_JOIN} "
        f"WHERE m.status <> 'decommissioned' AND {ORG_COND} GROUP BY {rank}, 1 ORDER BY {rank}",
        (0, 4, 12, 9)).x_field("Связь")))
    b.with_panel(sql_panel(timeseries.Panel(), 6, "Получено показаний в час",
                           f"SELECT $__timeGroupAlias(r.received_at, '1h'), count(*) AS \"Показаний\" "
                           f"FROM register_readings r JOIN meters m ON m.id = r.meter_id {ORG_JOIN} "
                           f"WHERE $__timeFilter(r.received_at) AND {ORG_COND} GROUP BY 1 ORDER BY 1",
                           (12, 4, 12, 9), "time_series"))
    b.with_panel(sql_panel(table.Panel(), 7, "Нет связи более суток",
                           f"SELECT m.code AS \"Счётчик\", m.serial AS \"Заводской №\", s.address AS \"Адрес\", "
                           f"m.gateway_id AS \"Шлюз\", m.last_contact AS \"Последняя связь\", "
                           f"{contact_label_sql()} AS \"Связь\" FROM meters m LEFT JOIN sites s ON s.id = m.site_id "
                           f"{ORG_JOIN} WHERE m.status = 'active' AND (m.last_contact IS NULL OR m.last_contact < "
                           f"now() - interval '1 day') AND {ORG_COND} ORDER BY m.last_contact NULLS FIRST LIMIT 500",
                           (0, 13, 24, 10)))
    return to_json(b)


def consumption() -> dict:
    electricity = "m.resource = 'electricity' AND {} AND d.obis = '1.0.1.8.0.255'"
    b = board_builder("askue-consumption", "АСКУЭ: расход ресурсов", "now-30d", ("consumption",))
    b.with_panel(_bars(sql_panel(timeseries.Panel(), 1, "Электроэнергия по дням (ИПУ, общий тариф), кВт·ч",
                                 _daily_consumption(electricity.format("NOT m.is_balance")), (0, 0, 12, 9),
                                 "time_series").unit("kwatth")))
    b.with_panel(_bars(sql_panel(timeseries.Panel(), 2, "Электроэнергия ОДПУ по дням, кВт·ч",
                                 _daily_consumption(electricity.format("m.is_balance")), (12, 0, 12, 9),
                                 "time_series").unit("kwatth")))
    b.with_panel(sql_panel(timeseries.Panel(), 3, "Вода по дням, м³",
                           _daily_consumption("m.resource IN ('cold_water', 'hot_water') AND d.obis IN "
                                              "('8.0.1.0.0.255', '9.0.1.0.0.255')",
                                              ", CASE m.resource WHEN 'cold_water' THEN 'ХВС' ELSE 'ГВС' END "
                                              "AS metric", ", 2"),
                           (0, 9, 12, 9), "time_series").unit("m3"))
    b.with_panel(sql_panel(
        table.Panel(), 4, "Итоги за период по ресурсам и тарифам",
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
        ") x GROUP BY 1, 2, 3, x.zone ORDER BY 1, 2, x.zone", (12, 9, 12, 9)))
    b.with_panel(sql_panel(
        table.Panel(), 5, "Лицевые счета с наибольшим расходом электроэнергии",
        "SELECT a.code AS \"ЛС\", a.subscriber AS \"Абонент\", s.address AS \"Адрес\", "
        "round(sum((d.last_value - d.prev) * m.multiplier)::numeric, 3) AS \"кВт·ч\" FROM ("
        " SELECT meter_id, obis, day, last_value, lag(last_value) OVER (PARTITION BY meter_id, obis ORDER BY day)"
        " AS prev FROM rollup_register_daily WHERE obis = '1.0.1.8.0.255'"
        f" AND day >= ($__timeFrom() AT TIME ZONE {TZ})::date - 1 AND day <= ($__timeTo() AT TIME ZONE {TZ})::date"
        f") d JOIN meters m ON m.id = d.meter_id JOIN accounts a ON a.id = m.account_id "
        f"LEFT JOIN sites s ON s.id = a.site_id {ORG_JOIN} "
        f"WHERE d.prev IS NOT NULL AND d.last_value >= d.prev AND {ORG_COND} "
        f"AND d.day >= ($__timeFrom() AT TIME ZONE {TZ})::date "
        "GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 20", (0, 18, 24, 9)))
    return to_json(b)


def gateway_health() -> dict:
    gw_org = "LEFT JOIN organisations o ON o.id = g.org_id"
    b = board_builder("askue-gateways", "АСКУЭ: состояние шлюзов", tags=("gateways",))
    b.with_panel(sql_panel(stat.Panel(), 1, "Шлюзы без связи",
                           f"SELECT count(*) FILTER (WHERE NOT g.online) AS \"Нет связи\" FROM gateways g {gw_org} "
                           f"WHERE {ORG_COND}", (0, 0, 6, 4)).thresholds(_red_from(1)))
    b.with_panel(sql_panel(stat.Panel(), 2, "Неотправленные данные в очередях",
                           f"SELECT coalesce(sum(g.queue_depth), 0) AS \"В очередях\" FROM gateways g {gw_org} "
                           f"WHERE {ORG_COND}", (6, 0, 6, 4)))
    b.with_panel(_horizontal(sql_panel(bargauge.Panel(), 3, "Очередь по шлюзам",
                                       f"SELECT g.id AS \"Шлюз\", coalesce(g.queue_depth, 0) AS \"Очередь\" "
                                       f"FROM gateways g {gw_org} WHERE {ORG_COND} ORDER BY 2 DESC", (12, 0, 12, 8))))
    b.with_panel(sql_panel(table.Panel(), 4, "Шлюзы",
                           "SELECT g.id AS \"Шлюз\", g.name AS \"Название\", CASE WHEN g.online THEN 'на связи' "
                           "ELSE 'нет связи' END AS \"Состояние\", g.version AS \"Версия\", g.meters AS \"Приборов\", "
                           "g.queue_depth AS \"Очередь\", g.oldest_unsent_s AS \"Старейшее неотправленное, с\", "
                           f"g.last_seen AS \"Последняя связь\" FROM gateways g {gw_org} WHERE {ORG_COND} "
                           "ORDER BY g.online, g.id", (0, 8, 24, 8)))
    b.with_panel(sql_panel(timeseries.Panel(), 5, "Получено показаний по шлюзам",
                           "SELECT $__timeGroupAlias(r.received_at, '1h'), r.gateway_id AS metric, "
                           f"count(*) AS \"Показаний\" FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                           f"{ORG_JOIN} WHERE $__timeFilter(r.received_at) AND r.gateway_id IS NOT NULL AND "
                           f"{ORG_COND} GROUP BY 1, 2 ORDER BY 1", (0, 16, 24, 9), "time_series"))
    return to_json(b)


def abnormal_events() -> dict:
    ev_org = "LEFT JOIN organisations o ON o.id = e.org_id"
    b = board_builder("askue-events", "АСКУЭ: нештатные ситуации", "now-30d", ("events",))
    b.with_panel(sql_panel(stat.Panel(), 1, "Открыто",
                           f"SELECT count(*) AS \"Открыто\" FROM abnormal_events e {ev_org} "
                           f"WHERE e.state <> 'resolved' AND {ORG_COND}", (0, 0, 6, 4)))
    b.with_panel(sql_panel(stat.Panel(), 2, "Критичных открыто",
                           f"SELECT count(*) AS \"Критично\" FROM abnormal_events e {ev_org} WHERE e.state <> "
                           f"'resolved' AND e.severity = 'critical' AND {ORG_COND}", (6, 0, 6, 4))
                 .color_scheme(board.FieldColor().mode(dm.FieldColorModeId.FIXED).fixed_color("red")))
    b.with_panel(_horizontal(sql_panel(barchart.Panel(), 3, "Открытые по видам",
                                       f"SELECT coalesce(e.title, e.kind) AS \"Вид\", count(*) AS \"Открыто\" "
                                       f"FROM abnormal_events e {ev_org} WHERE e.state <> 'resolved' AND {ORG_COND} "
                                       "GROUP BY 1 ORDER BY 2 DESC", (12, 0, 12, 8)).x_field("Вид")))
    b.with_panel(_bars(sql_panel(timeseries.Panel(), 4, "Зафиксировано по дням",
                                 "SELECT $__timeGroupAlias(e.raised_at, '1d'), e.severity AS metric, "
                                 f"count(*) AS \"Событий\" FROM abnormal_events e {ev_org} "
                                 f"WHERE $__timeFilter(e.raised_at) AND {ORG_COND} GROUP BY 1, 2 ORDER BY 1",
                                 (0, 4, 12, 8), "time_series"), stacked=True))
    b.with_panel(sql_panel(table.Panel(), 5, "Открытые нештатные ситуации",
                           "SELECT e.id AS \"№\", coalesce(e.ts, e.raised_at) AS \"Время\", "
                           "coalesce(e.title, e.kind) AS \"Вид\", e.severity AS \"Важность\", m.code AS \"Счётчик\", "
                           "a.code AS \"ЛС\", s.address AS \"Адрес\", e.state AS \"Состояние\" FROM abnormal_events e "
                           "LEFT JOIN meters m ON m.id = e.meter_id "
                           "LEFT JOIN accounts a ON a.id = coalesce(e.account_id, m.account_id) "
                           f"LEFT JOIN sites s ON s.id = coalesce(e.site_id, m.site_id) {ev_org} "
                           f"WHERE e.state <> 'resolved' AND {ORG_COND} ORDER BY e.id DESC LIMIT 500",
                           (0, 12, 24, 10)))
    return to_json(b)


def meters_map() -> dict:
    markers = (common.MapLayerOptions().type("markers").name("Приборы учёта").tooltip(True)
               .location(common.FrameGeometrySource().mode(cm.FrameGeometrySourceMode.COORDS)
                         .latitude("latitude").longitude("longitude"))
               .config({"showLegend": True, "style": {
                   "size": {"fixed": 7}, "opacity": 0.9,
                   "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                   "color": {"field": "contact_rank"}}}))
    geo = (sql_panel(geomap.Panel(), 1, "Приборы учёта по времени последней связи",
                     f"SELECT m.code AS \"Счётчик\", coalesce(m.lat, s.lat) AS latitude, coalesce(m.lon, s.lon) "
                     f"AS longitude, {contact_rank_sql()} AS contact_rank, {contact_label_sql()} AS \"Связь\", "
                     f"m.last_contact AS \"Последняя связь\", s.address AS \"Адрес\" "
                     f"FROM meters m LEFT JOIN sites s ON s.id = m.site_id {ORG_JOIN} "
                     f"WHERE m.status <> 'decommissioned' AND coalesce(m.lat, s.lat) IS NOT NULL "
                     f"AND coalesce(m.lon, s.lon) IS NOT NULL AND {ORG_COND}", (0, 0, 18, 18))
           .view(geomap.MapViewConfig().id("fit").all_layers(True))
           .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_attribution(True))
           .basemap(common.MapLayerOptions().type("default").name("Basemap"))
           .layers([markers])
           .tooltip(geomap.TooltipOptions().mode(gm.TooltipMode.DETAILS))
           .color_scheme(board.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS)).thresholds(_thresholds()))
    b = board_builder("askue-map", "АСКУЭ: карта приборов учёта по связи", tags=("map",))
    b.with_panel(geo)
    b.with_panel(sql_panel(stat.Panel(), 2, "Без координат",
                           f"SELECT count(*) AS \"Без координат\" FROM meters m LEFT JOIN sites s ON s.id = m.site_id "
                           f"{ORG_JOIN} WHERE m.status <> 'decommissioned' AND (coalesce(m.lat, s.lat) IS NULL OR "
                           f"coalesce(m.lon, s.lon) IS NULL) AND {ORG_COND}", (18, 0, 6, 4)))
    b.with_panel(sql_panel(table.Panel(), 3, "Легенда",
                           f"SELECT {contact_rank_sql()} AS contact_rank, {contact_label_sql()} AS \"Связь\", "
                           f"count(*) AS \"Приборов\" FROM meters m {ORG_JOIN} WHERE m.status <> 'decommissioned' "
                           f"AND {ORG_COND} GROUP BY 1, 2 ORDER BY 1", (18, 4, 6, 14))
                 .color_scheme(board.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS)).thresholds(_thresholds()))
    return to_json(b)


ALL = (fleet_overview, consumption, gateway_health, abnormal_events, meters_map)


def build_all() -> list[dict]:
    return [f() for f in ALL]


# ---- the head-end's own health, from Prometheus ----------------------------------------------
SEL = '{instance=~"$instance"}'


def instance_variable() -> board.QueryVariable:
    return (board.QueryVariable("instance").label("Процесс").datasource(PROM_REF).multi(True).include_all(True)
            .current(dm.VariableOption(text=["All"], value=["$__all"], selected=True))
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_ASC)
            .query({"query": "label_values(askue_headend_ingest_batches_total, instance)", "refId": "instance"}))


INSTANCE_VARIABLE = to_json(instance_variable())


def prom_panel(builder: Any, pid: int, title: str, exprs: list[tuple[str, str]], grid: tuple[int, int, int, int],
               unit: str | None = None) -> Any:
    """A panel builder with PromQL targets: (expression, legend) each."""
    x, y, w, h = grid
    p = builder.id(pid).title(title).datasource(PROM_REF).grid_pos(dm.GridPos(x=x, y=y, w=w, h=h))
    for i, (expr, legend) in enumerate(exprs):
        p.with_target(prometheus.Dataquery().ref_id(chr(ord("A") + i)).datasource(PROM_REF).expr(expr)
                      .legend_format(legend).editor_mode(pm.QueryEditorMode.CODE).range())
    return p.unit(unit) if unit else p


def _quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    return [(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{SEL}[5m])))",
             (f"p{int(q * 100)}" + (f" {{{{{by}}}}}" if by else ""))) for q in (0.5, 0.95, 0.99)]


def headend_health() -> dict:
    b = (board.Dashboard("АСКУЭ: состояние головной системы").uid("askue-headend-health")
         .tags(["askue", "health"]).timezone("browser").editable().refresh("30s").time("now-6h", "now")
         .with_variable(instance_variable()))
    for p in (
        prom_panel(stat.Panel(), 1, "Принято значений, в секунду",
                   [(f"sum(rate(askue_headend_ingest_values_total{SEL}[5m]))", "значений/с")], (0, 0, 6, 4),
                   unit="short"),
        prom_panel(stat.Panel(), 2, "Неразобранные сообщения (dead letters) за час",
                   [(f"sum(increase(askue_headend_dead_letters_total{SEL}[1h]))", "за час")], (6, 0, 6, 4))
        .thresholds(_red_from(1)),
        prom_panel(stat.Panel(), 3, "Сбои обработчиков после записи за час",
                   [(f"sum(increase(askue_headend_hook_failures_total{SEL}[1h]))", "за час")], (12, 0, 6, 4))
        .thresholds(_red_from(1)),
        prom_panel(stat.Panel(), 4, "Ждут записи в БД",
                   [(f"sum(askue_headend_ingest_queue_depth{SEL})", "сообщений"),
                    (f"sum(askue_headend_ingest_batches_in_flight{SEL})", "пакетов пишется")], (18, 0, 6, 4)),
        prom_panel(timeseries.Panel(), 5, "Приём: сообщения и значения, в секунду",
                   [(f"sum by (kind) (rate(askue_headend_ingest_messages_total{SEL}[5m]))", "сообщения {{kind}}"),
                    (f"sum(rate(askue_headend_ingest_values_total{SEL}[5m]))", "значения"),
                    (f"sum(rate(askue_headend_ingest_batches_total{SEL}[5m]))", "пакеты")], (0, 4, 12, 8),
                   unit="short"),
        prom_panel(timeseries.Panel(), 6, "Записано новых значений по источникам, в секунду",
                   [(f"sum by (source) (rate(askue_headend_values_stored_total{SEL}[5m]))", "{{source}}")],
                   (12, 4, 12, 8), unit="short"),
        prom_panel(timeseries.Panel(), 7, "Запись пакета до COMMIT", _quantiles("askue_headend_ingest_commit_seconds"),
                   (0, 12, 12, 8), unit="s"),
        prom_panel(timeseries.Panel(), 8, "Время обработчиков после записи (VEE…), среднее",
                   [(f"sum by (hook) (rate(askue_headend_hook_seconds_sum{SEL}[5m])) / "
                     f"sum by (hook) (rate(askue_headend_hook_seconds_count{SEL}[5m]))", "{{hook}}")],
                   (12, 12, 12, 8), unit="s"),
        prom_panel(timeseries.Panel(), 9, "Соединения с БД",
                   [(f"sum by (pool) (askue_headend_db_pool_connections{SEL})", "открыто {{pool}}"),
                    (f"sum by (pool) (askue_headend_db_pool_idle{SEL})", "свободно {{pool}}"),
                    (f"sum by (pool) (askue_headend_db_pool_waiting{SEL})", "ждут {{pool}}"),
                    (f"max by (pool) (askue_headend_db_pool_max{SEL})", "предел {{pool}}")], (0, 20, 12, 8)),
        prom_panel(timeseries.Panel(), 10, "API и страницы: 95-й процентиль по маршрутам",
                   [(f"histogram_quantile(0.95, sum by (le, route) "
                     f"(rate(askue_headend_http_request_seconds_bucket{SEL}[5m])))", "{{route}}")],
                   (12, 20, 12, 8), unit="s"),
        prom_panel(timeseries.Panel(), 11, "Ответы с ошибкой сервера (5xx), в секунду",
                   [('sum by (route) (rate(askue_headend_http_request_seconds_count{instance=~"$instance",'
                     'status=~"5.."}[5m]))', "{{route}}")], (0, 28, 24, 7), unit="short"),
    ):
        b.with_panel(p)
    return to_json(b)


def build_system() -> list[dict]:
    return [headend_health()]

"""Grafana: every panel's SQL of every dashboard runs against the real schema filled
with demo-like data and returns rows; the provisioning files in grafana/ are the
builders' output; the push CLI gives clear errors; a live push runs when a Grafana
is given (ASKUE_TEST_GRAFANA_URL + ASKUE_TEST_GRAFANA_TOKEN)."""
from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from test_grafana_reports import add_report_rows
from test_web_fixtures import build

from askue.cli import main as cli_main
from askue.headend.grafana import check, dashboards, macros, provisioning

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo(pg_dsn: str, tmp_path: Path) -> str:
    build(pg_dsn, tmp_path)
    add_report_rows(pg_dsn)  # the reports' dashboard needs refusals, a bare account, a verification due
    return pg_dsn


def test_every_panel_returns_rows_on_demo_data(demo: str, storage_mode: str) -> None:
    """As Grafana sends them, with the data source's TimescaleDB switch as `push` sets it,
    and (on TimescaleDB) also with it off."""
    n_panels = sum(len(d["panels"]) for d in provisioning.folder_dashboards())
    for ts in ((None, False) if storage_mode == "timescale" else (None,)):
        results = check.run(demo, timescaledb=ts)
        assert len(results) == n_panels >= 20
        bad = [(r.dashboard, r.panel, r.rows, r.error) for r in results if not r.ok]
        assert bad == []


def test_panels_filter_by_organisation(demo: str) -> None:
    """$org limits the figures: the south organisation alone has fewer meters than all."""
    d = dashboards.fleet_overview()
    sql = next(p for p in d["panels"] if p["id"] == 1)["targets"][0]["rawSql"]
    now = datetime.now(UTC)
    with psycopg.connect(demo) as c:
        every = c.execute(macros.expand(sql, now - timedelta(days=7), now,
                                        check.variable_values(c, d))).fetchone()[0]
        south = c.execute(macros.expand(sql, now - timedelta(days=7), now, {"org": ["uk2"]})).fetchone()[0]
    assert (every, south) == (11, 2)  # 12 meters, e4 decommissioned


def test_geomap_colours_follow_the_web_map_buckets(demo: str) -> None:
    from test_web_fixtures import EXPECTED_BUCKET

    d = dashboards.meters_map()
    geo = d["panels"][0]
    assert geo["type"] == "geomap"
    layer = geo["options"]["layers"][0]
    assert layer["location"] == {"mode": "coords", "latitude": "latitude", "longitude": "longitude"}
    steps = geo["fieldConfig"]["defaults"]["thresholds"]["steps"]
    colour_of_rank = {}
    for s in steps:  # thresholds: a value ≥ step.value takes the step's colour
        colour_of_rank.update({r: s["color"] for r in range(s["value"] or 0, 9)})
    now = datetime.now(UTC)
    with psycopg.connect(demo) as c:
        rows = c.execute(macros.expand(geo["targets"][0]["rawSql"], now - timedelta(days=7), now,
                                       check.variable_values(c, d))).fetchall()
    from askue.headend.web.queries import BUCKET_COLOR

    got = {r[0]: colour_of_rank[r[3]] for r in rows}
    assert got == {code: BUCKET_COLOR[b] for code, b in EXPECTED_BUCKET.items()}


def test_committed_provisioning_files_are_the_builders_output() -> None:
    for rel, text in provisioning.render_files().items():
        path = REPO / "grafana" / rel
        assert path.read_text(encoding="utf-8") == text, f"{rel} is stale: run `askue grafana build`"
    for path in (REPO / "grafana" / "dashboards").glob("*.json"):
        d = json.loads(path.read_text(encoding="utf-8"))
        assert d["templating"]["list"][0]["name"] == "org"
        assert all(t["datasource"]["uid"] == dashboards.DS_UID for p in d["panels"] for t in p["targets"])


def test_macro_expansion_and_unknown_macros() -> None:
    # Changed with the expander's move to Grafana's own output (see the test below): the
    # time filter's bounds are plain RFC 3339 literals, time groups are epoch seconds.
    s, e = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    out = macros.expand("SELECT $__timeGroupAlias(ts, '1h'), 1 WHERE $__timeFilter(ts) AND o IN ($org)", s, e,
                        {"org": ["a", "o'b"]})
    assert "ts BETWEEN '2026-03-01T00:00:00Z' AND '2026-03-02T00:00:00Z'" in out
    assert 'floor(extract(epoch from ts)/3600)*3600 AS "time"' in out and "IN ('a','o''b')" in out
    with pytest.raises(macros.MacroError, match="unsupported Grafana macro"):
        macros.expand("SELECT $__unixEpochFilter(ts)", s, e)
    with pytest.raises(macros.MacroError, match="no value"):
        macros.expand("SELECT 1 WHERE x IN ($house)", s, e, {})


def test_macros_follow_grafanas_documented_semantics(pg_dsn: str) -> None:
    """The expander against what Grafana documents and does for a PostgreSQL data source.

    Sources (Grafana's repository, grafana/grafana):
    - docs/sources/datasources/postgres/query-editor/_index.md, "Macros" (https://grafana.com/docs/
      grafana/latest/datasources/postgres/query-editor/#macros): `$__timeFilter(dateColumn)` is a
      time range filter on the column, `$__timeFrom()`/`$__timeTo()` the start/end of the selection,
      `$__timeGroup(dateColumn,'5m'[, fill])` an expression for GROUP BY (the fill only tells
      Grafana how to fill missing points), `$__timeGroupAlias` the same "with an added column alias";
      "Using Variables in Queries": values are quoted only for a multi-value variable, which is
      "formatted as a quoted, comma-separated string" ('server01','server02'); `${servers:csv}`
      removes the quotes.
    - docs/sources/dashboards/variables/variable-syntax/index.md (https://grafana.com/docs/grafana/
      latest/dashboards/variables/variable-syntax/): `$var`, `${var}`, `${var:format}`, the
      deprecated `[[var]]`; sqlstring escapes ' as '' and quotes each value; csv and raw join
      with commas.
    - pkg/tsdb/grafana-postgresql-datasource/macros.go, the macro engine itself: the filter is
      `col BETWEEN '<from>' AND '<to>'` with both bounds in UTC as RFC 3339 (fraction trimmed),
      the group `floor(extract(epoch from col)/300)*300`, or `time_bucket('300.000s',col)` when
      the data source has TimescaleDB on; the alias appends ` AS "time"`; `$__timeGroup` directly
      followed by a comma is read as the alias form; any other `$name(...)` is an unknown macro.
    """
    from zoneinfo import ZoneInfo

    s = datetime(2026, 3, 1, 3, 0, 0, 250000, tzinfo=ZoneInfo("Europe/Moscow"))  # 00:00:00.25 UTC
    e = datetime(2026, 3, 2, tzinfo=UTC)
    x = macros.expand
    assert x("$__timeFilter(r.ts)", s, e) == "r.ts BETWEEN '2026-03-01T00:00:00.25Z' AND '2026-03-02T00:00:00Z'"
    assert x("$__timeFrom()|$__timeTo()", s, e) == "'2026-03-01T00:00:00.25Z'|'2026-03-02T00:00:00Z'"
    assert x("$__timeGroup(ts, '5m')", s, e) == "floor(extract(epoch from ts)/300)*300"
    assert x("$__timeGroup(ts,'5m', 0)", s, e) == "floor(extract(epoch from ts)/300)*300"
    assert x("$__timeGroup(ts,'1d', previous)", s, e) == "floor(extract(epoch from ts)/86400)*86400"
    assert x("$__timeGroupAlias(ts,'5m')", s, e) == 'floor(extract(epoch from ts)/300)*300 AS "time"'
    assert x("SELECT $__timeGroup(ts,'1h'), v", s, e) == 'SELECT floor(extract(epoch from ts)/3600)*3600 AS "time", v'
    assert x("$__timeGroupAlias(ts, '1h')", s, e, timescaledb=True) == "time_bucket('3600.000s',ts) AS \"time\""
    with pytest.raises(macros.MacroError, match="fill"):
        x("$__timeGroup(ts, '5m', sideways)", s, e)
    with pytest.raises(macros.MacroError, match="unsupported Grafana macro"):
        x("$__timeEpoch(ts)", s, e)  # Grafana has it; our dashboards may not use it
    # template variables: multi-value quoted and escaped, single-value as it is, formats
    v = {"org": ["uk1", "o'k"], "house": "h1"}
    assert x("o IN ($org)", s, e, v) == "o IN ('uk1','o''k')"
    assert x("o IN (${org})", s, e, v) == x("o IN ([[org]])", s, e, v) == "o IN ('uk1','o''k')"
    assert x("'${org:csv}'", s, e, v) == "'uk1,o'k'" and x("${org:raw}", s, e, v) == "uk1,o'k"
    assert x("${org:sqlstring}", s, e, {"org": ["test'1", "test2"]}) == "'test''1','test2'"
    assert x("h = '$house' AND h IN (${house:sqlstring})", s, e, v) == "h = 'h1' AND h IN ('h1')"
    with pytest.raises(macros.MacroError, match="format"):
        x("${org:lucene}", s, e, v)
    # PostgreSQL reads the literals as Grafana sends them: the filter keeps exactly the range
    with psycopg.connect(pg_dsn) as c:
        sql = x("SELECT count(*) FROM generate_series('2026-02-28T00:00:00Z'::timestamptz, "
                "'2026-03-03T00:00:00Z', interval '1 hour') AS g(ts) WHERE $__timeFilter(g.ts)", s, e)
        assert c.execute(sql).fetchone()[0] == 24  # 01:00 … 24:00 UTC (00:00 is before 00:00:00.25)
        grouped = x("SELECT $__timeGroupAlias(g.ts, '1d'), count(*) FROM generate_series("
                    "$__timeFrom()::timestamptz, $__timeTo(), interval '6 hours') AS g(ts) GROUP BY 1 ORDER BY 1",
                    s, datetime(2026, 3, 2, 12, tzinfo=UTC))
        rows = c.execute(grouped).fetchall()  # every 6 h from 00:00:00.25 to 12:00 UTC: 4 on the 1st, 2 on the 2nd
        assert [(float(t), n) for t, n in rows] == [(datetime(2026, 3, 1, tzinfo=UTC).timestamp(), 4),
                                                     (datetime(2026, 3, 2, tzinfo=UTC).timestamp(), 2)]


def test_datasource_payload_from_dsn() -> None:
    p = provisioning.datasource_payload("postgresql://grafana:s3cret@db.local:5433/askue?sslmode=require")
    assert p["url"] == "db.local:5433" and p["user"] == "grafana" and p["uid"] == dashboards.DS_UID
    assert p["jsonData"]["database"] == "askue" and p["jsonData"]["sslmode"] == "require"
    assert p["secureJsonData"] == {"password": "s3cret"}
    with pytest.raises(ValueError, match="dbname and user"):
        provisioning.datasource_payload("host=db")


def test_cli_check_and_usage_errors(demo: str, capsys) -> None:
    assert cli_main(["grafana", "check", "--dsn", demo]) == 0
    out = capsys.readouterr().out
    assert out.count("\nok ") + out.startswith("ok ") == sum(len(d["panels"]) for d in provisioning.folder_dashboards())
    assert cli_main(["grafana", "push", "--url", "http://127.0.0.1:1", "--token", ""]) == 2
    assert cli_main(["grafana"]) == 2


def test_push_to_an_unreachable_grafana_fails_clearly(capsys) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = cli_main(["grafana", "push", "--url", f"http://127.0.0.1:{port}", "--token", "x"])
    err = capsys.readouterr().err
    assert rc == 1 and "health step" in err and f"127.0.0.1:{port}" in err


@pytest.mark.skipif(not os.environ.get("ASKUE_TEST_GRAFANA_URL"),
                    reason="no Grafana here: set ASKUE_TEST_GRAFANA_URL and ASKUE_TEST_GRAFANA_TOKEN to push to one")
def test_live_push(pg_dsn: str) -> None:
    from grafana_client import GrafanaApi

    from askue.headend.grafana.push import push

    url, token = os.environ["ASKUE_TEST_GRAFANA_URL"], os.environ["ASKUE_TEST_GRAFANA_TOKEN"]
    res = push(url, token, provisioning.datasource_payload(pg_dsn))
    assert res.dashboards == [d["uid"] for d in provisioning.folder_dashboards()]
    api = GrafanaApi.from_url(url, credential=token)
    for uid in res.dashboards:
        assert api.dashboard.get_dashboard(uid)["dashboard"]["uid"] == uid


def test_headend_health_dashboard_reads_what_the_headend_exports() -> None:
    """Every metric the health dashboard's PromQL names is in the head-end's /metrics
    exposition (prometheus_client's own text, as Prometheus would scrape it)."""
    from askue.headend import metrics

    (health,) = dashboards.build_system()
    assert health["uid"] == "askue-headend-health" and len(health["panels"]) >= 10
    assert all(t["datasource"]["uid"] == dashboards.PROM_UID for p in health["panels"] for t in p["targets"])
    body, _ = metrics.exposition()
    results = check.metric_panels(body.decode())
    assert len(results) == len(health["panels"])
    assert [(r.panel, r.error) for r in results if not r.ok] == []
    read = {m for p in health["panels"] for t in p["targets"] for m in check.METRIC_NAME.findall(t["expr"])}
    for wanted in ("askue_headend_ingest_commit_seconds_bucket", "askue_headend_dead_letters_total",
                   "askue_headend_hook_seconds_sum", "askue_headend_ingest_queue_depth",
                   "askue_headend_db_pool_connections", "askue_headend_http_request_seconds_bucket",
                   "askue_headend_ingest_values_total", "askue_headend_ingest_messages_total"):
        assert wanted in read, wanted
    broken = dashboards.headend_health()
    broken["panels"][0]["targets"][0]["expr"] = "rate(askue_headend_no_such_metric_total[5m])"
    assert not check.metric_panels(body.decode(), [broken])[0].ok  # the check can fail


def test_system_dashboards_and_prometheus_datasource_are_provisioned() -> None:
    files = provisioning.render_files()
    assert "uid: askue-prometheus" in files["provisioning/datasources/askue.yaml"]
    assert "type: prometheus" in files["provisioning/datasources/askue.yaml"]
    assert provisioning.SYSTEM_DASHBOARDS_IN_CONTAINER in files["provisioning/dashboards/askue.yaml"]
    for d in dashboards.build_system():
        path = REPO / "grafana" / "dashboards-system" / f"{d['uid']}.json"
        assert json.loads(path.read_text(encoding="utf-8")) == d
    assert provisioning.prometheus_payload("http://prom:9090")["uid"] == dashboards.PROM_UID
    with pytest.raises(ValueError, match="http"):
        provisioning.prometheus_payload("prom:9090")

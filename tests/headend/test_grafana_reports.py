"""The reports' Grafana dashboard: every panel's SQL, macros expanded as Grafana would, returns
rows on the demo data with a refusal of each kind, an account without a meter and a
verification due; the $org variable keeps one organisation's rows from another's."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from test_web_fixtures import build

from askue.headend.grafana import check, macros, provisioning
from askue.headend.grafana.reports_dashboard import UID, build_reports, reports


def add_report_rows(dsn: str) -> None:
    """What the report panels look for, on top of the demo data: a dead letter from gw1, a
    refused manual reading and a value VEE keeps out of billing of uk1, an account without a
    meter (uk1), a verification overdue (uk1) and one due soon (uk2)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("INSERT INTO dead_letters (topic, gateway_id, payload, reason) VALUES "
                  "('askue/v1/gw1/data', 'gw1', 'x', 'DataMessage: not valid JSON')")
        c.execute("INSERT INTO rejected_readings (source, actor, org_id, meter_id, meter_ref, obis, value, message, "
                  "message_ru) SELECT 'manual', 'uk1adm', org_id, id, code, '1.0.1.8.0.255', 5, 'below', "
                  "'показание 5 меньше предыдущего' FROM meters WHERE code = 'e3'")
        c.execute("UPDATE register_readings SET reasons = '{spike}' WHERE meter_id = (SELECT id FROM meters "
                  "WHERE code = 'e1') AND ts = (SELECT max(ts) FROM register_readings WHERE meter_id = "
                  "(SELECT id FROM meters WHERE code = 'e1'))")
        c.execute("INSERT INTO accounts (code, org_id, site_id, flat, subscriber) SELECT 'LS-10', org_id, id, '12', "
                  "'Новиков Н.Н.' FROM sites WHERE code = 'h1'")
        c.execute("UPDATE meters SET verification_due = (now() AT TIME ZONE 'Europe/Moscow')::date - 3 WHERE code = 'e3'")
        c.execute("UPDATE meters SET verification_due = (now() AT TIME ZONE 'Europe/Moscow')::date + 20 WHERE code = 'hw2'")


@pytest.fixture
def demo(pg_dsn: str, tmp_path: Path) -> str:
    build(pg_dsn, tmp_path)
    add_report_rows(pg_dsn)
    return pg_dsn


def test_every_report_panel_returns_rows_and_is_provisioned(demo: str) -> None:
    (d,) = build_reports()
    assert d["uid"] == UID and len(d["panels"]) == 9
    results = check.run(demo, [d])
    assert [(r.panel, r.rows, r.error) for r in results if not r.ok] == []
    assert d in provisioning.folder_dashboards()
    assert f"dashboards/{UID}.json" in provisioning.render_files()


def _rows(dsn: str, panel_id: int, orgs: list[str]) -> list[tuple]:
    d = reports()
    sql = next(p for p in d["panels"] if p["id"] == panel_id)["targets"][0]["rawSql"]
    now = datetime.now(UTC)
    with psycopg.connect(dsn) as c:
        return c.execute(macros.expand(sql, now - timedelta(days=30), now, {"org": orgs})).fetchall()


def test_panels_keep_to_the_chosen_organisation(demo: str) -> None:
    rejected = _rows(demo, 2, ["uk1"])
    assert {r[1] for r in rejected} == {"шлюзы", "вручную", "VEE"}  # gw1 is uk1's gateway
    assert _rows(demo, 2, ["uk2"]) == [] and _rows(demo, 2, ["-"]) == []
    assert "всплеск потребления" in {r[3] for r in rejected}
    assert [r[0] for r in _rows(demo, 7, ["uk1"])] == ["LS-10"] and _rows(demo, 7, ["uk2"]) == []
    assert [r[0] for r in _rows(demo, 9, ["uk1", "uk2"])] == ["e3", "hw2"]
    assert [r[0] for r in _rows(demo, 9, ["uk2"])] == ["hw2"]
    balance = _rows(demo, 5, ["uk1"])
    assert [(r[0], r[1]) for r in balance] == [("ул. Ленина 1", "Электроэнергия")]
    assert balance[0][2] > balance[0][3] and 80 < balance[0][5] < 95

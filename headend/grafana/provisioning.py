"""Provisioning files for Grafana (datasource + dashboard provider + dashboards
JSON) and the datasource as the HTTP API wants it for `askue grafana push`."""
from __future__ import annotations

import json
from pathlib import Path

from askue.headend.grafana.dashboards import (
    DS_TYPE,
    DS_UID,
    FOLDER_TITLE,
    PROM_UID,
    SYSTEM_FOLDER_TITLE,
    SYSTEM_FOLDER_UID,
    build_all,
    build_system,
)
from askue.headend.grafana.reports_dashboard import build_reports

DEFAULT_OUT = Path(__file__).resolve().parents[1].parent / "grafana"
DASHBOARDS_IN_CONTAINER = "/var/lib/grafana/dashboards/askue"
SYSTEM_DASHBOARDS_IN_CONTAINER = "/var/lib/grafana/dashboards/askue-system"

DATASOURCE_YAML = f"""# Grafana provisioning: the askue head-end database (PostgreSQL or TimescaleDB).
# Values come from the environment of the Grafana process; use a read-only
# database role (docs/operators.md shows how to create one).
apiVersion: 1
datasources:
  - name: askue
    uid: {DS_UID}
    type: {DS_TYPE}
    access: proxy
    url: ${{ASKUE_GRAFANA_PG_HOST}}:${{ASKUE_GRAFANA_PG_PORT}}
    user: ${{ASKUE_GRAFANA_PG_USER}}
    isDefault: true
    jsonData:
      database: ${{ASKUE_GRAFANA_PG_DATABASE}}
      sslmode: ${{ASKUE_GRAFANA_PG_SSLMODE}}
      postgresVersion: 1500
      timescaledb: ${{ASKUE_GRAFANA_TIMESCALEDB}}
      maxOpenConns: 5
    secureJsonData:
      password: ${{ASKUE_GRAFANA_PG_PASSWORD}}
  # the head-end's own health: a Prometheus that scrapes the head-end's /metrics
  - name: askue-prometheus
    uid: {PROM_UID}
    type: prometheus
    access: proxy
    url: ${{ASKUE_GRAFANA_PROMETHEUS_URL}}
    jsonData:
      httpMethod: POST
      timeInterval: 15s
"""

PROVIDER_YAML = f"""# Grafana provisioning: load the askue dashboards from files.
apiVersion: 1
providers:
  - name: askue
    folder: {FOLDER_TITLE}
    folderUid: askue
    type: file
    disableDeletion: false
    allowUiUpdates: false
    options:
      path: {DASHBOARDS_IN_CONTAINER}
  - name: askue-system
    folder: {SYSTEM_FOLDER_TITLE}
    folderUid: {SYSTEM_FOLDER_UID}
    type: file
    disableDeletion: false
    allowUiUpdates: false
    options:
      path: {SYSTEM_DASHBOARDS_IN_CONTAINER}
"""


def folder_dashboards() -> list[dict]:
    """Every dashboard of the «АСКУЭ» folder: the dispatchers' and the reports'."""
    return [*build_all(), *build_reports()]


def render_files() -> dict[str, str]:
    """Relative path → content of every provisioning file."""
    files = {"provisioning/datasources/askue.yaml": DATASOURCE_YAML,
             "provisioning/dashboards/askue.yaml": PROVIDER_YAML}
    for d in folder_dashboards():
        files[f"dashboards/{d['uid']}.json"] = json.dumps(d, ensure_ascii=False, indent=2) + "\n"
    for d in build_system():
        files[f"dashboards-system/{d['uid']}.json"] = json.dumps(d, ensure_ascii=False, indent=2) + "\n"
    return files


def write_files(out: Path = DEFAULT_OUT) -> list[Path]:
    written = []
    for rel, text in render_files().items():
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        written.append(p)
    return written


def prometheus_payload(url: str, name: str = "askue-prometheus") -> dict:
    """The Prometheus datasource (the head-end's health dashboard) for Grafana's HTTP API."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("the Prometheus URL starts with http:// or https://, e.g. http://prometheus:9090")
    return {"name": name, "uid": PROM_UID, "type": "prometheus", "access": "proxy", "url": url,
            "jsonData": {"httpMethod": "POST", "timeInterval": "15s"}}


def datasource_payload(dsn: str, *, timescaledb: bool = False, name: str = "askue") -> dict:
    """The datasource for Grafana's HTTP API from a libpq DSN (password goes to secureJsonData)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(dsn)
    except Exception as e:  # psycopg raises ProgrammingError for a malformed DSN
        raise ValueError(f"database DSN is not valid: {e}") from None
    host, port = info.get("host") or "localhost", info.get("port") or "5432"
    if not info.get("dbname") or not info.get("user"):
        raise ValueError("the DSN needs dbname and user, e.g. postgresql://grafana:secret@db:5432/askue")
    return {"name": name, "uid": DS_UID, "type": DS_TYPE, "access": "proxy", "url": f"{host}:{port}",
            "user": info["user"], "isDefault": True,
            "jsonData": {"database": info["dbname"], "sslmode": info.get("sslmode") or "disable",
                         "postgresVersion": 1500, "timescaledb": timescaledb, "maxOpenConns": 5},
            "secureJsonData": {"password": info.get("password") or ""}}

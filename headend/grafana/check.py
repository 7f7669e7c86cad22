"""Run every panel's SQL of every dashboard against a database, as Grafana would
(macros expanded for the dashboard's own time range, `$org` = every value its
variable query gives), and report the rows each returns. The head-end health
dashboard reads Prometheus instead: `metric_panels` checks that every metric its
PromQL names is in a head-end's /metrics exposition."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from askue.headend.grafana.dashboards import build_system
from askue.headend.grafana.macros import VariableValue, expand
from askue.headend.grafana.provisioning import folder_dashboards
from askue.headend.storage import meta


@dataclass
class PanelResult:
    dashboard: str
    panel: str
    rows: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.rows > 0


def parse_relative(text: str, now: datetime) -> datetime:
    """Grafana's now-7d / now-24h / now."""
    if text == "now":
        return now
    m = re.fullmatch(r"now-(\d+)([mhdw])", text)
    if not m:
        raise ValueError(f"time {text!r}: only now and now-N[m|h|d|w] are supported here")
    return now - int(m.group(1)) * {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
                                    "w": timedelta(weeks=1)}[m.group(2)]


def variable_values(conn: psycopg.Connection, dashboard: dict) -> dict[str, VariableValue]:
    """Each variable at "All": every value its query gives (a multi-value or include-all
    variable, quoted as a list), else its first value (inserted as it is)."""
    out: dict[str, VariableValue] = {}
    for v in dashboard.get("templating", {}).get("list", []):
        rows = [str(r[0]) for r in conn.execute(v["query"]).fetchall()]
        out[v["name"]] = rows if v.get("multi") or v.get("includeAll") else (rows[0] if rows else "")
    return out


def run(dsn: str, dashboards: list[dict] | None = None, now: datetime | None = None,
        timescaledb: bool | None = None) -> list[PanelResult]:
    """`timescaledb`: the data source's TimescaleDB switch (None: on when the database is in
    timescale mode, as `askue grafana push --timescaledb` would set it)."""
    now = now or datetime.now(UTC)
    results = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET statement_timeout = '30s'")
        if timescaledb is None:
            timescaledb = not meta.load_sync(conn).plain
        for d in dashboards or folder_dashboards():
            start, end = parse_relative(d["time"]["from"], now), parse_relative(d["time"]["to"], now)
            variables = variable_values(conn, d)
            for p in d["panels"]:
                for t in p["targets"]:
                    try:
                        sql = expand(t["rawSql"], start, end, variables, timescaledb=timescaledb)
                        rows = conn.execute(sql).fetchall()
                        results.append(PanelResult(d["uid"], p["title"], len(rows)))
                    except (psycopg.Error, ValueError) as e:
                        results.append(PanelResult(d["uid"], p["title"], 0, f"{e.__class__.__name__}: {e}"))
    return results


METRIC_NAME = re.compile(r"\baskue_[a-z0-9_]+")


def metric_panels(exposition: str, dashboards: list[dict] | None = None) -> list[PanelResult]:
    """For each Prometheus panel: how many of the metrics it reads the exposition has
    (`rows`); an error names the ones missing (a renamed metric, a typo)."""
    from prometheus_client.parser import text_string_to_metric_families

    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("_count", "_sum", "_created"), "gauge": ("",)}
    have: set[str] = set()
    for fam in text_string_to_metric_families(exposition):  # a labelled metric not yet used has no samples
        have |= {fam.name + x for x in suffixes.get(fam.type, ("",))} | {s.name for s in fam.samples}
    results = []
    for d in dashboards or build_system():
        for p in d["panels"]:
            names = sorted({m for t in p["targets"] for m in METRIC_NAME.findall(t["expr"])})
            missing = [n for n in names if n not in have]
            results.append(PanelResult(d["uid"], p["title"], len(names) - len(missing),
                                       f"not exported: {', '.join(missing)}" if missing else None))
    return results

"""`askue grafana …`: push datasource and dashboards to Grafana, write the
provisioning files, or check every panel's SQL against a database."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="grafana_command", metavar="ACTION")
    p = sub.add_parser("push", help="upload the datasource and dashboards to a running Grafana")
    p.add_argument("--url", required=True, help="Grafana base URL, e.g. http://grafana:3000")
    p.add_argument("--token", default=os.environ.get("ASKUE_GRAFANA_TOKEN"),
                   help="service-account token (default: env ASKUE_GRAFANA_TOKEN)")
    p.add_argument("--datasource-dsn", help="DSN Grafana uses to read the head-end database (read-only user); "
                                            "without it the datasource is left as it is")
    p.add_argument("--timescaledb", action="store_true", help="the database runs TimescaleDB")
    p.add_argument("--prometheus-url", help="Prometheus that scrapes the head-end's /metrics: adds its datasource "
                                            "and the head-end health dashboard")
    b = sub.add_parser("build", help="write provisioning files (datasource, provider, dashboards JSON)")
    b.add_argument("--out", type=Path, help="folder (default: the repository's grafana/)")
    c = sub.add_parser("check", help="run every panel's SQL against a database and report rows")
    c.add_argument("--dsn", default=os.environ.get("ASKUE_READ_DSN") or os.environ.get("ASKUE_DSN"),
                   help="head-end database DSN (default: env ASKUE_READ_DSN, the replica Grafana reads, "
                        "else ASKUE_DSN)")
    c.add_argument("--metrics-url", help="a head-end's /metrics: also check that every metric the health "
                                         "dashboard reads is there, e.g. http://127.0.0.1:8000/metrics")


def run(args) -> int:
    cmd = getattr(args, "grafana_command", None)
    if cmd == "build":
        from askue.headend.grafana.provisioning import DEFAULT_OUT, write_files

        for p in write_files(args.out or DEFAULT_OUT):
            print(p)
        return EXIT_OK
    if cmd == "check":
        if not args.dsn:
            print("askue grafana check: give --dsn or set ASKUE_DSN", file=sys.stderr)
            return EXIT_USAGE
        from askue.headend.grafana.check import metric_panels
        from askue.headend.grafana.check import run as check

        try:
            results = check(args.dsn)
            if args.metrics_url:
                import urllib.request

                with urllib.request.urlopen(args.metrics_url, timeout=10) as r:  # noqa: S310 (the operator's URL)
                    results += metric_panels(r.read().decode())
        except Exception as e:  # connection failures: say what, not a traceback
            print(f"askue grafana check: cannot run the panels: {e}", file=sys.stderr)
            return EXIT_FAILURE
        for r in results:
            print(f"{'ok ' if r.ok else 'BAD'} {r.dashboard:18} {r.rows:6} rows  {r.panel}"
                  + (f"  ({r.error})" if r.error else ""))
        return EXIT_OK if all(r.ok for r in results) else EXIT_FAILURE
    if cmd == "push":
        if not args.token:
            print("askue grafana push: give --token or set ASKUE_GRAFANA_TOKEN (a Grafana service-account token)",
                  file=sys.stderr)
            return EXIT_USAGE
        try:
            import grafana_client  # noqa: F401
        except ImportError:
            print("askue grafana push: grafana-client is missing; pip install grafana-client", file=sys.stderr)
            return EXIT_MISSING
        from askue.headend.grafana.provisioning import datasource_payload, prometheus_payload
        from askue.headend.grafana.push import PushError, push

        try:
            ds = datasource_payload(args.datasource_dsn, timescaledb=args.timescaledb) if args.datasource_dsn else None
        except ValueError as e:
            print(f"askue grafana push: --datasource-dsn: {e}", file=sys.stderr)
            return EXIT_USAGE
        try:
            prom = prometheus_payload(args.prometheus_url) if args.prometheus_url else None
        except ValueError as e:
            print(f"askue grafana push: --prometheus-url: {e}", file=sys.stderr)
            return EXIT_USAGE
        try:
            res = push(args.url, args.token, ds, prometheus=prom)
        except PushError as e:
            print(f"askue grafana push: {e}", file=sys.stderr)
            return EXIT_FAILURE
        print(f"datasource: {res.datasource or 'unchanged'}; folder: {res.folder}; "
              f"dashboards: {', '.join(res.dashboards)}"
              + (f"; prometheus: {res.prometheus}; system dashboards: {', '.join(res.system_dashboards)}"
                 if prom else ""))
        return EXIT_OK
    print("askue grafana: choose an action: push, build or check (see --help)", file=sys.stderr)
    return EXIT_USAGE

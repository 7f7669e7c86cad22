"""`askue vee check`: run the VEE rules on readings files, write a findings report."""
from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="vee_command", metavar="COMMAND")
    c = sub.add_parser("check", help="check a readings file offline (same rules as the live path)",
                       description="Check meters.csv + readings.csv with the VEE rules; one report row per "
                                   "finding: meter_id,kind,ts,severity,details. Format: docs/vee.md.")
    c.add_argument("--meters", required=True, help="meters CSV: " + ",".join(
        ("meter_id", "serial", "resource", "digits", "multiplier", "installed_at", "replaces", "verification_due")))
    c.add_argument("--readings", required=True, help="readings CSV: meter_id,channel,kind,ts,received_at,value,period_s")
    c.add_argument("--now", help="the check's 'now' (ISO 8601 with offset); default: the current time")
    c.add_argument("--out", required=True, help="report CSV to write ('-' for stdout)")
    c.add_argument("--thresholds", help="thresholds YAML (layout: configs/vee.yaml)")
    c.add_argument("--timezone", default="Europe/Moscow", help="local time zone of days (default Europe/Moscow)")
    for name, help_ in (("scan", "run one periodic scan now (contact, verification, day rules, estimation)"),
                        ("thresholds", "load a thresholds YAML (configs/vee.yaml layout) into the database")):
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--config", help="head-end YAML settings (env ASKUE_<FIELD> overrides it)")
        p.add_argument("--dsn", help="PostgreSQL DSN (overrides the config)")
        if name == "thresholds":
            p.add_argument("--file", required=True, help="thresholds YAML")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "vee_command", None) in ("scan", "thresholds"):
        return _db_command(args)
    if getattr(args, "vee_command", None) != "check":
        print("askue vee: say which command, e.g. askue vee check --meters m.csv --readings r.csv --out report.csv",
              file=sys.stderr)
        return 2
    from pathlib import Path
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from askue.headend.vee.offline import FileFormatError, run_check, write_report
    from askue.headend.vee.thresholds import ThresholdConfig, ThresholdError

    try:
        tz = ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"askue vee check: --timezone {args.timezone!r} is not an IANA zone (e.g. Europe/Moscow)", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            print(f"askue vee check: --now {args.now!r} is not ISO 8601 (e.g. 2026-11-20T12:00:00+03:00)",
                  file=sys.stderr)
            return 2
        if now.tzinfo is None:
            print("askue vee check: --now needs a UTC offset, e.g. 2026-11-20T12:00:00+03:00", file=sys.stderr)
            return 2
    try:
        cfg = ThresholdConfig.from_yaml(args.thresholds) if args.thresholds else ThresholdConfig()
        result = run_check(Path(args.meters), Path(args.readings), now, cfg, tz)
    except (FileFormatError, ThresholdError) as e:
        print(f"askue vee check: {e}", file=sys.stderr)
        return 2
    try:
        if args.out == "-":
            write_report(result, sys.stdout)
        else:
            with open(args.out, "w", encoding="utf-8", newline="") as f:
                write_report(result, f)
    except OSError as e:
        print(f"askue vee check: cannot write {args.out}: {e.strerror}", file=sys.stderr)
        return 1
    for e in result.errors:
        print(f"{e.file} row {e.row}: {e.reason}", file=sys.stderr)
    print(f"checked {result.meters} meters, {result.readings} readings: {len(result.findings)} findings, "
          f"{len(result.errors)} bad rows", file=sys.stderr)
    return 0


def _db_command(args: argparse.Namespace) -> int:
    import asyncio

    import psycopg

    from askue.headend.config import ConfigError, load_settings
    from askue.headend.vee.thresholds import ThresholdConfig, ThresholdError

    try:
        settings = load_settings(args.config, dsn=args.dsn)
    except ConfigError as e:
        print(f"askue vee {args.vee_command}: {e}", file=sys.stderr)
        return 2
    if args.vee_command == "thresholds":
        import yaml

        try:
            ThresholdConfig.from_yaml(args.file)  # validates everything before storing anything
            data = yaml.safe_load(open(args.file, encoding="utf-8")) or {}
        except ThresholdError as e:
            print(f"askue vee thresholds: {e}", file=sys.stderr)
            return 2

    async def go() -> str:
        from askue.headend.vee import scan, store

        async with await psycopg.AsyncConnection.connect(settings.dsn, autocommit=True) as conn:
            if args.vee_command == "scan":
                return str(await scan.scan_once(conn, datetime.now(UTC)))
            n = 0
            async with conn.transaction():
                await store.save_thresholds(conn, "default", None, data.get("defaults") or {}, actor="cli")
                for scope, key in (("resource", "resources"), ("model", "models")):
                    for name, vals in (data.get(key) or {}).items():
                        await store.save_thresholds(conn, scope, str(name), vals or {}, actor="cli")
                        n += 1
                for name, vals in (data.get("organisations") or {}).items():
                    vals = dict(vals or {})
                    per_res = vals.pop("resources", None) or {}
                    await store.save_thresholds(conn, "organisation", str(name), vals, actor="cli")
                    for res, rv in per_res.items():
                        await store.save_thresholds(conn, "organisation", str(name), rv or {}, str(res), actor="cli")
                    n += 1 + len(per_res)
            return f"stored defaults and {n} override(s) from {args.file}"

    try:
        print(asyncio.run(go()))
    except psycopg.OperationalError as e:
        print(f"askue vee {args.vee_command}: cannot reach the database: {e}".strip(), file=sys.stderr)
        return 1
    except psycopg.errors.UndefinedTable:
        print(f"askue vee {args.vee_command}: the database is not migrated; run askue headend migrate", file=sys.stderr)
        return 1
    return 0

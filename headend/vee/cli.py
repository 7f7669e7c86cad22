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


def run(args: argparse.Namespace) -> int:
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

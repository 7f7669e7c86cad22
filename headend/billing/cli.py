"""`askue export …`: billing files from the head-end database, and imports of them.

    askue export 80020 --org UK1 --from 2024-03-01 [--to 2024-03-31] --out DIR
    askue export hourly-xlsx --org UK1 --month 2024-03 [--meter M ...] --out FILE.xlsx
    askue export integral-xlsx --org UK1 --month 2024-03 --out FILE.xlsx
    askue export csv --org UK1 --month 2024-03 --kind register|interval|consumption --out FILE.csv
    askue export import-80020 FILE.xml ...
    askue export import-hourly FILE.xlsx --meter M
    askue export import-integral FILE.xlsx [--partial] [--confirm] [--dry-run] [--author NAME]
    askue export close-period --org UK1 --month 2024-03 | recalculate --org UK1 --month 2024-03

Long exports show a progress bar on stderr (when it is a terminal, or with --progress).
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _month(text: str) -> date:
    try:
        y, m = text.split("-")
        return date(int(y), int(m), 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month YYYY-MM") from None


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day YYYY-MM-DD") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="head-end YAML settings (env ASKUE_<FIELD> overrides it)")
    parser.add_argument("--dsn", help="PostgreSQL DSN (overrides the config)")
    parser.add_argument("--progress", action="store_true", help="show a progress bar even when stderr is no tty")
    sub = parser.add_subparsers(dest="export_command", metavar="FORMAT", required=True)

    p = sub.add_parser("80020", help="АТС 80020 XML, one file per day")
    p.add_argument("--org", required=True, help="organisation code (sender: its INN and name)")
    p.add_argument("--from", dest="day_from", type=_day, required=True)
    p.add_argument("--to", dest="day_to", type=_day, help="last day (default: --from)")
    p.add_argument("--out", type=Path, required=True, help="directory for 80020_<INN>_<YYYYMMDD>_<n>.xml")
    p.add_argument("--sender-inn", help="INN of the sender if not the organisation's")
    p.add_argument("--allow-incomplete", action="store_true",
                   help="leave out channels with missing half-hours instead of failing the day")

    p = sub.add_parser("hourly-xlsx", help="hourly profile xlsx (one sheet per meter)")
    p.add_argument("--org", required=True)
    p.add_argument("--month", type=_month, required=True)
    p.add_argument("--meter", action="append", help="meter code (repeatable; default: every active meter)")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("integral-xlsx", help="integral readings template for a month")
    p.add_argument("--org", required=True)
    p.add_argument("--month", type=_month, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("csv", help="CSV of readings, intervals or period consumption")
    p.add_argument("--org", required=True)
    p.add_argument("--month", type=_month, required=True)
    p.add_argument("--kind", choices=("register", "interval", "consumption"), default="register")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("import-80020", help="load 80020 files from another АСКУЭ into intervals")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--author", default="cli")

    p = sub.add_parser("import-hourly", help="load an hourly profile xlsx as hourly intervals of a meter")
    p.add_argument("file", type=Path)
    p.add_argument("--meter", required=True, help="meter code or serial number")
    p.add_argument("--author", default="cli")

    p = sub.add_parser("import-integral", help="load a filled-in integral readings template")
    p.add_argument("file", type=Path)
    p.add_argument("--author", default="cli")
    p.add_argument("--partial", action="store_true", help="store the good rows even if some are wrong")
    p.add_argument("--confirm", action="store_true", help="store readings above the expected value too")
    p.add_argument("--dry-run", action="store_true", help="check and report, store nothing")

    for name in ("close-period", "recalculate"):
        p = sub.add_parser(name, help=f"{name.replace('-', ' ')} of a billing month")
        p.add_argument("--org", required=True)
        p.add_argument("--month", type=_month, required=True)
        p.add_argument("--author", default="cli")
        if name == "recalculate":
            p.add_argument("--reason", default="data changed after closing")


class Progress:
    """A one-line bar on stderr: «[#####.....] 50% 120/240 eta 3s»."""

    def __init__(self, label: str, enabled: bool, width: int = 30):
        self.label, self.enabled, self.width = label, enabled, width
        self.t0 = time.monotonic()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        frac = done / total if total else 1.0
        fill = int(frac * self.width)
        eta = (now - self.t0) / frac * (1 - frac) if frac > 0 else 0
        sys.stderr.write(f"\r{self.label} [{'#' * fill}{'.' * (self.width - fill)}] {frac:4.0%} "
                         f"{done}/{total} eta {eta:.0f}s ")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run(args) -> int:
    import asyncio

    from askue.headend.config import ConfigError, load_settings

    try:
        settings = load_settings(args.config, dsn=args.dsn)
    except ConfigError as e:
        print(f"askue export: {e}", file=sys.stderr)
        return EXIT_USAGE
    show = args.progress or sys.stderr.isatty()
    try:
        return asyncio.run(_main(settings, args, show))
    except Exception as e:  # typed errors from the exports package, DB errors: one clear line
        from askue.headend.billing.exporters import ExportError
        from askue.headend.billing.formats.errors import ExportFormatError, IncompleteDataError
        from askue.headend.billing.snapshots import PeriodError

        if isinstance(e, ExportFormatError):
            print(f"askue export: {e.fmt}: file not accepted, nothing stored:", file=sys.stderr)
            for i in e.issues:
                print(f"  {i}", file=sys.stderr)
            return EXIT_FAILURE
        if isinstance(e, (ExportError, PeriodError, IncompleteDataError)):
            print(f"askue export: {e}", file=sys.stderr)
            return EXIT_FAILURE
        import psycopg

        if isinstance(e, psycopg.OperationalError):
            print(f"askue export: cannot reach the database ({str(e).strip()[:200]})", file=sys.stderr)
            return EXIT_FAILURE
        raise


async def _main(settings, args, show: bool) -> int:
    import psycopg

    from askue.headend.billing import exporters, importers, snapshots
    from askue.headend.billing.formats import hourly_xlsx
    from askue.headend.billing.formats.csv_out import CONSUMPTION_COLUMNS, CsvWriter
    from askue.headend.billing.formats.errors import IncompleteDataError
    from askue.headend.storage import meta

    cmd = args.export_command
    # exports only read: from the replica when there is one; imports and period actions write
    reads = cmd in ("80020", "hourly-xlsx", "integral-xlsx", "csv")
    dsn = (settings.read_dsn or settings.dsn) if reads else settings.dsn
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        tz = await meta.timezone(conn)
        if cmd == "import-80020":
            bar = Progress("80020", show)
            for n, f in enumerate(args.files, 1):
                rep = await importers.import_80020(conn, f.read_bytes(), org_ids=None, author=args.author, tz=tz,
                                                   file_name=f.name if f.name.lower().startswith("80020_") else None)
                bar(n, len(args.files))
                print(f"{f.name}: {rep.points} points, {rep.inserted} values stored, "
                      f"{rep.kept_existing} already present")
            return EXIT_OK
        if cmd == "import-hourly":
            rep = await importers.import_hourly(conn, args.file.read_bytes(), args.meter, org_ids=None,
                                                author=args.author, tz=tz)
            print(f"{rep.meter} {rep.month}: {rep.hours} hours, {rep.inserted} stored, "
                  f"{rep.kept_existing} already present")
            return EXIT_OK
        if cmd == "import-integral":
            results = await importers.import_integral(conn, args.file.read_bytes(), org_ids=None,
                                                      author=args.author, confirm=args.confirm,
                                                      partial=args.partial, dry_run=args.dry_run)
            for r in results:
                meter = r.reading.meter_number if r.reading else ""
                print(f"row {r.row}\t{meter}\t{r.status}\t{r.message}")
            return EXIT_OK if all(r.status in ("ok", "empty") for r in results) else EXIT_FAILURE
        org = await exporters.get_org(conn, args.org)
        if cmd == "80020":
            args.out.mkdir(parents=True, exist_ok=True)
            last = args.day_to or args.day_from
            if last < args.day_from:
                print("askue export: --to is before --from", file=sys.stderr)
                return EXIT_USAGE
            days = [args.day_from + timedelta(days=i) for i in range((last - args.day_from).days + 1)]
            bar = Progress("80020", show)
            failed = 0
            for n, day in enumerate(days, 1):
                try:
                    name, body = await exporters.export_80020(conn, org, day, tz=tz, sender_inn=args.sender_inn,
                                                              allow_incomplete=args.allow_incomplete)
                    (args.out / name).write_bytes(body)
                except (exporters.ExportError, IncompleteDataError) as e:
                    failed += 1
                    print(f"\n{day}: {e}", file=sys.stderr)
                bar(n, len(days))
            print(f"{len(days) - failed} file(s) written to {args.out}, {failed} day(s) failed")
            return EXIT_OK if not failed else EXIT_FAILURE
        if cmd == "hourly-xlsx":
            codes = args.meter
            if not codes:
                cur = await conn.execute("SELECT code FROM meters WHERE org_id = %s AND status = 'active' "
                                         "ORDER BY code", (org.id,))
                codes = [r[0] for r in await cur.fetchall()]
            bar = Progress("hourly", show)
            profiles = []
            for n, code in enumerate(codes, 1):
                profiles.append(await exporters.hourly_profile(conn, code, args.month, org_ids=frozenset({org.id}),
                                                               tz=tz))
                bar(n, len(codes))
            args.out.write_bytes(hourly_xlsx.write_hourly_xlsx(profiles))
            print(f"{len(profiles)} sheet(s) written to {args.out}")
            return EXIT_OK
        if cmd == "integral-xlsx":
            args.out.write_bytes(await exporters.integral_template(conn, org, args.month, tz=tz))
            print(f"template written to {args.out}")
            return EXIT_OK
        if cmd == "csv":
            if args.kind == "consumption":
                snaps = await snapshots.period_snapshots(conn, org.id, args.month, tz=tz)
                w = CsvWriter(CONSUMPTION_COLUMNS)
                for row in snapshots.consumption_rows(snaps, args.month, tz):
                    w.row(row)
                args.out.write_text(w.drain(), encoding="utf-8", newline="")
                print(f"{len(snaps)} row(s) written to {args.out}")
                return EXIT_OK
            start, end = snapshots.month_bounds(args.month, tz)
            bar = Progress(args.kind, show)
            with args.out.open("w", encoding="utf-8", newline="") as f:
                async for chunk in exporters.readings_csv_chunks(conn, org, start, end, kind=args.kind, progress=bar):
                    f.write(chunk)
            print(f"written to {args.out}")
            return EXIT_OK
        if cmd == "close-period":
            snaps = await snapshots.close_period(conn, org.id, args.month, args.author)
            print(f"{org.code} {args.month:%Y-%m} closed: {len(snaps)} snapshot row(s) frozen")
            return EXIT_OK
        if cmd == "recalculate":
            made = await snapshots.recalculate(conn, org.id, args.month, args.author, args.reason)
            for r in made:
                print(f"meter {r['meter_id']} {r['obis']}: {r['old_consumption']} -> {r['new_consumption']}")
            print(f"{len(made)} recalculation record(s)")
            return EXIT_OK
    return EXIT_USAGE

"""`askue headend …`: run, migrate, doctor, import, acts, token create, customers import."""
from __future__ import annotations

import argparse
import sys

from askue.headend.auth.permissions import ROLES

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_MISSING = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="head-end YAML settings (env ASKUE_<FIELD> overrides it)")
    parser.add_argument("--dsn", help="PostgreSQL DSN (overrides the config)")
    sub = parser.add_subparsers(dest="headend_command", metavar="ACTION")
    run = sub.add_parser("run", help="ingest + API in one process (default)")
    only = run.add_mutually_exclusive_group()
    only.add_argument("--ingest-only", action="store_true", help="run only the MQTT ingest (and background tasks)")
    only.add_argument("--api-only", action="store_true", help="run only the HTTP API")
    run.add_argument("--no-migrate", action="store_true", help="do not apply migrations on start")
    run.add_argument("--mqtt-host")
    run.add_argument("--mqtt-port", type=int)
    run.add_argument("--api-host")
    run.add_argument("--api-port", type=int)
    mig = sub.add_parser("migrate", help="apply pending database migrations")
    mig.add_argument("--mode", choices=("plain", "timescale"), help="force the storage mode on a new database")
    sub.add_parser("doctor", help="check database, storage mode (TimescaleDB or plain PostgreSQL) and broker")
    imp = sub.add_parser("import", help="import houses, accounts and meters from CSV or xlsx")
    imp.add_argument("file")
    imp.add_argument("--dry-run", action="store_true", help="check and report, store nothing")
    imp.add_argument("--org", help="organisation code for rows without one")
    imp.add_argument("--strict", action="store_true", help="import nothing if any row is bad")
    act = sub.add_parser("acts", help="record install, exchange and removal acts from CSV or xlsx")
    act.add_argument("file")
    act.add_argument("--dry-run", action="store_true", help="check and report, store nothing")
    act.add_argument("--strict", action="store_true", help="record nothing if any row is bad")
    tok = sub.add_parser("token", help="API tokens")
    tsub = tok.add_subparsers(dest="token_command", metavar="ACTION")
    tc = tsub.add_parser("create", help="create a token and print it (shown once)")
    tc.add_argument("--name", required=True)
    tc.add_argument("--role", required=True, choices=[r for r in ROLES if r != "customer"])
    tc.add_argument("--org", action="append", help="limit to this organisation code (repeatable)")
    cus = sub.add_parser("customers", help="customer cabinet accounts")
    csub = cus.add_subparsers(dest="customers_command", metavar="ACTION")
    ci = csub.add_parser("import", help="create customers from CSV: login; name; e-mail; account; role; password "
                                         "(an empty password prints an invitation link)")
    ci.add_argument("file")
    ci.add_argument("--org", action="append", help="only accounts of this organisation code (repeatable)")
    ci.add_argument("--invite-base", default="", help="the pages' public URL, e.g. https://askue.example/web, "
                                                      "to print whole invitation links")


def _settings(args):
    from askue.headend.config import load_settings

    return load_settings(args.config, dsn=args.dsn, mqtt_host=getattr(args, "mqtt_host", None),
                         mqtt_port=getattr(args, "mqtt_port", None), api_host=getattr(args, "api_host", None),
                         api_port=getattr(args, "api_port", None))


def run(args) -> int:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        print("askue headend: psycopg is missing; install the head-end extra: pip install 'askue[headend]'",
              file=sys.stderr)
        return EXIT_MISSING
    from askue.headend.config import ConfigError

    try:
        settings = _settings(args)
    except ConfigError as e:
        print(f"askue headend: {e}", file=sys.stderr)
        return EXIT_USAGE
    action = args.headend_command or "run"
    try:
        return {"run": _run, "migrate": _migrate, "doctor": _doctor, "import": _import, "acts": _acts,
                "token": _token, "customers": _customers}[action](
            settings, args)
    except _DbUnavailable as e:
        print(f"askue headend: cannot reach the database: {e}", file=sys.stderr)
        return EXIT_FAILURE


class _DbUnavailable(Exception):
    pass


def _connect(dsn: str):
    import psycopg

    try:
        return psycopg.connect(dsn, connect_timeout=10)
    except psycopg.OperationalError as e:
        raise _DbUnavailable(f"{e}".strip() + " (check --dsn / ASKUE_DSN)") from None


def _run(settings, args) -> int:
    import asyncio

    from askue.headend.app import run_headend
    from askue.headend.storage.migrations import MigrationError

    _connect(settings.dsn).close()
    ingest = not getattr(args, "api_only", False)
    api = not getattr(args, "ingest_only", False)
    api_url = f"http://{settings.api_host}:{settings.api_port}/docs" if api else "off"
    print(f"askue head-end: ingest {'on' if ingest else 'off'} (mqtt {settings.mqtt_host}:{settings.mqtt_port}, "
          f"{'shared group ' + settings.mqtt_group if settings.mqtt_group else 'plain subscription'}), API {api_url}", file=sys.stderr)
    async def serve() -> None:
        import signal

        # SIGTERM/SIGINT stop cleanly. Ingest acknowledges only committed batches, so whatever
        # was in flight is redelivered by the broker to the next run.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopping() -> None:
            if not stop.is_set():  # a second signal changes nothing
                watch_shutdown(loop)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping)
        await run_headend(settings, ingest=ingest, api=api, migrate=not getattr(args, "no_migrate", False),
                          stop=stop)
        print("askue head-end: stopped", file=sys.stderr)

    import uvloop

    try:
        # libuv's loop: the ingest wakes for every MQTT packet and every database round trip,
        # and uvloop's scheduling costs the process less CPU per value than asyncio's own
        # (measured: 5-10 % of the head-end's CPU, 1.04x on the live ingest rate)
        uvloop.run(serve())
    except MigrationError as e:
        print(f"askue headend: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    return EXIT_OK


# A stop normally takes a second or two (the batch in flight is rolled back, the API finishes
# its requests within 10 s). Past these, the log says where the process is stuck: what is
# still running on the event loop, then every thread's stack if the loop itself is blocked.
SLOW_STOP_TASKS_S = 15.0
SLOW_STOP_THREADS_S = 25.0


def watch_shutdown(loop) -> None:
    """Arm the slow-stop reports (the stop has begun)."""
    import faulthandler

    def tasks_left() -> None:
        import asyncio
        import io

        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        out = io.StringIO()
        for t in left:
            t.print_stack(limit=8, file=out)
        print(f"askue head-end: still stopping after {SLOW_STOP_TASKS_S:.0f} s; {len(left)} tasks left:\n"
              f"{out.getvalue()}", file=sys.stderr, flush=True)

    loop.call_later(SLOW_STOP_TASKS_S, tasks_left)
    try:
        faulthandler.dump_traceback_later(SLOW_STOP_THREADS_S, exit=False)
    except (AttributeError, ValueError, OSError):  # stderr is not a file (an embedding host): no thread dump
        pass


def _migrate(settings, args) -> int:
    from askue.headend.storage import migrations

    _connect(settings.dsn).close()
    try:
        done = migrations.apply(settings.dsn, mode=args.mode, timezone=settings.timezone)
    except migrations.MigrationError as e:
        print(f"askue headend migrate: {e}", file=sys.stderr)
        return EXIT_FAILURE
    with _connect(settings.dsn) as conn:
        mode = migrations.storage_mode(conn)
    print(f"applied {len(done)} migration(s){': ' + ', '.join(done) if done else ''}; storage mode: {mode}")
    return EXIT_OK


def _doctor(settings, args) -> int:
    from askue.headend.storage.doctor import diagnose

    ok, lines = diagnose(settings)
    print("\n".join(lines))
    return EXIT_OK if ok else EXIT_FAILURE


def _import(settings, args) -> int:
    from askue.headend.registry.importer import import_file

    res = _read_file(settings, args, "import", lambda: import_file(
        settings.dsn, args.file, dry_run=args.dry_run, default_org=args.org, strict=args.strict))
    if isinstance(res, int):
        return res
    what = "would import" if res.dry_run else "imported"
    if args.strict and res.errors:
        what = "imported nothing (--strict), would import"
    created = ", ".join(f"{k} +{v}" for k, v in sorted(res.created.items())) or "nothing new"
    updated = ", ".join(f"{k} ~{v}" for k, v in sorted(res.updated.items())) or "no changes"
    print(f"{what} {res.imported} of {res.rows} row(s); {len(res.errors)} error(s); created: {created}; "
          f"updated: {updated}")
    return EXIT_FAILURE if res.errors else EXIT_OK


def _acts(settings, args) -> int:
    from askue.headend.registry.acts_file import import_acts

    res = _read_file(settings, args, "acts", lambda: import_acts(
        settings.dsn, args.file, dry_run=args.dry_run, strict=args.strict))
    if isinstance(res, int):
        return res
    what = "would record" if res.dry_run else "recorded"
    if args.strict and res.errors:
        what = "recorded nothing (--strict), would record"
    print(f"{what} {res.recorded} of {res.rows} act(s); {res.already} already recorded; {len(res.errors)} error(s)")
    return EXIT_FAILURE if res.errors else EXIT_OK


def _read_file(settings, args, command: str, run):
    """The result of a file import, its row errors printed; or the exit code of a file that
    cannot be read at all."""
    from askue.headend.registry.importer import RegistryFileError

    _connect(settings.dsn).close()
    try:
        res = run()
    except RegistryFileError as e:
        print(f"askue headend {command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"askue headend {command}: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return EXIT_USAGE
    for err in res.errors:
        print(f"{args.file}: {err}", file=sys.stderr)
    return res


def _token(settings, args) -> int:
    from askue.headend.api.auth import create_token

    if args.token_command != "create":
        print("askue headend token: use `token create --name N --role R [--org CODE]`", file=sys.stderr)
        return EXIT_USAGE
    with _connect(settings.dsn) as conn:
        try:
            token = create_token(conn, args.name, args.role, args.org)
        except ValueError as e:
            print(f"askue headend token create: {e}", file=sys.stderr)
            return EXIT_USAGE
    print(token)
    return EXIT_OK


def _customers(settings, args) -> int:
    import asyncio

    import psycopg

    from askue.headend.auth.permissions import Principal
    from askue.headend.customers import accounts
    from askue.headend.errors import ServiceError

    if args.customers_command != "import":
        print("askue headend customers: use `customers import FILE [--org CODE]`", file=sys.stderr)
        return EXIT_USAGE
    try:
        raw = open(args.file, "rb").read()
    except OSError as e:
        print(f"askue headend customers import: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("cp1251")

    async def go() -> list[accounts.ImportRow]:
        try:
            conn = await psycopg.AsyncConnection.connect(settings.dsn, autocommit=True)
        except psycopg.OperationalError as e:
            raise _DbUnavailable(str(e).strip()) from None
        async with conn:
            orgs = None
            if args.org:
                cur = await conn.execute("SELECT id FROM organisations WHERE code = ANY(%s)", (args.org,))
                orgs = frozenset(r[0] for r in await cur.fetchall())
            return await accounts.import_csv(conn, Principal("cli", "admin", orgs), text)
    try:
        rows = asyncio.run(go())
    except ServiceError as e:
        print(f"askue headend customers import: {e.message}", file=sys.stderr)
        return EXIT_USAGE
    for r in rows:
        link = f" invite: {args.invite_base.rstrip('/')}/invite/{r.invite}" if r.invite else ""
        print(f"row {r.line}: {r.login}: {'ok' if r.ok else 'error'}: {r.message}{link}")
    bad = sum(not r.ok for r in rows)
    print(f"{len(rows) - bad} of {len(rows)} row(s) imported; {bad} error(s)")
    return EXIT_FAILURE if bad else EXIT_OK

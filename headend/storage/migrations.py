"""Versioned SQL migrations: `headend/storage/migrations/NNNN_<name>[.plain|.timescale].sql`.

Files apply in number order, each in its own transaction, and are recorded in
`schema_migrations`; applying twice changes nothing. A file named
`NNNN_x.plain.sql` runs only on plain PostgreSQL and `NNNN_x.timescale.sql`
only where TimescaleDB is used; both record the version `NNNN_x`. The mode is
chosen once, on the first apply, and kept in `askue_meta` (a database never
switches mode under existing data).

Number ranges: storage 0001–0099, VEE 0100–0199, billing 0200–0299,
operators 0300–0399.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(plain|timescale))?\.sql$")
_LOCK_KEY = 0x61736B7565  # "askue": one migrator at a time per database
MODES = ("plain", "timescale")
DEFAULT_TIMEZONE = "Europe/Moscow"


class MigrationError(RuntimeError):
    """A migration could not be applied; the message names the file and the cause."""


@dataclass(frozen=True)
class Migration:
    number: int
    version: str  # "0001_core"
    mode: str | None  # None: every mode
    path: Path


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: list[Migration] = []
    for p in sorted(directory.glob("*.sql")):
        m = _FILE_RE.match(p.name)
        if not m:
            raise MigrationError(f"{p}: migration file names must look like NNNN_name[.plain|.timescale].sql")
        found.append(Migration(int(m.group(1)), f"{m.group(1)}_{m.group(2)}", m.group(3), p))
    found.sort(key=lambda m: (m.number, m.version, m.mode or ""))
    return found


@dataclass(frozen=True)
class TimescaleProbe:
    available: bool
    reason: str


def probe_timescale(conn: psycopg.Connection) -> TimescaleProbe:
    """Can this server run TimescaleDB? Says why not when it cannot."""
    row = conn.execute(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    if row is None:
        return TimescaleProbe(False, "the timescaledb extension is not installed on this server "
                                     "(pg_available_extensions has no timescaledb)")
    if row[1]:
        return TimescaleProbe(True, f"timescaledb {row[1]} is installed in this database")
    # the definitive test: can the extension be created here? (rolled back either way)
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as e:
        msg = (e.diag.message_primary or str(e)).strip()
        return TimescaleProbe(False, f"timescaledb {row[0]} is packaged but CREATE EXTENSION fails: {msg} "
                                     "(usually: add timescaledb to shared_preload_libraries and restart)")
    return TimescaleProbe(True, f"timescaledb {row[0]} is available (CREATE EXTENSION works)")


def _meta(conn: psycopg.Connection, key: str) -> str | None:
    if conn.execute("SELECT to_regclass('askue_meta')").fetchone()[0] is None:
        return None
    row = conn.execute("SELECT value FROM askue_meta WHERE key = %s", (key,)).fetchone()
    return row[0] if row else None


def storage_mode(conn: psycopg.Connection) -> str | None:
    """The mode recorded in this database, or None before the first migration."""
    return _meta(conn, "storage_mode")


def _choose_mode(conn: psycopg.Connection, requested: str | None) -> str:
    recorded = storage_mode(conn)
    if recorded:
        if requested and requested != recorded:
            raise MigrationError(f"this database was set up in {recorded!r} mode; it cannot be migrated as "
                                 f"{requested!r} (use a new database for the other mode)")
        return recorded
    requested = requested or os.environ.get("ASKUE_STORAGE_MODE") or None
    if requested and requested not in MODES:
        raise MigrationError(f"storage mode {requested!r} is unknown; use one of {MODES}")
    if requested:
        # an explicit choice is not probed: a missing extension fails in 0002 with the server's own message
        return requested
    return "timescale" if probe_timescale(conn).available else "plain"


def _check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise MigrationError(f"time zone {tz!r} is unknown; use an IANA name such as Europe/Moscow") from None
    if not re.fullmatch(r"[A-Za-z0-9_+/-]+", tz):
        raise MigrationError(f"time zone {tz!r} has unexpected characters")
    return tz


def apply(dsn: str, *, mode: str | None = None, timezone: str | None = None,
          max_number: int | None = None) -> list[str]:
    """Apply every pending migration; return the versions applied now (empty when up to date).

    `max_number` stops after that migration number (e.g. 99: storage's own range only).
    """
    applied_now: list[str] = []
    # Decide the mode on a connection of its own: probing loads the timescaledb
    # library, after which CREATE EXTENSION in that same session is refused.
    with psycopg.connect(dsn, autocommit=True) as conn:
        chosen = _choose_mode(conn, mode)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                                version text PRIMARY KEY,
                                file text NOT NULL,
                                applied_at timestamptz NOT NULL DEFAULT now())""")
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            chosen = _choose_mode(conn, chosen)
            tz = _check_timezone(_meta(conn, "timezone") or timezone or DEFAULT_TIMEZONE)
            for mig in discover():
                if mig.version in done or (mig.mode is not None and mig.mode != chosen):
                    continue
                if max_number is not None and mig.number > max_number:
                    break
                sql = mig.path.read_text(encoding="utf-8").replace("{{timezone}}", tz)
                try:
                    with conn.transaction():
                        conn.execute(sql)
                        conn.execute("INSERT INTO schema_migrations (version, file) VALUES (%s, %s)",
                                     (mig.version, mig.path.name))
                        if mig.version == "0001_core":
                            conn.execute("INSERT INTO askue_meta (key, value) VALUES ('storage_mode', %s), "
                                         "('timezone', %s)", (chosen, tz))
                except psycopg.Error as e:
                    raise MigrationError(f"migration {mig.path.name} failed: {e}") from e
                log.info("applied migration %s (%s mode)", mig.path.name, chosen)
                applied_now.append(mig.version)
                done.add(mig.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now

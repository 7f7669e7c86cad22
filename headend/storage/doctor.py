"""`askue headend doctor`: what runs, in which storage mode, and why."""
from __future__ import annotations

import socket

import psycopg

from askue.headend.storage import migrations


def diagnose(settings) -> tuple[bool, list[str]]:
    ok = True
    out: list[str] = []
    try:
        conn = psycopg.connect(settings.dsn, connect_timeout=10)
    except psycopg.OperationalError as e:
        return False, [f"database: UNREACHABLE ({str(e).strip()}); check dsn / ASKUE_DSN"]
    with conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        out.append(f"database: ok, PostgreSQL {version}")
        probe = migrations.probe_timescale(conn)
        mode = migrations.storage_mode(conn)
        if mode is None:
            ok = False
            would = "timescale" if probe.available else "plain"
            out.append(f"storage mode: not set up yet - run `askue headend migrate` (it would choose {would}: "
                       f"{probe.reason})")
        elif mode == "timescale":
            out.append(f"storage mode: TimescaleDB (hypertables, compression, retention, continuous aggregates); "
                       f"{probe.reason}")
        else:
            why = ("TimescaleDB was not available when this database was set up" if not probe.available
                   else "chosen explicitly when this database was set up (TimescaleDB is available now: a new "
                        "database would use it)")
            out.append(f"storage mode: plain PostgreSQL (monthly partitions, rollup tables kept by the value tables' triggers); {why}; "
                       f"{probe.reason}")
        applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")} if mode else set()
        pending = [m.version for m in migrations.discover()
                   if m.version not in applied and (m.mode is None or m.mode == (mode or "plain"))]
        if pending:
            ok = False
            out.append(f"migrations: {len(pending)} pending ({', '.join(pending)}); run `askue headend migrate`")
        else:
            out.append(f"migrations: up to date ({len(applied)} applied)")
        if mode:
            tz = conn.execute("SELECT value FROM askue_meta WHERE key = 'timezone'").fetchone()
            out.append(f"rollup time zone: {tz[0] if tz else '?'} (settings: {settings.timezone})")
            counts = conn.execute("SELECT (SELECT count(*) FROM meters), (SELECT count(*) FROM meters WHERE "
                                  "status = 'unassigned'), (SELECT count(*) FROM gateways), "
                                  "(SELECT count(*) FROM dead_letters)").fetchone()
            out.append(f"data: {counts[0]} meters ({counts[1]} unassigned), {counts[2]} gateways, "
                       f"{counts[3]} dead letters")
            if mode == "plain" and conn.execute("SELECT to_regclass('rollup_consumption_pending')").fetchone()[0]:
                n = conn.execute("SELECT count(*) FROM rollup_consumption_pending").fetchone()[0]
                out.append(f"consumption rollup: {n} changes waiting to be folded (a running head-end folds them "
                           f"every 5 s; the figures include them either way)")
    try:
        with socket.create_connection((settings.mqtt_host, settings.mqtt_port), timeout=3):
            out.append(f"mqtt broker: reachable at {settings.mqtt_host}:{settings.mqtt_port}")
    except OSError as e:
        ok = False
        out.append(f"mqtt broker: UNREACHABLE at {settings.mqtt_host}:{settings.mqtt_port} ({e.strerror or e})")
    return ok, out

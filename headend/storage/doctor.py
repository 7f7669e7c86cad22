"""`askue headend doctor`: what runs, in which storage mode, and why."""
from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

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
        # a session of its own: where TimescaleDB is packaged but not preloaded, trying
        # CREATE EXTENSION ends the session (FATAL "must be preloaded")
        with psycopg.connect(settings.dsn, connect_timeout=10, autocommit=True) as probe_conn:
            probe = migrations.probe_timescale(probe_conn)
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
            if mode == "timescale" and probe.available:
                policies_ok, lines = _policies(conn)
                ok &= policies_ok
                out += lines
            if conn.execute("SELECT to_regclass('rollup_consumption_pending')").fetchone()[0]:
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


_POLICY_SQL = """
SELECT j.job_id, j.proc_name, j.hypertable_name, j.schedule_interval,
       (j.config->>'compress_after')::interval, (j.config->>'drop_after')::interval,
       (j.config->>'start_offset')::interval, (j.config->>'end_offset')::interval,
       j.scheduled,
       s.last_run_started_at, s.last_run_status, s.job_status, s.next_start, s.total_runs, s.total_failures,
       (SELECT e.err_message FROM timescaledb_information.job_errors e
        WHERE e.job_id = j.job_id ORDER BY e.start_time DESC LIMIT 1)
FROM timescaledb_information.jobs j LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
WHERE j.job_id >= 1000  -- below are TimescaleDB's own jobs (telemetry, job history)
ORDER BY j.proc_name, j.hypertable_name
"""


def _when(t: datetime | None) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if t else "-"


def _span(v: object) -> str:
    if isinstance(v, timedelta) and not v.microseconds:
        if v.days and not v.seconds:
            return f"{v.days} day{'s' if v.days != 1 else ''}"
        if not v.days and v.seconds % 3600 == 0:
            return f"{v.seconds // 3600} h"
        if not v.days and v.seconds % 60 == 0:
            return f"{v.seconds // 60} min"
    return str(v)


def _what(proc: str, target: str, compress_after, drop_after, start, end) -> str:
    if proc == "policy_compression":
        return f"compression of {target} (chunks older than {_span(compress_after)})"
    if proc == "policy_retention":
        return f"retention of {target} (chunks older than {_span(drop_after)} dropped)"
    if proc == "policy_refresh_continuous_aggregate":
        window = "every invalidated range" if start is None else f"the last {_span(start)}"
        return f"refresh of {target} ({window}, up to {_span(end)} ago)"
    return f"{proc} on {target}"


def _policies(conn: psycopg.Connection) -> tuple[bool, list[str]]:
    """Each TimescaleDB policy of this database: what it does, when it last ran and how."""
    rows = conn.execute(_POLICY_SQL).fetchall()
    scheduler = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                             "AND backend_type = 'TimescaleDB Background Worker Scheduler'").fetchone()[0]
    ok = True
    out = [f"policies: {len(rows)} (TimescaleDB's scheduler for this database: "
           f"{'running' if scheduler else 'NOT RUNNING - check timescaledb.max_background_workers and the log'})"]
    ok &= bool(scheduler) or not rows
    for (job_id, proc, target, every, compress_after, drop_after, start, end, scheduled, last, status,
         job_status, nxt, runs, failures, error) in rows:
        what = _what(proc, target, compress_after, drop_after, start, end)
        if not runs:
            last_run = "never run yet"
        else:
            last_run = f"last run {_when(last)} {(status or job_status or '?').lower()}"
            if failures:
                last_run += f" ({failures} of {runs} runs failed)"
        if status == "Failed":
            ok = False
            last_run += f": {error or 'see job_errors'}"
        plan = f"next {_when(nxt)}" if scheduled else "PAUSED (alter_job(..., scheduled => true) resumes it)"
        out.append(f"  job {job_id}: {what}, every {_span(every)}; {last_run}; {plan}")
    return ok, out

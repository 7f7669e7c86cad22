"""A real PostgreSQL streaming replica (a second local cluster from pg_basebackup) behind
`read_dsn`: the API reads there and acts on the primary; a value written on the primary is
served once replicated, and reads go on while the primary is stopped."""
from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from headend_helpers import wait_healthy

from askue.devservices.ports import free_port
from askue.devservices.postgres import PgCluster
from askue.headend.api.auth import create_token
from askue.headend.app import run_headend
from askue.headend.config import Settings
from askue.headend.storage import migrations, values

A_PLUS = "1.0.1.8.0.255"


@pytest.fixture
def clusters():
    root = Path(tempfile.mkdtemp(prefix="askue-replica-"))
    os.chmod(root, 0o755)
    primary, replica = PgCluster(root / "primary"), PgCluster(root / "replica")
    try:
        primary.start()
        dsn = primary.create_database("askue")
        migrations.apply(dsn)
        replica.start_replica_of(primary)
        yield primary, replica
    finally:
        replica.stop("immediate")
        primary.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


async def _store(dsn: str, meter_id: int, ts: datetime, value: float) -> None:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        await values.insert(conn, [values.ValueRow("register", meter_id, A_PLUS, ts, "meter", ts, value,
                                                   gateway_id="gw1")])
        await conn.commit()


async def _readings(http: httpx.AsyncClient, token: str) -> list[float]:
    r = await http.get("/api/v1/meters/R1/readings", headers={"Authorization": f"Bearer {token}"},
                       params={"from": "2020-01-01T00:00:00Z", "obis": A_PLUS})
    assert r.status_code == 200, r.text
    return [i["value"] for i in r.json()["items"]]


async def test_api_reads_the_replica_and_survives_the_primary(clusters) -> None:
    primary, replica = clusters
    dsn, read_dsn = primary.dsn("askue"), replica.dsn("askue")
    with psycopg.connect(dsn, autocommit=True) as c:
        meter_id = c.execute("INSERT INTO meters (code, gateway_id) VALUES ('R1', 'gw1') RETURNING id").fetchone()[0]
        token = create_token(c, "replica-test", "admin")
    with psycopg.connect(read_dsn) as c:
        assert c.execute("SELECT pg_is_in_recovery()").fetchone()[0], "read_dsn is a standby"
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    port = free_port()
    settings = Settings(dsn=dsn, read_dsn=read_dsn, api_port=port, pool_max=4)
    stop = asyncio.Event()
    server = asyncio.create_task(run_headend(settings, ingest=False, api=True, migrate=False, stop=stop))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            await wait_healthy(http)
            health = (await http.get("/api/v1/health")).json()
            assert health == {"status": "ok", "database": "ok", "replica": "ok"}
            # written on the primary, served by the API once the replica has replayed it
            await _store(dsn, meter_id, t, 1000.5)
            deadline = time.monotonic() + 20
            while await _readings(http, token) != [1000.5]:
                assert time.monotonic() < deadline, "the value never reached the replica"
                await asyncio.sleep(0.1)
            # the API reads there: a row the replica has not got (its replay paused) is not served
            with psycopg.connect(read_dsn, autocommit=True) as c:
                c.execute("SELECT pg_wal_replay_pause()")
                await _store(dsn, meter_id, t + timedelta(minutes=5), 1001.0)
                assert await _readings(http, token) == [1000.5]
                c.execute("SELECT pg_wal_replay_resume()")
            # an action runs on the primary, and its author reads it back at once (read-your-writes)
            r = await http.post("/api/v1/meters/R1/readings", headers={"Authorization": f"Bearer {token}"},
                                json={"obis": A_PLUS, "ts": (t + timedelta(minutes=10)).isoformat(),
                                      "value": 1002.0, "confirm": True})
            assert r.status_code == 201, r.text
            assert (await _readings(http, token))[-1] == 1002.0
            # the primary stops: reads go on from the replica, actions say the database is away
            await asyncio.to_thread(primary.stop, "fast")
            assert await _readings(http, token) == [1000.5, 1001.0, 1002.0]
            assert (await http.get("/api/v1/meters", headers={"Authorization": f"Bearer {token}"})).status_code == 200
            health = (await http.get("/api/v1/health")).json()
            assert health["status"] == "degraded" and health["replica"] == "ok" and health["database"] != "ok"
    finally:
        stop.set()
        await asyncio.wait_for(server, 30)

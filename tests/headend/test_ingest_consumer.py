"""The MQTT consumer against a real mosquitto and PostgreSQL."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import aiomqtt
import psycopg
from headend_helpers import T0, payload, reg

from askue.headend.app import open_pool
from askue.headend.config import Settings
from askue.headend.ingest import merge
from askue.headend.ingest.consumer import Consumer


async def _count(dsn: str, sql: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as c:
        return (await (await c.execute(sql)).fetchone())[0]


async def _wait_for(dsn: str, sql: str, want: int, tries: int = 300) -> int:
    n = -1
    for _ in range(tries):
        n = await _count(dsn, sql)
        if n >= want:
            return n
        await asyncio.sleep(0.1)
    return n


def _settings(pg_dsn: str, broker, group: str, client_id: str) -> Settings:
    # A topic root of the test's own (its group name): the session broker is shared with other
    # tests, whose retained state messages and leftovers must not reach this consumer.
    return Settings(dsn=pg_dsn, mqtt_host=broker.host, mqtt_port=broker.port, mqtt_group=group,
                    mqtt_root=group, mqtt_client_id=client_id, batch_linger_s=0.02, pool_max=2)


async def test_two_workers_split_a_shared_subscription(pg_dsn: str, mqtt_broker) -> None:
    group = f"g{id(pg_dsn)}"
    workers, tasks, pools = [], [], []
    for i in range(2):
        s = _settings(pg_dsn, mqtt_broker, group, f"{group}-w{i}")
        pool = await open_pool(s, configure=merge.prepare_connection)
        c = Consumer(s, pool, merge.MergeContext())
        workers.append(c)
        pools.append(pool)
        tasks.append(asyncio.create_task(c.run()))
    try:
        for c in workers:
            await asyncio.wait_for(c.stats.connected.wait(), 10)
        n_msgs, per_msg = 60, 10
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
            for k in range(n_msgs):
                gw = f"gw{k % 3}"
                vals = [reg(f"{gw}-m{j}", 1000.0 * k + j, T0 + timedelta(minutes=k)) for j in range(per_msg)]
                await pub.publish(f"{group}/v1/{gw}/data", payload(vals, gw=gw, seq=k), qos=1)
            # a duplicate delivery of the first message (QoS 1 redelivery, gateway replay)
            await pub.publish(f"{group}/v1/gw0/data", payload([reg("gw0-m0", 0.0, T0)], gw="gw0", seq=0), qos=1)
            await pub.publish(f"{group}/v1/gw0/data", b"garbage", qos=1)
        total = n_msgs * per_msg
        assert await _wait_for(pg_dsn, "SELECT count(*) FROM register_readings", total) == total
        assert await _wait_for(pg_dsn, "SELECT count(*) FROM dead_letters", 1) == 1
        # every message was handled by exactly one of the two workers, and both took part
        for _ in range(100):
            if sum(c.stats.messages for c in workers) >= n_msgs + 2:
                break
            await asyncio.sleep(0.1)
        assert sum(c.stats.messages for c in workers) == n_msgs + 2
        assert all(c.stats.messages > 0 for c in workers)
        async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
            cur = await conn.execute("SELECT m.code, r.value FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                                     "WHERE r.ts = %s ORDER BY 1", (T0,))
            first = await cur.fetchall()
            assert first == [(f"gw0-m{j}", float(j)) for j in range(per_msg)]
            assert (await (await conn.execute("SELECT count(*) FROM meters WHERE status = 'unassigned'")).fetchone()
                    )[0] == 30
            gws = await (await conn.execute("SELECT id, online, last_seq FROM gateways ORDER BY id")).fetchall()
            assert gws == [("gw0", True, 57), ("gw1", True, 58), ("gw2", True, 59)]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for p in pools:
            await p.close()


async def test_unacknowledged_message_is_redelivered_after_a_crash(pg_dsn: str, fresh_broker) -> None:
    """A worker that dies before committing leaves its messages unacknowledged; the next one stores them."""
    s = _settings(pg_dsn, fresh_broker, "crash", "crash-w")
    bad = Settings(**{**s.model_dump(), "dsn": "postgresql://postgres@127.0.0.1:1/none"})
    pool_ok = await open_pool(s, configure=merge.prepare_connection)

    class BrokenPool:  # the database is unreachable: every write fails with OperationalError
        def connection(self):
            raise psycopg.OperationalError("connection refused (test)")

    c1 = Consumer(bad, BrokenPool(), merge.MergeContext())  # type: ignore[arg-type]
    t1 = asyncio.create_task(c1.run())
    try:
        await asyncio.wait_for(c1.stats.connected.wait(), 10)
        async with aiomqtt.Client(fresh_broker.host, fresh_broker.port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
            await pub.publish("crash/v1/gwx/data", payload([reg("mx", 42.0, T0)], gw="gwx"), qos=1)
        for _ in range(100):
            if c1.stats.messages:
                break
            await asyncio.sleep(0.05)
        assert c1.stats.messages == 1 and c1.stats.batches == 0
    finally:
        t1.cancel()
        await asyncio.gather(t1, return_exceptions=True)
    # same client id (persistent session): the broker sends the unacknowledged message again
    c2 = Consumer(s, pool_ok, merge.MergeContext())
    t2 = asyncio.create_task(c2.run())
    try:
        assert await _wait_for(pg_dsn, "SELECT count(*) FROM register_readings", 1) == 1
        assert await _count(pg_dsn, "SELECT value FROM register_readings") == 42.0
    finally:
        t2.cancel()
        await asyncio.gather(t2, return_exceptions=True)
        await pool_ok.close()


async def test_state_and_health_update_the_gateway(pg_dsn: str, mqtt_broker) -> None:
    s = _settings(pg_dsn, mqtt_broker, "sh", "sh-w")
    pool = await open_pool(s, configure=merge.prepare_connection)
    c = Consumer(s, pool, merge.MergeContext())
    t = asyncio.create_task(c.run())
    try:
        await asyncio.wait_for(c.stats.connected.wait(), 10)
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
            await pub.publish("sh/v1/gws/state", b'{"v":1,"gateway_id":"gws","online":true,"version":"1.2.3",'
                              b'"at":"2026-03-01T00:00:00Z","meters":12}', qos=1)
            await pub.publish("sh/v1/gws/health", b'{"v":1,"gateway_id":"gws","at":"2026-03-01T00:01:00Z",'
                              b'"queue_depth":17,"oldest_unsent_s":3.5}', qos=1)
            await pub.publish("sh/v1/gws/state", b'{"v":1,"gateway_id":"gws","online":false}', qos=1)
        for _ in range(200):
            if c.stats.messages >= 3 and c.stats.batches and c.stats.connected.is_set() is not True:
                pass
            if await _count(pg_dsn, "SELECT count(*) FROM gateways WHERE queue_depth = 17 AND NOT online") == 1:
                break
            await asyncio.sleep(0.05)
        async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
            row = await (await conn.execute("SELECT online, version, meters, queue_depth, oldest_unsent_s, "
                                            "health->>'queue_depth' FROM gateways")).fetchone()
        assert row == (False, "1.2.3", 12, 17, 3.5, "17")
    finally:
        t.cancel()
        await asyncio.gather(t, return_exceptions=True)
        await pool.close()


async def test_batches_stay_at_batch_values_while_the_writer_is_busy(pg_dsn: str, mqtt_broker) -> None:
    """Messages that arrive while every writer is busy go into further batches of at most
    `batch_values` (plus the message that filled one), in arrival order, not into one batch of
    whatever piled up: an oversized batch holds its meters' rollup rows for longer, and the
    next one, sharing meters with it, waits."""
    sizes: list[int] = []

    async def slow(conn, batch) -> None:
        sizes.append(len(batch.rows))
        await asyncio.sleep(0.3)  # a writer busy long enough for messages to pile up behind it

    s = _settings(pg_dsn, mqtt_broker, "cap", "cap-w").model_copy(update={"batch_values": 25, "ingest_writers": 1})
    pool = await open_pool(s, configure=merge.prepare_connection)
    c = Consumer(s, pool, merge.MergeContext(hooks=[slow]))
    t = asyncio.create_task(c.run())
    try:
        await asyncio.wait_for(c.stats.connected.wait(), 10)
        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
            for k in range(40):
                vals = [reg(f"cap-m{j}", 100.0 * k + j, T0 + timedelta(minutes=k)) for j in range(10)]
                await pub.publish("cap/v1/gwc/data", payload(vals, gw="gwc", seq=k), qos=1)
        assert await _wait_for(pg_dsn, "SELECT count(*) FROM register_readings r JOIN meters m ON m.id = r.meter_id "
                                       "WHERE m.code LIKE 'cap-m%'", 400) == 400
    finally:
        t.cancel()
        await asyncio.gather(t, return_exceptions=True)
        await pool.close()
    assert sum(sizes) == 400
    assert max(sizes) <= 30 and len(sizes) >= 14, sizes

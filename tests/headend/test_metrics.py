"""Prometheus /metrics of a running head-end (ingest + API in one process, real broker and
database): messages, values, batches, commit latency, dead letters, hook time, queue
depth, connection pools and request latency by route, on the API's /metrics and on the
separate metrics port an --ingest-only worker uses."""
from __future__ import annotations

import asyncio

import aiomqtt
import httpx
import psycopg
from headend_helpers import T0, payload, reg, wait_healthy
from prometheus_client.parser import text_string_to_metric_families

from askue.devservices.ports import free_port
from askue.headend.api.auth import create_token
from askue.headend.app import run_headend
from askue.headend.config import Settings


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: dict, name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_headend_metrics(pg_dsn: str, mqtt_broker) -> None:
    api_port, metrics_port = free_port(), free_port()
    s = Settings(dsn=pg_dsn, mqtt_host=mqtt_broker.host, mqtt_port=mqtt_broker.port, mqtt_group="metrics1",
                 mqtt_client_id="metrics1-w", api_port=api_port, metrics_port=metrics_port, batch_linger_s=0.02)
    with psycopg.connect(pg_dsn) as conn:
        token = create_token(conn, "t", "admin")
    task = asyncio.create_task(run_headend(s))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}",
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            await wait_healthy(http)
            before = samples((await http.get("/metrics")).text)
            async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port, protocol=aiomqtt.ProtocolVersion.V5) as pub:
                for i in range(200):
                    if i % 10 == 0:  # until the consumer has subscribed
                        await pub.publish("askue/v1/gwm/data", payload([reg("mm", 7.5, T0)], gw="gwm"), qos=1)
                        await pub.publish("askue/v1/gwm/data", b'{"v": 1, "broken": true}', qos=1)
                    r = await http.get("/api/v1/meters/mm/readings")
                    if r.status_code == 200 and r.json()["items"]:
                        break
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)  # the invalid message's batch commits too
            resp = await http.get("/metrics")
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
            after = samples(resp.text)
            other = await asyncio.to_thread(lambda: httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("askue_headend_ingest_messages_total", kind="data") >= 1
    assert grew("askue_headend_ingest_messages_total", kind="invalid") >= 1
    assert grew("askue_headend_dead_letters_total") >= 1
    assert grew("askue_headend_ingest_values_total") >= 1
    assert grew("askue_headend_ingest_batches_total") >= 1
    assert grew("askue_headend_ingest_commit_seconds_count") >= 1
    assert grew("askue_headend_values_stored_total", source="gateway") == 1  # republished copies: stored once
    assert grew("askue_headend_hook_seconds_count", hook="vee") >= 1
    assert ("askue_headend_ingest_queue_depth", ()) in after
    for pool in ("api", "headend"):
        assert value(after, "askue_headend_db_pool_max", pool=pool) == 8
        assert value(after, "askue_headend_db_pool_connections", pool=pool) >= 1
    route = dict(method="GET", route="/api/v1/meters/{code}/readings", status="200")
    assert grew("askue_headend_http_request_seconds_count", **route) >= 1
    # the separate port serves the same registry
    assert "askue_headend_ingest_batches_total" in other and "askue_headend_db_pool_idle" in other

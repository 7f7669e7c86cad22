"""Prometheus metrics of the head-end process, served at `/metrics` (prometheus_client).

Module-level metrics in prometheus_client's default registry: one head-end process,
one set of figures, whatever parts of it run (ingest, API, background tasks). The
Grafana dashboard "head-end health" (askue.headend.grafana.dashboards) reads them.
"""
from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Seconds: from a few milliseconds (a small batch, a page) to a minute (a backlog batch).
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

MESSAGES = Counter("askue_headend_ingest_messages", "MQTT messages received, by kind (invalid: dead letter).",
                   ["kind"])
VALUES = Counter("askue_headend_ingest_values", "Values received in data messages (committed batches).")
BATCHES = Counter("askue_headend_ingest_batches", "Batches committed by the ingest.")
LAST_COMMIT = Gauge("askue_headend_ingest_last_commit_timestamp_seconds",
                    "When the ingest last committed a batch (Unix time): staleness, and the end of a benchmark run.")
COMMIT_SECONDS = Histogram("askue_headend_ingest_commit_seconds",
                           "Time to write and commit one ingest batch (retries included).", buckets=_SECONDS)
DEAD_LETTERS = Counter("askue_headend_dead_letters", "Payloads stored as dead letters.")
QUEUE_DEPTH = Gauge("askue_headend_ingest_queue_depth", "Messages decoded and waiting for a batch.")
IN_FLIGHT = Gauge("askue_headend_ingest_batches_in_flight", "Batches being written now.")
STORED = Counter("askue_headend_values_stored", "Values newly stored by any writer, by source "
                 "(gateway, manual, file, estimate).", ["source"])
HOOK_SECONDS = Histogram("askue_headend_hook_seconds", "Time spent in an after-insert hook per write.",
                         ["hook"], buckets=_SECONDS)
HOOK_FAILURES = Counter("askue_headend_hook_failures", "After-insert hook runs that failed (values kept).",
                        ["hook"])
COMMANDS = Counter("askue_headend_commands", "Commands to gateways by what happened: sent (published), done, "
                   "failed, expired, unknown_result (an answer to no command of ours).", ["outcome"])
HTTP_SECONDS = Histogram("askue_headend_http_request_seconds", "API and page requests by route and status.",
                         ["method", "route", "status"], buckets=_SECONDS)

_POOLS: MutableMapping[str, Any] = weakref.WeakValueDictionary()


def watch_pool(name: str, pool: Any) -> None:
    """Report this psycopg_pool pool's use under `pool="<name>"`."""
    _POOLS[name] = pool


class _PoolCollector(Collector):
    """Database connection pool use, read from the pools at scrape time."""

    FIELDS = (("pool_size", "askue_headend_db_pool_connections", "Connections open in the pool."),
              ("pool_available", "askue_headend_db_pool_idle", "Connections idle in the pool."),
              ("pool_max", "askue_headend_db_pool_max", "Largest size of the pool."),
              ("requests_waiting", "askue_headend_db_pool_waiting", "Requests waiting for a connection."))

    def collect(self):
        families = {key: GaugeMetricFamily(name, doc, labels=["pool"]) for key, name, doc in self.FIELDS}
        for pool_name, pool in list(_POOLS.items()):
            stats = pool.get_stats()
            for key, _, _ in self.FIELDS:
                families[key].add_metric([pool_name], float(stats.get(key, 0)))
        yield from families.values()


REGISTRY.register(_PoolCollector())


def exposition() -> tuple[bytes, str]:
    """(body, content type) of the current figures in Prometheus text format."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class HttpMetrics:
    """ASGI middleware: request latency by route template (`/api/v1/meters/{code}`, not
    the code itself, so the series stay few)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            HTTP_SECONDS.labels(scope["method"], self._template(scope),
                                str(status["code"])).observe(time.perf_counter() - started)

    @staticmethod
    def _template(scope: dict) -> str:
        """The matched route's path with the prefix it was included under."""
        route, path = scope.get("route"), scope.get("path", "")
        regex, template = getattr(route, "path_regex", None), getattr(route, "path", None)
        if regex is None or template is None:
            return "unmatched"
        for i, ch in enumerate(path):  # the route's own path matches the tail after its prefix
            if ch == "/" and regex.match(path[i:]):
                return path[:i] + template
        return template

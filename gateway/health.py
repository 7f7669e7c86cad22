"""Health: the periodic `…/health` message and a local Prometheus `/metrics` endpoint.

The endpoint is prometheus_client's own small HTTP server (pure Python, no web
framework): the gateway runs on a 1 GB box and must not pull in a server stack for one
text page.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from askue.contract.payloads import SCHEMA_VERSION, Health

if TYPE_CHECKING:
    from askue.gateway.service import Gateway

log = logging.getLogger("askue.gateway.health")
SCRAPE_TIMEOUT_S = 5.0


class ProcessProbe:
    def __init__(self) -> None:
        try:
            import psutil

            self._proc = psutil.Process(os.getpid())
            self._proc.cpu_percent(None)  # first call primes the counter
        except ImportError:  # psutil is in the gateway extra; degrade rather than fail
            self._proc = None

    def cpu_percent(self) -> float | None:
        return self._proc.cpu_percent(None) if self._proc else None

    def cpu_seconds(self) -> float | None:
        if not self._proc:
            return None
        t = self._proc.cpu_times()
        return t.user + t.system

    def rss(self) -> int | None:
        return self._proc.memory_info().rss if self._proc else None


def disk_free(path: str) -> int | None:
    d = os.path.dirname(os.path.abspath(path)) or "."
    try:
        return shutil.disk_usage(d).free
    except OSError:
        return None


def collect(gw: Gateway, probe: ProcessProbe) -> Health:
    store = gw.store
    evicted = store.evicted()
    buses = {w.bus.id: w.stats.as_dict() for w in gw.workers.values()}
    return Health(v=SCHEMA_VERSION, gateway_id=gw.cfg.gateway.id, at=datetime.now(UTC), queue_depth=store.depth,
                  oldest_unsent_s=store.oldest_age_s(), evicted=sum(evicted.values()),
                  cpu_percent=probe.cpu_percent(), memory_rss_bytes=probe.rss(),
                  disk_free_bytes=disk_free(gw.cfg.store.path), buses=buses)


def metric_families(gw: Gateway, probe: ProcessProbe) -> list[Metric]:
    """The gateway's figures as Prometheus metric families (read in the gateway's loop)."""
    gid = gw.cfg.gateway.id
    out: list[Metric] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float | None]]) -> None:
        labels = ["gateway", *(samples[0][0] if samples else {})]
        fam = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(f"askue_gateway_{name}", help_,
                                                                                 labels=labels)
        for extra, value in samples:
            if value is not None:
                fam.add_metric([gid, *extra.values()], float(value))
        out.append(fam)

    store = gw.store
    metric("queue_depth", "gauge", "Values stored and not yet acknowledged by the broker.", [({}, store.depth)])
    metric("oldest_unsent_seconds", "gauge", "Age of the oldest value not yet acknowledged.",
           [({}, store.oldest_age_s() or 0.0)])
    metric("evicted", "counter", "Values evicted from the full store, by kind.",
           [({"kind": k}, v) for k, v in sorted(store.evicted().items())] or [({"kind": "instant"}, 0)])
    metric("sequence", "gauge", "Last data message sequence number.", [({}, store.last_seq())])
    p = gw.publisher.stats()
    metric("mqtt_connected", "gauge", "1 while connected to the broker.", [({}, p["connected"])])
    metric("mqtt_messages_acked", "counter", "Data messages acknowledged by the broker.",
           [({}, p["acked_messages"])])
    metric("mqtt_values_acked", "counter", "Values acknowledged by the broker.", [({}, p["acked_values"])])
    metric("mqtt_inflight", "gauge", "Messages published and awaiting PUBACK.", [({}, p["inflight"])])
    metric("mqtt_unrouted", "counter", "Data messages the broker had no subscriber for (kept, sent again).",
           [({}, p["unrouted"])])
    for field, help_ in (("requests", "Meter operations attempted."), ("ok", "Meter operations that succeeded."),
                         ("timeouts", "Meter operations that timed out."),
                         ("crc_errors", "Damaged frames (CRC/BCC errors, garbage)."),
                         ("protocol_errors", "Protocol errors and refusals."),
                         ("identity_mismatches", "Meters whose serial differs from the config."),
                         ("values", "Values read and stored.")):
        metric(f"bus_{field}", "counter", help_,
               [({"bus": w.bus.id}, getattr(w.stats, field)) for w in gw.workers.values()] or [({"bus": ""}, None)])
    states = gw.meter_states()
    metric("meter_up", "gauge", "1 if the meter's last operation succeeded.",
           [({"meter": s.cfg.id, "bus": s.cfg.bus}, 0.0 if s.last_error else 1.0) for s in states]
           or [({"meter": "", "bus": ""}, None)])
    metric("meter_clock_drift_seconds", "gauge", "Meter clock minus gateway clock.",
           [({"meter": s.cfg.id, "bus": s.cfg.bus}, s.clock_drift_s) for s in states]
           or [({"meter": "", "bus": ""}, None)])
    metric("cpu_percent", "gauge", "Process CPU use since the last scrape.", [({}, probe.cpu_percent())])
    metric("cpu_seconds", "counter", "Process CPU time.", [({}, probe.cpu_seconds())])
    metric("memory_rss_bytes", "gauge", "Resident memory.", [({}, probe.rss())])
    metric("disk_free_bytes", "gauge", "Free space where the store lives.", [({}, disk_free(gw.cfg.store.path))])
    return out


class _Figures(Collector):
    def __init__(self, read: Callable[[], list[Metric]]) -> None:
        self.read = read

    def collect(self):
        return self.read()


def prometheus_text(gw: Gateway, probe: ProcessProbe) -> str:
    """Prometheus text exposition format 0.0.4 (call it in the gateway's loop)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Figures(lambda: metric_families(gw, probe)))
    return generate_latest(registry).decode()


class MetricsServer:
    """`/metrics` served by prometheus_client's small HTTP server (a thread of its own);
    each scrape reads the figures inside the gateway's event loop, where the store lives."""

    def __init__(self, gw: Gateway, probe: ProcessProbe, host: str, port: int):
        self.gw, self.probe, self.host, self.port = gw, probe, host, port
        self.server = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        async def read() -> list[Metric]:
            return metric_families(self.gw, self.probe)

        def in_loop() -> list[Metric]:
            return asyncio.run_coroutine_threadsafe(read(), loop).result(timeout=SCRAPE_TIMEOUT_S)

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Figures(in_loop))
        self.server, _ = start_http_server(self.port, addr=self.host, registry=registry)
        self.port = self.server.server_port
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self.server:
            await asyncio.to_thread(self.server.shutdown)
            self.server.server_close()

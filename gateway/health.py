"""Health: the periodic `…/health` message and a local Prometheus `/metrics` endpoint.

The endpoint is a few lines of asyncio instead of a web framework: the gateway
runs on a 1 GB box and must not pull in a server stack for one text page.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from askue.contract.payloads import SCHEMA_VERSION, Health

if TYPE_CHECKING:
    from askue.gateway.service import Gateway

log = logging.getLogger("askue.gateway.health")


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


def _label(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(gw: Gateway, probe: ProcessProbe) -> str:
    """Prometheus text exposition format 0.0.4."""
    out: list[str] = []
    gid = _label(gw.cfg.gateway.id)

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float | None]]) -> None:
        out.append(f"# HELP askue_gateway_{name} {help_}")
        out.append(f"# TYPE askue_gateway_{name} {kind}")
        for labels, value in samples:
            if value is None:
                continue
            lab = ",".join(f'{k}="{_label(v)}"' for k, v in {"gateway": gid, **labels}.items())
            out.append(f"askue_gateway_{name}{{{lab}}} {float(value)!r}")

    store = gw.store
    metric("queue_depth", "gauge", "Values stored and not yet acknowledged by the broker.", [({}, store.depth)])
    metric("oldest_unsent_seconds", "gauge", "Age of the oldest value not yet acknowledged.",
           [({}, store.oldest_age_s() or 0.0)])
    metric("evicted_total", "counter", "Values evicted from the full store, by kind.",
           [({"kind": k}, v) for k, v in sorted(store.evicted().items())] or [({"kind": "instant"}, 0)])
    metric("sequence", "counter", "Last data message sequence number.", [({}, store.last_seq())])
    p = gw.publisher.stats()
    metric("mqtt_connected", "gauge", "1 while connected to the broker.", [({}, p["connected"])])
    metric("mqtt_messages_acked_total", "counter", "Data messages acknowledged by the broker.",
           [({}, p["acked_messages"])])
    metric("mqtt_values_acked_total", "counter", "Values acknowledged by the broker.", [({}, p["acked_values"])])
    metric("mqtt_inflight", "gauge", "Messages published and awaiting PUBACK.", [({}, p["inflight"])])
    for field, help_ in (("requests", "Meter operations attempted."), ("ok", "Meter operations that succeeded."),
                         ("timeouts", "Meter operations that timed out."),
                         ("crc_errors", "Damaged frames (CRC/BCC errors, garbage)."),
                         ("protocol_errors", "Protocol errors and refusals."),
                         ("identity_mismatches", "Meters whose serial differs from the config."),
                         ("values", "Values read and stored.")):
        metric(f"bus_{field}_total", "counter", help_,
               [({"bus": w.bus.id}, getattr(w.stats, field)) for w in gw.workers.values()])
    metric("meter_up", "gauge", "1 if the meter's last operation succeeded.",
           [({"meter": s.cfg.id, "bus": s.cfg.bus}, 0.0 if s.last_error else 1.0) for s in gw.meter_states()])
    metric("meter_clock_drift_seconds", "gauge", "Meter clock minus gateway clock.",
           [({"meter": s.cfg.id, "bus": s.cfg.bus}, s.clock_drift_s) for s in gw.meter_states()])
    metric("cpu_percent", "gauge", "Process CPU use since the last scrape.", [({}, probe.cpu_percent())])
    metric("cpu_seconds_total", "counter", "Process CPU time.", [({}, probe.cpu_seconds())])
    metric("memory_rss_bytes", "gauge", "Resident memory.", [({}, probe.rss())])
    metric("disk_free_bytes", "gauge", "Free space where the store lives.", [({}, disk_free(gw.cfg.store.path))])
    return "\n".join(out) + "\n"


class MetricsServer:
    def __init__(self, gw: Gateway, probe: ProcessProbe, host: str, port: int):
        self.gw, self.probe, self.host, self.port = gw, probe, host, port
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            while await asyncio.wait_for(reader.readline(), 5) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.decode("latin-1").split()
            if len(parts) >= 2 and parts[0] == "GET" and parts[1].split("?")[0] == "/metrics":
                body = prometheus_text(self.gw, self.probe).encode()
                status, ctype = "200 OK", "text/plain; version=0.0.4; charset=utf-8"
            else:
                body, status, ctype = b"only GET /metrics is served here\n", "404 Not Found", "text/plain"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

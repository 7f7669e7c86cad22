"""The gateway process: bus workers, store, publisher, commands, health — wired together.

Hot reload (SIGHUP or the reload_config command) re-reads the config file and
applies bus and meter changes without a restart; gateway id, broker and store
changes are reported as needing a restart and left as they are.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from askue.contract.payloads import MeterStatus
from askue.gateway.bus_worker import BusWorker, MeterState
from askue.gateway.commands import CommandError, Commands
from askue.gateway.config import ConfigError, GatewayConfig, load_config
from askue.gateway.health import MetricsServer, ProcessProbe, collect
from askue.gateway.publisher import Publisher
from askue.gateway.store import AsyncStore, Store

log = logging.getLogger("askue.gateway")


class Gateway:
    def __init__(self, cfg: GatewayConfig, config_path: str | Path | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.cfg = cfg
        self.now = now  # the gateway's wall clock (received_at, profile ranges, clock drift)
        self.config_path = Path(config_path) if config_path else None
        self.store = Store(cfg.store.path, cfg.store.max_values, cfg.store.synchronous)
        self.astore = AsyncStore(self.store)
        self.workers: dict[str, BusWorker] = {}
        self.commands = Commands(self)
        self.publisher = Publisher(cfg.gateway, cfg.broker, self.astore, self.statuses, self.commands.handle,
                                   meters_count=lambda: len(self.cfg.meters))
        self.astore.on_commit = self.publisher.wake
        self.probe = ProcessProbe()
        self.metrics: MetricsServer | None = None
        self._health_task: asyncio.Task | None = None
        self._reload_lock = asyncio.Lock()

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        for bus in self.cfg.buses:
            self._start_worker(bus.id)
        self.publisher.start()
        if self.cfg.metrics.port is not None:
            self.metrics = MetricsServer(self, self.probe, self.cfg.metrics.host, self.cfg.metrics.port)
            try:
                await self.metrics.start()
            except OSError as e:  # port taken: polling and publishing matter more than the endpoint
                log.error("metrics endpoint %s:%s not started: %s (change metrics.port)",
                          self.cfg.metrics.host, self.cfg.metrics.port, e)
                self.metrics = None
        self._health_task = asyncio.create_task(self._health_loop(), name="health")
        log.info("gateway %s started: %d buses, %d meters, store %s (%d values waiting)", self.cfg.gateway.id,
                 len(self.cfg.buses), len(self.cfg.meters), self.cfg.store.path, self.store.depth)

    def _start_worker(self, bus_id: str) -> None:
        w = BusWorker(self.cfg.bus(bus_id), self.cfg.meters_on(bus_id), self.astore, on_status=self._status_changed,
                      now=self.now)
        self.workers[bus_id] = w
        w.start()

    def _status_changed(self, meter_id: str) -> None:
        self.publisher.mark_status(meter_id)

    async def stop(self) -> None:
        """Clean shutdown: stop polling, publish what is stored (up to shutdown_flush_s), mark offline."""
        log.info("gateway %s stopping", self.cfg.gateway.id)
        for w in self.workers.values():
            await w.stop()
        if self._health_task:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        if self.metrics:
            await self.metrics.stop()
        await self.publisher.stop(self.cfg.gateway.shutdown_flush_s)
        await self.astore.close()
        log.info("gateway %s stopped", self.cfg.gateway.id)

    async def _health_loop(self) -> None:
        from askue.contract.payloads import encode

        topic = self.publisher.topics.health(self.cfg.gateway.id)
        while True:
            await asyncio.sleep(self.cfg.gateway.health_interval_s)
            try:
                h = collect(self, self.probe)
                if self.publisher.connected.is_set():
                    self.publisher.publish_aux(topic, encode(h), qos=0)
                for bus, stats in h.buses.items():
                    log.debug("bus %s: %s", bus, stats)
            except Exception:  # health must never take the gateway down
                log.exception("health report failed")

    # ---- lookups used by commands, publisher, health ---------------------------------------
    def meter_ids(self) -> list[str]:
        return [m for w in self.workers.values() for m in w.meters]

    def meter_states(self) -> list[MeterState]:
        return [s for w in self.workers.values() for s in w.meters.values()]

    def _worker_of(self, meter_id: str) -> BusWorker:
        for w in self.workers.values():
            if meter_id in w.meters:
                return w
        raise CommandError(f"meter {meter_id!r} is not configured on this gateway; known meters: "
                           f"{', '.join(self.meter_ids()[:20]) or '(none)'}")

    def submit(self, meter_id: str, op: str, args: dict[str, Any]) -> asyncio.Future:
        return self._worker_of(meter_id).submit(meter_id, op, args)

    def statuses(self, meter_ids: set[str]) -> list[MeterStatus]:
        out = []
        for w in self.workers.values():
            for mid in sorted(meter_ids & w.meters.keys()):
                out.append(w.meters[mid].status())
        return out

    def publish_result(self, payload: bytes) -> None:
        self.publisher.publish_aux(self.publisher.topics.cmd_result(self.cfg.gateway.id), payload, qos=1)

    # ---- hot reload ---------------------------------------------------------------------
    async def reload(self) -> dict[str, Any]:
        if self.config_path is None:
            raise CommandError("this gateway was started without a config file; nothing to reload")
        async with self._reload_lock:
            try:
                new = load_config(self.config_path)
                for m in new.meters:
                    _driver_available(m.driver)
            except ConfigError as e:
                log.error("reload refused, keeping the running config: %s", e)
                raise CommandError(str(e)) from None
            return await self.apply(new)

    async def apply(self, new: GatewayConfig) -> dict[str, Any]:
        old = self.cfg
        needs_restart = [s for s in ("gateway", "broker", "store", "metrics")
                         if getattr(old, s) != getattr(new, s)]
        if needs_restart:
            log.warning("reload: %s changed; these take effect after a restart", ", ".join(needs_restart))
        # Keep the parts that need a restart as they run now.
        self.cfg = new.model_copy(update={s: getattr(old, s) for s in needs_restart})
        changed: dict[str, list[str]] = {"buses_added": [], "buses_removed": [], "buses_restarted": [],
                                         "meters_added": [], "meters_removed": [], "meters_changed": []}
        old_buses = {b.id: b for b in old.buses}
        new_buses = {b.id: b for b in new.buses}
        for bid in old_buses.keys() - new_buses.keys():
            await self.workers.pop(bid).stop()
            changed["buses_removed"].append(bid)
        for bid, b in new_buses.items():
            if bid not in old_buses:
                self._start_worker(bid)
                changed["buses_added"].append(bid)
            elif b != old_buses[bid]:
                await self.workers.pop(bid).stop()
                self._start_worker(bid)
                changed["buses_restarted"].append(bid)
            else:
                w = self.workers[bid]
                old_m = {m.id: m for m in old.meters_on(bid)}
                new_m = {m.id: m for m in new.meters_on(bid)}
                for mid in old_m.keys() - new_m.keys():
                    w.remove_meter(mid)
                    changed["meters_removed"].append(mid)
                for mid, m in new_m.items():
                    if mid not in old_m:
                        w.add_meter(m)
                        changed["meters_added"].append(mid)
                    elif m != old_m[mid]:
                        w.remove_meter(mid)
                        w.add_meter(m)
                        changed["meters_changed"].append(mid)
        # A meter moved to another bus shows up as removed there and added here.
        summary = {k: sorted(v) for k, v in changed.items() if v}
        log.info("config reloaded: %s%s", summary or "no changes",
                 f"; restart needed for {needs_restart}" if needs_restart else "")
        return {"changes": summary, "restart_needed": needs_restart}


def _driver_available(name: str) -> None:
    from askue.drivers.base import get_driver

    try:
        get_driver(name)
    except (KeyError, ImportError) as e:
        raise ConfigError(f"driver {name!r} cannot be loaded: {e} (install the gateway extra: "
                          "pip install 'askue[gateway]')") from None


async def run_gateway(cfg: GatewayConfig, config_path: str | Path | None = None) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads the config."""
    import signal

    for m in cfg.meters:
        _driver_available(m.driver)
    gw = Gateway(cfg, config_path)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def _reload() -> None:
        async def go() -> None:
            with contextlib.suppress(CommandError):
                await gw.reload()

        asyncio.ensure_future(go())

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload)
    await gw.start()
    await stop.wait()
    await gw.stop()
    return 0

"""The head-end process: ingest, background tasks and the HTTP API in one asyncio loop
(`askue headend run`). What runs in it is listed in `askue.headend.composition`
(hooks, tasks) and `askue.headend.api.app` (routers, pages).
"""
from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from askue.headend.config import Settings

log = logging.getLogger(__name__)


async def open_pool(settings: Settings, *, dsn: str | None = None, **kw: Any):
    """The head-end's pool of connections to the primary; they run work registered with
    `storage.after_commit` once their transaction has committed."""
    from psycopg_pool import AsyncConnectionPool

    from askue.headend.storage.after_commit import Connection

    pool = AsyncConnectionPool(dsn or settings.dsn, min_size=settings.pool_min, max_size=settings.pool_max,
                               open=False, connection_class=Connection, **kw)
    await pool.open(wait=True, timeout=30)
    return pool


def _tune_gc() -> None:
    """Fewer cyclic garbage collections for a process that makes and drops hundreds of thousands
    of small objects per second (the ingest: decoded values, rows, VEE's values). At Python's
    default (a collection every 700 allocations, full ones scanning every live object: the
    registry view, the batches waiting) the collector took 7 of the head-end's 28 s of CPU in
    the live benchmark, 2.5 s with these thresholds. What was loaded at start (modules,
    settings, the app) is frozen out of the scans."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def cancel_all(tasks: list[asyncio.Task], again_s: float = 1.0) -> None:
    """Cancel `tasks` and wait until each has ended, cancelling again a task still running
    `again_s` after: a cancellation can be swallowed under a task (Python 3.11's wait_for
    returns the result of what finished as it was cancelled, psycopg's pool hands over the
    connection that arrived meanwhile), and a loop that goes on then never ends (seen: the
    alerts task, and a head-end that did not stop on SIGTERM)."""
    for t in tasks:
        t.cancel()
    running = {t for t in tasks if not t.done()}
    while running:
        _, running = await asyncio.wait(running, timeout=again_s)
        for t in running:
            t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_headend(settings: Settings, *, ingest: bool = True, api: bool = True,
                      migrate: bool = True, ready: Callable[[], Awaitable[None] | None] | None = None,
                      stop: asyncio.Event | None = None) -> None:
    """Run ingest, background tasks and the API in this process until cancelled or `stop` is set
    (then the API finishes its requests in flight and the rest is cancelled)."""
    import psycopg
    from prometheus_client import start_http_server

    from askue.contract import Topics
    from askue.headend import composition, metrics
    from askue.headend.ingest import merge
    from askue.headend.ingest.consumer import Consumer
    from askue.headend.notify import mail
    from askue.headend.storage import hooks, meta, migrations

    if migrate:
        await asyncio.to_thread(migrations.apply, settings.dsn, timezone=settings.timezone)
    with psycopg.connect(settings.dsn) as c:
        try:
            tz = meta.load_sync(c).timezone
        except meta.NotMigrated:
            raise migrations.MigrationError("the database has no askue schema yet; run `askue headend migrate` "
                                            "(or start without --no-migrate)") from None
    if tz != settings.timezone:
        log.warning("rollups in this database use time zone %s (settings say %s); %s is used", tz,
                    settings.timezone, tz)

    async with AsyncExitStack() as stack:
        pool = await open_pool(settings, configure=merge.prepare_connection)
        stack.push_async_callback(pool.close)
        metrics.watch_pool("headend", pool)
        if settings.metrics_port is not None:
            # a worker without the API (--ingest-only) still answers Prometheus
            server_thread = start_http_server(settings.metrics_port, addr=settings.api_host)
            stack.callback(lambda: server_thread[0].shutdown())
        tasks: list[asyncio.Task] = []
        server = None
        if ingest:
            ctx = merge.MergeContext(hooks=hooks.composed(), topics=Topics(settings.mqtt_root))
            tasks.append(asyncio.create_task(Consumer(settings, pool, ctx).run(), name="ingest"))
            for task in composition.BACKGROUND_TASKS:
                tasks.append(asyncio.create_task(task(pool, settings), name=getattr(task, "__name__", "task")))
        if api:
            import uvicorn

            from askue.headend.api.app import create_app

            server = uvicorn.Server(uvicorn.Config(create_app(settings), host=settings.api_host,
                                                   port=settings.api_port, log_level="warning", lifespan="on"))
            tasks.append(asyncio.create_task(server.serve(), name="api"))
        _tune_gc()
        if ready:
            r = ready()
            if asyncio.iscoroutine(r):
                await r
        stopper = asyncio.create_task((stop or asyncio.Event()).wait(), name="stop")
        running = set(tasks)
        try:
            while running:
                done, _ = await asyncio.wait(running | {stopper}, return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    if server is not None:
                        server.should_exit = True  # let uvicorn finish the requests in flight
                        api_task = next(t for t in tasks if t.get_name() == "api")
                        await asyncio.wait({api_task}, timeout=10)
                    # letters its requests committed (a reset link) go before the loop ends
                    await mail.drain(settings.smtp_timeout_s)
                    return
                for t in done:
                    t.result()  # a failed task stops the head-end with its error
                running -= done
        finally:
            stopper.cancel()
            await cancel_all(tasks)

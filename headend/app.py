"""Composition of the head-end: which hooks, background tasks and routers run.

Other head-end packages add ONE line to a list below. Entries are
"module:attr" strings, loaded only if their module exists, so the head-end
runs whatever has landed:

- BATCH_HOOKS: async `hook(conn, batch: InsertedBatch)` called inside the ingest
  transaction after a batch merged.
- BACKGROUND_TASKS: async `task(pool, settings)` run for the life of the head-end.
- ROUTERS: FastAPI `APIRouter`s included under /api/v1.
- PAGES: `APIRouter`s of web pages included at the site root (the operators' pages).
"""
from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from askue.headend.config import Settings

log = logging.getLogger(__name__)

BATCH_HOOKS: list[str] = [
    "askue.headend.vee.live:batch_hook",
]

BACKGROUND_TASKS: list[str] = [
    "askue.headend.storage.tasks:rollup_task",
    "askue.headend.exports.tasks:billing_task",
    "askue.headend.vee.scan:scan_task",
]

ROUTERS: list[str] = [
    "askue.headend.api.routes_meters:router",
    "askue.headend.api.routes_consumption:router",
    "askue.headend.api.routes_gateways:router",
    "askue.headend.api.routes_registry:router",
    "askue.headend.exports.router:router",
    "askue.headend.vee.api:router",
]

PAGES: list[str] = [
    "askue.headend.web.router:router",
]


def load_entries(entries: list[str]) -> list[Any]:
    """Import "module:attr" entries; a module not (yet) present is skipped with a debug note."""
    out: list[Any] = []
    for entry in entries:
        module, _, attr = entry.partition(":")
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and module.startswith(e.name):  # the module itself is missing, not a dependency of it
                log.debug("skipping %s: module not present", entry)
                continue
            raise
        out.append(getattr(mod, attr))
    return out


async def open_pool(settings: Settings, **kw: Any):
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(settings.dsn, min_size=settings.pool_min, max_size=settings.pool_max,
                               open=False, **kw)
    await pool.open(wait=True, timeout=30)
    return pool


async def run_headend(settings: Settings, *, ingest: bool = True, api: bool = True,
                      migrate: bool = True, ready: Callable[[], Awaitable[None] | None] | None = None,
                      stop: asyncio.Event | None = None) -> None:
    """Run ingest, background tasks and the API in this process until cancelled or `stop` is set
    (then the API finishes its requests in flight and the rest is cancelled)."""
    import psycopg

    from askue.headend.ingest import merge
    from askue.headend.ingest.consumer import Consumer
    from askue.headend.storage import migrations

    if migrate:
        await asyncio.to_thread(migrations.apply, settings.dsn, timezone=settings.timezone)
    with psycopg.connect(settings.dsn) as c:
        mode = migrations.storage_mode(c)
        if mode is None:
            raise migrations.MigrationError("the database has no askue schema yet; run `askue headend migrate` "
                                            "(or start without --no-migrate)")
        tz = c.execute("SELECT value FROM askue_meta WHERE key = 'timezone'").fetchone()[0]
    if tz != settings.timezone:
        log.warning("rollups in this database use time zone %s (settings say %s); %s is used", tz,
                    settings.timezone, tz)

    async with AsyncExitStack() as stack:
        pool = await open_pool(settings, configure=merge.prepare_connection)
        stack.push_async_callback(pool.close)
        tasks: list[asyncio.Task] = []
        server = None
        if ingest:
            ctx = merge.MergeContext(mode=mode, hooks=load_entries(BATCH_HOOKS))
            tasks.append(asyncio.create_task(Consumer(settings, pool, ctx).run(), name="ingest"))
            for task in load_entries(BACKGROUND_TASKS):
                tasks.append(asyncio.create_task(task(pool, settings), name=getattr(task, "__name__", "task")))
        if api:
            import uvicorn

            from askue.headend.api.app import create_app

            server = uvicorn.Server(uvicorn.Config(create_app(settings), host=settings.api_host,
                                                   port=settings.api_port, log_level="warning", lifespan="on"))
            tasks.append(asyncio.create_task(server.serve(), name="api"))
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
                    return
                for t in done:
                    t.result()  # a failed task stops the head-end with its error
                running -= done
        finally:
            stopper.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

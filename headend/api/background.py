"""Bookkeeping writes a read does not wait for (a token's or a session's last use): on the
primary, in the background, and skipped when the primary is away."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

log = logging.getLogger(__name__)
_tasks: set[asyncio.Task] = set()


def touch(pool: Any, sql: str, params: tuple) -> None:
    async def run() -> None:
        try:
            async with pool.connection(timeout=5) as conn:
                await conn.execute(sql, params)
        except (PoolTimeout, psycopg.OperationalError) as e:
            log.debug("bookkeeping write skipped (primary unavailable): %s", e)

    t = asyncio.create_task(run())
    _tasks.add(t)
    t.add_done_callback(_tasks.discard)

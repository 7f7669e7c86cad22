"""Shared FastAPI dependencies: a pooled connection per request."""
from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
from fastapi import Request


async def db(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    async with request.app.state.pool.connection() as conn:
        yield conn

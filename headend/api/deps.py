"""Shared FastAPI dependencies: a pooled connection per request, from the primary or the
read replica (`read_dsn`).

One rule for every route and page: a GET (or HEAD) reads from the replica, anything else
(an action: manual entry, an event transition, a registry edit) runs on the primary. A
client that has just acted gets the primary for its next reads until the replica has
replayed that action (the `askue_lsn` cookie holds the primary's WAL position after it), so
an operator sees their own change on the page they are sent back to. Routes that must
always see the primary (the billing feed's commit-order cursor) ask for `primary_db`.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import psycopg
from fastapi import Request
from psycopg_pool import PoolTimeout

log = logging.getLogger(__name__)

LSN_COOKIE = "askue_lsn"
_READS = ("GET", "HEAD")


def has_replica(request: Request) -> bool:
    return getattr(request.app.state, "read_pool", request.app.state.pool) is not request.app.state.pool


def connection(request: Request) -> AbstractAsyncContextManager[psycopg.AsyncConnection]:
    """The connection this request works on (see the module docstring)."""
    if request.method not in _READS or not has_replica(request):
        return request.app.state.pool.connection()
    return _ReadConnection(request)


async def db(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    async with connection(request) as conn:
        yield conn


async def primary_db(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    async with request.app.state.pool.connection() as conn:
        yield conn


class _ReadConnection:
    """The replica's connection, or the primary's while the replica lags behind this client's
    last action; the replica alone when the primary is away (reads go on)."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self._cm = None

    async def __aenter__(self) -> psycopg.AsyncConnection:
        app = self.request.app
        lsn = self.request.cookies.get(LSN_COOKIE)
        try:
            self._cm = app.state.read_pool.connection()
            conn = await self._cm.__aenter__()
        except (PoolTimeout, psycopg.OperationalError):
            log.warning("read replica unavailable; reading from the primary")
            self._cm = app.state.pool.connection()
            return await self._cm.__aenter__()
        if lsn and not await _replayed(conn, lsn):
            try:
                primary = app.state.pool.connection(timeout=5)
                got = await primary.__aenter__()
            except (PoolTimeout, psycopg.OperationalError):
                return conn  # the primary is away: what the replica has is all there is
            await self._cm.__aexit__(None, None, None)
            self._cm = primary
            return got
        return conn

    async def __aexit__(self, *exc) -> None:
        if self._cm is not None:
            await self._cm.__aexit__(*exc)


async def _replayed(conn: psycopg.AsyncConnection, lsn: str) -> bool:
    try:
        cur = await conn.execute("SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, true)", (lsn,))
        ok = bool((await cur.fetchone())[0])
        await conn.rollback()
        return ok
    except psycopg.errors.DataError:  # a cookie that is not an LSN
        await conn.rollback()
        return True


async def remember_writes(request: Request, call_next):
    """HTTP middleware: after an action, note the primary's WAL position in a cookie."""
    response = await call_next(request)
    if request.method in _READS or response.status_code >= 400 or not has_replica(request):
        return response
    try:
        async with request.app.state.pool.connection(timeout=5) as conn:
            lsn = (await (await conn.execute("SELECT pg_current_wal_lsn()::text")).fetchone())[0]
    except (PoolTimeout, psycopg.OperationalError):
        return response
    response.set_cookie(LSN_COOKIE, lsn, max_age=300, httponly=True, samesite="lax")
    return response

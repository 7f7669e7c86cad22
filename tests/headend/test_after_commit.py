"""Work after a commit (storage/after_commit.py) on a real PostgreSQL: it runs once the
transaction committed, never after a rollback or a failed commit, at once where nothing is
uncommitted; the head-end's pools hand out such connections."""
from __future__ import annotations

import psycopg
import pytest

from askue.headend.app import open_pool
from askue.headend.config import Settings
from askue.headend.storage.after_commit import Connection, after_commit


async def test_runs_at_the_commit_and_never_after_a_rollback(pg_dsn: str) -> None:
    ran: list[str] = []
    conn = await Connection.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE letters_test (x int)")
        await conn.execute("INSERT INTO letters_test VALUES (1)")
        after_commit(conn, lambda: ran.append("first"))
        assert ran == []  # written, not committed
        await conn.commit()
        assert ran == ["first"]

        await conn.execute("INSERT INTO letters_test VALUES (2)")
        after_commit(conn, lambda: ran.append("rolled back"))
        await conn.rollback()
        await conn.execute("SELECT 1")
        await conn.commit()
        assert ran == ["first"]

        after_commit(conn, lambda: ran.append("idle"))  # nothing uncommitted: at once
        assert ran == ["first", "idle"]
    finally:
        await conn.close()


async def test_a_failed_commit_runs_nothing(pg_dsn: str) -> None:
    ran: list[str] = []
    conn = await Connection.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE once_test (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)")
        await conn.commit()
        await conn.execute("INSERT INTO once_test VALUES (1), (1)")  # refused only at the commit
        after_commit(conn, lambda: ran.append("sent"))
        with pytest.raises(psycopg.errors.UniqueViolation):
            await conn.commit()
        await conn.execute("SELECT 1")
        await conn.commit()
        assert ran == []
    finally:
        await conn.close()


async def test_autocommit_runs_at_once_and_a_plain_connection_in_a_transaction_is_refused(pg_dsn: str) -> None:
    ran: list[str] = []
    auto = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
    plain = await psycopg.AsyncConnection.connect(pg_dsn)
    try:
        await auto.execute("SELECT 1")
        after_commit(auto, lambda: ran.append("auto"))
        assert ran == ["auto"]
        await plain.execute("SELECT 1")
        with pytest.raises(TypeError, match="open_pool"):
            after_commit(plain, lambda: ran.append("plain"))
    finally:
        await auto.close()
        await plain.close()


async def test_the_head_end_pool_runs_it_when_the_block_commits(pg_dsn: str) -> None:
    ran: list[str] = []
    pool = await open_pool(Settings(dsn=pg_dsn, pool_min=1, pool_max=1))
    try:
        with pytest.raises(RuntimeError):
            async with pool.connection() as c:
                await c.execute("CREATE TABLE pool_test (x int)")
                after_commit(c, lambda: ran.append("failed request"))
                raise RuntimeError("the request failed after the letter was asked for")
        async with pool.connection() as c:  # the same connection again: nothing left over
            await c.execute("SELECT 1")
        assert ran == []
        async with pool.connection() as c:
            await c.execute("CREATE TABLE pool_test (x int)")
            after_commit(c, lambda: ran.append("committed"))
            assert ran == []
        assert ran == ["committed"]
    finally:
        await pool.close()

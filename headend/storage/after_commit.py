"""Work that must wait until the transaction that caused it has committed.

A letter about a password reset link must not leave for a link a rolled-back transaction
never stored, nor a security notice for a change that did not happen. The head-end's pools
hand out `Connection`s (`askue.headend.app.open_pool`): a callback given to `after_commit`
runs once the connection's transaction has committed, and is dropped if it rolls back (or
the commit fails). A connection with nothing uncommitted (autocommit, or no transaction
open) runs it at once: what was written is already committed.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg
from psycopg import pq

log = logging.getLogger(__name__)


class Connection(psycopg.AsyncConnection):
    """An async connection that runs `after_commit` callbacks at its transaction's commit."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.committed: list[Callable[[], None]] = []

    async def commit(self) -> None:
        waiting, self.committed = self.committed, []
        await super().commit()  # raises: the transaction's outcome is unknown; nothing runs
        for fn in waiting:
            try:
                fn()
            except Exception:  # one callback's failure is not the transaction's
                log.exception("a callback after a commit failed")

    async def rollback(self) -> None:
        self.committed = []
        await super().rollback()

    async def close(self) -> None:
        self.committed = []
        await super().close()


def after_commit(conn: psycopg.AsyncConnection, fn: Callable[[], None]) -> None:
    """Run `fn` once what `conn` wrote so far is committed (never, should it roll back)."""
    if conn.info.transaction_status == pq.TransactionStatus.IDLE:
        fn()
    elif isinstance(conn, Connection):
        conn.committed.append(fn)
    else:
        raise TypeError(f"{type(conn).__name__} in a transaction cannot run work after its commit; "
                        "take the connection from a pool made by askue.headend.app.open_pool")

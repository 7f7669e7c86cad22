"""What runs after values are stored: a typed registry of after-insert hooks.

A head-end package that reacts to new values (VEE judges them, replaced estimates are
audited and their rollups rebuilt) registers a hook here when its module is imported:

    from askue.headend.storage import hooks

    @hooks.after_insert("vee.validate")
    async def validate(conn, batch: InsertedBatch) -> None: ...

`askue.headend.composition` imports every such module, so a process has the same hooks
whatever its entry point (the ingest, the API, a CLI import of a file): the first
write through `values.insert` loads the composition if nobody did.

Each hook runs inside the writer's transaction, in a savepoint of its own: a failing
hook is logged and rolled back alone, the values are kept. A lost connection is not a
hook's failure and goes up to the writer, who retries.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg

from askue.headend import metrics

if TYPE_CHECKING:
    from askue.headend.storage.values import InsertedBatch

log = logging.getLogger(__name__)

HookFn = Callable[[psycopg.AsyncConnection, "InsertedBatch"], Awaitable[None]]


@dataclass(frozen=True)
class Hook:
    name: str
    fn: HookFn


class Hooks:
    """An ordered set of after-insert hooks (registration order is run order)."""

    def __init__(self, hooks: Iterable[Hook | HookFn] = ()) -> None:
        self._hooks: list[Hook] = [h if isinstance(h, Hook) else Hook(_name(h), h) for h in hooks]

    def register(self, name: str) -> Callable[[HookFn], HookFn]:
        def add(fn: HookFn) -> HookFn:
            if any(h.name == name for h in self._hooks):
                raise ValueError(f"after-insert hook {name!r} is registered twice")
            self._hooks.append(Hook(name, fn))
            return fn
        return add

    def __iter__(self):
        return iter(tuple(self._hooks))

    def __len__(self) -> int:
        return len(self._hooks)

    async def run(self, conn: psycopg.AsyncConnection, batch: InsertedBatch) -> None:
        for hook in tuple(self._hooks):
            started = time.perf_counter()
            try:
                async with conn.transaction():
                    await hook.fn(conn, batch)
            except psycopg.OperationalError:
                raise  # the connection is gone: nothing commits, the writer retries the whole batch
            except Exception:
                metrics.HOOK_FAILURES.labels(hook.name).inc()
                log.exception("after-insert hook %s failed; the values are stored without it", hook.name)
            finally:
                metrics.HOOK_SECONDS.labels(hook.name).observe(time.perf_counter() - started)


def _name(fn: HookFn) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


# The process's hooks, filled by the imports in askue.headend.composition.
AFTER_INSERT = Hooks()
_composed = False


def after_insert(name: str) -> Callable[[HookFn], HookFn]:
    """Register `fn` to run after every insert of values (decorator)."""
    return AFTER_INSERT.register(name)


def composed() -> Hooks:
    """The registry with every hook of the head-end registered."""
    global _composed
    if not _composed:
        # A plain import of the composition root: the modules it imports register their
        # hooks. Done here too so that no entry point can store values without them.
        import askue.headend.composition  # noqa: F401

        _composed = True
    return AFTER_INSERT

"""What makes up a head-end process, by plain imports: the after-insert hooks (their
modules register them when imported) and the background tasks. The HTTP side (API
routers and pages) is composed in `askue.headend.api.app`.

A package that reacts to stored values registers its hook with
`askue.headend.storage.hooks.after_insert` and is imported here; a package with a
background task adds it to BACKGROUND_TASKS. A renamed or missing package fails the
start with an ImportError instead of quietly dropping its part.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from askue.headend.billing import tasks as billing_tasks
from askue.headend.commands import dispatcher as commands_dispatcher
from askue.headend.notify import worker as notify_worker
from askue.headend.storage import tasks as storage_tasks
from askue.headend.vee import live as vee_live  # noqa: F401  registers the "vee" after-insert hook
from askue.headend.vee import scan as vee_scan

# async task(pool, settings), run for the life of the head-end
BACKGROUND_TASKS: list[Callable[[Any, Any], Awaitable[None]]] = [
    storage_tasks.rollup_task,
    billing_tasks.billing_task,
    vee_scan.scan_task,
    notify_worker.notify_task,
    commands_dispatcher.command_task,
]

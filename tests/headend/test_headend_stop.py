"""Stopping the head-end's tasks: a cancellation swallowed under a task does not keep the
process running."""
from __future__ import annotations

import asyncio

from askue.headend.app import cancel_all


async def test_a_task_that_swallows_one_cancellation_still_stops() -> None:
    rounds = []
    give_up = False  # (ends the task should the stop not: the test fails instead of hanging)

    async def loop_like_the_alerts_task() -> None:
        while not give_up:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:  # as a library under it may: the round goes on
                pass
            rounds.append(1)
            await asyncio.sleep(0.2)

    async def plain() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(loop_like_the_alerts_task()), asyncio.create_task(plain())]
    await asyncio.sleep(0)
    try:
        await asyncio.wait_for(cancel_all(tasks, again_s=0.05), timeout=5)
    finally:
        give_up = True
        for t in tasks:
            t.cancel()
    assert rounds == [1]  # cancelled again during its next sleep

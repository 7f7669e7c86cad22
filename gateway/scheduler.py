"""Which job a bus runs next: pure bookkeeping, no I/O.

Periodic jobs wait in a timer heap until due, then move to a ready heap
ordered by priority (on-demand commands > billing registers > profiles and
journals > instant values), then by due time. A meter being served by one
lane is skipped by the others, so a TCP bus with several lanes never talks to
one meter twice at once.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PRIO_COMMAND = 0
PRIORITY = {"register": 1, "interval": 2, "events": 2, "instant": 3}


@dataclass(eq=False)
class Job:
    meter_id: str
    kind: str  # register | interval | events | instant | or a command operation
    prio: int
    due: float = 0.0  # wall-clock seconds
    periodic: bool = False
    args: dict[str, Any] = field(default_factory=dict)
    future: asyncio.Future | None = None


def stagger(meter_id: str, period: float) -> float:
    """A stable per-meter offset inside the period, so a fleet does not poll in one burst."""
    return (zlib.crc32(meter_id.encode()) % 1000) / 1000 * min(period * 0.2, 60.0)


def next_due(now: float, period: float, meter_id: str, settle: float = 0.0) -> float:
    """Next wall-clock slot aligned to the period (e.g. :00/:15/:30/:45 for 15 min),
    plus a settle time (profiles: let the meter close its interval) and the stagger."""
    base = (now // period + 1) * period
    return base + settle + stagger(meter_id, period)


class Scheduler:
    def __init__(self, clock: Callable[[], float] = time.time):
        self.clock = clock
        self._timers: list[tuple[float, int, Job]] = []
        self._ready: list[tuple[int, float, int, Job]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self.busy: set[str] = set()

    def __len__(self) -> int:
        return len(self._timers) + len(self._ready)

    def add(self, job: Job) -> None:
        if job.due <= self.clock():
            heapq.heappush(self._ready, (job.prio, job.due, next(self._seq), job))
        else:
            heapq.heappush(self._timers, (job.due, next(self._seq), job))
        self._wake.set()

    def remove_meter(self, meter_id: str) -> list[Job]:
        """Drop every job of a meter (config reload); returns them so waiting callers can be told."""
        gone = [e[-1] for e in self._timers + self._ready if e[-1].meter_id == meter_id]
        self._timers = [e for e in self._timers if e[-1].meter_id != meter_id]
        self._ready = [e for e in self._ready if e[-1].meter_id != meter_id]
        heapq.heapify(self._timers)
        heapq.heapify(self._ready)
        return gone

    def drain(self) -> list[Job]:
        jobs = [e[-1] for e in self._timers + self._ready]
        self._timers.clear()
        self._ready.clear()
        return jobs

    def _promote(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            due, seq, job = heapq.heappop(self._timers)
            heapq.heappush(self._ready, (job.prio, due, seq, job))

    def take(self) -> Job | None:
        """The most urgent ready job whose meter is free, or None."""
        self._promote(self.clock())
        skipped = []
        job = None
        while self._ready:
            entry = heapq.heappop(self._ready)
            if entry[-1].meter_id in self.busy:
                skipped.append(entry)
                continue
            job = entry[-1]
            break
        for e in skipped:
            heapq.heappush(self._ready, e)
        if job is not None:
            self.busy.add(job.meter_id)
        return job

    def release(self, meter_id: str) -> None:
        self.busy.discard(meter_id)
        self._wake.set()

    def seconds_to_next(self) -> float | None:
        if self._ready:
            return 0.0
        if self._timers:
            return max(0.0, self._timers[0][0] - self.clock())
        return None

    async def next_job(self) -> Job:
        while True:
            job = self.take()
            if job is not None:
                return job
            self._wake.clear()
            wait = self.seconds_to_next()
            if wait == 0.0:
                wait = 0.5  # ready jobs exist but their meters are busy: wait for a release
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass

"""A Transport whose other end is a sans-I/O simulator session in the same process.

No socket, no pty: every request is fed to the session and its replies are queued
for the driver to read. Used where a benchmark needs the real driver and the real
simulator but not the line (e.g. filling a store with what a day of polling reads).
Line faults are not applied here: the simulated meters are healthy.
"""
from __future__ import annotations

import asyncio

from askue.drivers.sim.line import SessionFactory, SimSession
from askue.drivers.transport import Transport


class _NullWriter:
    def is_closing(self) -> bool:
        return False


class LoopbackTransport(Transport):
    def __init__(self, factory: SessionFactory):
        super().__init__()
        self.factory = factory
        self.session: SimSession | None = None

    def __repr__(self) -> str:
        return "loopback://simulator"

    async def open(self) -> None:
        self.session = self.factory()
        self._reader = asyncio.StreamReader()
        self._writer = _NullWriter()  # type: ignore[assignment]

    async def close(self) -> None:
        self.session = None
        self._reader = self._writer = None

    async def write(self, data: bytes) -> None:
        await self.ensure_open()
        assert self.session is not None and self._reader is not None
        self.bytes_out += len(data)
        for reply in self.session.feed(data):
            self._reader.feed_data(reply.data)

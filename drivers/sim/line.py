"""Serving a protocol simulator over TCP or a pseudo-terminal, with line faults.

A protocol simulator is a sans-I/O session: it is fed the bytes that arrive and
returns the replies, each tagged with the simulated meter that sends it. This
module moves those bytes over a real transport and applies the answering
meter's line faults (silence, damaged checksum, garbage, slow replies).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from askue.drivers.sim.meter import SimMeter

log = logging.getLogger("askue.sim")


@dataclass(frozen=True, slots=True)
class Reply:
    meter: SimMeter | None  # None: a reply not tied to one meter (e.g. a broadcast answer)
    data: bytes
    # Byte offset of the checksum to damage for a CRC fault; None damages the last byte.
    checksum_at: int | None = None


class SimSession(Protocol):
    """One connection's protocol state (sign-on, association, partial frames)."""

    def feed(self, data: bytes) -> list[Reply]:
        """Consume arriving bytes; return complete replies to send (possibly none)."""
        ...


SessionFactory = Callable[[], SimSession]


def apply_faults(reply: Reply, rnd: random.Random) -> tuple[float, bytes | None]:
    """(delay before sending, bytes to send or None for silence)."""
    m = reply.meter
    if m is None:
        return 0.0, reply.data
    f = m.faults
    if f.silent:
        return 0.0, None
    data = reply.data
    if f.garbage_rate and rnd.random() < f.garbage_rate:
        data = bytes(rnd.randrange(256) for _ in range(max(3, len(data))))
    elif f.crc_error_rate and rnd.random() < f.crc_error_rate and data:
        i = reply.checksum_at if reply.checksum_at is not None else len(data) - 1
        b = bytearray(data)
        b[i] ^= 0x5A
        data = bytes(b)
    return f.slow_reply_s, data


async def _pump(session: SimSession, read: Callable, write: Callable, rnd: random.Random) -> None:
    while True:
        data = await read()
        if not data:
            return
        try:
            replies = session.feed(data)
        except Exception:  # a simulator bug must not take the fleet down; the client sees silence
            log.exception("simulator session failed on %r", data[:64])
            continue
        for reply in replies:
            delay, out = apply_faults(reply, rnd)
            if delay:
                await asyncio.sleep(delay)
            if out is not None:
                await write(out)


async def serve_tcp(factory: SessionFactory, host: str = "127.0.0.1", port: int = 0,
                    seed: int = 0) -> asyncio.Server:
    """Start a TCP server; each connection gets its own session. Returns the server
    (its bound port is server.sockets[0].getsockname()[1])."""
    rnd = random.Random(seed)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def write(b: bytes) -> None:
            writer.write(b)
            await writer.drain()

        try:
            await _pump(factory(), lambda: reader.read(4096), write, rnd)
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            # The fleet is shutting down with this client still connected: just close.
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.start_server(handle, host, port)


class PtyServer:
    """A pseudo-terminal pair: the simulator holds the master side, a driver opens
    `path` (a symlink to the slave device) as if it were /dev/ttyUSB0."""

    def __init__(self, factory: SessionFactory, path: str | os.PathLike, seed: int = 0):
        self.factory = factory
        self.path = Path(path)
        self.rnd = random.Random(seed)
        self._task: asyncio.Task | None = None
        self.master = -1
        self.slave = -1

    async def start(self) -> PtyServer:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        if self.path.is_symlink() or self.path.exists():
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.symlink_to(os.ttyname(self.slave))
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()

        def readable() -> None:
            try:
                queue.put_nowait(os.read(self.master, 4096))
            except BlockingIOError:
                pass
            except OSError:
                queue.put_nowait(b"")

        loop.add_reader(self.master, readable)

        async def write(b: bytes) -> None:
            view = memoryview(b)
            while view:
                try:
                    n = os.write(self.master, view)
                    view = view[n:]
                except BlockingIOError:
                    await asyncio.sleep(0.001)

        try:
            # One session for the life of the line: a serial bus has no connections.
            await _pump(self.factory(), queue.get, write, self.rnd)
        finally:
            loop.remove_reader(self.master)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            self.path.unlink()

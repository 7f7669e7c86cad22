"""Transports that answer from a script instead of a meter (imported by the IEC 62056-21
driver and golden tests): the driver's requests are kept, the answers come from bytes a
test or a capture gives."""
from __future__ import annotations

import asyncio

from askue.drivers.errors import MeterTimeout
from askue.drivers.transport import Transport


class ScriptedLine(Transport):
    """A line whose answers a subclass queues in `write`; nothing queued reads as silence."""

    def __init__(self) -> None:
        super().__init__()
        self.pending = bytearray()
        self.sent: list[bytes] = []

    async def open(self) -> None:
        pass

    async def ensure_open(self) -> None:
        pass

    async def write(self, data: bytes) -> None:
        self.sent.append(data)

    async def read_exactly(self, n: int, timeout: float) -> bytes:
        if len(self.pending) < n:
            await asyncio.sleep(0)
            raise MeterTimeout(f"no answer within {timeout:.2f} s")
        out, self.pending = bytes(self.pending[:n]), self.pending[n:]
        return out

    def discard_input(self) -> None:
        self.pending.clear()


class ScriptTransport(ScriptedLine):
    """Checks each request against a script and answers with the scripted bytes."""

    def __init__(self, script: list[tuple[bytes | None, bytes]], echo: bool = False):
        super().__init__()
        self.echo = echo
        self.script = list(script)

    async def write(self, data: bytes) -> None:
        await super().write(data)
        if self.echo:
            self.pending += data
        if self.script and self.script[0][0] in (data, None):
            self.pending += self.script.pop(0)[1]


class ReplayTransport(ScriptedLine):
    """Answers each request the way the meter answered it in a capture (the answers to a
    request in turn, the last one again); a request the capture lacks gets silence."""

    def __init__(self, answers: dict[bytes, list[bytes]]):
        super().__init__()
        self.answers = {k: list(v) for k, v in answers.items()}

    async def write(self, data: bytes) -> None:
        await super().write(data)
        queue = self.answers.get(data)
        if queue:
            self.pending += queue.pop(0) if len(queue) > 1 else queue[0]

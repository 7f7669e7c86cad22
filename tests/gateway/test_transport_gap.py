"""The inter-frame gap: at least `gap` seconds of silence between the last byte of an
answer and the next request (RS-485 devices need it to see the end of a frame)."""
from __future__ import annotations

import asyncio
import time

from askue.gateway.bus_worker import make_transport
from askue.gateway.config import TcpBus


async def test_requests_keep_the_inter_frame_gap():
    arrivals: list[float] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(100):
            arrivals.append(time.monotonic())
            writer.write(data)  # the "answer"
            await writer.drain()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    bus = TcpBus(id="b", type="tcp", host="127.0.0.1", port=server.sockets[0].getsockname()[1],
                 inter_frame_gap_s=0.15)
    t = make_transport(bus)
    answered: list[float] = []
    try:
        for _ in range(4):
            await t.write(b"ping")
            assert await t.read_exactly(4, 2.0) == b"ping"
            answered.append(time.monotonic())
    finally:
        await t.close()
        server.close()
    # each request left at least the gap after the previous answer was read (a lower bound:
    # a loaded machine can only make the silence longer)
    for prev_answer, next_request in zip(answered, arrivals[1:], strict=False):
        assert next_request - prev_answer >= 0.15 - 0.005

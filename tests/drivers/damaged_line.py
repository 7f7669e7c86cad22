"""An in-memory line for fuzzing drivers: each request goes to a simulator session and
answer number i passes through a hypothesis-chosen mutation before the driver sees it."""
from __future__ import annotations

import asyncio

from hypothesis import strategies as st

from askue.drivers.transport import Transport


class _Writer:
    def __init__(self, line: MutatingLine):
        self.line = line
        self.closed = False

    def write(self, data: bytes) -> None:
        self.line.on_request(data)

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None


class MutatingLine(Transport):
    """An in-memory line: each request goes to a simulator session; answer number i passes
    through `mutate(i, bytes)` before the driver sees it."""

    def __init__(self, session, mutate):
        super().__init__()
        self.session, self.mutate, self.count = session, mutate, 0

    async def open(self) -> None:
        self._reader = asyncio.StreamReader()
        self._writer = _Writer(self)  # type: ignore[assignment]

    def on_request(self, data: bytes) -> None:
        for reply in self.session.feed(data):
            out = self.mutate(self.count, reply.data)
            self.count += 1
            if out:
                assert self._reader is not None
                self._reader.feed_data(out)


def mutations(max_offset: int = 30) -> st.SearchStrategy:
    return st.one_of(
        st.tuples(st.just("truncate"), st.integers(0, max_offset)),
        st.tuples(st.just("flip"), st.integers(0, max_offset), st.integers(1, 255)),
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("replace"), st.binary(max_size=24)),
        st.tuples(st.just("drop"),),
    )


def apply(m: tuple, data: bytes) -> bytes:
    kind = m[0]
    if kind == "truncate":
        return data[:m[1]]
    if kind == "flip":
        b = bytearray(data)
        if b:
            b[m[1] % len(b)] ^= m[2]
        return bytes(b)
    if kind == "append":
        return data + m[1]
    if kind == "replace":
        return m[1]
    return b""


def mutator(chosen: dict[int, tuple]):
    return lambda i, data: apply(chosen[i], data) if i in chosen else data

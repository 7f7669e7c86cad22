"""Coalescing: turn the register spans a read needs into as few requests as possible.

Spans closer than `max_gap` registers are read in one request (the gap is read
and thrown away) as long as the request stays within `max_registers`.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Block:
    start: int
    count: int

    @property
    def end(self) -> int:
        return self.start + self.count

    def covers(self, address: int, count: int) -> bool:
        return self.start <= address and address + count <= self.end


def plan(spans: Iterable[tuple[int, int]], max_gap: int = 0, max_registers: int = 125) -> list[Block]:
    """spans: (address, count) pairs. Returns blocks in address order; every span lies
    wholly inside one block. A span longer than max_registers is an error."""
    if max_registers < 1 or max_gap < 0:
        raise ValueError("max_registers must be >= 1 and max_gap >= 0")
    blocks: list[Block] = []
    for address, count in sorted(set(spans)):
        if count > max_registers:
            raise ValueError(f"a value of {count} registers at {address} exceeds max_registers {max_registers}")
        if blocks:
            last = blocks[-1]
            end = max(last.end, address + count)
            if address - last.end <= max_gap and end - last.start <= max_registers:
                blocks[-1] = Block(last.start, end - last.start)
                continue
        blocks.append(Block(address, count))
    return blocks

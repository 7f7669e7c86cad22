"""What a UART set to the wrong baud rate or frame format reads from a meter's answer, for
tests of "check baud/parity" diagnostics on a pty (which itself ignores line settings).

The answer is laid out as the meter sends it (start bit 0, data bits LSB first, parity bit if
any, stop bit 1, characters back to back, idle line high) and sampled as the reader's UART
does: wait for a falling edge, sample each bit in its middle at the reader's rate. A character
whose stop bit reads 0 is a framing error; Linux delivers it as 0x00 (no PARMRK, no IGNPAR).
Only answers are re-read: a meter that understood the request (it detects the rate itself, or
only the reader's parity differs and the meter does not check parity) and answers at its own.
"""
from __future__ import annotations

from dataclasses import dataclass

from askue.drivers.sim.line import Reply, SessionFactory


@dataclass(frozen=True)
class Frame:
    baud: int
    bits: int = 8
    parity: str = "N"


def _line(data: bytes, f: Frame) -> list[int]:
    out: list[int] = []
    for b in data:
        bits = [(b >> i) & 1 for i in range(f.bits)]
        out.append(0)
        out += bits
        if f.parity != "N":
            ones = sum(bits)
            out.append((ones + (1 if f.parity == "O" else 0)) % 2)
        out.append(1)
    return out + [1] * 20


def reread(data: bytes, sent: Frame, read: Frame) -> bytes:
    levels = _line(data, sent)
    t_bit = 1.0 / sent.baud

    def level(t: float) -> int:
        i = int(t / t_bit)
        return levels[i] if 0 <= i < len(levels) else 1

    r_bit = 1.0 / read.baud
    end = len(levels) * t_bit
    out = bytearray()
    t = 0.0
    step = t_bit / 8
    while t < end:
        if level(t) == 1:
            t += step
            continue
        start = t
        value = sum(level(start + (1.5 + i) * r_bit) << i for i in range(read.bits))
        n = 1 + read.bits + (0 if read.parity == "N" else 1)
        stop = level(start + (n + 0.5) * r_bit)
        out.append(value if stop == 1 else 0)
        t = start + (n + 0.5) * r_bit
        while t < end and level(t) == 0:  # wait for the line to go high before the next edge
            t += step
    return bytes(out)


class _Misread:
    def __init__(self, inner, sent: Frame, read: Frame):
        self.inner, self.sent, self.read = inner, sent, read

    def feed(self, data: bytes) -> list[Reply]:
        return [Reply(r.meter, reread(r.data, self.sent, self.read)) for r in self.inner.feed(data)]


def misread(factory: SessionFactory, sent: Frame, read: Frame) -> SessionFactory:
    return lambda: _Misread(factory(), sent, read)

"""A progress line with a time estimate on stderr: redrawn in place on a terminal, a plain
line every tenth of the way otherwise (a log file gets ten lines, not one per address)."""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int | None, what: str, stream: TextIO | None = None, enabled: bool = True):
        # total None: open-ended (M-Bus wildcard search), no bar and no estimate
        self.total, self.what = (None if total is None else max(total, 1)), what
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.done = 0
        self.found = 0
        self.t0 = time.monotonic()
        self._last_decile = -1

    def line(self) -> str:
        elapsed = time.monotonic() - self.t0
        if self.total is None:
            return f"{self.done} {self.what}, {self.found} found, {_duration(elapsed)} elapsed"
        left = elapsed / self.done * (self.total - self.done) if self.done else None
        eta = f", ~{_duration(left)} left" if left is not None and self.done < self.total else ""
        width = 24
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "." * (width - filled)
        return (f"[{bar}] {self.done}/{self.total} {self.what}, {self.found} found, "
                f"{_duration(elapsed)} elapsed{eta}")

    def step(self, found: int, n: int = 1) -> None:
        self.done = self.done + n if self.total is None else min(self.total, self.done + n)
        self.found = found
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self.line().ljust(79))
            self.stream.flush()
            return
        decile = self.done // 10 if self.total is None else self.done * 10 // self.total
        if decile != self._last_decile:
            self._last_decile = decile
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _duration(s: float) -> str:
    s = int(round(s))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"

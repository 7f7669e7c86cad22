"""Child processes of the demo: started with logs to files, stopped together."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.log, "ab")
        fh.write(f"\n---- {time.strftime('%F %T')} start: {' '.join(self.argv)}\n".encode())
        fh.flush()
        self.proc = subprocess.Popen(self.argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        fh.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)

    def spawn(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Child:
        child = Child(name, argv, log)
        child.start(env)
        self.children.append(child)
        return child

    def stop_all(self, grace_s: float = 10.0) -> None:
        # Reverse order: gateways flush before the head-end and the broker go away.
        for child in reversed(self.children):
            if child.alive():
                os.killpg(child.proc.pid, signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + grace_s
        for child in reversed(self.children):
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait()

    def dead(self) -> list[Child]:
        return [c for c in self.children if not c.alive()]


def askue_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "askue.cli", *args]

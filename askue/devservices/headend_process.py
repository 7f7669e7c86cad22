"""The real head-end as a child process (`askue headend … run`), for benchmarks and tests
that must measure or kill what users run: its log, its Prometheus figures, its peak RSS."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from askue.devservices.ports import free_port
from askue.devservices.processes import terminate

_SAMPLE = re.compile(r"^(askue_headend_\w+?)(?:\{[^}]*\})? (\S+)$", re.M)


@dataclass
class HeadendProcess:
    """`askue headend --dsn DSN run --ingest-only` with the settings a user gives through
    ASKUE_* variables (`env`); everything else is the default configuration."""

    dsn: str
    mqtt_port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ("--ingest-only",)
    metrics_port: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        if not self.metrics_port:
            self.metrics_port = free_port()
        env = {**os.environ, "ASKUE_METRICS_PORT": str(self.metrics_port), **self.env}
        argv = [sys.executable, "-m", "askue.cli", "headend", "--dsn", self.dsn, "run", *self.args,
                "--mqtt-host", "127.0.0.1", "--mqtt-port", str(self.mqtt_port)]
        self._log_from = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def text(self) -> str:
        try:
            return self.log.read_bytes()[self._log_from:].decode(errors="replace")
        except OSError:
            return ""

    def wait_subscribed(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while "subscribed to" not in self.text():
            if not self.alive():
                raise RuntimeError(f"the head-end exited with {self.proc.returncode}:\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the head-end did not subscribe in {timeout:.0f} s:\n{self.text()[-3000:]}")
            time.sleep(0.05)

    def metrics(self) -> dict[str, float]:
        """The head-end's own figures, summed over labels (empty while it is not answering)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
                body = r.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for name, value in _SAMPLE.findall(body):
            out[name] = out.get(name, 0.0) + float(value)
        return out

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident set size in MB, from /proc."""
        cur = peak = 0.0
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
        return cur, peak

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the process has used so far."""
        return process_cpu_s(self.pid)

    def kill9(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
            self.proc.wait(30)  # type: ignore[union-attr]

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (a clean stop) and wait; SIGKILL if it does not end in time."""
        return terminate(self.proc, timeout)


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of one process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_s(datadir: Path) -> float:
    """CPU seconds of a PostgreSQL cluster: the postmaster and its children alive now."""
    try:
        master = int((datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError):
        return 0.0
    total = process_cpu_s(master)
    try:  # backends that ended meanwhile: counted in the postmaster's children's time
        fields = Path(f"/proc/{master}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == master:
                total += process_cpu_s(int(d.name))
    return total

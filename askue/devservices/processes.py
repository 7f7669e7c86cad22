"""Stopping the child processes the dev services, benchmarks and fault tests start."""
from __future__ import annotations

import signal
import subprocess


def terminate(proc: subprocess.Popen | None, timeout: float = 30.0) -> int | None:
    """SIGTERM (a clean stop) and wait; SIGKILL if it does not end in `timeout` seconds.
    The exit code, or None when there was no process."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode

"""`askue demo` as a new user runs it: every process starts, every answering simulated
meter (all five protocols) has readings from this run in the API, and a second run
reuses the data."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from askue.devservices.ports import free_port
from askue.devservices.postgres import timescaledb_installed


def _demo(base: Path, ports: list[int]) -> subprocess.CompletedProcess:
    api, mqtt, pg = ports
    return subprocess.run(
        [sys.executable, "-m", "askue.cli", "demo", "--dir", str(base), "--check", "--timeout", "150",
         "--api-port", str(api), "--mqtt-port", str(mqtt), "--pg-port", str(pg)],
        capture_output=True, text=True, timeout=400, stdin=subprocess.DEVNULL)


def test_demo_starts_everything_and_every_meter_reports(tmp_path: Path) -> None:
    # tmp_path sits under a directory only root may enter, like a clone in /root: the
    # PostgreSQL cluster must still start (it moves to /var/lib/askue behind a symlink).
    base = tmp_path / "askue"
    ports = [free_port(), free_port(), free_port()]
    try:
        _check_two_runs(base, ports)
    finally:
        pg = base / "pg"
        if pg.is_symlink():
            shutil.rmtree(pg.resolve(), ignore_errors=True)


def _check_two_runs(base: Path, ports: list[int]) -> None:
    r = _demo(base, ports)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}" for p in (base / "logs").glob("*.log"))
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{logs}"
    assert "CHECK OK: all 64 answering meters" in r.stdout
    # hourly charts from the first minute for every electricity meter that keeps a profile
    assert "CHECK OK: the load profile of all 13 electricity meters that keep one (dlms, mercury)" in r.stdout
    assert "first run: registry loaded" in r.stdout
    # TimescaleDB wherever it is installed (and the suite is not told to run plain), else plain PostgreSQL
    timescale = timescaledb_installed() and os.environ.get("ASKUE_STORAGE_MODE") != "plain"
    storage = "TimescaleDB" if timescale else "plain PostgreSQL ("
    assert f"Storage           {storage}" in r.stdout
    assert "Stopped." in r.stdout
    # the second run keeps the data, the accounts and the token
    token = (base / "demo-token").read_text()
    r = _demo(base, ports)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "data from earlier runs kept" in r.stdout and "CHECK OK" in r.stdout
    assert (base / "demo-token").read_text() == token

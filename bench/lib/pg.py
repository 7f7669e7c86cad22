"""A PostgreSQL cluster of a benchmark's own, in a temporary directory, stopped afterwards."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from askue.devservices.postgres import PgCluster, timescaledb_installed


def modes_from_env(default_both: bool = True) -> list[str]:
    """ASKUE_BENCH_MODES, else plain and TimescaleDB where installed (or only the latter)."""
    modes = os.environ.get("ASKUE_BENCH_MODES", "").split()
    if modes:
        return modes
    if not timescaledb_installed():
        return ["plain"]
    return ["plain", "timescale"] if default_both else ["timescale"]


@contextmanager
def temp_cluster(timescaledb: bool) -> Iterator[PgCluster]:
    with tempfile.TemporaryDirectory(prefix="askue-bench-") as d:
        tmp = Path(d)
        os.chmod(tmp, 0o755)  # the postgres user must reach its data directory
        cluster = PgCluster(tmp / "pg", timescaledb=timescaledb)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop("immediate")

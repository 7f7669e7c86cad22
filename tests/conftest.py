"""Test harness shared by every test: real PostgreSQL and mosquitto servers,
started for this pytest session in temporary directories and torn down at the
end, whatever happens. Nothing here relies on a server running before.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from askue.devservices.mosquitto import Mosquitto
from askue.devservices.postgres import PgCluster

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def session_tmp() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="askue-test-"))
    os.chmod(d, 0o755)  # the postgres user must reach its data directory
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster(session_tmp: Path) -> Iterator[PgCluster]:
    cluster = PgCluster(session_tmp / "pg")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster) -> str:
    """A database with the head-end schema applied; per-test databases copy it."""
    name = "askue_template"
    pg_cluster.create_database(name)
    try:
        from askue.headend.storage.migrations import apply
    except ImportError:  # head-end storage not installed in this environment
        return name
    apply(pg_cluster.dsn(name))
    return name


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster, pg_template: str) -> Iterator[str]:
    """A fresh, migrated database for one test (CREATE DATABASE … TEMPLATE: ~0.1 s)."""
    name = f"t{os.getpid()}_{next(_db_counter)}"
    dsn = pg_cluster.create_database(name, template=pg_template)
    try:
        yield dsn
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="session")
def mqtt_broker(session_tmp: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(session_tmp / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own, for tests that stop or restart it."""
    broker = Mosquitto(tmp_path / "mosquitto", persistence=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()

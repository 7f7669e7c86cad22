"""Test harness shared by every test: real PostgreSQL and mosquitto servers,
started for this pytest session in temporary directories and torn down at the
end, whatever happens. Nothing here relies on a server running before.

Storage mode: the suite runs in the production default, TimescaleDB, when the
extension is installed in the PostgreSQL the tests start (`make deps` builds it
from TIMESCALEDB_SOURCE), and in plain PostgreSQL mode otherwise. The tests whose
behaviour depends on the mode carry `@pytest.mark.storage_modes` and run once per
mode; `@pytest.mark.timescale` tests need TimescaleDB. ASKUE_TEST_STORAGE_MODE=plain
runs the whole suite as on a machine without TimescaleDB.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from askue.devservices.mosquitto import Mosquitto
from askue.devservices.postgres import PgCluster, timescaledb_installed

_db_counter = itertools.count()


def _suite_mode() -> tuple[str, str]:
    """The suite's storage mode and why."""
    forced = os.environ.get("ASKUE_TEST_STORAGE_MODE", "")
    if forced not in ("", "plain", "timescale"):
        raise pytest.UsageError(f"ASKUE_TEST_STORAGE_MODE={forced!r}: use plain or timescale")
    installed = timescaledb_installed()
    if forced == "timescale" and not installed:
        raise pytest.UsageError("ASKUE_TEST_STORAGE_MODE=timescale, but TimescaleDB is not installed in this "
                                "PostgreSQL; build it with `make deps TIMESCALEDB_SOURCE=<tarball>`")
    if forced == "plain":
        return "plain", "ASKUE_TEST_STORAGE_MODE=plain"
    if installed:
        return "timescale", "TimescaleDB is installed"
    return "plain", ("TimescaleDB is not installed in this PostgreSQL; `make deps TIMESCALEDB_SOURCE=<tarball>` "
                     "builds it")


SUITE_MODE, SUITE_MODE_REASON = _suite_mode()
# The mode follows the suite into everything that migrates a database without choosing one
# (head-end processes, the demo) and into the clusters tests start themselves.
os.environ["ASKUE_STORAGE_MODE"] = SUITE_MODE
MODES = ("timescale", "plain") if SUITE_MODE == "timescale" else ("plain",)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "storage_modes: runs once per storage mode (TimescaleDB and plain PostgreSQL)")
    config.addinivalue_line("markers", "timescale: needs TimescaleDB (skipped where it is not installed)")


def _mode_line() -> str:
    tier = "" if SUITE_MODE == "timescale" else "; the TimescaleDB tier is skipped"
    return f"askue storage mode: {SUITE_MODE} ({SUITE_MODE_REASON}{tier})"


def pytest_report_header(config: pytest.Config) -> str:
    return _mode_line()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    terminalreporter.write_line(_mode_line())  # also under -q, which hides the header


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # a test that names its own mode(s) (parametrize("storage_mode", ["plain"], indirect=True)) keeps them
    named = any("storage_mode" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize"))
    if metafunc.definition.get_closest_marker("storage_modes") and not named:
        metafunc.parametrize("storage_mode", MODES, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SUITE_MODE == "timescale":
        return
    skip = pytest.mark.skip(reason=f"TimescaleDB tier skipped: {SUITE_MODE_REASON}")
    for item in items:
        if item.get_closest_marker("timescale"):
            item.add_marker(skip)


@pytest.fixture
def storage_mode(request: pytest.FixtureRequest) -> str:
    """The storage mode of this test's databases (the suite's, or this run's of a storage_modes test)."""
    return getattr(request, "param", SUITE_MODE)


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


def pause_policies(dsn: str) -> None:
    """Keep TimescaleDB's scheduler from running this database's policies on its own: a
    refresh or compression in the middle of a test would move what it is looking at. The
    tests of the policies themselves schedule them again."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                     "WHERE job_id >= 1000")


@pytest.fixture(scope="session")
def pg_templates(pg_cluster: PgCluster) -> Callable[[str], str]:
    """A database with the head-end schema applied, per storage mode, made on first use;
    per-test databases copy it."""
    made: dict[str, str] = {}

    def template(mode: str) -> str:
        if mode not in made:
            name = f"askue_template_{mode}"
            pg_cluster.create_database(name)
            try:
                from askue.headend.storage.migrations import apply
            except ImportError:  # head-end storage not installed in this environment
                return name
            apply(pg_cluster.dsn(name), mode=mode)
            if mode == "timescale":
                pause_policies(pg_cluster.dsn(name))
            pg_cluster.freeze_template(name)
            made[mode] = name
        return made[mode]

    return template


@pytest.fixture(scope="session")
def pg_template(pg_templates: Callable[[str], str]) -> str:
    """The template database of the suite's storage mode."""
    return pg_templates(SUITE_MODE)


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster, pg_templates: Callable[[str], str], storage_mode: str) -> Iterator[str]:
    """A fresh, migrated database for one test (CREATE DATABASE … TEMPLATE: ~0.1 s)."""
    name = f"t{os.getpid()}_{next(_db_counter)}"
    dsn = pg_cluster.create_database(name, template=pg_templates(storage_mode))
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

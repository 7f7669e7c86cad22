"""Migrations against a real PostgreSQL cluster (the session fixture)."""
from __future__ import annotations

import psycopg
import pytest

from askue.headend.storage import migrations


@pytest.mark.storage_modes
def test_apply_is_idempotent_and_records_versions(pg_dsn: str, storage_mode: str) -> None:
    # pg_dsn is already migrated from the template: a second apply changes nothing
    assert migrations.apply(pg_dsn) == []
    with psycopg.connect(pg_dsn) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        mode = migrations.storage_mode(conn)
    assert "0001_core" in versions and "0002_values" in versions and "0003_rollups" in versions
    assert mode == storage_mode
    assert ("0004_drop_value_id_indexes" in versions) == (storage_mode == "plain")  # a .plain-only migration


@pytest.mark.storage_modes
def test_value_tables_have_natural_key(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        for table in ("register_readings", "intervals", "instant_values", "meter_events"):
            conn.execute(f"INSERT INTO {table} (meter_id, obis, ts, received_at, value"
                         f"{', period_s' if table == 'intervals' else ''}) VALUES "
                         f"(1, '1.0.1.8.0.255', '2026-01-01T00:00Z', now(), 1{', 1800' if table == 'intervals' else ''})")
            with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
                conn.execute(f"INSERT INTO {table} (meter_id, obis, ts, received_at, value"
                             f"{', period_s' if table == 'intervals' else ''}) VALUES "
                             f"(1, '1.0.1.8.0.255', '2026-01-01T00:00Z', now(), 2{', 1800' if table == 'intervals' else ''})")


@pytest.mark.parametrize("storage_mode", ["plain"], indirect=True)  # hypertables make their own chunks
def test_month_partition_moves_rows_out_of_default(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("INSERT INTO register_readings (meter_id, obis, ts, received_at, value) "
                     "VALUES (1, '1.0.1.8.0.255', '2025-03-31T23:30Z', now(), 5)")
        assert conn.execute("SELECT askue_ensure_month_partition('register_readings', '2025-03-01')").fetchone()[0]
        assert not conn.execute("SELECT askue_ensure_month_partition('register_readings', '2025-03-01')").fetchone()[0]
        where = conn.execute("SELECT tableoid::regclass::text FROM register_readings").fetchone()[0]
    assert where == "register_readings_202503"


@pytest.mark.storage_modes
def test_bad_mode_is_refused(pg_dsn: str, storage_mode: str) -> None:
    other = "plain" if storage_mode == "timescale" else "timescale"
    with pytest.raises(migrations.MigrationError, match="cannot be migrated"):
        migrations.apply(pg_dsn, mode=other)


def test_bad_file_name_is_refused(tmp_path) -> None:
    (tmp_path / "1_bad.sql").write_text("SELECT 1")
    with pytest.raises(migrations.MigrationError, match="NNNN_name"):
        migrations.discover(tmp_path)

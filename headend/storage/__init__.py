"""PostgreSQL/TimescaleDB schema, migrations and queries of the head-end."""

"""MQTT → PostgreSQL ingest: decode, batch, COPY into staging, merge idempotently."""

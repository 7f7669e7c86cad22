-- Value tables on TimescaleDB: hypertables on ts (one-month chunks), compressed
-- after 60 days (segmented by meter, ordered by channel and time: the order every
-- read uses), instant values dropped after 400 days. Registers, intervals and
-- journal events are billing evidence and are kept.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE register_readings (
    id          bigint NOT NULL DEFAULT nextval('value_seq'),
    meter_id    bigint NOT NULL,
    obis        text NOT NULL,
    ts          timestamptz NOT NULL,
    ts_source   text NOT NULL DEFAULT 'meter' CHECK (ts_source IN ('meter', 'gateway')),
    received_at timestamptz NOT NULL,
    value       double precision NOT NULL,
    quality     char(1) NOT NULL DEFAULT 'A' CHECK (quality IN ('A', 'E', 'S', 'M')),
    reasons     text[] NOT NULL DEFAULT '{}',
    source      text NOT NULL DEFAULT 'gateway' CHECK (source IN ('gateway', 'manual', 'file', 'estimate')),
    gateway_id  text,
    seq         bigint,
    PRIMARY KEY (meter_id, obis, ts)
);
CREATE TABLE intervals (LIKE register_readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    period_s integer NOT NULL CHECK (period_s > 0 AND period_s <= 86400),
    PRIMARY KEY (meter_id, obis, ts));
CREATE TABLE instant_values (LIKE register_readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (meter_id, obis, ts));
CREATE TABLE meter_events (LIKE register_readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (meter_id, obis, ts));

SELECT create_hypertable('register_readings', 'ts', chunk_time_interval => INTERVAL '1 month');
SELECT create_hypertable('intervals', 'ts', chunk_time_interval => INTERVAL '1 month');
SELECT create_hypertable('instant_values', 'ts', chunk_time_interval => INTERVAL '1 month');
SELECT create_hypertable('meter_events', 'ts', chunk_time_interval => INTERVAL '3 months');

ALTER TABLE register_readings SET (timescaledb.compress, timescaledb.compress_segmentby = 'meter_id',
                                   timescaledb.compress_orderby = 'obis, ts');
ALTER TABLE intervals SET (timescaledb.compress, timescaledb.compress_segmentby = 'meter_id',
                           timescaledb.compress_orderby = 'obis, ts');
ALTER TABLE instant_values SET (timescaledb.compress, timescaledb.compress_segmentby = 'meter_id',
                                timescaledb.compress_orderby = 'obis, ts');
SELECT add_compression_policy('register_readings', INTERVAL '60 days');
SELECT add_compression_policy('intervals', INTERVAL '60 days');
SELECT add_compression_policy('instant_values', INTERVAL '60 days');
SELECT add_retention_policy('instant_values', INTERVAL '400 days');

-- Hypertables make their own chunks; kept so callers need not know the mode.
CREATE FUNCTION askue_ensure_month_partition(parent text, month date) RETURNS boolean
LANGUAGE sql AS $$ SELECT false $$;

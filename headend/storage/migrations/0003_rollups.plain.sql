-- Consumption rollups on plain PostgreSQL, kept current by the ingest path
-- (askue.headend.storage.rollups) from the rows each batch newly inserted, so
-- late and out-of-order data land in the right bucket. Days and months are
-- local to the time zone recorded in askue_meta('timezone').

CREATE TABLE rollup_interval_hourly (
    meter_id bigint NOT NULL, obis text NOT NULL, hour timestamptz NOT NULL,
    value double precision NOT NULL, n integer NOT NULL,
    PRIMARY KEY (meter_id, obis, hour)
);
CREATE TABLE rollup_interval_daily (
    meter_id bigint NOT NULL, obis text NOT NULL, day date NOT NULL,
    value double precision NOT NULL, n integer NOT NULL,
    PRIMARY KEY (meter_id, obis, day)
);
CREATE TABLE rollup_interval_monthly (
    meter_id bigint NOT NULL, obis text NOT NULL, month date NOT NULL,
    value double precision NOT NULL, n integer NOT NULL,
    PRIMARY KEY (meter_id, obis, month)
);
-- Registers: first and last reading of each bucket; consumption of a bucket is
-- its last reading minus the previous bucket's last reading.
CREATE TABLE rollup_register_daily (
    meter_id bigint NOT NULL, obis text NOT NULL, day date NOT NULL,
    first_ts timestamptz NOT NULL, first_value double precision NOT NULL,
    last_ts timestamptz NOT NULL, last_value double precision NOT NULL, n integer NOT NULL,
    PRIMARY KEY (meter_id, obis, day)
);
CREATE TABLE rollup_register_monthly (
    meter_id bigint NOT NULL, obis text NOT NULL, month date NOT NULL,
    first_ts timestamptz NOT NULL, first_value double precision NOT NULL,
    last_ts timestamptz NOT NULL, last_value double precision NOT NULL, n integer NOT NULL,
    PRIMARY KEY (meter_id, obis, month)
);

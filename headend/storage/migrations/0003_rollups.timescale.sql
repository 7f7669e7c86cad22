-- Consumption rollups on TimescaleDB: continuous aggregates with real-time
-- aggregation (materialized_only = false, so new rows show at once) refreshed
-- over the last three months (late data), exposed as views with the same names
-- and columns as the plain-PostgreSQL rollup tables, so the same queries run.
-- Interval timestamps are period ends: the 1-microsecond offset puts an
-- interval ending exactly at local midnight into the day before.

CREATE MATERIALIZED VIEW cagg_interval_hourly WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT meter_id, obis, time_bucket(INTERVAL '1 hour', ts, '{{timezone}}', "offset" => INTERVAL '1 microsecond') AS bucket,
       sum(value) AS value, count(*) AS n
FROM intervals GROUP BY meter_id, obis, bucket WITH NO DATA;

CREATE MATERIALIZED VIEW cagg_interval_daily WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT meter_id, obis, time_bucket(INTERVAL '1 day', ts, '{{timezone}}', "offset" => INTERVAL '1 microsecond') AS bucket,
       sum(value) AS value, count(*) AS n
FROM intervals GROUP BY meter_id, obis, bucket WITH NO DATA;

CREATE MATERIALIZED VIEW cagg_interval_monthly WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT meter_id, obis, time_bucket(INTERVAL '1 month', ts, '{{timezone}}', "offset" => INTERVAL '1 microsecond') AS bucket,
       sum(value) AS value, count(*) AS n
FROM intervals GROUP BY meter_id, obis, bucket WITH NO DATA;

CREATE MATERIALIZED VIEW cagg_register_daily WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT meter_id, obis, time_bucket(INTERVAL '1 day', ts, '{{timezone}}') AS bucket,
       min(ts) AS first_ts, first(value, ts) AS first_value, max(ts) AS last_ts, last(value, ts) AS last_value,
       count(*) AS n
FROM register_readings GROUP BY meter_id, obis, bucket WITH NO DATA;

CREATE MATERIALIZED VIEW cagg_register_monthly WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT meter_id, obis, time_bucket(INTERVAL '1 month', ts, '{{timezone}}') AS bucket,
       min(ts) AS first_ts, first(value, ts) AS first_value, max(ts) AS last_ts, last(value, ts) AS last_value,
       count(*) AS n
FROM register_readings GROUP BY meter_id, obis, bucket WITH NO DATA;

SELECT add_continuous_aggregate_policy(c, start_offset => INTERVAL '3 months', end_offset => INTERVAL '1 hour',
                                       schedule_interval => INTERVAL '15 minutes')
FROM unnest(ARRAY['cagg_interval_hourly', 'cagg_interval_daily', 'cagg_interval_monthly',
                  'cagg_register_daily', 'cagg_register_monthly']) AS c;

CREATE VIEW rollup_interval_hourly AS
SELECT meter_id, obis, date_trunc('hour', bucket) AS hour, value, n::integer AS n FROM cagg_interval_hourly;
CREATE VIEW rollup_interval_daily AS
SELECT meter_id, obis, (bucket AT TIME ZONE '{{timezone}}')::date AS day, value, n::integer AS n FROM cagg_interval_daily;
CREATE VIEW rollup_interval_monthly AS
SELECT meter_id, obis, (bucket AT TIME ZONE '{{timezone}}')::date AS month, value, n::integer AS n
FROM cagg_interval_monthly;
CREATE VIEW rollup_register_daily AS
SELECT meter_id, obis, (bucket AT TIME ZONE '{{timezone}}')::date AS day, first_ts, first_value, last_ts, last_value,
       n::integer AS n FROM cagg_register_daily;
CREATE VIEW rollup_register_monthly AS
SELECT meter_id, obis, (bucket AT TIME ZONE '{{timezone}}')::date AS month, first_ts, first_value, last_ts,
       last_value, n::integer AS n FROM cagg_register_monthly;

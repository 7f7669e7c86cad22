-- Same column as on plain PostgreSQL, computed by the view (continuous aggregates
-- take no window functions).
CREATE OR REPLACE VIEW rollup_register_daily AS
SELECT meter_id, obis, (bucket AT TIME ZONE '{{timezone}}')::date AS day, first_ts, first_value, last_ts, last_value,
       n::integer AS n, lag(last_value) OVER (PARTITION BY meter_id, obis ORDER BY bucket) AS prev_value
FROM cagg_register_daily;
CREATE OR REPLACE VIEW rollup_register_monthly AS
SELECT meter_id, obis, (bucket AT TIME ZONE '{{timezone}}')::date AS month, first_ts, first_value, last_ts,
       last_value, n::integer AS n, lag(last_value) OVER (PARTITION BY meter_id, obis ORDER BY bucket) AS prev_value
FROM cagg_register_monthly;

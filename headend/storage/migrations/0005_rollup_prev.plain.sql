-- The last reading of the previous bucket that has one, kept beside each register
-- rollup row by the ingest path: consumption of a bucket is then last_value minus
-- prev_value (or first_value for the very first bucket) without a window over the range.
ALTER TABLE rollup_register_daily ADD COLUMN prev_value double precision;
ALTER TABLE rollup_register_monthly ADD COLUMN prev_value double precision;

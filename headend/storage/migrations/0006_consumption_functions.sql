-- How a daily register bucket turns into consumption, shared by the consumption
-- query, the plain-mode aggregate triggers (0007) and the TimescaleDB view.

-- Consumption of one daily register bucket: last reading − the previous bucket's (or
-- its own first), a drop from the top of the register's capacity to its bottom counted
-- as a rollover, times the meter's CT·VT multiplier. The consumption query uses the same.
CREATE FUNCTION askue_bucket_consumption(last_value double precision, prev double precision, digits integer,
                                         multiplier double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN last_value < prev AND digits IS NOT NULL
                     AND prev >= 0.9 * 10 ^ digits AND last_value < 0.1 * 10 ^ digits
                THEN last_value - prev + 10 ^ digits
                ELSE last_value - prev END * multiplier
$$;

-- The register channels consumption is reported for: A+ per tariff zone, water, heat, gas.
CREATE FUNCTION askue_is_consumption_channel(obis text) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT obis LIKE '1.0.1.8.%' OR obis IN ('8.0.1.0.0.255', '9.0.1.0.0.255', '6.0.1.0.0.255', '7.0.3.0.0.255')
$$;

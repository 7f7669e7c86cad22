-- askue_rollup_rebuild holds the register months' lock from its start (see 0052): it deletes
-- a channel's buckets before re-adding its values through the insert trigger, and a month
-- closed in between would otherwise be folded from days this rebuild is about to replace.
-- Same body as before otherwise.
CREATE OR REPLACE FUNCTION askue_rollup_rebuild(p_meter bigint, p_obis text, lo timestamptz, hi timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    a timestamptz := date_trunc('month', lo AT TIME ZONE '{{timezone}}') AT TIME ZONE '{{timezone}}';
    b timestamptz := (date_trunc('month', hi AT TIME ZONE '{{timezone}}') + interval '1 month')
                     AT TIME ZONE '{{timezone}}';
    da date := (a AT TIME ZONE '{{timezone}}')::date;
    db date := (b AT TIME ZONE '{{timezone}}')::date;
    nb date;
BEGIN
    PERFORM askue_rollup_months_open_from();
    DELETE FROM rollup_interval_hourly WHERE meter_id = p_meter AND obis = p_obis AND hour >= a AND hour < b;
    DELETE FROM rollup_interval_daily WHERE meter_id = p_meter AND obis = p_obis AND day >= da AND day < db;
    DELETE FROM rollup_interval_monthly WHERE meter_id = p_meter AND obis = p_obis AND month >= da AND month < db;
    DELETE FROM rollup_register_daily WHERE meter_id = p_meter AND obis = p_obis AND day >= da AND day < db;
    DELETE FROM rollup_register_monthly WHERE meter_id = p_meter AND obis = p_obis AND month >= da AND month < db;
    INSERT INTO rollup_feed_intervals SELECT meter_id, obis, ts, value, period_s FROM intervals
    WHERE meter_id = p_meter AND obis = p_obis
      AND ts - make_interval(secs => period_s) >= a AND ts - make_interval(secs => period_s) < b;
    INSERT INTO rollup_feed_registers SELECT meter_id, obis, ts, value FROM register_readings
    WHERE meter_id = p_meter AND obis = p_obis AND ts >= a AND ts < b;
    DELETE FROM rollup_feed_intervals;  -- only this transaction's rows are visible here
    DELETE FROM rollup_feed_registers;
    -- the first bucket after the range: its predecessor may have changed or gone
    SELECT min(day) INTO nb FROM rollup_register_daily WHERE meter_id = p_meter AND obis = p_obis AND day >= db;
    IF nb IS NOT NULL THEN
        PERFORM askue_rollup_fix_prev('rollup_register_daily', 'day', ARRAY[p_meter], ARRAY[p_obis], ARRAY[nb],
                                      ARRAY[true]);
    END IF;
    SELECT min(month) INTO nb FROM rollup_register_monthly WHERE meter_id = p_meter AND obis = p_obis AND month >= db;
    IF nb IS NOT NULL THEN
        PERFORM askue_rollup_fix_prev('rollup_register_monthly', 'month', ARRAY[p_meter], ARRAY[p_obis], ARRAY[nb],
                                      ARRAY[true]);
    END IF;
END $$;

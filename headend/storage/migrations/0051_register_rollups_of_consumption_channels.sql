-- Register rollups only for the channels consumption is counted on.
--
-- Every reader of rollup_register_daily|monthly (consumption queries, consumption_daily,
-- the Grafana consumption panels) asks only for askue_is_consumption_channel() registers:
-- active energy import (1.0.1.8.*) and the water, heat and gas volume registers. A meter
-- sends more: export and reactive energy in every tariff zone (A-, R+, R-: 15 of a typical
-- poll's 20 registers), whose buckets were kept up to date on every insert and never read.
-- On sparse batches (one new reading per channel, as live polls arrive) the upsert of two
-- bucket rows per reading was the largest part of the database's work per value.
-- Same function body as 0007/0020 otherwise; the buckets of the other channels go.
CREATE OR REPLACE FUNCTION askue_rollup_registers_added() RETURNS trigger LANGUAGE plpgsql
SET work_mem = '64MB' AS $$
DECLARE
    dm bigint[]; dob text[]; dbk date[]; dc boolean[];
    mm bigint[]; mob text[]; mbk date[]; mc boolean[];
BEGIN
    WITH g AS (
        SELECT meter_id, obis, (ts AT TIME ZONE '{{timezone}}')::date AS day,
               min(ts) AS first_ts, (min(ARRAY[date_part('epoch', ts), value]))[2] AS first_value,
               max(ts) AS last_ts, (max(ARRAY[date_part('epoch', ts), value]))[2] AS last_value, count(*)::int AS n
        FROM new_rows WHERE askue_is_consumption_channel(obis) GROUP BY 1, 2, 3
    ), d AS (
        INSERT INTO rollup_register_daily AS r (meter_id, obis, day, first_ts, first_value, last_ts, last_value, n)
        SELECT * FROM g ORDER BY 1, 2, 3
        ON CONFLICT (meter_id, obis, day) DO UPDATE SET
            first_value = CASE WHEN EXCLUDED.first_ts < r.first_ts THEN EXCLUDED.first_value ELSE r.first_value END,
            first_ts = least(r.first_ts, EXCLUDED.first_ts),
            last_value = CASE WHEN EXCLUDED.last_ts >= r.last_ts THEN EXCLUDED.last_value ELSE r.last_value END,
            last_ts = greatest(r.last_ts, EXCLUDED.last_ts),
            n = r.n + EXCLUDED.n
        RETURNING r.meter_id, r.obis, r.day AS b, r.xmax = 0 AS created
    ), m AS (
        INSERT INTO rollup_register_monthly AS r (meter_id, obis, month, first_ts, first_value, last_ts, last_value, n)
        SELECT meter_id, obis, date_trunc('month', day)::date,
               min(first_ts), (min(ARRAY[date_part('epoch', first_ts), first_value]))[2],
               max(last_ts), (max(ARRAY[date_part('epoch', last_ts), last_value]))[2], sum(n)
        FROM g GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (meter_id, obis, month) DO UPDATE SET
            first_value = CASE WHEN EXCLUDED.first_ts < r.first_ts THEN EXCLUDED.first_value ELSE r.first_value END,
            first_ts = least(r.first_ts, EXCLUDED.first_ts),
            last_value = CASE WHEN EXCLUDED.last_ts >= r.last_ts THEN EXCLUDED.last_value ELSE r.last_value END,
            last_ts = greatest(r.last_ts, EXCLUDED.last_ts),
            n = r.n + EXCLUDED.n
        RETURNING r.meter_id, r.obis, r.month AS b, r.xmax = 0 AS created
    )
    SELECT (SELECT array_agg(meter_id) FROM d), (SELECT array_agg(obis) FROM d), (SELECT array_agg(b) FROM d),
           (SELECT array_agg(created) FROM d), (SELECT array_agg(meter_id) FROM m), (SELECT array_agg(obis) FROM m),
           (SELECT array_agg(b) FROM m), (SELECT array_agg(created) FROM m)
    INTO dm, dob, dbk, dc, mm, mob, mbk, mc;
    PERFORM askue_rollup_fix_prev('rollup_register_daily', 'day', dm, dob, dbk, dc);
    PERFORM askue_rollup_fix_prev('rollup_register_monthly', 'month', mm, mob, mbk, mc);
    RETURN NULL;
END $$;

DELETE FROM rollup_register_daily WHERE NOT askue_is_consumption_channel(obis);
DELETE FROM rollup_register_monthly WHERE NOT askue_is_consumption_channel(obis);

-- askue_rollup_fix_prev without reading a channel's whole history on every batch.
--
-- The second step (the bucket after each touched one takes its last reading) was one
-- UPDATE joining the touched keys, their rows and the next bucket: the planner joined the
-- target on (meter_id, obis) before the probe for a next bucket, so every batch read every
-- stored day (month) of every channel it touched, to find that there is almost never a
-- later bucket (live data lands in the newest one). Measured on the live ingest benchmark:
-- 150 ms per batch of 16,000 channels with one day of history each, growing with the
-- history. Now the probe comes first (one primary-key descent per touched bucket, in a
-- materialized CTE the planner cannot reorder) and only the buckets it finds are updated.
-- Same results: the same rows get the same prev_value.
CREATE OR REPLACE FUNCTION askue_rollup_fix_prev(target text, col text, km bigint[], ko text[], kb date[],
                                                 kc boolean[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF km IS NULL THEN
        RETURN;
    END IF;
    IF true = ANY(kc) THEN
        EXECUTE format($q$
            UPDATE %1$I r SET prev_value = (SELECT y.last_value FROM %1$I y
                                            WHERE y.meter_id = r.meter_id AND y.obis = r.obis AND y.%2$I < r.%2$I
                                            ORDER BY y.%2$I DESC LIMIT 1)
            FROM unnest($1, $2, $3, $4) k(m, o, b, c)
            WHERE k.c AND r.meter_id = k.m AND r.obis = k.o AND r.%2$I = k.b$q$, target, col)
            USING km, ko, kb, kc;
    END IF;
    EXECUTE format($q$
        WITH nx AS MATERIALIZED (
            SELECT k.m, k.o, k.b, (SELECT y.%2$I FROM %1$I y WHERE y.meter_id = k.m AND y.obis = k.o
                                   AND y.%2$I > k.b ORDER BY y.%2$I LIMIT 1) AS nb
            FROM unnest($1, $2, $3) k(m, o, b)
        ), later AS MATERIALIZED (
            SELECT m, o, b, nb FROM nx WHERE nb IS NOT NULL
        )
        UPDATE %1$I n SET prev_value = x.last_value
        FROM later k JOIN %1$I x ON x.meter_id = k.m AND x.obis = k.o AND x.%2$I = k.b
        WHERE n.meter_id = k.m AND n.obis = k.o AND n.%2$I = k.nb
          AND n.prev_value IS DISTINCT FROM x.last_value$q$, target, col)
        USING km, ko, kb;
END $$;

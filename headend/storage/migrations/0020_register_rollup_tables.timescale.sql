-- TimescaleDB: register rollups and the daily consumption per organisation and house
-- become tables kept by statement triggers on register_readings, exactly as on plain
-- PostgreSQL (0003, 0005, 0007: the function bodies below are those of 0007), instead of
-- the continuous aggregates cagg_register_daily/monthly and the views over them.
--
-- Why: consumption of a bucket is its last reading minus the previous bucket's, and a
-- continuous aggregate sees one bucket at a time. The window the views added for that
-- (0005) could not be pushed below, so one organisation's month of daily figures read
-- every meter's whole history (0.6-1 s for 10,000 meters x 31 days), and
-- consumption_daily could not be pre-summed per organisation and house at all. Here
-- it is (a few ms), late data and corrections count at once (no wait for a refresh, no
-- refresh window), and one set of SQL keeps the figures in both modes. Hypertables take
-- INSERT and UPDATE statement triggers with transition tables, compressed chunks included.
--
-- Interval rollups stay continuous aggregates (a bucket's sum is all they need): real-time
-- aggregation above the watermark, and the refresh policy now covers every invalidated
-- range whatever its age (start_offset NULL), so a late or corrected value in a compressed
-- month is folded in at the next run instead of never.

DROP VIEW consumption_daily;
DROP VIEW rollup_register_daily;
DROP VIEW rollup_register_monthly;
DROP MATERIALIZED VIEW cagg_register_daily;  -- its refresh policy goes with it
DROP MATERIALIZED VIEW cagg_register_monthly;
DROP FUNCTION askue_rollup_rebuild(bigint, text, timestamptz, timestamptz);
DROP FUNCTION askue_consumption_compact();

-- Registers: first and last reading of each bucket, and the last reading of the previous
-- bucket that has one; consumption of a bucket is last_value minus prev_value (or
-- first_value for the very first bucket).
CREATE TABLE rollup_register_daily (
    meter_id bigint NOT NULL, obis text NOT NULL, day date NOT NULL,
    first_ts timestamptz NOT NULL, first_value double precision NOT NULL,
    last_ts timestamptz NOT NULL, last_value double precision NOT NULL, n integer NOT NULL,
    prev_value double precision,
    PRIMARY KEY (meter_id, obis, day)
) WITH (fillfactor = 70);
CREATE TABLE rollup_register_monthly (
    meter_id bigint NOT NULL, obis text NOT NULL, month date NOT NULL,
    first_ts timestamptz NOT NULL, first_value double precision NOT NULL,
    last_ts timestamptz NOT NULL, last_value double precision NOT NULL, n integer NOT NULL,
    prev_value double precision,
    PRIMARY KEY (meter_id, obis, month)
) WITH (fillfactor = 70);
ALTER TABLE meters SET (fillfactor = 80);

-- Refresh prev_value (the last reading of the previous bucket with data) around the
-- buckets a statement touched: a created bucket (c) takes its predecessor's last
-- reading; the bucket after each touched one takes the touched one's last reading.
CREATE FUNCTION askue_rollup_fix_prev(target text, col text, km bigint[], ko text[], kb date[], kc boolean[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF km IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format($q$
        UPDATE %1$I r SET prev_value = (SELECT y.last_value FROM %1$I y
                                        WHERE y.meter_id = r.meter_id AND y.obis = r.obis AND y.%2$I < r.%2$I
                                        ORDER BY y.%2$I DESC LIMIT 1)
        FROM unnest($1, $2, $3, $4) k(m, o, b, c)
        WHERE k.c AND r.meter_id = k.m AND r.obis = k.o AND r.%2$I = k.b$q$, target, col)
        USING km, ko, kb, kc;
    EXECUTE format($q$
        UPDATE %1$I n SET prev_value = x.last_value
        FROM unnest($1, $2, $3) k(m, o, b)
        JOIN %1$I x ON x.meter_id = k.m AND x.obis = k.o AND x.%2$I = k.b
        CROSS JOIN LATERAL (SELECT y.%2$I AS nb FROM %1$I y WHERE y.meter_id = k.m AND y.obis = k.o
                            AND y.%2$I > k.b ORDER BY y.%2$I LIMIT 1) nx
        WHERE n.meter_id = k.m AND n.obis = k.o AND n.%2$I = nx.nb
          AND n.prev_value IS DISTINCT FROM x.last_value$q$, target, col)
        USING km, ko, kb;
END $$;

-- Add the rows a statement inserted to every rollup of their kind: the one place the rollup
-- arithmetic lives. Fired by register_readings / intervals, and by the rollup_feed_* tables
-- through which askue_rollup_rebuild() re-adds stored values. Each level is aggregated
-- from the one below (days from the rows, months from the days), all upserts in one
-- statement; first/last reading of a bucket by time, so late and out-of-order rows land
-- right. Days and months are local to the database's time zone; an interval is bucketed by
-- its start (ts is the END of the integration period, the DLMS profile convention).
-- work_mem: the per-bucket aggregation of a big COPY stays a hash aggregate in memory.
CREATE FUNCTION askue_rollup_registers_added() RETURNS trigger LANGUAGE plpgsql SET work_mem = '64MB' AS $$
DECLARE
    dm bigint[]; dob text[]; dbk date[]; dc boolean[];
    mm bigint[]; mob text[]; mbk date[]; mc boolean[];
BEGIN
    WITH g AS (
        SELECT meter_id, obis, (ts AT TIME ZONE '{{timezone}}')::date AS day,
               min(ts) AS first_ts, (min(ARRAY[date_part('epoch', ts), value]))[2] AS first_value,
               max(ts) AS last_ts, (max(ARRAY[date_part('epoch', ts), value]))[2] AS last_value, count(*)::int AS n
        FROM new_rows GROUP BY 1, 2, 3
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

CREATE TRIGGER rollup_ins AFTER INSERT ON register_readings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION askue_rollup_registers_added();

-- Rows inserted here go to the rollups (same trigger) and are deleted by the same
-- transaction: askue_rollup_rebuild() re-adds stored values through them.
CREATE TABLE rollup_feed_registers (meter_id bigint NOT NULL, obis text NOT NULL, ts timestamptz NOT NULL,
                                    value double precision NOT NULL);
CREATE TRIGGER rollup_ins AFTER INSERT ON rollup_feed_registers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION askue_rollup_registers_added();

-- Rebuild every register bucket of one channel in whole local months around [lo, hi) from
-- the stored values: for values changed or deleted in place (VEE edits, estimates
-- replaced). Interval rollups are continuous aggregates: their refresh policy follows.
CREATE FUNCTION askue_rollup_rebuild(p_meter bigint, p_obis text, lo timestamptz, hi timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    a timestamptz := date_trunc('month', lo AT TIME ZONE '{{timezone}}') AT TIME ZONE '{{timezone}}';
    b timestamptz := (date_trunc('month', hi AT TIME ZONE '{{timezone}}') + interval '1 month')
                     AT TIME ZONE '{{timezone}}';
    da date := (a AT TIME ZONE '{{timezone}}')::date;
    db date := (b AT TIME ZONE '{{timezone}}')::date;
    nb date;
BEGIN
    DELETE FROM rollup_register_daily WHERE meter_id = p_meter AND obis = p_obis AND day >= da AND day < db;
    DELETE FROM rollup_register_monthly WHERE meter_id = p_meter AND obis = p_obis AND month >= da AND month < db;
    INSERT INTO rollup_feed_registers SELECT meter_id, obis, ts, value FROM register_readings
    WHERE meter_id = p_meter AND obis = p_obis AND ts >= a AND ts < b;
    DELETE FROM rollup_feed_registers;  -- only this transaction's rows are visible here
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

-- Daily consumption per organisation / house / resource / zone / meter class. org_id and
-- site_id are 0 for a meter without one; `meters` counts the meter-days summed.
-- Writers only append signed changes to rollup_consumption_pending (no row shared
-- between concurrent ingest transactions, so no lock waits or deadlocks there);
-- askue_consumption_compact(), run every few seconds by the head-end, folds them
-- into rollup_consumption_daily. Readers use the view consumption_daily: both
-- tables together, always exact.
CREATE TABLE rollup_consumption_daily (
    org_id     bigint NOT NULL,
    site_id    bigint NOT NULL,
    resource   text NOT NULL,
    zone       integer NOT NULL,
    is_balance boolean NOT NULL,
    day        date NOT NULL,
    value      double precision NOT NULL,
    meters     integer NOT NULL,
    PRIMARY KEY (org_id, day, site_id, resource, zone, is_balance)
) WITH (fillfactor = 70);
CREATE INDEX rollup_consumption_daily_site_idx ON rollup_consumption_daily (site_id, day);
CREATE TABLE rollup_consumption_pending (LIKE rollup_consumption_daily);
CREATE INDEX rollup_consumption_pending_org_idx ON rollup_consumption_pending (org_id, day);
CREATE INDEX rollup_consumption_pending_site_idx ON rollup_consumption_pending (site_id, day);

CREATE VIEW consumption_daily AS
SELECT org_id, site_id, resource, zone, is_balance, day, value, meters FROM rollup_consumption_daily
UNION ALL
SELECT org_id, site_id, resource, zone, is_balance, day, value, meters FROM rollup_consumption_pending;

CREATE FUNCTION askue_consumption_compact() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('askue_consumption_compact')) THEN
        RETURN 0;  -- another head-end is at it
    END IF;
    WITH d AS (DELETE FROM rollup_consumption_pending RETURNING *),
    up AS (
        INSERT INTO rollup_consumption_daily AS g (org_id, site_id, resource, zone, is_balance, day, value, meters)
        SELECT org_id, site_id, resource, zone, is_balance, day, sum(value), sum(meters)
        FROM d GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6
        ON CONFLICT (org_id, day, site_id, resource, zone, is_balance) DO UPDATE
            SET value = g.value + EXCLUDED.value, meters = g.meters + EXCLUDED.meters
        RETURNING 1)
    SELECT count(*) INTO n FROM d;
    RETURN n;
END $$;

-- Append signed contributions of daily register rows (`src`: sign, meter_id, obis, day,
-- last_value, prev) under the attributes the meters have in `meters_src`.
CREATE FUNCTION askue_consumption_sql(src text, meters_src text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT format($q$
        INSERT INTO rollup_consumption_pending (org_id, site_id, resource, zone, is_balance, day, value, meters)
        SELECT coalesce(m.org_id, 0), coalesce(m.site_id, 0), m.resource,
               CASE WHEN m.resource = 'electricity' THEN split_part(d.obis, '.', 5)::int ELSE 0 END,
               m.is_balance, d.day, sum(d.sign * askue_bucket_consumption(d.last_value, d.prev, m.digits, m.multiplier)),
               sum(d.sign)
        FROM (%1$s) d JOIN %2$s m ON m.id = d.meter_id
        WHERE askue_is_consumption_channel(d.obis)
        GROUP BY 1, 2, 3, 4, 5, 6
        HAVING sum(d.sign) <> 0
            OR sum(d.sign * askue_bucket_consumption(d.last_value, d.prev, m.digits, m.multiplier)) <> 0$q$,
        src, meters_src)
$$;
CREATE FUNCTION askue_consumption_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cols text := 'meter_id, obis, day, last_value, coalesce(prev_value, first_value) AS prev';
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE askue_consumption_sql('SELECT 1 AS sign, ' || cols || ' FROM new_rows', 'meters');
    ELSIF TG_OP = 'UPDATE' THEN
        EXECUTE askue_consumption_sql('SELECT 1 AS sign, ' || cols || ' FROM new_rows UNION ALL SELECT -1, '
                                      || cols || ' FROM old_rows', 'meters');
    ELSE
        EXECUTE askue_consumption_sql('SELECT -1 AS sign, ' || cols || ' FROM old_rows', 'meters');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER consumption_ins AFTER INSERT ON rollup_register_daily
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION askue_consumption_rows_changed();
CREATE TRIGGER consumption_upd AFTER UPDATE ON rollup_register_daily
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION askue_consumption_rows_changed();
CREATE TRIGGER consumption_del AFTER DELETE ON rollup_register_daily
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION askue_consumption_rows_changed();

-- A meter moved to another organisation or house, or whose resource, class, digit
-- capacity or multiplier changed: its days move from the old attributes to the new.
CREATE FUNCTION askue_consumption_meter_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    cols text := 'meter_id, obis, day, last_value, coalesce(prev_value, first_value) AS prev';
BEGIN
    EXECUTE askue_consumption_sql('SELECT -1 AS sign, ' || cols || ' FROM rollup_register_daily WHERE meter_id = $1',
                                  '(SELECT ($2::meters).*) ') USING OLD.id, OLD;
    EXECUTE askue_consumption_sql('SELECT 1 AS sign, ' || cols || ' FROM rollup_register_daily WHERE meter_id = $1',
                                  '(SELECT ($2::meters).*) ') USING NEW.id, NEW;
    RETURN NULL;
END $$;

CREATE TRIGGER consumption_meter_upd AFTER UPDATE ON meters FOR EACH ROW
    WHEN (OLD.org_id IS DISTINCT FROM NEW.org_id OR OLD.site_id IS DISTINCT FROM NEW.site_id
          OR OLD.resource IS DISTINCT FROM NEW.resource OR OLD.is_balance IS DISTINCT FROM NEW.is_balance
          OR OLD.digits IS DISTINCT FROM NEW.digits OR OLD.multiplier IS DISTINCT FROM NEW.multiplier)
    EXECUTE FUNCTION askue_consumption_meter_changed();

-- Existing readings into the new tables (through the same trigger), and folded.
INSERT INTO rollup_feed_registers SELECT meter_id, obis, ts, value FROM register_readings ORDER BY meter_id, obis, ts;
DELETE FROM rollup_feed_registers;
SELECT askue_consumption_compact();

SELECT remove_continuous_aggregate_policy(c)
FROM unnest(ARRAY['cagg_interval_hourly', 'cagg_interval_daily', 'cagg_interval_monthly']) AS c;
SELECT add_continuous_aggregate_policy(c, start_offset => NULL, end_offset => INTERVAL '1 hour',
                                       schedule_interval => INTERVAL '15 minutes')
FROM unnest(ARRAY['cagg_interval_hourly', 'cagg_interval_daily', 'cagg_interval_monthly']) AS c;

-- Monthly register rollups for closed months only; the open month is read from the days.
--
-- Every live poll moved two bucket rows per consumption channel: its day and its month. The
-- month row was rewritten on every poll (its last reading changes each time), yet a month's
-- figures follow from its days: the first day's first reading and prev_value, the last day's
-- last reading. Measured on the live ingest benchmark (2,000 meters, one poll per message):
-- the monthly upsert and its prev_value fix were ~50 ms of the ~200 ms the register rollup
-- statement took per batch of 16,660 registers.
--
-- Now rollup_register_monthly holds the months before rollup_register_months.open_from (a
-- local month start). The insert trigger keeps those (late data into a closed month) as
-- before and leaves the open months alone; askue_rollup_close_months(), run by the head-end's
-- storage task, folds a month from its days once it has ended and moves open_from on. Readers
-- take months before open_from from the monthly table and the rest from the daily one
-- (askue.headend.storage.queries.consumption), so the figures are the same either way.
--
-- The switch is atomic for writers: every writer of register buckets holds the advisory lock
-- 'askue_rollup_months' shared (the insert trigger, askue_rollup_rebuild); the fold takes it
-- exclusively, so it starts only after every transaction that could still write a day of the
-- months it closes has committed, and those that follow see the new open_from.
CREATE TABLE rollup_register_months (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    open_from date NOT NULL  -- first local month whose buckets live only in rollup_register_daily
);
INSERT INTO rollup_register_months (open_from)
VALUES (date_trunc('month', now() AT TIME ZONE '{{timezone}}')::date);
DELETE FROM rollup_register_monthly WHERE month >= (SELECT open_from FROM rollup_register_months);

-- Held shared by every writer of register buckets until it commits; returns open_from as
-- seen after the lock (a fold that ran meanwhile has committed its new value).
CREATE FUNCTION askue_rollup_months_open_from() RETURNS date LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('askue_rollup_months'));
    RETURN (SELECT open_from FROM rollup_register_months);
END $$;

CREATE OR REPLACE FUNCTION askue_rollup_registers_added() RETURNS trigger LANGUAGE plpgsql
SET work_mem = '64MB' AS $$
DECLARE
    dm bigint[]; dob text[]; dbk date[]; dc boolean[];
    mm bigint[]; mob text[]; mbk date[]; mc boolean[];
    open_months_from date := askue_rollup_months_open_from();
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
        FROM g WHERE day < open_months_from GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
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

-- Close every month before `upto` (default: the current local month) that is still open:
-- its monthly buckets from its days, then open_from moves on. Returns the buckets written.
-- A month's first reading and prev_value are its first day's (prev_value of a day is the last
-- reading of the previous day with data, which for the month's first day with data is the
-- previous month with data's last reading), its last reading the last day's.
CREATE FUNCTION askue_rollup_close_months(upto date DEFAULT NULL) RETURNS bigint LANGUAGE plpgsql
SET work_mem = '64MB' AS $$
DECLARE
    target date := date_trunc('month', coalesce(upto, (now() AT TIME ZONE '{{timezone}}')::date))::date;
    was_open_from date;
    written bigint;
BEGIN
    IF (SELECT r.open_from FROM rollup_register_months r) >= target THEN
        RETURN 0;  -- the usual call: nothing has ended since the last one
    END IF;
    -- waits for every writer holding it shared (their days are then committed and seen by
    -- the statements below, each with a fresh snapshot); writers after this one wait here
    PERFORM pg_advisory_xact_lock(hashtext('askue_rollup_months'));
    SELECT r.open_from INTO was_open_from FROM rollup_register_months r;
    IF was_open_from >= target THEN
        RETURN 0;  -- another head-end closed it meanwhile
    END IF;
    INSERT INTO rollup_register_monthly AS r (meter_id, obis, month, first_ts, first_value, last_ts, last_value, n,
                                              prev_value)
    SELECT meter_id, obis, date_trunc('month', day)::date,
           (array_agg(first_ts ORDER BY day))[1], (array_agg(first_value ORDER BY day))[1],
           (array_agg(last_ts ORDER BY day DESC))[1], (array_agg(last_value ORDER BY day DESC))[1], sum(n),
           (array_agg(prev_value ORDER BY day))[1]
    FROM rollup_register_daily WHERE day >= was_open_from AND day < target
    GROUP BY 1, 2, 3
    ON CONFLICT (meter_id, obis, month) DO UPDATE SET
        first_ts = EXCLUDED.first_ts, first_value = EXCLUDED.first_value, last_ts = EXCLUDED.last_ts,
        last_value = EXCLUDED.last_value, n = EXCLUDED.n, prev_value = EXCLUDED.prev_value;
    GET DIAGNOSTICS written = ROW_COUNT;
    UPDATE rollup_register_months SET open_from = target;
    RETURN written;
END $$;

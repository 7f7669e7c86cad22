-- Value tables on plain PostgreSQL: native monthly range partitions on ts (UTC
-- months). A DEFAULT partition catches rows whose month has no partition yet;
-- askue_ensure_month_partition() creates a month and moves such rows into it.
-- No foreign key to meters: values from unknown meters get a meter row first
-- (status 'unassigned'), and a per-row FK check would halve COPY speed.

CREATE TABLE register_readings (
    id          bigint NOT NULL DEFAULT nextval('value_seq'),
    meter_id    bigint NOT NULL,
    obis        text NOT NULL,
    ts          timestamptz NOT NULL,
    ts_source   text NOT NULL DEFAULT 'meter' CHECK (ts_source IN ('meter', 'gateway')),
    received_at timestamptz NOT NULL,
    value       double precision NOT NULL,
    quality     char(1) NOT NULL DEFAULT 'A' CHECK (quality IN ('A', 'E', 'S', 'M')),
    reasons     text[] NOT NULL DEFAULT '{}',
    source      text NOT NULL DEFAULT 'gateway' CHECK (source IN ('gateway', 'manual', 'file', 'estimate')),
    gateway_id  text,
    seq         bigint,
    PRIMARY KEY (meter_id, obis, ts)
) PARTITION BY RANGE (ts);

CREATE TABLE intervals (LIKE register_readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    period_s integer NOT NULL CHECK (period_s > 0 AND period_s <= 86400),
    PRIMARY KEY (meter_id, obis, ts)) PARTITION BY RANGE (ts);
CREATE TABLE instant_values (LIKE register_readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (meter_id, obis, ts)) PARTITION BY RANGE (ts);
-- Meter journal entries: value is the journal's event code.
CREATE TABLE meter_events (LIKE register_readings INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (meter_id, obis, ts)) PARTITION BY RANGE (ts);

CREATE TABLE register_readings_default PARTITION OF register_readings DEFAULT;
CREATE TABLE intervals_default PARTITION OF intervals DEFAULT;
CREATE TABLE instant_values_default PARTITION OF instant_values DEFAULT;
CREATE TABLE meter_events_default PARTITION OF meter_events DEFAULT;

CREATE INDEX register_readings_id_idx ON register_readings (id);
CREATE INDEX intervals_id_idx ON intervals (id);

CREATE FUNCTION askue_ensure_month_partition(parent text, month date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := (date_trunc('month', month::timestamp) AT TIME ZONE 'UTC');
    hi   timestamptz := ((date_trunc('month', month::timestamp) + interval '1 month') AT TIME ZONE 'UTC');
    part text := parent || '_' || to_char(month, 'YYYYMM');
BEGIN
    IF parent NOT IN ('register_readings', 'intervals', 'instant_values', 'meter_events') THEN
        RAISE EXCEPTION 'askue_ensure_month_partition: % is not a value table', parent;
    END IF;
    -- Serialise creators of the same partition (several ingest workers).
    PERFORM pg_advisory_xact_lock(hashtext(part));
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part, parent);
    -- Rows that arrived before the partition existed sit in the default partition.
    EXECUTE format('WITH moved AS (DELETE FROM %I WHERE ts >= %L AND ts < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                   parent || '_default', lo, hi, part);
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', parent, part, lo, hi);
    RETURN true;
END $$;

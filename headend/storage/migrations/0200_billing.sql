-- Billing (issue 7): the feed's change log, billing periods and their frozen
-- snapshots, recalculations after closing, the manual-reading acceptance window
-- and the 80020 file numbering. Triggers that fill the change log are in 0201
-- (statement-level on plain PostgreSQL, row-level on TimescaleDB).

-- Every insert or update of a register reading, in the writing transaction, with
-- that transaction's id. The feed only reads entries whose transaction is older
-- than every transaction still running (xid < xmin of the current snapshot), so
-- a row committed late can never fall behind a cursor that already moved on.
CREATE TABLE billing_changes (
    seq       bigint GENERATED ALWAYS AS IDENTITY,
    xid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
    meter_id  bigint NOT NULL,
    obis      text NOT NULL,
    ts        timestamptz NOT NULL,
    at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (xid, seq)
);
CREATE INDEX billing_changes_at_idx ON billing_changes (at);

CREATE FUNCTION askue_billing_log_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO billing_changes (meter_id, obis, ts) SELECT meter_id, obis, ts FROM new_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION askue_billing_log_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO billing_changes (meter_id, obis, ts) VALUES (NEW.meter_id, NEW.obis, NEW.ts);
    RETURN NULL;
END $$;

-- A billing month per organisation: open until someone closes it; closing freezes
-- its snapshot rows.
CREATE TABLE billing_periods (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id     bigint NOT NULL REFERENCES organisations(id),
    month      date NOT NULL CHECK (extract(day FROM month) = 1),
    state      text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed')),
    closed_at  timestamptz,
    closed_by  text,
    UNIQUE (org_id, month)
);

-- The snapshot of a closed period, one row per meter and register channel
-- (tariff zone). Never updated: later changes become billing_recalculations.
CREATE TABLE billing_snapshots (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period_id     bigint NOT NULL REFERENCES billing_periods(id),
    meter_id      bigint NOT NULL REFERENCES meters(id),
    obis          text NOT NULL,
    start_ts      timestamptz,
    start_value   double precision,
    start_quality char(1),
    start_source  text,
    end_ts        timestamptz,
    end_value     double precision,
    end_quality   char(1),
    end_source    text,
    multiplier    double precision NOT NULL,
    consumption   double precision,
    quality       char(1),
    estimated     boolean NOT NULL DEFAULT false,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (period_id, meter_id, obis)
);

-- A correction to a closed period: what billing was given, what it is now, why.
CREATE TABLE billing_recalculations (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period_id        bigint NOT NULL REFERENCES billing_periods(id),
    snapshot_id      bigint REFERENCES billing_snapshots(id),
    meter_id         bigint NOT NULL REFERENCES meters(id),
    obis             text NOT NULL,
    old_consumption  double precision,
    new_consumption  double precision,
    delta            double precision,
    old              jsonb NOT NULL,
    new              jsonb NOT NULL,
    reason           text NOT NULL,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_recalculations_period_idx ON billing_recalculations (period_id, meter_id, obis, id);

-- When manual and consumer-reported readings for a billing month are accepted:
-- from open_day of the month to close_day of the next month (local days), and
-- the reading must not be older than max_age_days when entered. org_id NULL is the
-- default for organisations without a row.
CREATE TABLE billing_reading_windows (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id        bigint UNIQUE REFERENCES organisations(id),
    open_day      integer NOT NULL DEFAULT 15 CHECK (open_day BETWEEN 1 AND 28),
    close_day     integer NOT NULL DEFAULT 5 CHECK (close_day BETWEEN 1 AND 28),
    max_age_days  integer NOT NULL DEFAULT 10 CHECK (max_age_days BETWEEN 0 AND 62),
    tolerance     double precision NOT NULL DEFAULT 3.0 CHECK (tolerance > 0)  -- × expected consumption
);
CREATE UNIQUE INDEX billing_reading_windows_default_uq ON billing_reading_windows ((org_id IS NULL)) WHERE org_id IS NULL;

-- 80020: measuring point codes configured per metering point, and file numbers.
CREATE TABLE billing_80020_points (
    meter_id  bigint PRIMARY KEY REFERENCES meters(id),
    code      text NOT NULL,
    name      text,
    area_inn  text,
    area_name text
);
CREATE TABLE billing_80020_numbers (
    sender_inn  text PRIMARY KEY,
    last_number bigint NOT NULL DEFAULT 0
);

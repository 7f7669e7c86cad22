-- The feed's change log keeps one row per writing statement (arrays of the keys it
-- inserted or updated) instead of one row per reading: on the ingest path that is
-- one small insert per merged batch, not a heap tuple and two index entries per
-- value. Readers unnest it in order; the cursor is (xid, seq, position).
DROP TABLE billing_changes;
CREATE TABLE billing_changes (
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    xid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at         timestamptz NOT NULL DEFAULT now(),
    meter_ids  bigint[] NOT NULL,
    obis       text[] NOT NULL,
    ts         timestamptz[] NOT NULL,
    PRIMARY KEY (xid, seq)
);
CREATE INDEX billing_changes_at_idx ON billing_changes (at);

-- The three aggregates run over the same rows in the same order, so the arrays line up.
CREATE OR REPLACE FUNCTION askue_billing_log_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO billing_changes (meter_ids, obis, ts)
    SELECT array_agg(meter_id), array_agg(obis), array_agg(ts) FROM new_rows HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION askue_billing_log_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO billing_changes (meter_ids, obis, ts) VALUES (ARRAY[NEW.meter_id], ARRAY[NEW.obis], ARRAY[NEW.ts]);
    RETURN NULL;
END $$;

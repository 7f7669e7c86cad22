-- VEE: abnormal-event lifecycle additions, thresholds, scan bookkeeping, and the
-- rule that a real value replaces an estimate.

-- An event's condition is "cleared" when the engine sees it over (a read back in
-- range, contact resumed). Until then the condition is raised once, whatever the
-- operator did with the event; after it, a recurrence is a new event.
ALTER TABLE abnormal_events
    ADD COLUMN cleared_at  timestamptz,
    ADD COLUMN auto_closed boolean NOT NULL DEFAULT false,
    ADD COLUMN title_en    text,
    ADD COLUMN account_id  bigint REFERENCES accounts(id);
CREATE UNIQUE INDEX abnormal_events_condition_uq ON abnormal_events (dedup_key)
    WHERE cleared_at IS NULL AND dedup_key <> '';
CREATE INDEX abnormal_events_kind_idx ON abnormal_events (kind, state, raised_at);
CREATE INDEX abnormal_events_ts_idx ON abnormal_events (ts);

-- Threshold overrides (resolution: defaults → resource → model → organisation →
-- organisation+resource; see docs/vee.md). `name` is the resource, model or
-- organisation code; `resource` narrows an organisation override.
CREATE TABLE vee_thresholds (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope       text NOT NULL CHECK (scope IN ('default', 'resource', 'model', 'organisation')),
    name        text NOT NULL DEFAULT '',
    resource    text NOT NULL DEFAULT '',
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_by  text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (scope, name, resource)
);

-- Periodic scans remember how far they got.
CREATE TABLE vee_scan_state (
    name  text PRIMARY KEY,
    at    timestamptz NOT NULL
);

-- A real value arriving for a slot that holds an estimate replaces it: the estimate
-- row is removed before the insert's conflict check, so the ingest merge's
-- ON CONFLICT DO NOTHING inserts the real one (and lists it as new), and the
-- replacement is noted for the VEE batch hook (audit, rollup recompute). Estimates are
-- only made for slots older than two hours; the trigger's WHEN keeps it off the hot
-- path of current data.
CREATE TABLE vee_replaced_estimates (
    kind        text NOT NULL,
    meter_id    bigint NOT NULL,
    obis        text NOT NULL,
    ts          timestamptz NOT NULL,
    old_value   double precision,
    new_value   double precision,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vee_replaced_estimates_meter_idx ON vee_replaced_estimates (meter_id);

CREATE FUNCTION vee_replace_estimate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_value double precision;
BEGIN
    EXECUTE format('DELETE FROM %I.%I WHERE meter_id = $1 AND obis = $2 AND ts = $3 AND source = ''estimate'' '
                   'RETURNING value', TG_TABLE_SCHEMA, TG_TABLE_NAME)
        INTO old_value USING NEW.meter_id, NEW.obis, NEW.ts;
    IF old_value IS NOT NULL THEN
        INSERT INTO vee_replaced_estimates (kind, meter_id, obis, ts, old_value, new_value)
        VALUES (TG_ARGV[0], NEW.meter_id, NEW.obis, NEW.ts, old_value, NEW.value);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER intervals_replace_estimate BEFORE INSERT ON intervals
    FOR EACH ROW WHEN (NEW.source <> 'estimate' AND NEW.ts < now() - interval '1 hour')
    EXECUTE FUNCTION vee_replace_estimate('interval');
CREATE TRIGGER register_readings_replace_estimate BEFORE INSERT ON register_readings
    FOR EACH ROW WHEN (NEW.source <> 'estimate' AND NEW.ts < now() - interval '1 hour')
    EXECUTE FUNCTION vee_replace_estimate('register');

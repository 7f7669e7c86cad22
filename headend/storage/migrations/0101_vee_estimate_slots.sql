-- Where estimates are stored, in a small table of its own: the replace-estimate trigger
-- looks here first (a cached primary-key lookup) and touches the value table only for a
-- slot that really holds an estimate, so backfills of old data stay cheap.
CREATE TABLE vee_estimate_slots (
    kind      text NOT NULL,
    meter_id  bigint NOT NULL,
    obis      text NOT NULL,
    ts        timestamptz NOT NULL,
    PRIMARY KEY (meter_id, obis, ts, kind)
);

CREATE OR REPLACE FUNCTION vee_replace_estimate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_value double precision;
BEGIN
    DELETE FROM vee_estimate_slots
        WHERE meter_id = NEW.meter_id AND obis = NEW.obis AND ts = NEW.ts AND kind = TG_ARGV[0];
    IF NOT FOUND THEN
        RETURN NEW;
    END IF;
    EXECUTE format('DELETE FROM %I.%I WHERE meter_id = $1 AND obis = $2 AND ts = $3 AND source = ''estimate'' '
                   'RETURNING value', TG_TABLE_SCHEMA, TG_TABLE_NAME)
        INTO old_value USING NEW.meter_id, NEW.obis, NEW.ts;
    IF old_value IS NOT NULL THEN
        INSERT INTO vee_replaced_estimates (kind, meter_id, obis, ts, old_value, new_value)
        VALUES (TG_ARGV[0], NEW.meter_id, NEW.obis, NEW.ts, old_value, NEW.value);
    END IF;
    RETURN NEW;
END $$;
